"""Names of what a canary service renders; the resource names operators see in the cluster."""

from __future__ import annotations


def template_names(service: str) -> dict[str, str]:
    return {
        "gate": f"{service}-slo-gate",
        "background": f"{service}-slo-background",
        "freeze": f"{service}-budget-freeze",
    }


def service_names(service: str) -> dict[str, str]:
    return {"stable": f"{service}-stable", "canary": f"{service}-canary"}
