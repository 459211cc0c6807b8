"""The HTTP protocol `dev` and `serve` run: uvicorn's httptools one, with limits on a
request's head, handing bodies on uncopied."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import socket
import textwrap
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.http import protocol
from tests.helpers import Dev, free_port, start_server, wait_until

# What app.overrides.uvicorn's on_body re-states of uvicorn's: when uvicorn changes it, look again.
UVICORN_ON_BODY = """
def on_body(self, body: bytes) -> None:
    if (self.parser.should_upgrade() and self._should_upgrade()) or self.cycle.response_complete:
        return
    self.cycle.body += body
    if len(self.cycle.body) > HIGH_WATER_LIMIT:
        self.flow.pause_reading()
    self.cycle.message_event.set()
"""


# What HTTPProtocol.data_received re-states of uvicorn's, around its head limits.
UVICORN_DATA_RECEIVED = """
def data_received(self, data: bytes) -> None:
    self._unset_keepalive_if_required()

    try:
        self.parser.feed_data(data)
    except httptools.HttpParserError:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)
        return
    except httptools.HttpParserUpgrade:
        if self._should_upgrade():
            self.handle_websocket_upgrade()
        else:
            self._unsupported_upgrade_warning()
"""


@pytest.mark.parametrize(
    ("method", "expected"),
    [("on_body", UVICORN_ON_BODY), ("data_received", UVICORN_DATA_RECEIVED)],
)
def test_uvicorn_still_does_what_the_overrides_restate(method, expected):
    source = textwrap.dedent(inspect.getsource(getattr(HttpToolsProtocol, method)))
    assert source.strip() == expected.strip()


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


# --- head limits, against real `serve` and `dev` processes ---------------------------------


@pytest.fixture(scope="module", params=["serve", "dev"])
def live(request, local_settings, tmp_path_factory) -> Iterator[int]:
    """The port of a real `instashare-server serve` (gunicorn) or `dev` (uvicorn) process."""
    if request.param == "serve":
        server, base = start_server(local_settings)
        try:
            yield int(base.rsplit(":", 1)[1])
        finally:
            server.terminate()
            server.wait(timeout=60)
    else:
        tmp = tmp_path_factory.mktemp("dev")
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
        dev = Dev("--data-dir", str(tmp / "data"), env=env, cwd=tmp)
        try:
            yield dev.port
        finally:
            dev.stop()


def _exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` whole on a new connection and read until the server closes it: the
    status, the headers and the body of its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def _get(target: str = "/api/v1/health", fields: list[bytes] = ()) -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        + b"".join(field + b"\r\n" for field in fields)
        + b"Connection: close\r\n\r\n"
    )


def _refused(answer, status: int, detail: str) -> None:
    code, headers, body = answer
    assert code == status, (code, body[:300])
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["detail"] == detail
    assert problem["type"] == "/problems/" + "-".join(problem["title"].lower().split())


def test_five_thousand_headers_are_refused_with_431(live):
    fields = [b"X-Field-%d: %d" % (n, n) for n in range(5000)]
    _refused(
        _exchange(live, _get(fields=fields)),
        431,
        "A request may carry at most 100 header fields.",
    )


def test_a_one_megabyte_header_is_refused_with_431(live):
    answer = _exchange(live, _get(fields=[b"X-Big: " + b"a" * 1_000_000]))
    _refused(answer, 431, "A request's headers may total at most 32 KiB (32,768 bytes).")


def test_one_header_field_over_8_kib_is_refused_with_431_naming_it_not_its_value(live):
    answer = _exchange(live, _get(fields=[b"Authorization: Bearer " + b"s" * 8200]))
    _refused(
        answer,
        431,
        "A header field may be at most 8 KiB (8,192 bytes); Authorization is longer.",
    )


def test_a_head_at_the_limits_is_answered_and_one_over_32_kib_refused_with_431(live):
    # 100 fields (Host and Connection among them), one of 8 KiB, a target of 8 KiB, and
    # just under 32 KiB in all: answered.
    fields = [b"X-Large: " + b"l" * (8192 - 9)]
    fields += [b"X-Field-%02d: %s" % (n, b"f" * 150) for n in range(97)]
    request = _get("/api/v1/ui/?pad=" + "q" * (8192 - 16), fields)
    assert 31 * 1024 < len(request) <= 32 * 1024
    code, _, body = _exchange(live, request)
    assert code == 200, body[:300]
    # Five fields of 8,000 bytes: each within its limit, 39 KiB together.
    fields = [b"X-Part-%d: %s" % (n, b"p" * 8000) for n in range(5)]
    _refused(
        _exchange(live, _get(fields=fields)),
        431,
        "A request's headers may total at most 32 KiB (32,768 bytes).",
    )


def test_a_target_over_8_kib_is_refused_with_414(live):
    _refused(
        _exchange(live, _get("/api/v1/health?pad=" + "q" * 8200)),
        414,
        "A request's path and query may be at most 8 KiB (8,192 bytes).",
    )


# --- heads that take too long (slowloris) ---------------------------------------------------


def _until_closed(conn: socket.socket) -> bytes:
    answer = b""
    while chunk := conn.recv(65536):
        answer += chunk
    return answer


def test_a_head_trickled_for_longer_than_its_time_gets_408_and_the_connection_closes(
    server, monkeypatch
):
    monkeypatch.setattr(protocol, "HEAD_SECONDS", 1.0, raising=False)
    _, port = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        conn.settimeout(0.2)
        answer, sent = b"", 0
        while not answer and sent < 100:  # a field every 0.2 s, for up to 20 s
            try:
                conn.sendall(b"X-%d: y\r\n" % sent)
            except OSError:
                break
            sent += 1
            try:
                answer = conn.recv(65536)
            except TimeoutError:
                continue
        conn.settimeout(30)
        with contextlib.suppress(ConnectionResetError):
            answer += _until_closed(conn)
    assert sent < 60, "the server kept reading the head for 12 s"
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer[:300]
    assert json.loads(body)["detail"] == "A request's head must arrive within 1 seconds."


def test_a_connection_that_asks_nothing_is_closed_and_one_that_asks_goes_on(server, monkeypatch):
    monkeypatch.setattr(protocol, "HEAD_SECONDS", 1.0, raising=False)
    _, port = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as idle:
        assert _until_closed(idle) == b""  # closed, without a word (nothing was asked)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        for _ in range(2):  # the time is a head's, not the connection's
            conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            answer = b""
            while _expect(b"").encode() not in answer:
                chunk = conn.recv(65536)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 ")
            time.sleep(0.6)
