"""Kubernetes bodies of one canary service: Rollout, Services, Ingress, PodMonitor.

Plain dicts, deterministic, no Pulumi: components/canary_service.py turns them into resources.
"""

from __future__ import annotations

from typing import Any

from slo import analysis
from slo.stack import DeliveryConfig, Probe, ServiceDeployment

HASH_POD_LABEL = "rollouts-pod-template-hash"
RUN_AS_USER = 10001  # above 10000, clear of host users


def labels(service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": "core-services"}


def steps(
    service: str, delivery: DeliveryConfig, freeze: bool, gated: bool
) -> list[dict[str, Any]]:
    """10% -> pause -> gate -> 25% -> ... -> [manual gate] -> 100%."""
    templates = analysis.template_names(service)
    hash_arg = [{"name": analysis.CANARY_HASH_ARG, "valueFrom": {"podTemplateHashValue": "Latest"}}]
    out: list[dict[str, Any]] = []
    if freeze:
        out.append({"analysis": {"templates": [{"templateName": templates["freeze"]}]}})
    for weight in delivery.weights:
        out.append({"setWeight": weight})
        out.append({"pause": {"duration": delivery.pause}})
        if gated:
            out.append(
                {"analysis": {"templates": [{"templateName": templates["gate"]}], "args": hash_arg}}
            )
    if delivery.manual_gate:
        out.append({"pause": {}})
    return out


def _probe(probe: Probe) -> dict[str, Any]:
    return {
        "httpGet": {"path": probe.path, "port": probe.port},
        "periodSeconds": probe.period_seconds,
        "initialDelaySeconds": probe.initial_delay_seconds,
    }


def pod_template(service: str, spec: ServiceDeployment, annotate_scrape: bool) -> dict[str, Any]:
    annotations = {}
    if annotate_scrape:
        annotations = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(spec.metrics_port),
            "prometheus.io/path": "/metrics",
        }
    container = {
        "name": service,
        "image": spec.image,
        "ports": [
            {"name": "http", "containerPort": spec.port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": spec.metrics_port, "protocol": "TCP"},
        ],
        "env": [{"name": k, "value": v} for k, v in sorted(spec.env.items())],
        "resources": {
            "requests": {
                "cpu": spec.resources.cpu_request,
                "memory": spec.resources.memory_request,
            },
            "limits": {"cpu": spec.resources.cpu_limit, "memory": spec.resources.memory_limit},
        },
        "livenessProbe": _probe(spec.liveness),
        "readinessProbe": _probe(spec.readiness),
        "imagePullPolicy": "Always",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return {
        "metadata": {"labels": labels(service), "annotations": annotations},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS_USER,
                "runAsGroup": RUN_AS_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
        },
    }


def service_names(service: str) -> dict[str, str]:
    return {"stable": f"{service}-stable", "canary": f"{service}-canary"}


def rollout(
    service: str,
    namespace: str,
    spec: ServiceDeployment,
    delivery: DeliveryConfig,
    *,
    freeze: bool,
    gated: bool,
    annotate_scrape: bool,
) -> dict[str, Any]:
    svc = service_names(service)
    canary: dict[str, Any] = {
        "stableService": svc["stable"],
        "canaryService": svc["canary"],
        "steps": steps(service, delivery, freeze, gated),
        "abortScaleDownDelaySeconds": 30,
    }
    if gated:
        canary["analysis"] = {
            "templates": [{"templateName": analysis.template_names(service)["background"]}],
            "startingStep": 0,
            "args": [
                {"name": analysis.CANARY_HASH_ARG, "valueFrom": {"podTemplateHashValue": "Latest"}}
            ],
        }
    if delivery.traffic_routing == "nginx":
        canary["trafficRouting"] = {"nginx": {"stableIngress": service}}
    metadata: dict[str, Any] = {"name": service, "namespace": namespace, "labels": labels(service)}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": metadata,
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": service}},
            "template": pod_template(service, spec, annotate_scrape),
            "strategy": {"canary": canary},
        },
    }


def services(service: str, namespace: str, spec: ServiceDeployment) -> list[dict[str, Any]]:
    """Stable and canary Services; Argo Rollouts adds the pod-template-hash selectors."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels(service)},
            "spec": {
                "selector": {"app.kubernetes.io/name": service},
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        }
        for name in service_names(service).values()
    ]


def ingress(service: str, namespace: str, spec: ServiceDeployment) -> dict[str, Any]:
    """The stable Ingress that Argo Rollouts clones into a weighted canary Ingress."""
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {
                        "service": {
                            "name": service_names(service)["stable"],
                            "port": {"name": "http"},
                        }
                    },
                }
            ]
        }
    }
    if spec.host:
        rule["host"] = spec.host
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": service,
            "namespace": namespace,
            "labels": labels(service),
            # Argo Rollouts judges the release; `pulumi up` need not wait for a load balancer
            "annotations": {"pulumi.com/skipAwait": "true"},
        },
        "spec": {"ingressClassName": "nginx", "rules": [rule]},
    }


def pod_monitor(service: str, namespace: str, extra_labels: dict[str, str]) -> dict[str, Any]:
    """Scrapes the metrics port and keeps the canary's hash as ``rollouts_pod_template_hash``."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {
            "name": service,
            "namespace": namespace,
            "labels": {**labels(service), **extra_labels},
        },
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": service}},
            "podMetricsEndpoints": [
                {
                    "port": "metrics",
                    "path": "/metrics",
                    "relabelings": [
                        {
                            "sourceLabels": [
                                "__meta_kubernetes_pod_label_rollouts_pod_template_hash"
                            ],
                            "targetLabel": analysis.HASH_LABEL,
                        },
                        {"targetLabel": "job", "replacement": service},
                        {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod"},
                    ],
                }
            ],
        },
    }


def network_policy(
    service: str, namespace: str, spec: ServiceDeployment, monitoring_namespace: str
) -> dict[str, Any]:
    """Traffic may reach the service port; only the monitoring namespace may scrape metrics."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": service, "namespace": namespace, "labels": labels(service)},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": service}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"ports": [{"port": "http", "protocol": "TCP"}]},
                {
                    "from": [{"namespaceSelector": {"matchLabels": {
                        "kubernetes.io/metadata.name": monitoring_namespace}}}],
                    "ports": [{"port": "metrics", "protocol": "TCP"}],
                },
            ],
        },
    }
