"""Canary scenarios against the real stack: `pulumi up`, the Argo Rollouts controller, Prometheus.

Run with `make e2e` (or ``pytest e2e/canary``, or one family's file). Every scenario runs on
one cluster, started once for the package (``conftest.py``); a family of scenarios is a
``test_<family>.py`` file, and what they share is in ``kit.py``. Each scenario records a
timeline and the verdicts the AnalysisRuns show; the package prints a summary at the end and
keeps it in out/e2e-report.md.

The canary judge (delivery/judge.py) is a sequential test on the canary's cumulative counts,
which Prometheus records every scrape interval (delivery/evidence.py): a verdict needs a number
of requests, and at least 6 scrape intervals with canary traffic. On a cluster with the
Prometheus operator the evidence rules are the ``<service>-canary-evidence`` PrometheusRules;
this Prometheus reads rule files, so every `pulumi up` of the harness first writes them with
``python -m delivery rules`` for the settings it applies and reloads Prometheus. The simulator
sends 1000 requests a second per service (a 10% canary of 4 replicas gets 1 pod in 5, 200 a
second), so that a clean canary passes the error-rate gate (509 requests, 4 intervals) on its
first few measurements.

A scenario declares how its release serves (``release(..., behaviour=Behaviour(errors=...,
slow=...))``, registered with the simulator before `pulumi up`; a release declared with none is
healthy). Scenarios that need another rate, lazily created error series, a pod restart,
injected errors or a cold start ask the simulator over HTTP (e2e/simulator.py); scenarios that
change stack settings do so in ``pulumi.override(...)``.

No scenario depends on another having run, nor on the order they run in: the ``baseline``
fixture puts the stack back, before and after each scenario, to what every scenario starts
from (``kit.recover``): the e2e stack file's settings, every service Healthy on its stable
release with no release in progress or aborted, the simulator's controls at their start,
Prometheus running. A scenario that needs an aborted rollout, an exhausted error budget or an
incident causes it itself. What a scenario cannot take back stays in Prometheus's history (the
budget freeze spends agent-runner's 1h error budget, an incident's page alert takes a while to
clear); no scenario asserts on another's, and the bad-release scenario waits until no page alert
of its service fires before it starts.
"""
