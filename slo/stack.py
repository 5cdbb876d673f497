"""Typed stack configuration (``Pulumi.<stack>.yaml``), validated before any resource exists.

Only ``__main__.py`` reads Pulumi config; it hands the raw values to :func:`parse_stack`, which
returns these models or one line per problem naming the stack file and the config key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from slo import durations
from slo.loader import CatalogueError, Problem, pydantic_problems
from slo.model import ResolvedSlo
from slo.spec import NAME_PATTERN, Duration, Labels

PROJECT = "slo-canary"


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _percent_steps(value: list[int]) -> list[int]:
    if any(not 0 < w < 100 for w in value) or value != sorted(set(value)):
        raise ValueError("canary weights must increase strictly and lie between 1 and 99")
    return value


class ArgoRolloutsConfig(Model):
    """How Argo Rollouts gets onto the cluster."""

    install: Literal["helm", "manifests", "none"] = Field(
        default="helm",
        description="`helm`: the argo-rollouts chart; `manifests`: the controller's own "
        "install manifests from a local path (air-gapped); `none`: already installed.",
    )
    namespace: str = Field(default="argo-rollouts", pattern=NAME_PATTERN)
    chart_version: str = Field(default="2.41.0", alias="chartVersion")
    repository: str = Field(default="https://argoproj.github.io/argo-helm")
    dashboard: bool = Field(default=False, description="Also run the Argo Rollouts dashboard.")
    manifests_path: str | None = Field(
        default=None, alias="manifestsPath", description="install.yaml for `manifests`."
    )
    service_monitor: bool = Field(
        default=True, alias="serviceMonitor", description="ServiceMonitor for controller metrics."
    )

    @model_validator(mode="after")
    def _path_for_manifests(self) -> ArgoRolloutsConfig:
        if self.install == "manifests" and not self.manifests_path:
            raise ValueError(
                "install: manifests needs manifestsPath (the controller's install.yaml)"
            )
        return self


class PrometheusConfig(Model):
    """Where the cluster's Prometheus is and how it finds rules and targets."""

    address: str = Field(description="Prometheus URL the analysis runs query.")
    rule_labels: Labels = Field(
        default_factory=dict,
        alias="ruleLabels",
        description="Labels on PrometheusRules so the operator selects them.",
    )
    scrape: Literal["podmonitor", "annotations"] = Field(
        default="podmonitor",
        description="PodMonitor (copies the pod-template-hash label) or prometheus.io annotations.",
    )
    namespace: str = Field(default="monitoring", pattern=NAME_PATTERN)


class GrafanaConfig(Model):
    """Where dashboards and Grafana alert rules go."""

    delivery: Literal["api", "configmap", "none"] = Field(
        default="configmap",
        description="`api`: Grafana HTTP API (url + grafanaToken secret); `configmap`: "
        "ConfigMaps for the Grafana sidecar.",
    )
    url: str | None = Field(default=None, description="Grafana URL for `api`.")
    folder: str = Field(default="SLOs")
    datasource_uid: str = Field(default="prometheus", alias="datasourceUid")
    alert_rules: bool = Field(default=False, alias="alertRules")
    namespace: str = Field(default="monitoring", pattern=NAME_PATTERN)
    sidecar_labels: Labels = Field(
        default_factory=lambda: {"grafana_dashboard": "1"}, alias="sidecarLabels"
    )

    @model_validator(mode="after")
    def _url_for_api(self) -> GrafanaConfig:
        if self.delivery == "api" and not self.url:
            raise ValueError("delivery: api needs url")
        if self.alert_rules and self.delivery != "api":
            raise ValueError("alertRules needs delivery: api (rules go through the Grafana API)")
        return self


class AnalysisConfig(Model):
    """How canaries are judged."""

    interval: Duration = Field(default="1m", description="Time between measurements.")
    window: Duration = Field(default="2m", description="Range of the canary queries.")
    min_requests: int = Field(
        default=100,
        ge=1,
        alias="minRequests",
        description="Canary requests a measurement needs; fewer is inconclusive, never a pass.",
    )
    consecutive_successes: int = Field(
        default=3,
        ge=1,
        alias="consecutiveSuccesses",
        description="Good measurements in a row that let a gate promote.",
    )
    max_measurements: int = Field(
        default=10,
        ge=1,
        alias="maxMeasurements",
        description="Measurements a gate waits for evidence before pausing for a human.",
    )
    failure_limit: int = Field(
        default=1,
        ge=0,
        alias="failureLimit",
        description="Failed measurements tolerated before the rollout aborts.",
    )
    consecutive_error_limit: int = Field(
        default=4,
        ge=0,
        alias="consecutiveErrorLimit",
        description="Query errors in a row (e.g. Prometheus unreachable) before aborting.",
    )
    pass_burn_rate: float = Field(
        default=1.0,
        gt=0,
        alias="passBurnRate",
        description="A measurement passes at or below this multiple of the error budget.",
    )
    fail_burn_rate: float = Field(
        default=10.0,
        gt=0,
        alias="failBurnRate",
        description="A measurement fails above this multiple of the error budget; between the "
        "two it is inconclusive.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> AnalysisConfig:
        if self.fail_burn_rate < self.pass_burn_rate:
            raise ValueError("failBurnRate must be at least passBurnRate")
        if self.consecutive_successes > self.max_measurements:
            raise ValueError("consecutiveSuccesses cannot exceed maxMeasurements")
        if durations.parse(self.window) < 10:
            raise ValueError("window must hold at least two scrapes (10s or more)")
        return self


class DeliveryConfig(Model):
    """How releases progress on this stack."""

    weights: Annotated[list[int], AfterValidator(_percent_steps)] = Field(
        default_factory=lambda: [10, 25, 50],
        description="Canary weights before 100%.",
    )
    pause: Duration = Field(default="5m", description="Pause at each weight.")
    manual_gate: bool = Field(
        default=False,
        alias="manualGate",
        description="Wait for `kubectl argo rollouts promote` before 100%.",
    )
    budget_freeze: bool = Field(
        default=False,
        alias="budgetFreeze",
        description="Hold new releases at their first step while the error budget is exhausted.",
    )
    wait_for_rollout: bool = Field(
        default=False,
        alias="waitForRollout",
        description="`pulumi up` waits for each Rollout to be Healthy and fails otherwise.",
    )
    timeout_seconds: int = Field(default=1800, ge=60, alias="timeoutSeconds")
    traffic_routing: Literal["replicas", "nginx"] = Field(
        default="replicas",
        alias="trafficRouting",
        description="Split by replica count, or by NGINX ingress canary weights.",
    )
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)


class Probe(Model):
    path: str = Field(pattern=r"^/")
    port: str = Field(default="http")
    period_seconds: int = Field(default=10, ge=1, alias="periodSeconds")
    initial_delay_seconds: int = Field(default=0, ge=0, alias="initialDelaySeconds")


class Resources(Model):
    cpu_request: str = Field(default="100m", alias="cpuRequest")
    memory_request: str = Field(default="128Mi", alias="memoryRequest")
    cpu_limit: str = Field(default="1", alias="cpuLimit")
    memory_limit: str = Field(default="512Mi", alias="memoryLimit")


class ServiceDeployment(Model):
    """A core service's workload on this stack."""

    image: str = Field(pattern=r"^\S+:\S+$", description="Image with an explicit tag.")
    replicas: int = Field(default=2, ge=1)
    port: int = Field(default=8080, ge=1, le=65535)
    metrics_port: int = Field(default=9090, ge=1, le=65535, alias="metricsPort")
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    liveness: Probe = Field(default_factory=lambda: Probe(path="/healthz"))
    readiness: Probe = Field(default_factory=lambda: Probe(path="/ready"))
    host: str | None = Field(default=None, description="Ingress host (NGINX routing).")


class PromotionConfig(Model):
    """Deploy only images another stack has rolled out to Healthy."""

    from_stack: str = Field(
        alias="fromStack",
        description="Fully qualified stack whose `healthyImages` export gates this stack, "
        "e.g. `acme/slo-canary/dev`.",
    )
    allow_images: list[str] = Field(
        default_factory=list,
        alias="allowImages",
        description="Images allowed without promotion (a reviewed exception, e.g. a rollback).",
    )


class StackConfig(Model):
    """Everything a stack file sets under the ``slo-canary:`` namespace."""

    catalogue: str = Field(description="Path of the SLO catalogue, relative to the project.")
    environment: str = Field(pattern=NAME_PATTERN)
    argo_rollouts: ArgoRolloutsConfig = Field(
        default_factory=ArgoRolloutsConfig, alias="argoRollouts"
    )
    prometheus: PrometheusConfig
    grafana: GrafanaConfig = Field(default_factory=GrafanaConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    services: dict[str, ServiceDeployment] = Field(min_length=1)
    promotion: PromotionConfig | None = Field(default=None)


class StackError(CatalogueError):
    """A stack configuration that cannot be used; one line per problem."""


def parse_stack(values: dict[str, Any], source: str) -> StackConfig:
    """Validate the ``slo-canary:*`` values of a stack file."""
    try:
        return StackConfig.model_validate(values)
    except ValidationError as err:
        problems = pydantic_problems(err, StackConfig)
        raise StackError([_render(p, source) for p in problems]) from None


def _render(problem: Problem, source: str) -> str:
    return f"{source}: {PROJECT}:{problem.path}: {problem.message}"


def check_against_catalogue(stack: StackConfig, slos: list[ResolvedSlo], source: str) -> None:
    """Problems that need both files: unknown services, gates that could never fail."""
    known = sorted({s.service.name for s in slos})
    lines = [
        f"{source}: {PROJECT}:services.{name}: not a service of {stack.catalogue} "
        f"(known: {', '.join(known)})"
        for name in sorted(stack.services)
        if name not in known
    ]
    fail = stack.delivery.analysis.fail_burn_rate
    for slo in slos:
        if slo.service.name in stack.services and slo.slo.canary_gate and slo.budget * fail >= 1:
            lines.append(
                f"{source}: {PROJECT}:delivery.analysis.failBurnRate: {fail:g} x the "
                f"{slo.budget:.2%} budget of {slo.service.name}/{slo.slo.name} is 100% or more, "
                "so a canary could never fail that gate; lower it"
            )
    if lines:
        raise StackError(lines)


def load_stack_file(path: Path) -> StackConfig:
    """A stack file read directly (for docs and checks; the program reads Pulumi config)."""
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    values = {
        key.partition(":")[2]: value
        for key, value in config.items()
        if key.startswith(f"{PROJECT}:")
        and not (isinstance(value, dict) and "secure" in value)
        and key.partition(":")[2] != "grafanaToken"
    }
    return parse_stack(values, path.name)


def check_promotion(
    stack: StackConfig, healthy: dict[str, Any] | None, source: str
) -> dict[str, str]:
    """The stack's images when each one was rolled out to Healthy upstream (or is allowed)."""
    assert stack.promotion is not None
    upstream = stack.promotion.from_stack
    healthy = healthy or {}
    lines = []
    for name, deployment in sorted(stack.services.items()):
        image = deployment.image
        if image == healthy.get(name) or image in stack.promotion.allow_images:
            continue
        have = healthy.get(name) or "nothing Healthy"
        lines.append(
            f"{source}: {PROJECT}:services.{name}.image: {image} has not been rolled out to "
            f"Healthy in {upstream} (it runs {have}); release it there first, or list it in "
            f"{PROJECT}:promotion.allowImages"
        )
    if lines:
        raise StackError(lines)
    return {name: d.image for name, d in stack.services.items()}
