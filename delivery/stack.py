"""Typed stack configuration (``Pulumi.<stack>.yaml``), validated before any resource exists.

Only ``__main__.py`` reads Pulumi config; it hands the raw values to :func:`parse_stack`, which
returns these models or one line per problem naming the stack file and the config key.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from delivery.routers import (
    GATEWAY_API_PLUGIN_URL,
    GATEWAY_API_PLUGIN_VERSION,
    PLUGIN_DIR,
    ROUTERS,
    Gateway,
    Target,
)
from slo.inputs import read_yaml
from slo.loader import load_catalogue, pydantic_problems
from slo.model import ResolvedSlo, resolve_all
from slo.problems import ConfigError, Problem
from slo.spec import INDICATOR_KINDS, NAME_PATTERN, Catalogue, Labels

PROJECT = "slo-canary"


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _percent_steps(value: list[int]) -> list[int]:
    if any(not 0 < w < 100 for w in value) or value != sorted(set(value)):
        raise ValueError("canary weights must increase strictly and lie between 1 and 99")
    return value


Enforcement = Literal["enforce", "advisory", "off"]
# Argo Rollouts reads consecutiveErrorLimit as an int32: its largest value means "never".
UNLIMITED_ERRORS = 2**31 - 1
# What earlier versions of the stack file set and the sequential judge no longer uses.
REMOVED_ANALYSIS_FIELDS = {
    "window": "evidence now accumulates over the canary's whole life (evidenceWindow)",
    "minRequests": "the test itself says when the evidence suffices",
    "consecutiveSuccesses": "one measurement past the pass boundary is a pass",
    "failureLimit": "one measurement past the abort boundary is a decision, not noise",
}


def _go_duration(value: str) -> str:
    """Durations Argo Rollouts reads with Go's time.ParseDuration: h, m, s only (no d or w)."""
    if not isinstance(value, str) or not re.fullmatch(r"([0-9]+(h|m|s))+", value):
        raise ValueError(
            f"{value!r} is not a duration Argo Rollouts accepts: write whole numbers with h, m "
            "or s, e.g. 30s, 5m, 1h30m (d and w are not allowed)"
        )
    if go_seconds(value) == 0:
        raise ValueError(f"{value!r} must be longer than zero")
    return value


def go_seconds(value: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)(h|m|s)", value))


GoDuration = Annotated[str, AfterValidator(_go_duration)]


def _at_least(limit: str) -> Any:
    """A validator refusing Go durations shorter than ``limit``."""

    def check(value: str) -> str:
        if go_seconds(value) < go_seconds(limit):
            raise ValueError(f"{value} is shorter than {limit}")
        return value

    return check


def _at_most(limit: str) -> Any:
    """A validator refusing Go durations longer than ``limit`` (the evidence window and the
    analysis schedule are built from them and must stay ranges Prometheus can read)."""

    def check(value: str) -> str:
        if go_seconds(value) > go_seconds(limit):
            raise ValueError(f"{value} is longer than {limit}")
        return value

    return check

# An image reference as container runtimes read it (distribution's reference grammar, in short):
# [registry[:port]/]path[:tag][@digest]; a registry is the first component when it has a '.' or
# ':' or is `localhost`.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = (
    rf"(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?"
)
_WITH_REGISTRY = re.compile(
    r"(?P<registry>(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::[0-9]+)?)/" + _REFERENCE
)
_WITHOUT_REGISTRY = re.compile(_REFERENCE)


def _pinned_image(value: str) -> str:
    match = _WITH_REGISTRY.fullmatch(value)
    registry = match["registry"] if match else ""
    if not (match and ("." in registry or ":" in registry or registry == "localhost")):
        match, registry = _WITHOUT_REGISTRY.fullmatch(value), ""
    if not match:
        raise ValueError(
            f"{value!r} is not an image reference: write [registry[:port]/]path[:tag][@digest] "
            "with a lower-case path, e.g. registry.example:5000/team/app:1.2.3"
        )
    digest = match["digest"] or ""
    if digest.startswith("sha256:") and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ValueError(
            f"{value!r}: a sha256 digest is 64 lower-case hex digits, {digest!r} is not"
        )
    if match["tag"] == "latest" and not digest:
        raise ValueError(
            f"{value!r}: the tag latest moves, so a release would not say what it runs; pin a "
            "version tag (e.g. :1.2.3) or a digest (@sha256:...)"
        )
    if not match["tag"] and not match["digest"]:
        port = " (the colon belongs to the registry's port, not a tag)" if ":" in registry else ""
        raise ValueError(
            f"{value!r} has no tag or digest{port}: pin it, e.g. {value}:1.2.3 or "
            f"{value}@sha256:<digest>"
        )
    return value


class RouterPlugin(Model):
    """Where the Argo Rollouts controller gets a traffic router plugin: downloaded from
    ``location`` and checked against ``sha256``, or copied by an init container from ``image``
    (air-gapped)."""

    # its file name in the controller's plugin directory
    FILE: ClassVar[str] = "rollouts-plugin-trafficrouter"

    location: str = Field(
        default=GATEWAY_API_PLUGIN_URL,
        pattern=r"^https://",
        description="HTTPS URL of the plugin binary the controller downloads (the pinned "
        f"release, {GATEWAY_API_PLUGIN_VERSION}, for linux/amd64).",
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the binary at `location` (its release's checksums): the "
        "controller refuses a binary that differs. Required with `location`.",
    )
    image: str | None = Field(
        default=None,
        description="Instead of downloading: an image holding the binary, copied by an init "
        "container into the controller's plugin directory (`install: helm`).",
    )
    binary_path: str = Field(
        default="/bin/rollouts-plugin-trafficrouter-gatewayapi",
        pattern=r"^/",
        alias="binaryPath",
        description="With `image`: the binary's path in the image.",
    )

    @model_validator(mode="after")
    def _checked(self) -> RouterPlugin:
        if self.image is None and self.sha256 is None:
            raise ValueError(
                "needs sha256 (of the binary at location) or image (an image holding it): the "
                "controller must not run a plugin nobody checked"
            )
        return self

    def entry(self, name: str) -> dict[str, str]:
        """The controller's ``trafficRouterPlugins`` entry."""
        if self.image is not None:
            return {"name": name, "location": f"file://{PLUGIN_DIR}/{self.FILE}"}
        assert self.sha256 is not None
        return {"name": name, "location": self.location, "sha256": self.sha256}


class ArgoRolloutsConfig(Model):
    """How Argo Rollouts gets onto the cluster."""

    install: Literal["helm", "manifests", "none"] = Field(
        default="helm",
        description="`helm`: the argo-rollouts chart; `manifests`: the controller's own "
        "install manifests from a local path (air-gapped); `none`: already installed.",
    )
    namespace: str = Field(
        default="argo-rollouts", pattern=NAME_PATTERN, description="Namespace of the controller."
    )
    chart_version: str = Field(
        default="2.41.0",
        alias="chartVersion",
        description="Version of the argo-rollouts Helm chart for `helm`.",
    )
    repository: str = Field(
        default="https://argoproj.github.io/argo-helm", description="Helm repository of the chart."
    )
    dashboard: bool = Field(default=False, description="Also run the Argo Rollouts dashboard.")
    manifests_path: str | None = Field(
        default=None, alias="manifestsPath", description="install.yaml for `manifests`."
    )
    service_monitor: bool = Field(
        default=True, alias="serviceMonitor", description="ServiceMonitor for controller metrics."
    )
    gateway_api_plugin: RouterPlugin | None = Field(
        default=None,
        alias="gatewayApiPlugin",
        description="Required with `trafficRouting: gatewayapi` unless `install: none`: where "
        "the controller gets Argo Rollouts' Gateway API plugin.",
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
    namespace: str = Field(
        default="monitoring",
        pattern=NAME_PATTERN,
        description="Namespace Prometheus runs in (allowed to scrape the services).",
    )
    scrape_interval: GoDuration = Field(
        default="30s",
        alias="scrapeInterval",
        description="How often the PodMonitor has the services scraped; at most 1m, since the "
        "judge reads stable's rates over 2m.",
    )

    pod_label: str = Field(
        default="pod",
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        alias="podLabel",
        description="Label naming the pod on the services' series (the PodMonitor writes "
        "`pod`); the canary judge's warm-up reads it.",
    )
    rule_placement: Literal["local", "thanos"] = Field(
        default="local",
        alias="rulePlacement",
        description="`local`: every rule in this cluster's Prometheus (fleet SLOs too, which "
        "then see this cluster alone). `thanos`: for SLOs with `scope: fleet`, this Prometheus "
        "keeps the event rates up to 1h, the 5m base and the fastest page tier, and the fleet's "
        "ratios, budget and alerts go to a Thanos Ruler (see `thanos`).",
    )

    @model_validator(mode="after")
    def _scrape_fits(self) -> PrometheusConfig:
        if go_seconds(self.scrape_interval) > 60:
            raise ValueError("scrapeInterval must be at most 1m")
        return self


class ThanosConfig(Model):
    """Where the Thanos Ruler's rules of the fleet SLOs go (`prometheus.rulePlacement: thanos`).

    The Ruler queries a Thanos Query over every cluster's sidecar (`--endpoint-strict`, so that a
    cluster that is down fails the query instead of leaving it) and over the Ruler itself (its
    memory of the clusters that reported). The canary analysis keeps querying
    `prometheus.address`, the canary's own cluster.
    """

    rules: Literal["prometheusrule", "configmap", "none"] = Field(
        default="none",
        description="`prometheusrule`: PrometheusRules a prometheus-operator `ThanosRuler` "
        "selects (groups carry `partial_response_strategy`); `configmap`: a ConfigMap of rule "
        "files, one per service, for a Ruler that mounts it (`--rule-file`); `none`: another "
        "stack delivers them (one stack per fleet does).",
    )
    namespace: str = Field(
        default="monitoring",
        pattern=NAME_PATTERN,
        description="Namespace of the Thanos Ruler's PrometheusRules or ConfigMap.",
    )
    rule_labels: Labels = Field(
        default_factory=dict,
        alias="ruleLabels",
        description="Labels on the PrometheusRules so the ThanosRuler's `ruleSelector` picks "
        "them (and the Prometheus' selector does not), or on the ConfigMap.",
    )
    datasource_uid: str = Field(
        default="thanos",
        alias="datasourceUid",
        description="UID of the Grafana data source of the Thanos Query, for the fleet SLOs' "
        "dashboards (delivered with the rules, by the stack whose `rules` is not `none`).",
    )
    config_map: str = Field(
        default="slo-fleet-rules",
        alias="configMap",
        pattern=NAME_PATTERN,
        description="Name of the ConfigMap for `rules: configmap`.",
    )


class GrafanaConfig(Model):
    """Where dashboards and Grafana alert rules go."""

    delivery: Literal["api", "configmap", "none"] = Field(
        default="configmap",
        description="`api`: Grafana HTTP API (url + grafanaToken secret); `configmap`: "
        "ConfigMaps for the Grafana sidecar.",
    )
    url: str | None = Field(default=None, description="Grafana URL for `api`.")
    folder: str = Field(default="SLOs", description="Grafana folder of the dashboards.")
    datasource_uid: str = Field(
        default="prometheus",
        alias="datasourceUid",
        description="UID of the Prometheus data source in Grafana.",
    )
    alert_rules: bool = Field(
        default=False,
        alias="alertRules",
        description="Also create Grafana alert rules (needs `delivery: api`).",
    )
    namespace: str = Field(
        default="monitoring",
        pattern=NAME_PATTERN,
        description="Namespace of the dashboard ConfigMaps for `configmap`.",
    )
    sidecar_labels: Labels = Field(
        default_factory=lambda: {"grafana_dashboard": "1"},
        alias="sidecarLabels",
        description="Labels the Grafana sidecar selects dashboard ConfigMaps by.",
    )

    @model_validator(mode="after")
    def _url_for_api(self) -> GrafanaConfig:
        if self.delivery == "api" and not self.url:
            raise ValueError("delivery: api needs url")
        if self.alert_rules and self.delivery != "api":
            raise ValueError("alertRules needs delivery: api (rules go through the Grafana API)")
        return self


AUTO_FAIL_BURN_RATES = (2.0, 3.0, 5.0, 10.0)


def _kinds(value: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(value) - set(INDICATOR_KINDS))
    if unknown:
        raise ValueError(f"unknown SLI kind {', '.join(unknown)}; allowed: "
                         f"{', '.join(INDICATOR_KINDS)}")
    return value
FailBurnRate = Annotated[float, Field(gt=0, allow_inf_nan=False)] | Literal["auto"]


class BurnRates(Model):
    """The hypotheses of one SLO's (or SLI kind's) canary test, over the stack's."""

    pass_burn_rate: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, alias="passBurnRate",
        description="As `analysis.passBurnRate`.",
    )
    fail_burn_rate: FailBurnRate | None = Field(
        default=None, alias="failBurnRate", description="As `analysis.failBurnRate`.",
    )


class AnalysisConfig(Model):
    """How canaries are judged: a sequential test per gated SLO (docs/slos.md, the runbook)."""

    interval: Annotated[GoDuration, AfterValidator(_at_most("1h"))] = Field(
        default="30s", description="Time between measurements (Go duration: h, m, s), at most 1h."
    )
    max_measurements: int = Field(
        default=20,
        ge=1,
        le=10_000,
        alias="maxMeasurements",
        description="Measurements a gate waits for a verdict before pausing for a human; the "
        "gate waits at most this many intervals.",
    )
    consecutive_error_limit: int = Field(
        default=UNLIMITED_ERRORS,
        ge=0,
        le=UNLIMITED_ERRORS,
        alias="consecutiveErrorLimit",
        description="Query errors in a row (Prometheus unreachable) after which Argo errors the "
        "analysis and aborts the rollout. Default: never; an unanswered query is not a "
        "measurement, so a gate waits for Prometheus and then judges (docs/canary-runbook.md).",
    )
    outage_limit: Annotated[
        GoDuration, AfterValidator(_at_least("2m")), AfterValidator(_at_most("24h"))
    ] = Field(
        default="10m",
        alias="outageLimit",
        description="A Prometheus outage longer than this during a rollout pauses the rollout "
        "for a human once Prometheus answers again, at least 2m (twice the longest scrape "
        "interval), at most 24h. While Prometheus is away the rollout waits; it never aborts "
        "or promotes for want of an answer (docs/canary-runbook.md).",
    )
    pass_burn_rate: float = Field(
        default=1.0,
        gt=0,
        allow_inf_nan=False,
        alias="passBurnRate",
        description="A good release burns the error budget at most this fast: its error ratio "
        "is at most passBurnRate x the budget.",
    )
    fail_burn_rate: FailBurnRate = Field(
        default="auto",
        alias="failBurnRate",
        description="A bad release burns the error budget at least this fast; between the two "
        "rates either verdict is acceptable. `auto`: per SLO the smallest of "
        f"{', '.join(str(r) for r in AUTO_FAIL_BURN_RATES)} whose test decides within the "
        "first gate at the service's `expectedRequestsPerMinute` (twice Wald's expected "
        f"requests, for a good and for a bad canary), else {AUTO_FAIL_BURN_RATES[-1]}; "
        f"{AUTO_FAIL_BURN_RATES[-1]} where the service states no traffic.",
    )
    burn_rates_by_kind: Annotated[dict[str, BurnRates], AfterValidator(_kinds)] = Field(
        default_factory=dict,
        alias="burnRatesByKind",
        description=f"Per SLI kind ({', '.join(INDICATOR_KINDS)}), overrides `passBurnRate` "
        "and `failBurnRate`.",
    )
    burn_rates_by_slo: dict[str, BurnRates] = Field(
        default_factory=dict,
        alias="burnRatesBySlo",
        description="Per SLO (`<service>/<slo>`), overrides the kind's and the stack's burn "
        "rates.",
    )
    false_abort_risk: float = Field(
        default=0.001,
        gt=0,
        lt=0.5,
        alias="falseAbortRisk",
        description="Chance that a good release is rolled back, for all gated SLOs of a "
        "service together (0.001 = one in a thousand).",
    )
    missed_regression_risk: float = Field(
        default=0.01,
        gt=0,
        lt=0.5,
        alias="missedRegressionRisk",
        description="Chance that a bad release passes a gate (0.01 = one in a hundred).",
    )
    baseline: Literal["compare", "ignore"] = Field(
        default="compare",
        description="`compare`: a canary fails only when it is also worse than the stable pods "
        "over the same period, and an incident both share pauses the rollout instead of "
        "aborting; `ignore`: judged against the SLO alone.",
    )
    baseline_margin: float = Field(
        default=2.0,
        gt=1,
        allow_inf_nan=False,
        alias="baselineMargin",
        description="With `baseline: compare`, how many times stable's error ratio a canary "
        "must reach to fail.",
    )
    enforcement: Enforcement = Field(
        default="enforce",
        description="`enforce`: gates block promotion and failures abort; `advisory`: measured "
        "and shown (Argo dryRun), never blocks or aborts; `off`: not rendered.",
    )
    enforcement_by_slo: dict[str, Enforcement] = Field(
        default_factory=dict,
        alias="enforcementBySlo",
        description="Per SLO (`<service>/<slo>`), overrides `enforcement`, e.g. a new gate in "
        "`advisory` before it may roll back.",
    )
    evidence_window: Annotated[GoDuration, AfterValidator(_at_most("168h"))] | None = Field(
        default=None,
        alias="evidenceWindow",
        description="How far back canary counts are read. Default: twice the longest the "
        "canary steps can take (pauses and gate waits), at least 30m.",
    )

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            gone = [k for k in REMOVED_ANALYSIS_FIELDS if k in data]
            if gone:
                raise ValueError(
                    "; ".join(f"{k} is no longer used: {REMOVED_ANALYSIS_FIELDS[k]}" for k in gone)
                    + "; set falseAbortRisk and missedRegressionRisk instead"
                )
        return data

    @model_validator(mode="after")
    def _ordered(self) -> AnalysisConfig:
        entries = {"": BurnRates(), **{f"burnRatesByKind.{k}": v
                                       for k, v in self.burn_rates_by_kind.items()},
                   **{f"burnRatesBySlo.{k}": v for k, v in self.burn_rates_by_slo.items()}}
        for where, entry in entries.items():
            passing = entry.pass_burn_rate or self.pass_burn_rate
            failing = entry.fail_burn_rate or self.fail_burn_rate
            if failing != "auto" and failing <= passing:
                raise ValueError(f"{where + ': ' if where else ''}failBurnRate must be greater "
                                 "than passBurnRate")
        return self

    def burn_rates(self, key: str, kind: str) -> tuple[float, float | Literal["auto"]]:
        """(pass, fail) burn rates of the SLO ``<service>/<slo>`` of SLI kind ``kind``."""
        passing, failing = self.pass_burn_rate, self.fail_burn_rate
        for entry in (self.burn_rates_by_kind.get(kind), self.burn_rates_by_slo.get(key)):
            if entry is not None:
                passing = entry.pass_burn_rate or passing
                failing = entry.fail_burn_rate or failing
        return passing, failing


class GatewayRef(Model):
    """The Gateway API Gateway the services' routes attach to (``trafficRouting: gatewayapi``)."""

    name: str = Field(pattern=NAME_PATTERN, description="Name of the Gateway.")
    namespace: str = Field(pattern=NAME_PATTERN, description="Namespace of the Gateway.")
    section_name: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        alias="sectionName",
        description="Listener of the Gateway the routes attach to. Default: all of them.",
    )

    def router_gateway(self) -> Gateway:
        return Gateway(self.name, self.namespace, self.section_name)


class CanaryHeader(Model):
    """A request header that sends a tester's requests to the canary while it is judged."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", description="Header name, e.g. `X-Canary`."
    )
    value: str = Field(min_length=1, description="Exact value that selects the canary.")


class DeliveryConfig(Model):
    """How releases progress on this stack."""

    weights: Annotated[list[int], AfterValidator(_percent_steps)] = Field(
        default_factory=lambda: [10, 25, 50],
        description="Canary weights before 100%.",
    )
    pause: Annotated[GoDuration, AfterValidator(_at_most("24h"))] = Field(
        default="5m", description="Pause at each weight (Go duration: h, m, s), at most 24h."
    )
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
    timeout_seconds: int = Field(
        default=1800,
        ge=60,
        alias="timeoutSeconds",
        description="With waitForRollout, how long `pulumi up` waits per Rollout.",
    )
    traffic_routing: Literal[tuple(ROUTERS)] = Field(  # type: ignore[valid-type]
        default="replicas",
        alias="trafficRouting",
        description="How a weight becomes traffic: "
        + "; ".join(f"`{name}`: {router.description}" for name, router in ROUTERS.items())
        + ".",
    )
    gateway: GatewayRef | None = Field(
        default=None,
        description="With `trafficRouting: gatewayapi`: the Gateway every service's HTTPRoute "
        "(GRPCRoute) attaches to.",
    )
    canary_header: CanaryHeader | None = Field(
        default=None,
        alias="canaryHeader",
        description="With `trafficRouting: gatewayapi`: requests carrying this header go to the "
        "canary from the first step until its last gate has passed (HTTP services; a gRPC "
        "service's GRPCRoute gets none), whatever the weight.",
    )
    analysis: AnalysisConfig = Field(
        default_factory=AnalysisConfig, description="How canaries are judged."
    )

    def header_route(self, deployment: ServiceDeployment) -> CanaryHeader | None:
        """The testers' header route of one service, if it gets one."""
        if not ROUTERS[self.traffic_routing].header_routes or deployment.grpc:
            return None
        return self.canary_header

    def route_target(self, service: str, namespace: str, deployment: ServiceDeployment) -> Target:
        """What the router routes for one service of this stack."""
        gateway = self.gateway.router_gateway() if self.gateway else None
        return Target(service, namespace, deployment.host, deployment.grpc, gateway,
                      header_route=self.header_route(deployment) is not None)


class Probe(Model):
    path: str = Field(pattern=r"^/", description="HTTP path probed, starting with `/`.")
    port: str = Field(default="http", description="Container port name or number probed.")
    period_seconds: int = Field(
        default=10, ge=1, alias="periodSeconds", description="Seconds between probes."
    )
    initial_delay_seconds: int = Field(
        default=0, ge=0, alias="initialDelaySeconds", description="Seconds before the first probe."
    )


class Resources(Model):
    cpu_request: str = Field(
        default="100m", alias="cpuRequest", description="CPU request (Kubernetes quantity)."
    )
    memory_request: str = Field(
        default="128Mi", alias="memoryRequest", description="Memory request (Kubernetes quantity)."
    )
    cpu_limit: str = Field(
        default="1", alias="cpuLimit", description="CPU limit (Kubernetes quantity)."
    )
    memory_limit: str = Field(
        default="512Mi", alias="memoryLimit", description="Memory limit (Kubernetes quantity)."
    )


class ServiceDeployment(Model):
    """A core service's workload on this stack."""

    image: Annotated[str, AfterValidator(_pinned_image)] = Field(
        description="Image reference with an explicit tag or digest, e.g. "
        "`registry:5000/team/app:1.2.3` or `team/app@sha256:...`."
    )
    replicas: int = Field(default=2, ge=1, strict=True, description="Pods of the stable version.")
    port: int = Field(
        default=8080, ge=1, le=65535, description="Container port of the service's traffic."
    )
    metrics_port: int = Field(
        default=9090,
        ge=1,
        le=65535,
        alias="metricsPort",
        description="Container port Prometheus scrapes (`/metrics`).",
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables of the container."
    )
    resources: Resources = Field(
        default_factory=Resources, description="CPU and memory requests and limits."
    )
    liveness: Probe = Field(
        default_factory=lambda: Probe(path="/healthz"), description="Liveness probe."
    )
    readiness: Probe = Field(
        default_factory=lambda: Probe(path="/ready"), description="Readiness probe."
    )
    host: str | None = Field(
        default=None,
        description="The host the service is reached at: the Ingress (nginx), IngressRoute "
        "(traefik) or route (gatewayapi) matches it. Default: any host.",
    )
    grpc: bool = Field(
        default=False,
        description="The service speaks gRPC: with `trafficRouting: gatewayapi` it gets a "
        "GRPCRoute instead of an HTTPRoute.",
    )
    expected_requests_per_minute: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        alias="expectedRequestsPerMinute",
        description="The service's usual request rate, all pods together: `failBurnRate: auto` "
        "chooses each SLO's hypotheses for the canary's share of it at the first weight, and "
        "the plan says what the gates can see at that traffic. `python -m delivery traffic "
        "--prometheus URL` measures it over the last week. Default: unknown.",
    )
    warm_up: GoDuration | None = Field(
        default=None,
        alias="warmUp",
        description="How long a new or restarted pod warms up (connection pools, caches, JIT): "
        "its requests in that time count in the SLO but not in the canary verdict, to within "
        "one scrape interval. Needs the pod label on the service's series "
        "(`prometheus.podLabel`). Default: none, every request is evidence.",
    )


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


# Argo Rollouts v1.9.1's notification services (notifications-engine v0.5.0, NewService)
NOTIFICATION_SERVICE_TYPES = (
    "alertmanager", "awssqs", "email", "github", "googlechat", "grafana", "mattermost",
    "newrelic", "opsgenie", "pagerduty", "pagerdutyv2", "pushover", "rocketchat", "slack",
    "teams", "telegram", "webex", "webhook",
)
NotifyOn = Literal["aborted", "paused", "completed"]
NOTIFY_ON: tuple[NotifyOn, ...] = ("aborted", "paused", "completed")
# options holding a credential: they must read it from the notification Secret ($key)
_CREDENTIAL_OPTIONS = re.compile(r"(?i)(token|password|secret|apikey|api_key|serviceKey|key)$")
# notifications.argoproj.io/subscribe.on-rollout-completed.<name>: 63 characters after the '/'
NOTIFIER_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"


def _credentials_from_secret(options: dict[str, Any], path: str = "") -> list[str]:
    """Options named like a credential whose value is not a ``$key`` of the Secret."""
    found = []
    for key, value in options.items():
        where = f"{path}.{key}" if path else str(key)
        if isinstance(value, dict):
            found += _credentials_from_secret(value, where)
        elif _CREDENTIAL_OPTIONS.search(str(key)) and not (
            isinstance(value, str) and value.startswith("$")
        ):
            found.append(where)
    return found


class Notifier(Model):
    """One notification service of Argo Rollouts' notification engine."""

    type: Literal[NOTIFICATION_SERVICE_TYPES] = Field(  # type: ignore[valid-type]
        description="Argo Rollouts notification service type (webhook, slack, teams, email, "
        "opsgenie, pagerdutyv2, ...)."
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="The service's options as Argo documents them (webhook: `url`, `headers`; "
        "slack: `token`, ...). A credential is written `$key`: the key of "
        "`slo-canary:notificationSecrets` that holds it.",
    )

    @model_validator(mode="after")
    def _usable(self) -> Notifier:
        if self.type == "webhook":
            url = self.options.get("url")
            if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
                raise ValueError("a webhook needs options.url, an http:// or https:// URL")
        plain = _credentials_from_secret(self.options)
        if plain:
            raise ValueError(
                f"options.{plain[0]}: a credential in plain text; write $<key> and put the "
                "value in the secret slo-canary:notificationSecrets"
            )
        return self


class Subscription(Model):
    """Who hears of which rollout events."""

    to: str = Field(description="Name of a notifier in `notifications.notifiers`.")
    recipient: str = Field(
        default="",
        description="Where the notifier sends: a Slack channel, an e-mail address; empty for a "
        "webhook.",
        pattern=r"^[^;\n]*$",
    )
    events: list[NotifyOn] = Field(
        default_factory=lambda: list(NOTIFY_ON),
        min_length=1,
        description="Events: `aborted` (rolled back), `paused` (an inconclusive gate, a shared "
        "incident, a budget freeze, the manual gate), `completed` (a judged release promoted).",
    )
    services: list[str] = Field(
        default_factory=list,
        description="Services subscribed (stack service names); empty: every service.",
    )


class NotificationsConfig(Model):
    """Argo Rollouts notifications of canary verdicts (docs/notifications.md)."""

    notifiers: dict[Annotated[str, Field(pattern=NOTIFIER_NAME_PATTERN)], Notifier] = Field(
        min_length=1, description="Notification services by name."
    )
    subscriptions: list[Subscription] = Field(
        min_length=1, description="Which notifier hears of which services' rollout events."
    )
    dashboard_url: str | None = Field(
        default=None,
        alias="dashboardUrl",
        pattern=r"^https?://\S+$",
        description="Grafana URL for the links in messages (default: `grafana.url`).",
    )

    @model_validator(mode="after")
    def _known_notifiers(self) -> NotificationsConfig:
        for i, sub in enumerate(self.subscriptions):
            if sub.to not in self.notifiers:
                raise ValueError(
                    f"subscriptions[{i}].to: '{sub.to}' is not a notifier; defined: "
                    f"{', '.join(sorted(self.notifiers))}"
                )
        return self


class StackConfig(Model):
    """Everything a stack file sets under the ``slo-canary:`` namespace."""

    catalogue: str = Field(
        min_length=1, description="Path of the SLO catalogue, relative to the project."
    )
    environment: str = Field(
        pattern=NAME_PATTERN,
        description="Name of the environment (dev, prod, ...), exported and shown on dashboards.",
    )
    argo_rollouts: ArgoRolloutsConfig = Field(
        default_factory=ArgoRolloutsConfig,
        alias="argoRollouts",
        description="How Argo Rollouts is installed.",
    )
    prometheus: PrometheusConfig = Field(description="The cluster's Prometheus.")
    thanos: ThanosConfig = Field(
        default_factory=ThanosConfig,
        description="The Thanos Ruler of the fleet SLOs, with `prometheus.rulePlacement: thanos`.",
    )
    grafana: GrafanaConfig = Field(
        default_factory=GrafanaConfig, description="Where dashboards and Grafana alert rules go."
    )
    delivery: DeliveryConfig = Field(
        default_factory=DeliveryConfig, description="How releases progress and are judged."
    )
    services: dict[str, ServiceDeployment] = Field(
        min_length=1, description="The core services deployed on this stack, by catalogue name."
    )
    promotion: PromotionConfig | None = Field(
        default=None, description="Only deploy images another stack rolled out to Healthy."
    )
    notifications: NotificationsConfig | None = Field(
        default=None, description="Notifications of aborted, paused and completed rollouts."
    )


def parse_stack(values: dict[str, Any], source: str) -> StackConfig:
    """Validate the ``slo-canary:*`` values of a stack file."""
    try:
        return StackConfig.model_validate(values)
    except ValidationError as err:
        problems = pydantic_problems(err, StackConfig)
        raise ConfigError([_render(p, source) for p in problems]) from None


def _render(problem: Problem, source: str) -> str:
    return f"{source}: {PROJECT}:{problem.path}: {problem.message}"


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False where the name itself is impossible (too long, a NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def stack_catalogue(
    stack: StackConfig, root: Path, source: str
) -> tuple[Catalogue, list[ResolvedSlo]]:
    """The catalogue the stack names (relative to ``root``), resolved and checked against the
    stack; a name that is not a file is the stack file's problem, one line naming it."""
    path = root / stack.catalogue
    if not _is_file(path):
        raise ConfigError([f"{source}: {PROJECT}:catalogue: {stack.catalogue} does not exist"])
    catalogue = load_catalogue(path, source=stack.catalogue)
    slos = resolve_all(catalogue)
    check_against_catalogue(stack, slos, source)
    return catalogue, slos


def check_against_catalogue(stack: StackConfig, slos: list[ResolvedSlo], source: str) -> None:
    """Problems that need more than one field or both files: unknown services, gates that could
    never fail, a router without what it needs."""
    known = sorted({s.service.name for s in slos})
    lines = [
        f"{source}: {PROJECT}:services.{name}: not a service of {stack.catalogue} "
        f"(known: {', '.join(known)})"
        for name in sorted(stack.services)
        if name not in known
    ]
    lines += _router_problems(stack, source)
    lines += _placement_problems(stack, slos, source)
    analysis = stack.delivery.analysis
    gated = {f"{s.service.name}/{s.slo.name}" for s in slos if s.service.name in stack.services}
    lines += _not_deployed(sorted(analysis.enforcement_by_slo), "enforcementBySlo", gated, source)
    lines += _subscription_problems(stack, source)
    lines += _not_deployed(analysis.burn_rates_by_slo, "burnRatesBySlo", gated, source)
    lines += _burn_rate_problems(stack, slos, source)
    if lines:
        raise ConfigError(lines)


def _placement_problems(stack: StackConfig, slos: list[ResolvedSlo], source: str) -> list[str]:
    """Where the rules go (``prometheus.rulePlacement``) against the Thanos rules, the fleet
    SLOs and the budget freeze."""
    placement, lines = stack.prometheus.rule_placement, []
    if placement == "local" and stack.thanos.rules != "none":
        lines.append(
            f"{source}: {PROJECT}:thanos.rules: {stack.thanos.rules} needs "
            "prometheus.rulePlacement: thanos (with local placement there are no fleet rules)"
        )
    if placement == "thanos" and not any(s.is_fleet for s in slos):
        lines.append(
            f"{source}: {PROJECT}:prometheus.rulePlacement: thanos, but no SLO of "
            f"{stack.catalogue} has scope: fleet; use local"
        )
    if placement == "thanos" and stack.delivery.budget_freeze:
        frozen = sorted({f"{s.service.name}/{s.slo.name}" for s in slos
                         if s.is_fleet and s.service.name in stack.services})
        if frozen:
            lines.append(
                f"{source}: {PROJECT}:delivery.budgetFreeze: the budget of the fleet SLOs "
                f"{', '.join(frozen)} is kept by the Thanos Ruler, not the Prometheus the freeze "
                "reads; turn budgetFreeze off or use rulePlacement: local"
            )
    return lines


def _not_deployed(keys: Iterable[str], setting: str, gated: set[str], source: str) -> list[str]:
    """A line per ``delivery.analysis.<setting>`` key that is not an SLO of a deployed service."""
    return [
        f"{source}: {PROJECT}:delivery.analysis.{setting}.{key}: not an SLO of a "
        f"deployed service (<service>/<slo>, one of: {', '.join(sorted(gated))})"
        for key in keys
        if key not in gated
    ]


def _subscription_problems(stack: StackConfig, source: str) -> list[str]:
    """A line per service a notification subscription names that the stack does not deploy."""
    subscriptions = stack.notifications.subscriptions if stack.notifications else []
    return [
        f"{source}: {PROJECT}:notifications.subscriptions[{i}].services: '{name}' is not a "
        f"service of this stack{_did_you_mean(name, tuple(stack.services))} "
        f"(services: {', '.join(sorted(stack.services))})"
        for i, sub in enumerate(subscriptions)
        for name in sub.services if name not in stack.services
    ]


def _burn_rate_problems(stack: StackConfig, slos: list[ResolvedSlo], source: str) -> list[str]:
    """A line per gate of a deployed service whose burn rates mean it could never fail."""
    analysis, lines = stack.delivery.analysis, []
    for slo in slos:
        key = f"{slo.service.name}/{slo.slo.name}"
        passing, fail = analysis.burn_rates(key, slo.slo.indicator.kind)
        if slo.service.name not in stack.services or not slo.slo.canary_gate:
            continue
        if fail != "auto" and fail <= passing:
            lines.append(
                f"{source}: {PROJECT}:delivery.analysis: {key} fails at {fail:g}x its budget and "
                f"passes at {passing:g}x: failBurnRate must be greater than passBurnRate"
            )
        elif fail != "auto" and slo.budget * fail >= 1:
            lines.append(
                f"{source}: {PROJECT}:delivery.analysis.failBurnRate: {fail:g} x the "
                f"{slo.budget:.2%} budget of {key} is 100% or more, "
                "so a canary could never fail that gate; lower it"
            )
    return lines


def _router_problems(stack: StackConfig, source: str) -> list[str]:
    name = stack.delivery.traffic_routing
    router, lines = ROUTERS[name], []
    if router.needs_gateway and stack.delivery.gateway is None:
        lines.append(
            f"{source}: {PROJECT}:delivery.gateway: trafficRouting {name} needs the Gateway the "
            "services' routes attach to (name, namespace, optionally sectionName)"
        )
    if stack.delivery.canary_header is not None and not router.header_routes:
        lines.append(
            f"{source}: {PROJECT}:delivery.canaryHeader: trafficRouting {name} cannot route a "
            "header to the canary; routers that can: "
            + ", ".join(n for n, r in ROUTERS.items() if r.header_routes)
        )
    argo = stack.argo_rollouts
    if router.plugin and argo.install != "none" and argo.gateway_api_plugin is None:
        lines.append(
            f"{source}: {PROJECT}:argoRollouts.gatewayApiPlugin: trafficRouting {name} needs the "
            f"controller's {router.plugin} plugin: location and sha256 of its binary, or image "
            "(an image holding it, air-gapped); or install: none if the controller has it"
        )
    return lines


# What a stack file may hold besides config (Pulumi's own keys), the config namespaces this
# program and its providers read, and the keys that must be secrets.
STACK_FILE_KEYS = ("config", "encryptedkey", "encryptionsalt", "environment", "secretsprovider")
NAMESPACES = (PROJECT, "grafana", "kubernetes", "pulumi")
SECRET_KEYS = ("grafanaToken", "notificationSecrets")


def read_stack_file(path: Path) -> dict[str, Any]:
    """The ``config:`` map of a stack file, or ConfigError: every problem of the file itself
    (unknown top-level keys, config namespaces nobody reads, secrets in plain text)."""
    source = path.name
    data = read_yaml(path, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: a stack file is a mapping with 'config'"])
    lines = [
        f"{source}: {key}: not a stack file key{_did_you_mean(str(key), STACK_FILE_KEYS)}; "
        f"allowed: {', '.join(STACK_FILE_KEYS)}"
        for key in data
        if key not in STACK_FILE_KEYS
    ]
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError([*lines, f"{source}: config: a mapping of 'namespace:key' to values"])
    secrets = {k for k, v in config.items() if isinstance(v, dict) and set(v) == {"secure"}}
    lines += [
        f"{source}: {key}: secure: not a ciphertext that Pulumi wrote (base64, or v1:salt:data "
        f"from a passphrase); the value is in plain text: remove it and run: pulumi config set "
        f"--secret {key} <value>"
        for key in sorted(secrets) if not is_ciphertext(config[key]["secure"])
    ]
    lines += check_config_keys([str(k) for k in config], secrets, source)
    if lines:
        raise ConfigError(lines)
    return config


_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def is_ciphertext(value: Any) -> bool:
    """Whether a ``secure:`` value looks like what Pulumi writes: base64 of an encrypted blob (a
    secrets provider or Pulumi Cloud), or ``v1:<nonce>:<data>`` (a passphrase). A token pasted
    there is usually not base64 (``_``, ``-``, ``.``), too short, or hex only."""
    if not isinstance(value, str):
        return False
    parts = value.split(":")
    if len(parts) == 3 and parts[0] == "v1":
        parts = parts[1:]
    elif len(parts) != 1:
        return False
    return all(
        len(part) >= 16 and len(part) % 4 == 0 and _BASE64.fullmatch(part) is not None
        and not re.fullmatch(r"[0-9a-fA-F]+", part)
        for part in parts
    )


def check_config_keys(keys: list[str], secrets: set[str], source: str) -> list[str]:
    """Config keys that would be silently ignored, and secrets given in plain text."""
    lines = []
    for key in keys:
        namespace, colon, name = key.partition(":")
        if not colon:
            continue  # Pulumi reads a bare key as the project's own
        if namespace not in NAMESPACES:
            close = _did_you_mean(namespace, NAMESPACES)
            lines.append(
                f"{source}: {key}: '{namespace}' is not a config namespace of this program or "
                f"its providers{close}; nothing reads this key (known: {', '.join(NAMESPACES)})"
            )
        elif namespace == PROJECT and name in SECRET_KEYS and key not in secrets:
            lines.append(
                f"{source}: {key}: a secret in plain text, committed with the file; remove it "
                f"and run: pulumi config set --secret {key} <value>"
            )
    return lines


def notification_secrets(raw: str | None, source: str) -> dict[str, str] | None:
    """The values of ``slo-canary:notificationSecrets`` (decrypted by Pulumi): a JSON object of
    Secret key to value, or ConfigError, which never repeats the value."""
    if raw is None:
        return None
    key = f"{PROJECT}:notificationSecrets"
    try:
        items = json.loads(raw)
    except ValueError:
        items = None
    if not isinstance(items, dict) or not all(
        isinstance(k, str) and re.fullmatch(r"[\w-]+", k) and isinstance(v, str)
        for k, v in items.items()
    ):
        raise ConfigError([
            f"{source}: {key}: a JSON object of key (letters, digits, '_', '-') to text is "
            f"expected; set it with: pulumi config set --secret {key} '{{\"<key>\": \"<value>\"}}'"
        ])
    return dict(items)


def _did_you_mean(word: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, allowed, n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""


def project_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``slo-canary:*`` values of a stack's config (a stack file's, or what Pulumi hands the
    program) by key without the namespace; the secrets left out."""
    return {
        key.partition(":")[2]: value
        for key, value in config.items()
        if key.startswith(f"{PROJECT}:")
        and not (isinstance(value, dict) and "secure" in value)
        and key.partition(":")[2] not in SECRET_KEYS
    }


def load_stack_file(path: Path) -> StackConfig:
    """A stack file read directly (for docs and checks; the program reads Pulumi config)."""
    return parse_stack(project_values(read_stack_file(path)), path.name)


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
        raise ConfigError(lines)
    return {name: d.image for name, d in stack.services.items()}
