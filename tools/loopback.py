"""One loopback HTTP server for the tests, the benchmarks and the end-to-end suite: the metric
exporters Prometheus scrapes, the fake Alertmanager, the notification inbox, the traffic
simulator's control API, the Services behind the Traefik data plane. A function answers each
request; the server listens on a loopback address only (127.0.0.1 unless told another in
127.0.0.0/8) and serves from a daemon thread until :meth:`LoopbackServer.close`.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EXPOSITION = "text/plain; version=0.0.4"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Message[str, str]  # what the client sent, read in any case
    body: bytes

    def json(self) -> Any:
        """The body as JSON (ValueError when it is not); an empty body is ``None``."""
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"

    @classmethod
    def text(cls, text: str, content_type: str = EXPOSITION) -> Reply:
        return cls(200, text.encode(), content_type)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Reply:
        return cls(status, json.dumps(value).encode(), "application/json")

    @classmethod
    def error(cls, status: int, message: str = "") -> Reply:
        return cls(status, message.encode())


class LoopbackServer:
    """``answer`` serves every request on ``address``:``port`` (0: any free port).

    ``keep_alive`` speaks HTTP/1.1 with persistent connections, as a service behind a proxy
    does; the default closes each connection after its reply (HTTP/1.0)."""

    def __init__(self, answer: Callable[[Request], Reply], port: int = 0,
                 address: str = "127.0.0.1", keep_alive: bool = False):
        if not ipaddress.ip_address(address).is_loopback:
            raise ValueError(f"{address} is not a loopback address: not serving on it")

        class Handler(BaseHTTPRequestHandler):
            if keep_alive:
                protocol_version = "HTTP/1.1"
                # headers and body are two writes: without TCP_NODELAY the second waits for the
                # peer's delayed ACK (40 ms), capping a connection at ~25 requests a second
                disable_nagle_algorithm = True

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self.command, self.path, self.headers,
                                  self.rfile.read(length) if length else b"")
                try:
                    reply = answer(request)
                except Exception as err:  # the answer's bug: say it, keep serving
                    reply = Reply.error(500, f"{type(err).__name__}: {err}")
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://{address}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
