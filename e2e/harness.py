"""The local end-to-end stack: a KWOK cluster, the Argo Rollouts controller, Prometheus, the
traffic simulator, and `pulumi up` through the Automation API with a local file backend.

Every wait polls an observed condition against a deadline and, when the deadline passes, says
what it saw last. Every process started here is stopped by :meth:`Stack.close`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import runpy
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from delivery.routers import ROUTERS, TRAEFIK_CRDS, TRAEFIK_MODULE  # noqa: E402
from delivery.stack import project_values  # noqa: E402
from tools.local_prometheus import LocalPrometheus, free_port  # noqa: E402

T = TypeVar("T")
# the key of slo-canary:notificationSecrets that Pulumi.e2e.yaml's notifier header reads
NOTIFICATION_TOKEN_KEY = "e2e-token"


def wait_for(what: str, probe: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    """Poll ``probe`` until it returns something truthy (not a string) or an ``Observation``
    that is ok; return that, or the Observation's ``value``. Fail with the last observation."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except Exception as err:
            last = f"{type(err).__name__}: {err}"
        if last and not isinstance(last, str | Observation):
            return last
        if isinstance(last, Observation) and last.ok:
            return last.value
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}; last saw: {last}"
            )
        time.sleep(every)


@dataclass
class Observation:
    """What a probe saw: ``ok`` ends the wait, ``seen`` is printed when it times out."""

    ok: bool
    seen: Any
    value: Any = None

    def __str__(self) -> str:
        return str(self.seen)


@dataclass
class Stack:
    work: Path
    bin: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    cluster: str = ""
    env: dict[str, str] = field(default_factory=dict)
    prometheus_url: str = ""
    simulator_url: str = ""
    controller_metrics: str = ""  # host:port of the rollouts controller's metrics
    prometheus: LocalPrometheus | None = None
    rules_dir: Path | None = None  # the directory Prometheus reads rule files (*.yml) from

    # ------------------------------------------------------------------ processes

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        self.processes.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def close(self) -> None:
        for proc in reversed(self.processes):
            self.stop(proc)
        if self.cluster:
            subprocess.run(
                [str(self.bin / "kwokctl"), "delete", "cluster", "--name", self.cluster],
                env=self.env,
                capture_output=True,
                check=False,
                timeout=120,
            )

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.work / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    # ------------------------------------------------------------------ kubernetes

    def kubectl(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            [str(self.bin / "kubectl"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", kind, name, "-n", namespace, "-o", "json")))

    def rollouts_cli(self, *args: str) -> str:
        return self.kubectl_plugin("argo", "rollouts", *args)

    def kubectl_plugin(self, *args: str) -> str:
        result = subprocess.run(
            [str(self.bin / "kubectl-argo-rollouts"), *args[2:]],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl argo rollouts {' '.join(args[2:])}: {result.stderr}")
        return result.stdout

    # ------------------------------------------------------------------ prometheus & traffic

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return list(json.load(response)["data"]["result"])

    def query_range(self, expr: str, start: float, end: float, step: float = 1
                    ) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode(
            {"query": expr, "start": start, "end": end, "step": step})
        with urllib.request.urlopen(
            f"{self.prometheus_url}/api/v1/query_range?{query}", timeout=10
        ) as response:
            return list(json.load(response)["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.prometheus_url}/api/v1/alerts", timeout=10) as resp:
            return list(json.load(resp)["data"]["alerts"])

    def stop_prometheus(self) -> None:
        """Stop the real Prometheus process (SIGTERM, as a restart or an upgrade of the
        monitoring stack does); its TSDB directory stays."""
        assert self.prometheus is not None and self.prometheus.proc is not None
        self.stop(self.prometheus.proc)
        self.prometheus.proc = None

    def start_prometheus_again(self) -> None:
        """Start Prometheus again with the same command: same port, config and TSDB."""
        assert self.prometheus is not None and self.prometheus.proc is None
        self.prometheus.start(timeout=120, spawn=lambda argv: self.start("prometheus", argv))

    def reload_prometheus(self, timeout: float = 30) -> None:
        """Have Prometheus read its configuration and rule files again (SIGHUP) and wait until
        it says it did, successfully."""
        assert self.prometheus is not None and self.prometheus.proc is not None
        before = time.time()
        self.prometheus.proc.send_signal(signal.SIGHUP)

        def reloaded() -> Observation:
            with urllib.request.urlopen(f"{self.prometheus_url}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            values = {
                name: float(value)
                for name, value in (
                    line.split(" ", 1) for line in text.splitlines()
                    if line.startswith("prometheus_config_last_reload_success")
                )
            }
            ok = values.get("prometheus_config_last_reload_successful") == 1 and values.get(
                "prometheus_config_last_reload_success_timestamp_seconds", 0
            ) >= int(before)
            return Observation(ok, values)

        wait_for("Prometheus to reload its rules", reloaded, timeout)

    def set_rate(self, service: str, rps: float) -> None:
        self._simulator("rate", service, rps)

    def set_incident(self, service: str, error_share: float) -> None:
        self._simulator("errors", service, error_share)

    def _simulator(self, what: str, service: str, value: float) -> None:
        request = urllib.request.Request(
            f"{self.simulator_url}/{what}/{service}/{value}", method="POST"
        )
        urllib.request.urlopen(request, timeout=10).close()

    def simulator(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST ``body`` (JSON) to the simulator's ``/path``; its JSON answer, if any."""
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(
            f"{self.simulator_url}/{path.strip('/')}",
            data=data,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def simulated(self, service: str) -> dict[str, Any]:
        """What the simulator served, per pod: its lifetime totals across restarts."""
        with urllib.request.urlopen(f"{self.simulator_url}/served/{service}", timeout=10) as r:
            return dict(json.load(r))


def tools_bin() -> Path:
    """Build (or find cached) the e2e tools; returns their bin directory."""
    out = subprocess.run(
        ["bash", str(ROOT / "e2e" / "tools" / "build.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def start_cluster(stack: Stack, name: str = "") -> None:
    """A KWOK cluster named ``slo-e2e-<pid>[-<name>]`` (two may run at once), a fake node, the
    Argo Rollouts CRDs and the two Prometheus Operator CRDs the program creates objects of."""
    _kwok_cluster(stack, name)
    _fake_node(stack)
    _crds(stack)


def _kwok_cluster(stack: Stack, name: str) -> None:
    """The cluster's processes (kwokctl's binary runtime, on 127.0.0.1) and its kubeconfig."""
    kwok = stack.work / "kwok"
    stack.env.update(
        KWOK_WORKDIR=str(kwok),
        KUBECONFIG=str(stack.work / "kubeconfig"),
        KUBECACHEDIR=str(stack.work / "kube-cache"),
    )
    config = stack.work / "kwokctl.yaml"
    config.write_text(yaml.safe_dump({
        "kind": "KwokctlConfiguration",
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "options": {"bindAddress": "127.0.0.1"},
    }))
    stack.cluster = f"slo-e2e-{os.getpid()}" + (f"-{name}" if name else "")
    binaries = {  # --<component>-binary: the cluster's processes, each of the pinned build
        "kube-apiserver": "kube-apiserver", "kube-controller-manager": "kube-controller-manager",
        "kube-scheduler": "kube-scheduler", "kwok-controller": "kwok", "etcd": "etcd",
    }
    subprocess.run(
        [str(stack.bin / "kwokctl"), "create", "cluster", "--name", stack.cluster,
         "--config", str(config), "--runtime", "binary",
         *(arg for component, binary in binaries.items()
           for arg in (f"--{component}-binary", str(stack.bin / binary))),
         "--kubeconfig", stack.env["KUBECONFIG"], "--wait", "120s", "--timeout", "180s"],
        env=stack.env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    stack.kubectl("config", "use-context", f"kwok-{stack.cluster}")
    wait_for(
        "the default service account",
        lambda: Observation(
            bool(stack.kubectl("get", "serviceaccount", "default", "-n", "default", check=False)),
            "none yet",
        ),
        60,
    )


def _fake_node(stack: Stack) -> None:
    """The node KWOK runs every pod on, Ready."""
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "kwok-node-0",
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": "kwok-node-0",
                "kubernetes.io/os": "linux",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "200"},
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "200"},
        },
    }
    path = stack.work / "node.yaml"
    path.write_text(yaml.safe_dump(node))
    stack.kubectl("apply", "-f", str(path))
    wait_for(
        "the fake node to be Ready",
        lambda: Observation(
            "True"
            in stack.kubectl(
                "get",
                "node",
                "kwok-node-0",
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                check=False,
            ),
            "not Ready",
        ),
        60,
    )


def _crds(stack: Stack) -> None:
    """The CRDs the program and the routers create objects of, established; the controller's
    namespace."""
    crds = (stack.bin.parent / "argo-rollouts-crds").resolve()
    stack.kubectl("apply", "--server-side", "-f", str(crds))
    # Traefik v3's CRDs: the traefik router's TraefikService and IngressRoute
    stack.kubectl("apply", "--server-side", "-f", str(module_dir(TRAEFIK_MODULE) / TRAEFIK_CRDS))
    operator = module_dir("github.com/prometheus-operator/prometheus-operator@v0.85.0")
    for name in ("prometheusrules", "podmonitors"):
        stack.kubectl(
            "apply",
            "--server-side",
            "-f",
            str(
                operator
                / "example"
                / "prometheus-operator-crd"
                / f"monitoring.coreos.com_{name}.yaml"
            ),
        )
    stack.kubectl("create", "namespace", "monitoring")
    # the controller's namespace (install: none: Argo Rollouts is already there); the stack puts
    # the notification engine's ConfigMap and Secret in it
    stack.kubectl("create", "namespace", "argo-rollouts")
    wait_for(
        "the CRDs to be established",
        lambda: Observation(
            bool(
                stack.kubectl(
                    "wait",
                    "--for=condition=Established",
                    "--timeout=2s",
                    "crd/rollouts.argoproj.io",
                    "crd/analysistemplates.argoproj.io",
                    "crd/prometheusrules.monitoring.coreos.com",
                    check=False,
                )
            ),
            "not established",
        ),
        60,
    )


def module_dir(module: str) -> Path:
    out = subprocess.run(
        ["go", "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return Path(json.loads(out.stdout)["Dir"])


def start_controller(stack: Stack) -> None:
    port, health = free_port(), free_port()
    stack.controller_metrics = f"127.0.0.1:{port}"
    stack.start(
        "controller",
        [
            str(stack.bin / "rollouts-controller"),
            "--kubeconfig",
            stack.env["KUBECONFIG"],
            "--leader-elect=false",
            "--metricsPort",
            str(port),
            "--healthzPort",
            str(health),
            # as an operator runs it for the traefik router (Traefik v3's API group)
            *ROUTERS["traefik"].controller_args,
        ],
    )
    wait_for(
        "the rollouts controller's health endpoint",
        lambda: (
            urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=2).status == 200
        ),
        60,
    )


def start_simulator(stack: Stack, services: dict[str, str], rps: float) -> None:
    port = free_port()
    args = [
        sys.executable,
        str(ROOT / "e2e" / "simulator.py"),
        "--port",
        str(port),
        "--kubeconfig",
        stack.env["KUBECONFIG"],
        "--rps",
        str(rps),
    ]
    for name, namespace in services.items():
        args += ["--service", f"{name}={namespace}"]
    stack.start("simulator", args)
    stack.simulator_url = f"http://127.0.0.1:{port}"
    wait_for(
        "the simulator",
        lambda: (
            urllib.request.urlopen(
                f"{stack.simulator_url}/metrics/{next(iter(services))}", timeout=2
            ).status
            == 200
        ),
        30,
    )


def start_prometheus(stack: Stack, services: list[str], rules_dir: Path) -> subprocess.Popen[bytes]:
    """Prometheus scraping the simulator every second, with the rule files ``rules_dir/*.yml``
    (the SLO rules, and the canary judge's evidence rules that :class:`Pulumi` keeps there)."""
    sim = stack.simulator_url.removeprefix("http://")
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_dir / "*.yml")],
        "scrape_configs": [
            {
                "job_name": name,
                "metrics_path": f"/metrics/{name}",
                "honor_labels": True,
                "static_configs": [{"targets": [sim]}],
            }
            for name in services
        ],
    }
    if stack.controller_metrics:  # rollout_info, rollout_events_total, ... for the dashboards
        config["scrape_configs"].append({
            "job_name": "argo-rollouts",
            "honor_labels": True,  # the Rollout's namespace and name, as the dashboards read them
            "static_configs": [{"targets": [stack.controller_metrics]}],
        })
    prometheus = LocalPrometheus(config, stack.work, data_dir=stack.work / "tsdb")
    prometheus.start(spawn=lambda argv: stack.start("prometheus", argv))
    stack.prometheus_url = prometheus.url
    stack.prometheus = prometheus
    stack.rules_dir = rules_dir
    assert prometheus.proc is not None
    return prometheus.proc


# ---------------------------------------------------------------------- evidence rules

EVIDENCE_SUFFIX = "-canary-evidence.yml"


def write_evidence_rules(
    config: dict[str, Any], others: dict[str, str], out: Path, work: Path
) -> bool:
    """The canary judge's evidence rules for ``config`` (the ``slo-canary:`` settings), written
    by the operator's command, ``python -m delivery rules --stack FILE -o DIR``, from a stack file
    holding these settings, into ``out`` (where Prometheus reads ``*.yml``). On a cluster with
    the Prometheus operator they are the ``<service>-canary-evidence`` PrometheusRules; this
    Prometheus reads files. Returns whether any file changed."""
    stack_file = work / "evidence-stack" / "Pulumi.e2e.yaml"
    stack_file.parent.mkdir(parents=True, exist_ok=True)
    raw = {f"slo-canary:{key}": value for key, value in config.items()}
    raw.update({k: v for k, v in others.items()})
    stack_file.write_text(yaml.safe_dump({"config": raw}, sort_keys=True))
    fresh = work / "evidence-rules"
    shutil.rmtree(fresh, ignore_errors=True)
    ran = subprocess.run(
        [sys.executable, "-m", "delivery", "rules", "--stack", str(stack_file), "-o", str(fresh)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if ran.returncode != 0:
        raise RuntimeError(f"python -m delivery rules failed:\n{ran.stdout}{ran.stderr}")
    written = {p.name: p.read_text() for p in fresh.glob("*.yml")}
    if not written:
        raise RuntimeError(f"python -m delivery rules wrote no rule file into {fresh}")
    before = {p.name: p.read_text() for p in out.glob(f"*{EVIDENCE_SUFFIX}")}
    if before == written:
        return False
    for name in set(before) - set(written):
        (out / name).unlink()
    for name, text in written.items():
        (out / name).write_text(text)
    return True


# ---------------------------------------------------------------------- pulumi


def pulumi_env(home: Path) -> dict[str, str]:
    """The Pulumi CLI's environment for the e2e stacks: a file backend in ``home/state``, no
    update checks and no plugin downloads (every plugin is a local build)."""
    (home / "state").mkdir(parents=True, exist_ok=True)
    return {
        "PULUMI_BACKEND_URL": f"file://{home / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": "e2e",
        "PULUMI_HOME": str(home),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }


class Pulumi:
    """`pulumi up` of this project's program on the e2e stack, with a local file backend."""

    def __init__(self, stack: Stack, prometheus: str, notifications: str | None = None):
        """``notifications``: the URL of the webhook receiver (e2e/inbox.py) the stack's
        notifier sends to; its header token is a fresh secret of this run."""
        from pulumi import automation as auto

        self.auto = auto
        self.target = stack
        home = stack.work / "pulumi"
        env = {
            **pulumi_env(home),
            "KUBECONFIG": stack.env["KUBECONFIG"],
            "PATH": stack.env["PATH"],
        }
        os.environ.update(env)
        self.config = self._stack_config(prometheus, notifications)
        self.notification_token = secrets.token_urlsafe(24)
        self.others = self._other_config()  # e.g. kubernetes:enableConfigMapMutable, as written
        self.applied: dict[str, Any] | None = None  # the config of the last `pulumi up`
        self.stack = auto.create_or_select_stack(
            stack_name="e2e",
            project_name="slo-canary",
            program=self._program,
            opts=auto.LocalWorkspaceOptions(
                work_dir=str(home),
                env_vars=env,
                project_settings=auto.ProjectSettings(name="slo-canary", runtime="python"),
            ),
        )

    @staticmethod
    def _program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    @staticmethod
    def _stack_config(prometheus: str, notifications: str | None) -> dict[str, Any]:
        """The ``slo-canary:`` settings of Pulumi.e2e.yaml, by key without the namespace."""
        raw = yaml.safe_load((ROOT / "Pulumi.e2e.yaml").read_text())["config"]
        config = project_values(raw)
        config["prometheus"]["address"] = prometheus
        if notifications is None:
            config.pop("notifications", None)
        else:
            for notifier in config["notifications"]["notifiers"].values():
                notifier["options"]["url"] = notifications
        return config

    @staticmethod
    def _other_config() -> dict[str, str]:
        """Pulumi.e2e.yaml's keys of other namespaces (the Kubernetes provider's)."""
        raw = yaml.safe_load((ROOT / "Pulumi.e2e.yaml").read_text())["config"]
        return {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in raw.items()
            if not key.startswith("slo-canary:")
        }

    def up(self, **changes: Any) -> Any:
        """Apply the e2e config with ``changes`` merged in (nested dicts merge)."""
        _merge(self.config, changes)
        values = {
            f"slo-canary:{key}": self.auto.ConfigValue(
                value=value if isinstance(value, str) else json.dumps(value)
            )
            for key, value in self.config.items()
        }
        values.update({k: self.auto.ConfigValue(value=v) for k, v in self.others.items()})
        if "notifications" in self.config:
            values["slo-canary:notificationSecrets"] = self.auto.ConfigValue(
                value=json.dumps({NOTIFICATION_TOKEN_KEY: self.notification_token}), secret=True
            )
        self.evidence_rules()
        self.stack.set_all_config(values)
        self.applied = copy.deepcopy(self.config)
        return self.stack.up(on_output=lambda line: None, color="never")

    def evidence_rules(self) -> None:
        """The evidence rules of the settings about to be applied, loaded into the cluster's
        Prometheus before `pulumi up` (what the Prometheus operator does with the
        ``<service>-canary-evidence`` PrometheusRules). They carry the stack's hypotheses,
        windows and warm-up, so every change of settings changes them."""
        stack = self.target
        if stack.rules_dir is None or stack.prometheus is None:
            return
        if write_evidence_rules(self.config, self.others, stack.rules_dir, stack.work):
            stack.reload_prometheus()

    @contextlib.contextmanager
    def override(self, **changes: Any) -> Iterator[None]:
        """Stack settings for one scenario: merged in now (the next :meth:`up` applies them),
        put back when the block ends, however it ends. Images are not put back: they are what
        the cluster runs, and a scenario that releases one leaves it as the next baseline."""
        saved = copy.deepcopy(self.config)
        _merge(self.config, changes)
        try:
            yield
        finally:
            self.config = with_images(saved, self.config)

    def settings_differ(self, config: dict[str, Any]) -> bool:
        """Whether the last `pulumi up` applied settings (images aside) other than ``config``."""
        return self.applied is not None and without_images(self.applied) != without_images(config)

    def preview_changes(self) -> dict[str, int]:
        result = self.stack.preview(on_output=lambda line: None, color="never")
        return {str(getattr(k, "value", k)): v for k, v in result.change_summary.items()}


def without_images(config: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(config)
    for service in out.get("services", {}).values():
        service.pop("image", None)
    return out


def with_images(config: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the images of ``current``."""
    out = copy.deepcopy(config)
    for name, service in current.get("services", {}).items():
        if "image" in service:
            out["services"].setdefault(name, {})["image"] = service["image"]
    return out


def _merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def new_stack(tmp: Path) -> Stack:
    bin_dir = tools_bin()
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    stack = Stack(work=tmp, bin=bin_dir, env=env)
    os.environ["PATH"] = env["PATH"]
    return stack


__all__ = [
    "Observation", "Pulumi", "Stack", "free_port", "new_stack", "pulumi_env", "shutil", "wait_for",
]
