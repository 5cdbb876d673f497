"""A Prometheus server on 127.0.0.1 for tests, benchmarks and the end-to-end suite.

    with LocalPrometheus(config, workdir) as prom:      # waits for /-/ready
        urllib.request.urlopen(f"{prom.url}/api/v1/query?query=up")

    with backfilled(openmetrics_text, workdir) as prom:  # serves that history, 30 days kept
        ...

The binary is ``$SLO_CANARY_PROMETHEUS`` when set, else ``prometheus`` on PATH. It listens on
loopback only and is stopped (SIGTERM, then SIGKILL) when the block ends, however it ends.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binary() -> str:
    found = os.environ.get("SLO_CANARY_PROMETHEUS") or shutil.which("prometheus")
    if not found:
        raise RuntimeError("no Prometheus: set SLO_CANARY_PROMETHEUS or put prometheus on PATH")
    return found


def major_version(tool: str) -> int:
    """The major version of a ``prometheus`` or ``promtool`` binary (``--version``)."""
    ran = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"version (\d+)\.", ran.stdout + ran.stderr)
    if not found:
        raise RuntimeError(f"{tool} --version does not say its version")
    return int(found.group(1))


class LocalPrometheus:
    def __init__(
        self,
        config: dict[str, Any],
        workdir: Path,
        *,
        data_dir: Path | None = None,
        port: int | None = None,
        args: tuple[str, ...] = (),
        name: str = "prometheus",
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / f"{name}.yml"
        self.log_path = workdir / f"{name}.log"
        self.config_path.write_text(yaml.safe_dump(config))
        self.argv = [
            binary(),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={data_dir or workdir / (name + '-data')}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *args,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(
        self,
        timeout: float = 60,
        spawn: Callable[[list[str]], subprocess.Popen[bytes]] | None = None,
    ) -> LocalPrometheus:
        """Start and wait until ready; ``spawn`` lets a caller that supervises its own
        processes (the e2e stack) start the command itself."""
        if spawn is not None:
            self.proc = spawn(self.argv)
        else:
            log = self.log_path.open("ab")
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log)
            log.close()
        self.started = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text()[-2000:] if self.log_path.exists() else ""
                raise RuntimeError(f"Prometheus exited:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Prometheus not ready after {timeout:g}s:\n"
                           f"{self.log_path.read_text()[-2000:]}")

    def stop(self, timeout: float = 120) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def backfilled(openmetrics: str, workdir: Path) -> LocalPrometheus:
    """A Prometheus (not started: use it in ``with``) serving ``openmetrics`` (OpenMetrics text
    with timestamps, ``# EOF`` last), backfilled into a fresh TSDB by ``promtool tsdb
    create-blocks-from openmetrics`` and kept 30 days, so that history up to then is queryable."""
    source, data = workdir / "history.om", workdir / "data"
    source.write_text(openmetrics)
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source),
                    str(data)], check=True, capture_output=True)
    return LocalPrometheus({"global": {"scrape_interval": "1m"}}, workdir, data_dir=data,
                           args=("--storage.tsdb.retention.time=30d",))
