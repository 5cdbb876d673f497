"""Load a catalogue file and report every problem at once, one line each.

Structural problems come from pydantic (types, unknown fields, PromQL syntax); problems that
span several fields (duplicates, thresholds that are not buckets, objectives too low to page)
are checked here afterwards. Nothing is rendered unless both passes are clean.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from slo import durations
from slo.conventions import HASH_LABEL
from slo.inputs import read_yaml
from slo.model import QueryEvents, default_tiers, events_for, tiers_for
from slo.problems import ConfigError, Problem
from slo.spec import (
    INDICATOR_KINDS,
    NAME_PATTERN,
    Catalogue,
    LatencyIndicator,
    QueryIndicator,
)


def format_path(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_catalogue(path: str | Path, source: str | None = None) -> Catalogue:
    """The validated catalogue in ``path``, or ConfigError listing every problem.

    ``source`` is how messages name the file (default: ``path`` as given).
    """
    source = source or str(path)
    return parse_catalogue(read_yaml(path, source), source)


def parse_catalogue(data: Any, source: str) -> Catalogue:
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the catalogue must be a mapping with 'services'"])
    try:
        catalogue = Catalogue.model_validate(data)
    except ValidationError as err:
        raise ConfigError(
            [p.render(source) for p in pydantic_problems(err, Catalogue)]
        ) from None
    problems = check_catalogue(catalogue)
    if problems:
        raise ConfigError([p.render(source) for p in problems])
    return catalogue


def pydantic_problems(err: ValidationError, root: type[BaseModel]) -> list[Problem]:
    problems = []
    for item in err.errors():
        loc = tuple(item["loc"])
        if item["type"] == "extra_forbidden":
            allowed = sorted(_fields_at(root, loc[:-1]))
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            message = f"unknown field; {hint}allowed: {', '.join(allowed)}"
        elif item["type"] == "union_tag_invalid":
            message = f"unknown kind {item['input'].get('kind')!r}; allowed: " + item["ctx"][
                "expected_tags"
            ].replace("'", "")
        elif item["type"] == "missing":
            message = "required field is missing"
        elif item["type"] == "union_tag_not_found":
            message = (f"missing 'kind' ({', '.join(INDICATOR_KINDS[:-1])} or "
                       f"{INDICATOR_KINDS[-1]})")
        else:
            message = _in_operator_terms(item)
        problems.append(Problem(format_path(loc), message))
    return problems


# What a pattern means, for the patterns the models use.
PATTERNS = {
    NAME_PATTERN: "a name of 2 to 53 characters: lowercase letters, digits and '-', starting "
    "with a letter and not ending with '-'",
    r"^[a-zA-Z_:][a-zA-Z0-9_:]*$": "a Prometheus metric name: letters, digits, '_' and ':', "
    "not starting with a digit",
    r"^/": "a path starting with '/'",
}
# pydantic error types and what is allowed instead, in an operator's words.
ALLOWED = {
    "float_type": "a number (e.g. 99.9)",
    "float_parsing": "a number (e.g. 99.9)",
    "finite_number": "a finite number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text (quote it if YAML reads it as something else)",
    "list_type": "a list ([a, b] or one '- item' per line)",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
}


def _in_operator_terms(item: Any) -> str:
    """pydantic's message, said as what was given and what is allowed."""
    kind, ctx = item["type"], item.get("ctx") or {}
    given = _shown(item.get("input"))
    if kind in ALLOWED:
        return f"{given} is not allowed here; give {ALLOWED[kind]}"
    if kind == "string_pattern_mismatch":
        meaning = PATTERNS.get(str(ctx.get("pattern")), f"text matching {ctx.get('pattern')}")
        return f"{given} is not allowed here; give {meaning}"
    bounds = {
        "greater_than": "more than", "greater_than_equal": "at least",
        "less_than": "less than", "less_than_equal": "at most",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"{given} is out of range; allowed: {bounds[kind]} {limit}"
    if kind == "string_too_short":
        return f"empty text is not allowed here; give at least {ctx.get('min_length')} character(s)"
    if kind in ("too_short", "too_long"):
        word = "at least" if kind == "too_short" else "at most"
        count = ctx.get("min_length" if kind == "too_short" else "max_length")
        return f"{word} {count} item(s) here, got {ctx.get('actual_length')}"
    if kind == "literal_error":
        return f"{given} is not allowed here; give one of {ctx.get('expected')}"
    return str(item["msg"]).removeprefix("Value error, ")


def _shown(value: Any) -> str:
    """A given value as the message shows it: short, and its YAML type when not a scalar."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty value"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fields_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> set[str]:
    """Keys allowed in the mapping found at ``loc`` under ``root`` (for 'did you mean')."""
    current: Any = root
    for part in loc:
        model = _model_in(current, part)
        if model is None:
            return set()
        current = model
        for name, field in model.model_fields.items():
            if part in (name, field.alias):
                current = field.annotation
                break
    model = _model_in(current, None)
    return {f.alias or n for n, f in model.model_fields.items()} if model else set()


def _model_in(annotation: Any, part: str | int | None) -> type[BaseModel] | None:
    """Unwrap list/dict/Optional/union annotations to the model a path element refers to."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_in(args[0], part)
    if origin in (list, tuple):
        return _model_in(args[0], None)
    if origin is dict:
        return _model_in(args[1], None)
    if origin in (typing.Union, types.UnionType):
        models = [m for a in args if (m := _model_in(a, None)) is not None]
        for model in models:
            kind = model.model_fields.get("kind")
            if kind is not None and part in typing.get_args(kind.annotation):
                return model
        return models[0] if len(models) == 1 else None
    return None


def check_catalogue(catalogue: Catalogue) -> list[Problem]:
    problems: list[Problem] = []
    seen_services: dict[str, int] = {}
    for i, service in enumerate(catalogue.services):
        where = f"services[{i}]"
        if service.name in seen_services:
            problems.append(
                Problem(
                    f"{where}.name",
                    f"duplicate service name {service.name!r} "
                    f"(also services[{seen_services[service.name]}])",
                )
            )
        seen_services.setdefault(service.name, i)
        histograms = {h.name: h for h in service.histograms}
        if len(histograms) != len(service.histograms):
            problems.append(Problem(f"{where}.histograms", "duplicate histogram name"))
        seen_slos: dict[str, int] = {}
        for j, slo in enumerate(service.slos):
            at = f"{where}.slos[{j}]"
            if slo.name in seen_slos:
                problems.append(
                    Problem(
                        f"{at}.name",
                        f"duplicate SLO name {slo.name!r} in service {service.name!r} "
                        f"(also slos[{seen_slos[slo.name]}])",
                    )
                )
            seen_slos.setdefault(slo.name, j)
            found = []
            if isinstance(slo.indicator, LatencyIndicator):
                found = _check_latency(slo.indicator, histograms, f"{at}.indicator")
            if not found and (isinstance(slo.indicator, QueryIndicator) or slo.canary_gate):
                found = _check_gate(service, slo, at)  # resolves it: needs its histogram
            problems += found
            problems += _check_budget(catalogue, slo, at)
            problems += _check_fleet(catalogue, slo, at)
    return problems


def _check_fleet(catalogue: Catalogue, slo: Any, at: str) -> list[Problem]:
    """A fleet SLO's events are summed across clusters, told apart by the cluster label."""
    if slo.scope != "fleet":
        return []
    problems = []
    label = catalogue.fleet.cluster_label
    if label in slo.labels:
        problems.append(Problem(f"{at}.labels.{label}", f"a fleet SLO cannot set {label}: it "
                                "is what tells the clusters apart (fleet.cluster_label)"))
    if isinstance(slo.indicator, QueryIndicator) and slo.indicator.error_ratio:
        problems.append(Problem(f"{at}.indicator.error_ratio", "a fleet SLO needs event counts "
                                "to sum across clusters, and a raw error ratio would be averaged "
                                "instead; give total and bad (or good), or scope: cluster"))
    return problems


def _check_latency(
    indicator: LatencyIndicator, histograms: dict[str, Any], at: str
) -> list[Problem]:
    histogram = histograms.get(indicator.histogram)
    if histogram is None:
        declared = ", ".join(sorted(histograms)) or "none declared"
        return [
            Problem(
                f"{at}.histogram",
                f"{indicator.histogram!r} is not one of the service's histograms ({declared})",
            )
        ]
    if not histogram.native and indicator.threshold not in histogram.buckets:
        buckets = ", ".join(f"{b:g}" for b in histogram.buckets)
        return [
            Problem(
                f"{at}.threshold",
                f"{indicator.threshold:g}s is not a bucket of {histogram.name} "
                f"(buckets: {buckets}); a classic histogram can only count requests under "
                "a declared boundary",
            )
        ]
    return []


def _check_gate(service: Any, slo: Any, at: str) -> list[Problem]:
    """The SLO resolves, and gates canaries only where its PromQL can be restricted to the
    canary's pods."""
    try:
        events = events_for(service, slo)
    except ValueError as err:
        return [Problem(f"{at}.indicator", str(err))]
    if not slo.canary_gate or not events.can_gate:
        why = events.why_not_gated() if isinstance(events, QueryEvents) else None
        if slo.canary_gate and why:
            return [
                Problem(
                    f"{at}.canary_gate",
                    f"this query SLI cannot judge a canary ({why}); set canary_gate: false",
                )
            ]
        return []
    fixed = [s for s in events.source_selectors() if any(m.name == HASH_LABEL for m in s.matchers)]
    if fixed:
        return [
            Problem(
                f"{at}.canary_gate",
                f"{fixed[0].render()} already sets {HASH_LABEL}, so the judge cannot select the "
                "canary's pods; drop that matcher or set canary_gate: false",
            )
        ]
    return []


def _check_budget(catalogue: Catalogue, slo: Any, at: str) -> list[Problem]:
    alerting = catalogue.alerting_for(slo)
    alerting_at = f"{at}.alerting" if slo.alerting is not None else "defaults.alerting"
    period = durations.parse(slo.window)
    rows = alerting.tiers if alerting.tiers is not None else default_tiers()
    longest = max(durations.parse(r.long_window) for r in rows)
    problems = []
    if period < longest:
        problems.append(
            Problem(
                f"{at}.window",
                f"{slo.window} is shorter than the longest alert window "
                f"({durations.format_seconds(longest)}); use at least that",
            )
        )
        return problems
    budget = round(1 - slo.objective / 100, 12)
    for tier in tiers_for(alerting, period, budget):
        if tier.threshold > 1:
            lowest = 100 * (1 - 1 / tier.factor)
            problems.append(
                Problem(
                    f"{at}.objective",
                    f"{slo.objective:g}% leaves a {budget * 100:g}% error budget, so the "
                    f"{tier.long_window} {tier.severity} tier ({tier.factor:g}x) would need an "
                    f"error ratio of {tier.threshold * 100:g}% and can never fire; use an "
                    f"objective above {lowest:.2f} or turn off {alerting_at}.{tier.severity}",
                )
            )
    return problems
