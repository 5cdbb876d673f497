"""Names of what a canary service renders; the resource names operators see in the cluster."""

from __future__ import annotations

# the annotation Argo Rollouts numbers a Rollout's revisions with (and its AnalysisRuns')
REVISION_ANNOTATION = "rollout.argoproj.io/revision"


def template_names(service: str) -> dict[str, str]:
    return {
        "gate": f"{service}-slo-gate",
        "background": f"{service}-slo-background",
        "freeze": f"{service}-budget-freeze",
    }


def service_names(service: str) -> dict[str, str]:
    return {"stable": f"{service}-stable", "canary": f"{service}-canary"}
