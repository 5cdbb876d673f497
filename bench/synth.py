"""Synthetic SLO sets for the benchmarks, written twice: as OUR catalogue and as Sloth specs.

For N SLOs there are ceil(N / 3) services ``svc-00001``, ``svc-00002``, ... (job label = service
name), each with the three SLOs of ``catalogue/core-services.yaml``, in its order:

* ``availability``: request-based, 99.5%, bad = ``http_requests_total{code=~"5.."}``;
* ``latency``: 95% of requests under 2 s, from the classic histogram
  ``http_request_duration_seconds`` (buckets as in the example catalogue);
* ``error-rate``: ratio, 99.9%, bad = ``http_requests_total{code=~"5.."}``.

The last service has fewer SLOs when N is not a multiple of 3. Every SLO has a 30d window and
page + ticket alerts with the default burn-rate table (SRE Workbook: 14.4x 1h/5m, 6x 6h/30m,
3x 1d/2h, 1x 3d/6h), which is also Sloth's default 30d window catalog, so both generators do
the same work on the same series:

* ours: ``defaults.alerting`` as in the example catalogue (runbook, ``team`` label,
  ``min_events: 100``);
* Sloth (``prometheus/v1``, one file per service): ``sli.events`` with ``error_query`` /
  ``total_query`` over the same selectors (the latency SLI as ``_count - _bucket{le="2"}`` over
  ``_count``), alert ``SLOBurnRate`` with ``severity: page|ticket``, the same runbook and team.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REQUESTS = "http_requests_total"
HISTOGRAM = "http_request_duration_seconds"
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
LATENCY_THRESHOLD = 2.0
BAD_MATCHER = 'code=~"5.."'
RUNBOOK = "https://runbooks.platform.internal/slo"
TEAM = "platform"
MIN_EVENTS = 100
SLO_KINDS = ("availability", "latency", "error-rate")
OBJECTIVES = {"availability": 99.5, "latency": 95.0, "error-rate": 99.9}
SLOTH_ALERT = "SLOBurnRate"


@dataclass(frozen=True)
class SynthService:
    index: int
    slos: tuple[str, ...]  # a prefix of SLO_KINDS

    @property
    def name(self) -> str:
        return f"svc-{self.index:05d}"

    @property
    def job(self) -> str:
        return self.name

    @property
    def namespace(self) -> str:
        return f"ns-{self.index % 20:02d}"

    @property
    def owner(self) -> str:
        return f"team-{self.index % 7}"


def services(n_slos: int) -> list[SynthService]:
    """ceil(n / 3) services holding exactly ``n_slos`` SLOs."""
    if n_slos < 1:
        raise ValueError("n_slos must be positive")
    out = []
    for i in range(math.ceil(n_slos / 3)):
        left = n_slos - 3 * i
        out.append(SynthService(i + 1, SLO_KINDS[: min(3, left)]))
    return out


def _fmt(value: float) -> str:
    return f"{value:g}"


# ---------------------------------------------------------------------------------------------
# Our catalogue


def _our_indicator(kind: str) -> dict[str, object]:
    if kind == "availability":
        return {"kind": "availability", "total": REQUESTS, "bad": f"{REQUESTS}{{{BAD_MATCHER}}}"}
    if kind == "latency":
        return {"kind": "latency", "histogram": HISTOGRAM, "threshold": LATENCY_THRESHOLD}
    return {"kind": "ratio", "total": REQUESTS, "bad": f"{REQUESTS}{{{BAD_MATCHER}}}"}


DESCRIPTIONS = {
    "availability": "The service answers without server errors.",
    "latency": "95% of requests are served in under 2 seconds.",
    "error-rate": "Fewer than 0.1% of requests fail.",
}


def catalogue(n_slos: int) -> dict[str, object]:
    """The catalogue (as data) in our format."""
    return {
        "defaults": {
            "alerting": {
                "runbook_url": RUNBOOK,
                "labels": {"team": TEAM},
                "min_events": MIN_EVENTS,
            }
        },
        "services": [
            {
                "name": svc.name,
                "namespace": svc.namespace,
                "owner": svc.owner,
                "selector": f'job="{svc.job}"',
                "histograms": [{"name": HISTOGRAM, "buckets": list(BUCKETS)}],
                "slos": [
                    {
                        "name": kind,
                        "description": DESCRIPTIONS[kind],
                        "objective": OBJECTIVES[kind],
                        "window": "30d",
                        "indicator": _our_indicator(kind),
                    }
                    for kind in svc.slos
                ],
            }
            for svc in services(n_slos)
        ],
    }


def write_catalogue(n_slos: int, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(catalogue(n_slos), sort_keys=False, width=120))
    return path


# ---------------------------------------------------------------------------------------------
# Sloth prometheus/v1 specs


def sloth_queries(svc: SynthService, kind: str) -> tuple[str, str]:
    """(error_query, total_query) for Sloth, with its ``{{.window}}`` placeholder."""
    job = f'job="{svc.job}"'
    w = "[{{.window}}]"
    if kind == "latency":
        count = f"{HISTOGRAM}_count{{{job}}}"
        good = f'{HISTOGRAM}_bucket{{{job},le="{_fmt(LATENCY_THRESHOLD)}"}}'
        total = f"sum(rate({count}{w}))"
        return f"{total} - sum(rate({good}{w}))", total
    bad = f"sum(rate({REQUESTS}{{{BAD_MATCHER},{job}}}{w}))"
    return bad, f"sum(rate({REQUESTS}{{{job}}}{w}))"


def sloth_spec(svc: SynthService) -> dict[str, object]:
    slos = []
    for kind in svc.slos:
        error_query, total_query = sloth_queries(svc, kind)
        slos.append(
            {
                "name": kind,
                "objective": OBJECTIVES[kind],
                "description": DESCRIPTIONS[kind],
                "sli": {"events": {"error_query": error_query, "total_query": total_query}},
                "alerting": {
                    "name": SLOTH_ALERT,
                    "labels": {"team": TEAM},
                    "annotations": {"runbook_url": RUNBOOK},
                    "page_alert": {"labels": {"severity": "page"}},
                    "ticket_alert": {"labels": {"severity": "ticket"}},
                },
            }
        )
    return {"version": "prometheus/v1", "service": svc.name, "slos": slos}


def write_sloth_specs(n_slos: int, directory: Path) -> Path:
    """One ``prometheus/v1`` file per service under ``directory`` (Sloth's ``-i DIR`` input)."""
    directory.mkdir(parents=True, exist_ok=True)
    for svc in services(n_slos):
        text = yaml.safe_dump(sloth_spec(svc), sort_keys=False, width=1000)
        (directory / f"{svc.name}.yml").write_text(text)
    return directory


def write_both(n_slos: int, root: Path) -> tuple[Path, Path]:
    """(our catalogue file, Sloth spec directory) for ``n_slos`` SLOs under ``root``."""
    return (
        write_catalogue(n_slos, root / "catalogue.yaml"),
        write_sloth_specs(n_slos, root / "sloth-specs"),
    )


# ---------------------------------------------------------------------------------------------
# Counting generated rules


def iter_rules(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """Every rule of every group in Prometheus rule files (and PrometheusRule bodies)."""
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            body = doc.get("spec", doc)
            for group in body.get("groups") or []:
                yield from group.get("rules") or []


def count_rules(paths: list[Path]) -> dict[str, int]:
    """{'record': n, 'alert': n, 'groups': n} over rule files."""
    counts = {"record": 0, "alert": 0, "groups": 0}
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                counts["groups"] += len(doc.get("spec", doc).get("groups") or [])
    for rule in iter_rules(paths):
        counts["record" if "record" in rule else "alert"] += 1
    return counts


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="write a synthetic catalogue + Sloth specs")
    parser.add_argument("n", type=int, help="number of SLOs")
    parser.add_argument("out", type=Path, help="output directory")
    args = parser.parse_args()
    ours, sloth = write_both(args.n, args.out)
    print(f"{ours}\n{sloth}")
