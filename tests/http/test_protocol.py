"""The HTTP protocol `dev` and `serve` run: uvicorn's httptools one, handing bodies on uncopied."""

from __future__ import annotations

import hashlib
import inspect
import os
import socket
import textwrap
import threading

import httpx
import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.http import protocol
from tests.helpers import free_port, wait_until

# What BodyProtocol.on_body re-states of uvicorn's: when uvicorn changes it, look again.
UVICORN_ON_BODY = """
def on_body(self, body: bytes) -> None:
    if (self.parser.should_upgrade() and self._should_upgrade()) or self.cycle.response_complete:
        return
    self.cycle.body += body
    if len(self.cycle.body) > HIGH_WATER_LIMIT:
        self.flow.pause_reading()
    self.cycle.message_event.set()
"""


def test_uvicorn_still_collects_bodies_the_way_the_override_assumes():
    source = textwrap.dedent(inspect.getsource(HttpToolsProtocol.on_body))
    assert source.strip() == UVICORN_ON_BODY.strip()


async def _echo_digest(scope, receive, send):
    """An app that answers the SHA-256 and size of each request's body, and how it came."""
    if scope["type"] != "http":
        return
    digest, size, pieces = hashlib.sha256(), 0, 0
    more = True
    while more:
        message = await receive()
        assert type(message["body"]) is bytes  # the ASGI spec: bytes, never a bytearray
        digest.update(message["body"])
        size += len(message["body"])
        pieces += 1
        more = message.get("more_body", False)
    body = f"{digest.hexdigest()} {size}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server():
    port = free_port()
    config = uvicorn.Config(
        _echo_digest, host="127.0.0.1", port=port, log_level="warning", http=protocol.HTTP
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    wait_until(lambda: running.started, timeout=10)
    yield f"http://127.0.0.1:{port}", port
    running.should_exit = True
    thread.join(timeout=10)


def _expect(data: bytes) -> str:
    return f"{hashlib.sha256(data).hexdigest()} {len(data)}"


@pytest.mark.parametrize("size", [0, 1, 65_536, 65_537, 5 * 1024 * 1024 + 3])
def test_bodies_of_every_size_arrive_whole(server, size):
    url, _ = server
    data = os.urandom(size)
    assert httpx.post(url, content=data, timeout=30).text == _expect(data)


def test_a_chunked_body_and_a_trickled_one_arrive_whole(server):
    url, port = server
    parts = [os.urandom(n) for n in (10, 70_000, 3, 200_000)]
    assert httpx.post(url, content=iter(parts), timeout=30).text == _expect(b"".join(parts))

    data = os.urandom(300_000)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        conn.sendall(head)
        for start in range(0, len(data), 7_000):  # many small writes: pieces pile up
            conn.sendall(data[start : start + 7_000])
        answer = b""
        while not answer.endswith(b"\r\n0\r\n\r\n"):  # the chunked answer's end
            chunk = conn.recv(65536)
            assert chunk, answer
            answer += chunk
    assert _expect(data).encode() in answer


def test_pipelined_requests_keep_their_own_bodies(server):
    _, port = server
    first, second = os.urandom(90_000), os.urandom(40_000)
    requests = b"".join(
        f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        for body in (first, second)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(requests)
        answer = b""
        while _expect(second).encode() not in answer:
            chunk = conn.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.index(_expect(first).encode()) < answer.index(_expect(second).encode())
