"""The operating characteristic of a service's gates, drawn for docs/ (``make docs``).

One picture per service of a stack that states the service's ``expectedRequestsPerMinute``:
per gated SLO, the probability that the first gate aborts (solid) and that it passes (dashed) a
canary burning the budget at 0.5x to 20x, at the canary's share of that traffic at the first
weight (``delivery/oc.py``: independent requests; the benchmark measures the rest).
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from delivery import judge, oc
from delivery.routers import ROUTERS
from delivery.stack import StackConfig
from slo.model import ResolvedSlo

BURNS = tuple(float(b) for b in np.round(np.geomspace(0.5, 20, 33), 3))


def canary_rate(stack: StackConfig, service: str) -> float | None:
    deployment = stack.services[service]
    rate = deployment.expected_requests_per_minute
    if rate is None:
        return None
    router = ROUTERS[stack.delivery.traffic_routing]
    return rate * router.share(deployment.replicas, stack.delivery.weights[0])


def operating_characteristic(service: str, slos: list[ResolvedSlo], stack: StackConfig,
                             stack_name: str) -> str:
    """The picture as SVG text (byte-for-byte the same for the same inputs)."""
    rate = canary_rate(stack, service)
    if rate is None:
        raise ValueError(f"{service} states no expectedRequestsPerMinute on {stack_name}")
    with matplotlib.rc_context({"svg.hashsalt": "slo-canary", "svg.fonttype": "path"}):
        return _draw(service, slos, stack, stack_name, rate)


def _draw(service: str, slos: list[ResolvedSlo], stack: StackConfig, stack_name: str,
          rate: float) -> str:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for k, gate in enumerate(judge.stack_gates(slos, stack, service)):
        curve = oc.curve(gate, stack, rate, BURNS)
        color = f"C{k}"
        ax.plot(BURNS, [o.abort for o in curve.values()], color=color,
                label=f"{gate.name}: aborted")
        ax.plot(BURNS, [o.passed for o in curve.values()], color=color, linestyle="--",
                label=f"{gate.name}: passed")
    ax.set_xscale("log")
    ax.set_xticks([0.5, 1, 2, 3, 5, 10, 20], ["0.5x", "1x", "2x", "3x", "5x", "10x", "20x"])
    ax.set_xlabel("the canary burns the error budget at")
    ax.set_ylabel("probability by the end of the first gate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{service} on {stack_name}: first gate at {rate:.0f} canary requests/min",
                 fontsize=10)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()
