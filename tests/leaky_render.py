"""tools/render.py with a deliberately broken component that copies the Grafana token into a
ConfigMap: the secret check in tests/test_program.py must find it."""

import runpy
import sys
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import components.slo_dashboard as dashboards  # noqa: E402

Real = dashboards.SloDashboard


class LeakyDashboard(Real):  # type: ignore[misc, valid-type]
    def __init__(self, name, args, opts=None):  # type: ignore[no-untyped-def]
        super().__init__(name, args, opts)
        token = pulumi.Output.unsecret(pulumi.Output.from_input(args.token))
        k8s.core.v1.ConfigMap(
            "leaked-token", metadata={"name": "leaked-token", "namespace": "monitoring"},
            data={"token": token},
        )


dashboards.SloDashboard = LeakyDashboard  # type: ignore[misc]
runpy.run_path(str(ROOT / "tools" / "render.py"), run_name="__main__")
