"""The SLO catalogue: what operators write, as strict pydantic models.

Every model is frozen and forbids unknown keys, so a typo in a catalogue is an error rather than
a silently missing setting. Field descriptions are the reference documentation of the format
(``docs/slo-catalogue.md`` is generated from them).
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from slo import durations, promql

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,51}[a-z0-9]$"
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _duration(value: str) -> str:
    durations.parse(value)
    return value


def _selector(value: str) -> str:
    promql.parse_selector(value)
    return value


def _query(value: str) -> str:
    promql.check_query(value)
    return value


def _matchers(value: str) -> str:
    promql.parse_matchers(value)
    return value


def _objective(value: float) -> float:
    if not 0 < value < 100:
        raise ValueError(
            "must be strictly between 0 and 100 (100 leaves no error budget, 0 promises nothing)"
        )
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    return _label_map(value, "label")


_ACTION_CHARS = frozenset("_ \t\r\n.$()|=:,+-")
# What a word that is not a field or a variable may be in an action: Go's keywords and builtin
# functions, and the functions Prometheus adds (template/template.go of Prometheus 3.16).
_TEMPLATE_WORDS = frozenset({
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
    "nil", "true", "false", "and", "call", "html", "index", "slice", "js", "len", "not", "or",
    "print", "printf", "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne", "query",
    "first", "label", "value", "strvalue", "args", "reReplaceAll", "safeHtml", "match", "title",
    "toUpper", "toLower", "graphLink", "tableLink", "sortByLabel", "stripPort", "stripDomain",
    "humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp",
    "toTime", "toDuration", "now", "pathPrefix", "externalURL", "parseDuration", "urlQueryEscape",
})


def _scan_action(text: str, i: int, comment: bool) -> tuple[int, str | None]:
    """Read one action's body from ``i`` to its ``}}``: (where the ``}}`` is, or a problem with
    a character Go's lexer refuses, a word that is no function, an unclosed string)."""
    while i < len(text) and not text.startswith("}}", i):
        c = text[i]
        if c in "\"'`":
            quote, i = c, i + 1
            while i < len(text) and text[i] != quote:
                i += 2 if text[i] == "\\" and quote != "`" else 1
            if i >= len(text):
                return i, f"the string at character {i} in an action is never closed"
        elif not (c.isalnum() or c in _ACTION_CHARS) or (
                comment and not c.isspace() and c != "-"):
            return i, f"{c!r} at character {i} cannot stand in a template action"
        elif c.isalnum() or c == "_":
            end = i
            while end < len(text) and (text[end].isalnum() or text[end] in "_."):
                end += 1
            word = text[i:end].split(".")[0]
            # a word not after . or $ (a field, a variable) and not a number is a function
            if not c.isdigit() and text[i - 1] not in ".$" and word not in _TEMPLATE_WORDS:
                return i, f"{word!r} at character {i} is not a function Prometheus's templates " \
                          "define"
            i = end - 1
        i += 1
    return i, None


def _template_problem(text: str) -> str | None:
    """Why Go's text/template (which Prometheus expands labels and annotations with) would not
    parse ``text``: an action opened with ``{{`` and not closed, empty, holding a character its
    lexer refuses (``{``, ``#``, ``[``...; quoted strings and ``/* comments */`` aside), a
    function or variable Prometheus does not define, an if/range/with without its end.
    ``}}`` outside an action is plain text to Go."""
    at = 0
    declared = {"labels", "externalLabels", "externalURL", "value"}
    blocks: list[tuple[str, int]] = []
    while (start := text.find("{{", at)) >= 0:
        if text.find("}}", start + 2) < 0:
            return f"'{{{{' at character {start} is never closed with '}}}}'"
        body = start + 4 if text.startswith("- ", start + 2) else start + 2
        comment = text.startswith("/*", body)
        i = body
        if comment:
            i = text.find("*/", body + 2) + 2
            if i < 2:
                return f"the comment at character {body} is never closed with '*/'"
        i, problem = _scan_action(text, i, comment)
        if problem:
            return problem
        if i >= len(text):
            return f"'{{{{' at character {start} is never closed with '}}}}'"
        inner = re.sub(r'"(?:\\.|[^"\\])*"|`[^`]*`|\'(?:\\.|[^\'\\])*\'', '""',
                       text[body:i]).strip(" -\t\r\n")  # strings cannot declare or use
        if not comment and not inner:
            return f"'{{{{}}}}' at character {start} is an empty action"
        depth = 0
        for c in inner:
            depth += {"(": 1, ")": -1}.get(c, 0)
            if depth < 0:
                return f"')' in the action at character {start} closes no '('"
        if depth:
            return f"'(' in the action at character {start} is never closed with ')'"
        for name in re.findall(r"\$(\w+)\s*(?:,\s*\$(\w+)\s*)?:?=", inner):
            declared.update(n for n in name if n)
        for name in re.findall(r"\$(\w+)", inner):
            if name not in declared:
                return f"'${name}' at character {start} is not a variable Prometheus defines"
        keyword = first.group() if (first := re.match(r"[A-Za-z_]\w*", inner)) else ""
        if keyword in ("if", "range", "with", "define", "block"):
            blocks.append((keyword, start))
        elif keyword in ("end", "else") and not blocks:
            return f"'{{{{ {keyword} }}}}' at character {start} is outside an if, range or with"
        elif keyword == "end":
            blocks.pop()
        at = i + 2
    if blocks:
        keyword, where = blocks[-1]
        return f"'{{{{ {keyword} }}}}' at character {where} is never ended with '{{{{ end }}}}'"
    return None


def _label_map(value: dict[str, str], what: str) -> dict[str, str]:
    for key, text in value.items():
        if not LABEL_NAME.match(key) or key.startswith("__"):
            raise ValueError(f"{key!r} is not a Prometheus {what} name ([a-zA-Z_][a-zA-Z0-9_]*)")
        problem = _template_problem(text)
        if problem:
            raise ValueError(f"{key}: {text!r} is not a template Prometheus can expand: {problem}")
    return value


def _annotations(value: dict[str, str]) -> dict[str, str]:
    return _label_map(value, "annotation")


def _at_most_a_week(value: str) -> str:
    if durations.parse(value) > 7 * 86400:
        raise ValueError(f"{value} is longer than 7d: metrics missing for longer than a week "
                         "are long past alerting on")
    return value


def _not_reserved(labels: dict[str, str], field: str) -> None:
    """``service`` and ``slo`` come from the names: a map that sets them is refused."""
    taken = {"service", "slo"} & set(labels)
    if taken:
        raise ValueError(f"{field} must not set {', '.join(sorted(taken))}: they are set from "
                         "the service and SLO names")


Duration = Annotated[str, AfterValidator(_duration)]
SelectorText = Annotated[str, AfterValidator(_selector)]
MatchersText = Annotated[str, AfterValidator(_matchers)]
QueryText = Annotated[str, AfterValidator(_query)]
Labels = Annotated[dict[str, str], AfterValidator(_labels)]
Annotations = Annotated[dict[str, str], AfterValidator(_annotations)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Histogram(Model):
    """A classic Prometheus histogram the service exposes."""

    name: str = Field(
        pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$",
        description="Base metric name, without _bucket/_count/_sum "
        "(e.g. http_request_duration_seconds).",
    )
    buckets: list[float] = Field(
        min_length=1,
        description="The bucket boundaries (le values) the service declares, in seconds. "
        "A latency threshold must be one of them.",
    )
    native: bool = Field(
        default=False,
        description="The histogram is a native (sparse) histogram: the SLI uses "
        "histogram_fraction() instead of _bucket/_count.",
    )

    @model_validator(mode="after")
    def _sorted_positive(self) -> Histogram:
        if any(b <= 0 for b in self.buckets) or self.buckets != sorted(set(self.buckets)):
            raise ValueError("buckets must be positive, increasing and without duplicates")
        return self


class RatioIndicator(Model):
    """Bad (or good) events over all events, from counters: e.g. 5xx responses over requests."""

    kind: Literal["ratio"] = Field(description="`ratio`.")
    total: SelectorText = Field(
        description="Selector of the counter of all events, e.g. `http_requests_total`. "
        "The service's selector is added to it."
    )
    bad: SelectorText | None = Field(
        default=None,
        description="Selector of the counter of bad events, e.g. "
        '`http_requests_total{code=~"5.."}`. '
        "Give `bad` or `good`, not both.",
    )
    good: SelectorText | None = Field(
        default=None, description="Selector of the counter of good events (instead of `bad`)."
    )

    @model_validator(mode="after")
    def _one_of_bad_good(self) -> RatioIndicator:
        if (self.bad is None) == (self.good is None):
            raise ValueError("give exactly one of 'bad' or 'good'")
        return self


class LatencyIndicator(Model):
    """The share of requests served faster than a threshold, from a histogram."""

    kind: Literal["latency"] = Field(description="`latency`.")
    histogram: str = Field(description="Name of one of the service's `histograms`.")
    threshold: float = Field(
        gt=0,
        description="Latency threshold in seconds; must be one of the histogram's buckets. "
        '"p95 < 2s" is threshold 2 with objective 95.',
    )
    matchers: MatchersText = Field(
        default="",
        description='Extra label matchers for the histogram, e.g. `route!="/healthz"`.',
    )


class AvailabilityIndicator(Model):
    """Uptime from a 0/1 gauge sampled over time (`up`, `probe_success`), or from requests."""

    kind: Literal["availability"] = Field(description="`availability`.")
    gauge: SelectorText | None = Field(
        default=None,
        description="Selector of a 0/1 gauge; the SLI is the share of samples equal to 1.",
    )
    total: SelectorText | None = Field(
        default=None, description="Request-based: selector of the counter of all requests."
    )
    bad: SelectorText | None = Field(
        default=None, description="Request-based: selector of the counter of failed requests."
    )

    @model_validator(mode="after")
    def _one_source(self) -> AvailabilityIndicator:
        from_requests = self.total is not None or self.bad is not None
        if self.gauge is not None and from_requests:
            raise ValueError("give either 'gauge' or 'total' with 'bad', not both")
        if self.gauge is None and (self.total is None or self.bad is None):
            raise ValueError("give 'gauge', or both 'total' and 'bad'")
        return self


class QueryIndicator(Model):
    """Events counted by PromQL of your own, as Sloth's events and raw SLIs: every expression
    has `{{.window}}` where its range goes and is used as written (the service's selector is
    not added). Expressions that are exactly `sum(rate(<selector>[{{.window}}]))` behave like a
    `ratio` SLI in everything (proofs, canary gates, dashboards)."""

    kind: Literal["query"] = Field(description="`query`.")
    total: QueryText | None = Field(
        default=None,
        description="Per-second rate of all events over `{{.window}}`, summed over its series, "
        'e.g. `sum(rate(http_requests_total{job="api"}[{{.window}}]))`.',
    )
    bad: QueryText | None = Field(
        default=None,
        description="Per-second rate of bad events over `{{.window}}`. Give `bad` or `good` "
        "with `total`, or `error_ratio` alone.",
    )
    good: QueryText | None = Field(
        default=None, description="Per-second rate of good events (instead of `bad`)."
    )
    error_ratio: QueryText | None = Field(
        default=None,
        description="The error ratio itself over `{{.window}}` (Sloth's raw SLI), one series. "
        "Windows over an hour and the period average it over time, unweighted by traffic; it "
        "has no minimum-traffic guard and cannot gate a canary.",
    )

    @model_validator(mode="after")
    def _one_shape(self) -> QueryIndicator:
        if self.error_ratio is not None:
            if self.total is not None or self.bad is not None or self.good is not None:
                raise ValueError("give error_ratio alone, or total with bad or good")
            return self
        if self.total is None or (self.bad is None) == (self.good is None):
            raise ValueError("give total with exactly one of bad or good, or error_ratio alone")
        return self


Indicator = Annotated[
    RatioIndicator | LatencyIndicator | AvailabilityIndicator | QueryIndicator,
    Field(discriminator="kind"),
]
# every SLI kind, as the catalogue names it (from the models of the union above)
INDICATOR_KINDS: tuple[str, ...] = tuple(
    typing.get_args(model.model_fields["kind"].annotation)[0]
    for model in typing.get_args(typing.get_args(Indicator)[0])
)


class BurnRateTier(Model):
    """One row of the multi-window, multi-burn-rate alert table."""

    severity: Literal["page", "ticket"] = Field(description="`page` or `ticket`.")
    long_window: Duration = Field(description="The long window, e.g. `1h`.")
    short_window: Duration = Field(
        description="The short window that makes the alert reset quickly, "
        "about 1/12 of the long one."
    )
    budget_consumed: float = Field(
        gt=0,
        le=1,
        description="Share of the period's error budget spent over the long window when the alert "
        "fires (0.02 for the 1h page). The burn-rate factor is this share × period ÷ long window.",
    )

    @model_validator(mode="after")
    def _short_below_long(self) -> BurnRateTier:
        if durations.parse(self.short_window) >= durations.parse(self.long_window):
            raise ValueError("short_window must be shorter than long_window")
        return self


class Alerting(Model):
    """How an SLO alerts."""

    page: bool = Field(default=True, description="Emit the page tiers of the burn-rate table.")
    ticket: bool = Field(default=True, description="Emit the ticket tiers of the burn-rate table.")
    tiers: list[BurnRateTier] | None = Field(
        default=None,
        min_length=1,
        description="Replace the burn-rate table (default: `slo/burn_rates.yaml`, after the "
        "SRE Workbook).",
    )
    runbook_url: str = Field(default="", description="Link added to every alert as `runbook_url`.")
    labels: Labels = Field(
        default_factory=dict, description="Extra labels on every alert (e.g. `team`)."
    )
    min_events: int = Field(
        default=0,
        ge=0,
        description="Minimum-traffic guard: a burn-rate alert fires only when its long window saw "
        "at least this many requests. 0 turns the guard off. Gauge-based availability is not "
        "guarded: its events are scrape samples, not traffic.",
    )
    absent_for: Annotated[Duration, AfterValidator(_at_most_a_week)] = Field(
        default="10m",
        description="How long an SLO's source metrics must be missing before "
        "`SLOMetricsAbsent` fires; at most 7d (the proofs simulate it minute by minute).",
    )
    long_windows: Literal["averaged", "raw"] = Field(
        default="averaged",
        description="How alert windows over an hour are computed: `averaged` from the recorded "
        "5m rates (cheap to evaluate; trails a step change by up to 5 minutes), or `raw` from "
        "the source series like the shorter windows (as Sloth does; costs more to evaluate).",
    )
    name: str = Field(
        default="",
        pattern=r"^([a-zA-Z_:][a-zA-Z0-9_:]*)?$",
        description="One name for both burn-rate alerts, told apart by `severity` (as Sloth "
        "names them); empty: `SLOBurnRatePage` and `SLOBurnRateTicket`.",
    )
    annotations: Annotations = Field(
        default_factory=dict,
        description="Annotations on both burn-rate alerts; a key given here replaces the "
        "generated one (`summary`, `description`).",
    )
    page_labels: Labels = Field(
        default_factory=dict,
        description="Labels on the page alert only. Setting `severity` here replaces `page` "
        "(your routing); the all-services overview counts pages by `severity=\"page\"` and "
        "will not count it.",
    )
    ticket_labels: Labels = Field(
        default_factory=dict, description="Labels on the ticket alert only (as `page_labels`)."
    )
    page_annotations: Annotations = Field(
        default_factory=dict, description="Annotations on the page alert only."
    )
    ticket_annotations: Annotations = Field(
        default_factory=dict, description="Annotations on the ticket alert only."
    )

    @model_validator(mode="after")
    def _own_labels_kept(self) -> Alerting:
        for field in ("labels", "page_labels", "ticket_labels"):
            _not_reserved(getattr(self, field), field)
        return self


class Slo(Model):
    """One service level objective."""

    name: Name = Field(description="Unique within the service; becomes the `slo` label.")
    description: str = Field(default="", description="What the SLO promises, in a sentence.")
    objective: Annotated[float, AfterValidator(_objective)] = Field(
        description="Target in percent, strictly between 0 and 100: 99.9 means an error budget "
        "of 0.1%."
    )
    window: Duration = Field(
        default="30d",
        description="Rolling period of the objective (30d or 28d); "
        "burn-rate factors scale with it.",
    )
    indicator: Indicator = Field(description="How good and bad events are counted.")
    alerting: Alerting | None = Field(
        default=None,
        description="Alerting policy: the fields given here replace those of "
        "`defaults.alerting` one by one, the rest are inherited; `labels` merge key by key. "
        'To clear an inherited value, give it empty: `runbook_url: ""`, a label `team: ""`.',
    )
    canary_gate: bool = Field(
        default=True,
        description="Gate canaries on this SLO (ratio, latency and query indicators; a query "
        "SLI only where its PromQL can be restricted to the canary's pods).",
    )
    labels: Labels = Field(
        default_factory=dict,
        description="Extra labels on every recorded series and alert of this SLO (e.g. "
        "`tier`); `service` and `slo` are set already.",
    )
    scope: Literal["cluster", "fleet"] = Field(
        default="cluster",
        description="`cluster`: each cluster's Prometheus holds the service to the objective on "
        "its own. `fleet`: one objective over every cluster that runs the service, events summed "
        "across clusters (`fleet.cluster_label` tells them apart), on a Thanos Ruler where a "
        "stack sets `prometheus.rulePlacement: thanos`; with `local` placement a fleet SLO is "
        "evaluated per cluster like a `cluster` one.",
    )

    @model_validator(mode="after")
    def _labels_not_taken(self) -> Slo:
        _not_reserved(self.labels, "labels")
        return self


class Service(Model):
    """A service and the SLOs it is held to."""

    name: Name = Field(description="Unique service name; becomes the `service` label.")
    namespace: Name = Field(description="Kubernetes namespace the service runs in.")
    owner: str = Field(min_length=1, description="Team that owns the service and its pages.")
    selector: MatchersText = Field(
        description='PromQL label matchers selecting the service\'s series, e.g. `job="api"`. '
        "Added to every selector of its SLOs."
    )
    histograms: list[Histogram] = Field(
        default_factory=list, description="Histograms the service exposes, with their buckets."
    )
    slos: list[Slo] = Field(min_length=1, description="The service's SLOs.")


class Defaults(Model):
    """Values used by every SLO that does not set its own."""

    alerting: Alerting = Field(default_factory=Alerting, description="Default alerting policy.")


class Fleet(Model):
    """How fleet SLOs (`scope: fleet`) tell clusters apart and notice one gone quiet."""

    cluster_label: str = Field(
        default="cluster",
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description="External label naming each cluster's Prometheus (`global.external_labels`, "
        "seen through Thanos sidecars). The Thanos Ruler's own labels must not use it.",
    )
    not_reporting_for: Duration = Field(
        default="3m",
        description="How long a cluster that reported a fleet SLO's events must be silent "
        "before `SLOClusterNotReporting` fires for it. Keep it under four times the Ruler's "
        "`--resend-delay` (1m): a fleet alert the Ruler can no longer evaluate lapses in "
        "Alertmanager then, and this alert takes over.",
    )
    remember: Duration = Field(
        default="1d",
        description="How long the Thanos Ruler remembers a cluster that reported: a cluster "
        "silent for longer (decommissioned) stops raising `SLOClusterNotReporting`.",
    )

    @model_validator(mode="after")
    def _remember_longer(self) -> Fleet:
        if durations.parse(self.remember) <= durations.parse(self.not_reporting_for):
            raise ValueError("remember must be longer than not_reporting_for")
        if self.cluster_label in {"service", "slo", "severity", "scope"} or \
                self.cluster_label.startswith("__"):
            raise ValueError(f"cluster_label {self.cluster_label!r} is a label the rules set")
        return self


class Catalogue(Model):
    """The root of a catalogue file."""

    defaults: Defaults = Field(default_factory=Defaults, description="Catalogue-wide defaults.")
    fleet: Fleet = Field(
        default_factory=Fleet, description="Settings of the SLOs with `scope: fleet`."
    )
    services: list[Service] = Field(min_length=1, description="The services and their SLOs.")

    def alerting_for(self, slo: Slo) -> Alerting:
        """``defaults.alerting`` with what the SLO's own ``alerting`` sets, field by field;
        ``labels`` merge key by key, and a label set to ``""`` is dropped."""
        base = self.defaults.alerting
        own = slo.alerting
        if own is None:
            return base
        update = {name: getattr(own, name) for name in own.model_fields_set}
        if "labels" in update:
            merged = {**base.labels, **own.labels}
            update["labels"] = {k: v for k, v in merged.items() if v != ""}
        return base.model_copy(update=update)
