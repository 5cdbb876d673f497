"""A loopback webhook receiver: what the Argo Rollouts controller's notification engine sends.

The e2e stack subscribes every service to one webhook notifier whose URL is this receiver
(``Pulumi.e2e.yaml``, the URL set by the suite) and whose header carries a token from
``slo-canary:notificationSecrets``, so a notification that arrives also proves the Secret.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from tools.loopback import LoopbackServer, Reply, Request

TOKEN_HEADER = "X-Slo-Canary-Token"


@dataclass(frozen=True)
class Notification:
    at: float
    token: str
    body: dict[str, Any]

    @property
    def event(self) -> str:
        return str(self.body.get("event", ""))

    @property
    def key(self) -> str:
        """The state the message reports: a duplicate delivery carries the same key."""
        return str(self.body.get("key", ""))

    @property
    def rollout(self) -> str:
        return str(self.body.get("rollout", ""))

    @property
    def text(self) -> str:
        return str(self.body.get("text", ""))

    def slos(self) -> dict[str, dict[str, Any]]:
        """Per SLO, the message's last entry for it."""
        return {str(s.get("slo")): s for s in self.entries()}

    def entries(self) -> list[dict[str, Any]]:
        """Every (SLO, run) entry of the message, in its order."""
        return list(self.body.get("slos") or [])


class Inbox:
    def __init__(self) -> None:
        self.received: list[Notification] = []
        self.refused: list[str] = []  # bodies that were not JSON
        self.lock = threading.Lock()
        self.server = LoopbackServer(self._answer)
        self.url = f"{self.server.url}/notifications"

    def _answer(self, request: Request) -> Reply:
        try:
            body = request.json()
        except ValueError:
            with self.lock:
                self.refused.append(request.body.decode(errors="replace"))
            return Reply.error(400, "not JSON")
        with self.lock:
            self.received.append(
                Notification(time.time(), request.headers.get(TOKEN_HEADER, ""), body))
        return Reply()

    def mark(self) -> int:
        """A position to read from later (:meth:`since`)."""
        with self.lock:
            return len(self.received)

    def since(self, mark: int, rollout: str | None = None) -> list[Notification]:
        with self.lock:
            got = self.received[mark:]
        return [n for n in got if rollout is None or n.rollout == rollout]

    def wait(self, mark: int, rollout: str, event: str, timeout: float = 30
             ) -> Notification | None:
        """The first ``event`` notification of ``rollout`` after ``mark``, waiting for it."""
        deadline = time.time() + timeout
        while True:
            found = [n for n in self.since(mark, rollout) if n.event == event]
            if found or time.time() > deadline:
                return found[0] if found else None
            time.sleep(0.2)

    def close(self) -> None:
        self.server.close()
