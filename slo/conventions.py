"""Names shared by rules, tests, canary gates and dashboards. Change them here only."""

from __future__ import annotations

LABEL_SERVICE = "service"
LABEL_SLO = "slo"
LABEL_SEVERITY = "severity"

# Per-second event rates over 5m, summed over the service's series: the base of every window
# longer than RAW_WINDOW_MAX_SECONDS and of the period SLI.
TOTAL_RATE = "slo:sli_total:rate{window}"
TOTAL_RATE_5M = TOTAL_RATE.format(window="5m")
BAD_RATE = "slo:sli_bad:rate{window}"
BAD_RATE_5M = BAD_RATE.format(window="5m")

# Windows up to one hour read the raw counters, so a full outage pages within the Workbook's
# time (52 s at 99.9%); longer windows average the 5m rates, which is far cheaper to evaluate.
RAW_WINDOW_MAX_SECONDS = 3600
BASE_WINDOW = "5m"

ERROR_RATIO = "slo:sli_error:ratio_rate{window}"
ERROR_RATIO_PERIOD = "slo:sli_error:ratio_period"
OBJECTIVE = "slo:objective:ratio"
ERROR_BUDGET = "slo:error_budget:ratio"
PERIOD_DAYS = "slo:period:days"
CURRENT_BURN_RATE = "slo:current_burn_rate:ratio"
PERIOD_BURN_RATE = "slo:period_burn_rate:ratio"
ERROR_BUDGET_REMAINING = "slo:error_budget_remaining:ratio"

ALERT_BURN = {"page": "SLOBurnRatePage", "ticket": "SLOBurnRateTicket"}
ALERT_ABSENT = "SLOMetricsAbsent"

# Fleet SLOs under `rulePlacement: thanos`: recorded by the Thanos Ruler from every cluster's
# recordings above (never from ratios), under names of their own, so that a Thanos Query that
# also reads the Ruler never sums a fleet series into a cluster one.
FLEET_ERROR_RATIO = "slo:fleet_sli_error:ratio_rate{window}"
FLEET_ERROR_RATIO_PERIOD = "slo:fleet_sli_error:ratio_period"
FLEET_PERIOD_BURN_RATE = "slo:fleet_period_burn_rate:ratio"
FLEET_ERROR_BUDGET_REMAINING = "slo:fleet_error_budget_remaining:ratio"
FLEET_REPORTING = "slo:fleet_cluster:reporting"
ALERT_NOT_REPORTING = "SLOClusterNotReporting"
# On the alerts of fleet SLOs: `fleet` from the Ruler, `cluster` from a cluster's own fast page.
LABEL_SCOPE = "scope"


def total_rate(window: str) -> str:
    return TOTAL_RATE.format(window=window)


def bad_rate(window: str) -> str:
    return BAD_RATE.format(window=window)


def error_ratio(window: str) -> str:
    return ERROR_RATIO.format(window=window)


def fleet_error_ratio(window: str) -> str:
    return FLEET_ERROR_RATIO.format(window=window)


def rule_group_name(service: str, slo: str) -> str:
    return f"slo-{service}-{slo}"


def prometheus_rule_name(service: str) -> str:
    return f"{service}-slos"


def fleet_rule_group_name(service: str, slo: str) -> str:
    return f"slo-fleet-{service}-{slo}"


def fleet_rule_name(service: str) -> str:
    return f"{service}-fleet-slos"


# Canary metrics carry the pod's `rollouts-pod-template-hash` label under this name, copied at
# scrape time (the PodMonitor's relabelling); AnalysisTemplates take the hashes as arguments.
HASH_LABEL = "rollouts_pod_template_hash"
HASH_RELABEL_SOURCE = "__meta_kubernetes_pod_label_rollouts_pod_template_hash"
CANARY_HASH_ARG = "canary-hash"
STABLE_HASH_ARG = "stable-hash"

# `app.kubernetes.io/part-of` of what the program renders.
PART_OF_WORKLOADS = "core-services"
PART_OF_SLO = "slo"

# The canary judge's evidence, recorded per pod template hash every scrape interval
# (delivery/evidence.py): events over one step counted exactly from the counters, the errors'
# square over the requests (the dispersion estimate), the same for the service's other hashes
# (stable) in the same step, their sums over the evidence window, and the judge's statistics.
CANARY_REQUESTS_STEP = "slo:canary_requests:step"
CANARY_ERRORS_STEP = "slo:canary_errors:step"
CANARY_SQUARES_STEP = "slo:canary_errors_squared_per_request:step"
CANARY_EVIDENCE = "slo:canary_evidence:value"
# When the service's evidence group last ran (its value: the evaluation's time), and how long
# before each evaluation it had last run: a Prometheus outage as the group saw it.
CANARY_EVIDENCE_HEARTBEAT = "slo:canary_evidence_heartbeat:time"
CANARY_EVIDENCE_GAP = "slo:canary_evidence_gap:seconds"
