"""The canary scenarios' fixtures: one cluster for the whole package (started at its first
scenario, stopped after its last, before any other e2e file starts a cluster of its own), the
first `pulumi up`, and the baseline every scenario starts from and leaves behind."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.canary.kit import (
    RPS,
    SERVICES,
    Installed,
    Timeline,
    phase,
    recover,
    report,
    rollout,
    summary,
)
from e2e.harness import (
    ROOT,
    Observation,
    Pulumi,
    Stack,
    new_stack,
    start_cluster,
    start_controller,
    start_prometheus,
    start_simulator,
    wait_for,
)
from e2e.inbox import Inbox


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = new_stack(tmp_path_factory.mktemp("e2e"))
    try:
        start_cluster(s)
        start_controller(s)
        start_simulator(s, SERVICES, RPS)
        rules = s.work / "rules"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "slo",
                "rules",
                "e2e/catalogue.yaml",
                "-o",
                str(rules),
                "--format",
                "rules",
                "--no-tests",
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        # the canary judge's evidence rules join the SLO rules there at every `pulumi up`
        start_prometheus(s, list(SERVICES), rules / "rules")
        yield s
    finally:
        s.close()
        report()


@pytest.fixture(scope="package")
def inbox() -> Iterator[Inbox]:
    """The webhook receiver every service's notifications go to (Pulumi.e2e.yaml)."""
    box = Inbox()
    try:
        yield box
    finally:
        box.close()


@pytest.fixture(scope="package")
def pulumi(stack: Stack, inbox: Inbox) -> Pulumi:
    return Pulumi(stack, stack.prometheus_url, notifications=inbox.url)


@pytest.fixture(scope="package")
def shipped(pulumi: Pulumi) -> dict[str, Any]:
    """The e2e stack file's settings, as the suite applies them (its Prometheus and inbox)."""
    return copy.deepcopy(pulumi.config)


@pytest.fixture(scope="package")
def installed(stack: Stack, pulumi: Pulumi, inbox: Inbox, shipped: dict[str, Any]) -> Installed:
    """The stack deployed by its first `pulumi up`, whichever scenario comes first;
    test_install.py asserts on what it did."""
    timeline = Timeline("first pulumi up")
    mark = inbox.mark()
    result = pulumi.up()
    timeline.mark("pulumi up done")
    for service in SERVICES:
        wait_for(
            f"{service} Healthy",
            lambda s=service: Observation(  # type: ignore[misc]
                phase(rollout(stack, s)) == "Healthy", summary(rollout(stack, s))
            ),
            120,
        )
    timeline.mark("all Healthy")
    time.sleep(2)  # a notification the controller would send arrives within this
    return Installed(result, dict(timeline.marks), inbox.since(mark))


@pytest.fixture(autouse=True)
def baseline(
    stack: Stack, pulumi: Pulumi, installed: Installed, shipped: dict[str, Any]
) -> Iterator[None]:
    """Every scenario starts from the baseline and leaves it behind, pass or fail
    (``kit.recover``): the shipped settings, every service Healthy on its stable release, the
    simulator's controls at their start, Prometheus running."""
    recover(stack, pulumi, shipped)
    yield
    recover(stack, pulumi, shipped)
