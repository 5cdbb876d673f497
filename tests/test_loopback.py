"""The one loopback HTTP server (tools/loopback.py) that the exporters, the inbox, the simulator
and the Traefik data plane's Services use."""

from __future__ import annotations

import http.client

import pytest

from tools.loopback import LoopbackServer, Reply, Request


def test_keep_alive_serves_several_requests_on_one_connection_at_another_loopback_address() -> None:
    seen: list[str] = []

    def answer(request: Request) -> Reply:
        seen.append(request.path)
        return Reply.json({"path": request.path}, 200 if request.path == "/a" else 503)

    server = LoopbackServer(answer, address="127.0.0.9", keep_alive=True)
    try:
        assert server.url.startswith("http://127.0.0.9:")
        conn = http.client.HTTPConnection("127.0.0.9", server.port, timeout=5)
        conn.request("GET", "/a")
        first = conn.getresponse()
        assert (first.status, first.read()) == (200, b'{"path": "/a"}')
        sock = conn.sock
        conn.request("GET", "/b")
        second = conn.getresponse()
        assert (second.status, second.read()) == (503, b'{"path": "/b"}')
        assert conn.sock is sock and sock is not None  # the same connection, kept alive
        assert first.version == 11 and seen == ["/a", "/b"]
        conn.close()
    finally:
        server.close()


def test_the_default_closes_each_connection_after_its_reply() -> None:
    server = LoopbackServer(lambda request: Reply.text("ok"))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/")
        reply = conn.getresponse()
        assert reply.read() == b"ok" and reply.version == 10 and reply.will_close
        conn.close()
    finally:
        server.close()


@pytest.mark.parametrize("address", ["10.0.0.1", "0.0.0.0", "192.168.1.1"])
def test_an_address_off_the_loopback_range_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        LoopbackServer(lambda request: Reply.text("ok"), address=address)
