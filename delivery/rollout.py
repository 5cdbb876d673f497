"""Kubernetes bodies of one canary service: Rollout, Services, Ingress, PodMonitor.

Plain dicts, deterministic, no Pulumi: components/canary_service.py turns them into resources.
"""

from __future__ import annotations

from typing import Any

from delivery.names import service_names, template_names
from delivery.routers import HEADER_ROUTE, ROUTERS, SERVICE_PORT
from delivery.stack import CanaryHeader, DeliveryConfig, Probe, ServiceDeployment
from slo import conventions as names

RUN_AS_USER = 10001  # above 10000, clear of host users


def labels(service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": names.PART_OF_WORKLOADS}


def hash_args() -> list[dict[str, Any]]:
    """The canary's and the stable pods' template hashes, as analysis arguments."""
    return [
        {"name": names.CANARY_HASH_ARG, "valueFrom": {"podTemplateHashValue": "Latest"}},
        {"name": names.STABLE_HASH_ARG, "valueFrom": {"podTemplateHashValue": "Stable"}},
    ]


def steps(
    service: str, delivery: DeliveryConfig, freeze: bool, gated: bool,
    header: CanaryHeader | None = None,
) -> list[dict[str, Any]]:
    """[header route] -> 10% -> pause -> gate -> 25% -> ... -> [header route removed] ->
    [manual gate] -> 100%."""
    templates = template_names(service)
    out: list[dict[str, Any]] = []
    if freeze:
        out.append({"analysis": {"templates": [{"templateName": templates["freeze"]}]}})
    if header is not None:
        match = {"headerName": header.name, "headerValue": {"exact": header.value}}
        out.append({"setHeaderRoute": {"name": HEADER_ROUTE, "match": [match]}})
    for weight in delivery.weights:
        out.append({"setWeight": weight})
        out.append({"pause": {"duration": delivery.pause}})
        if gated:
            out.append(
                {
                    "analysis": {
                        "templates": [{"templateName": templates["gate"]}],
                        "args": hash_args(),
                    }
                }
            )
    if header is not None:  # a route without match is removed
        out.append({"setHeaderRoute": {"name": HEADER_ROUTE}})
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


def rollout(
    service: str,
    namespace: str,
    spec: ServiceDeployment,
    delivery: DeliveryConfig,
    *,
    freeze: bool,
    gate: bool,
    background: bool,
    annotate_scrape: bool,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Rollout; ``annotations`` (notification subscriptions) only when there are some."""
    svc = service_names(service)
    canary: dict[str, Any] = {
        "stableService": svc["stable"],
        "canaryService": svc["canary"],
        "steps": steps(service, delivery, freeze, gate, delivery.header_route(spec)),
        "abortScaleDownDelaySeconds": 30,
    }
    if background:
        canary["analysis"] = {
            "templates": [{"templateName": template_names(service)["background"]}],
            "startingStep": 0,
            "args": hash_args(),
        }
    routing = ROUTERS[delivery.traffic_routing].traffic_routing(
        delivery.route_target(service, namespace, spec))
    if routing is not None:
        canary["trafficRouting"] = routing
    metadata: dict[str, Any] = {"name": service, "namespace": namespace, "labels": labels(service)}
    if annotations:
        metadata["annotations"] = dict(annotations)
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
                "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http",
                           "protocol": "TCP"}],
            },
        }
        for name in service_names(service).values()
    ]


def ingress(
    service: str, namespace: str, spec: ServiceDeployment, ingress_class: str
) -> dict[str, Any]:
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
        "spec": {"ingressClassName": ingress_class, "rules": [rule]},
    }


def pod_monitor(
    service: str, namespace: str, extra_labels: dict[str, str], interval: str
) -> dict[str, Any]:
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
                    "interval": interval,
                    "relabelings": [
                        {
                            "sourceLabels": [names.HASH_RELABEL_SOURCE],
                            "targetLabel": names.HASH_LABEL,
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
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": monitoring_namespace}
                            }
                        }
                    ],
                    "ports": [{"port": "metrics", "protocol": "TCP"}],
                },
            ],
        },
    }
