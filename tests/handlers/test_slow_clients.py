"""Slow clients cannot freeze the API, and a body or download that stalls is cut off.

Request bodies of tus and multipart uploads and download responses stream on the event
loop (app.http.streaming), so clients on slow links hold no thread; everything else still
runs on the pool of ten threads Flask handlers share. These tests hold more slow requests
open than that pool has threads (and than the database pool has connections: a download
must not keep one while it waits on its reader) and check that the API still answers,
against a real server on real sockets.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import logging
import os
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.handlers.conftest import Live, serve_live
from tests.helpers import Account, run_jobs, runtime, spooled_files, wait_until

TUS = {"Tus-Resumable": "1.0.0"}
SLOW = 25  # of each kind: more than the ten Flask threads and the 20 pooled connections
IDLE = 1.0  # seconds without a byte before the impatient server cuts a request off


@pytest.fixture(scope="module")
def impatient(engine, local_settings) -> Iterator:
    """A live server that cuts off bodies and downloads idle for IDLE seconds."""
    settings = dataclasses.replace(local_settings, body_idle_seconds=IDLE)
    with serve_live(engine, settings) as server:
        yield server, settings


@pytest.fixture
def slow_live(impatient) -> Iterator[Live]:
    server, settings = impatient
    runtime(server.app).jobs.waiting.clear()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        view = Live(server.url, http, server.app, server.counter, settings)
        try:
            yield view
        finally:
            view.remove_accounts()


def _connect(url: str, receive_buffer: int | None = None) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((host, int(port)))
    sock.settimeout(30)
    return sock


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and whatever body came before the server closed or stopped."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length and (chunk := sock.recv(65536)):
        body += chunk
    return int(status_line.split()[1]), headers, body


def _new_upload(live: Live, account: Account, length: int, name: str = "slow.bin") -> str:
    response = live.http.post(
        "/api/v1/uploads",
        headers={
            **account.headers,
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": "filename " + base64.b64encode(name.encode()).decode(),
        },
    )
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def _start_patch(live: Live, account: Account, location: str, declared: int, first: bytes):
    sock = _connect(live.url)
    headers = {
        **account.headers,
        **TUS,
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(declared),
    }
    sock.sendall(_head("PATCH", location, headers) + first)
    return sock


def _start_multipart(live: Live, account: Account, declared: int, first: bytes):
    sock = _connect(live.url)
    headers = {
        **account.headers,
        "Content-Type": "multipart/form-data; boundary=XyZ",
        "Content-Length": str(declared),
    }
    opening = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="slow.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
    )
    sock.sendall(_head("POST", "/api/v1/upload_files", headers) + opening + first)
    return sock


def _start_unread_download(live: Live, account: Account, file_id: str) -> socket.socket:
    sock = _connect(live.url, receive_buffer=4096)
    path = f"/api/v1/files/{file_id}/content?format=original"
    sock.sendall(_head("GET", path, account.headers))
    return sock


def _ready_file(live: Live, account: Account, size: int) -> str:
    response = live.http.post(
        "/api/v1/upload_files",
        headers=account.headers,
        files={"file": ("big.bin", os.urandom(size), "application/octet-stream")},
    )
    assert response.status_code == 202, response.text
    assert run_jobs(live.app) == ["ready"]
    return response.json()["id"]


def test_slow_uploads_and_unread_downloads_leave_the_api_answering(slow_live):
    live = slow_live
    owner = live.account()
    file_id = _ready_file(live, owner, 8 * 1024 * 1024)
    held: list[socket.socket] = []
    try:
        for i in range(SLOW):
            location = _new_upload(live, owner, 100, f"slow-{i}.bin")
            held.append(_start_patch(live, owner, location, 100, b"x"))
            held.append(_start_multipart(live, owner, 1000, b"y"))
            held.append(_start_unread_download(live, owner, file_id))
        # Every one of them is in flight, and trickles on (well within the idle time).
        for _ in range(3):
            time.sleep(IDLE / 3)
            for sock in held[0::3] + held[1::3]:
                sock.sendall(b"z")

        # Meanwhile the API answers everyone else: on the old code, the threads were all
        # held by the slow ones and these waited for them (here: a ReadTimeout).
        with httpx.Client(base_url=live.url, timeout=IDLE * 3) as other:
            assert other.get("/api/v1/health").status_code == 200
            me = other.get("/api/v1/users/me", headers=owner.headers)
            assert me.status_code == 200
            listing = other.get("/api/v1/files", params={"limit": 20}, headers=owner.headers)
            assert listing.status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_an_idle_patch_is_cut_off_and_keeps_what_arrived(slow_live):
    live = slow_live
    owner = live.account()
    location = _new_upload(live, owner, 100)
    sock = _start_patch(live, owner, location, 100, b"a" * 40)
    with contextlib.closing(sock):
        status, headers, body = _response(sock)  # after IDLE seconds of silence
    assert status == 408
    assert headers["upload-offset"] == "40"
    assert headers["content-type"] == "application/problem+json"
    assert b"No byte of the body arrived for 1 seconds" in body

    head = live.http.head(location, headers={**owner.headers, **TUS})
    assert head.headers["Upload-Offset"] == "40"
    rest = live.http.patch(
        location,
        content=b"b" * 60,
        headers={
            **owner.headers,
            **TUS,
            "Upload-Offset": "40",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert rest.status_code == 204, rest.text
    assert rest.headers["Upload-Offset"] == "100"


def test_an_idle_multipart_upload_is_cut_off_and_leaves_nothing(slow_live):
    live = slow_live
    owner = live.account()
    sock = _start_multipart(live, owner, 10_000, b"c" * 500)
    with contextlib.closing(sock):
        status, _, body = _response(sock)
    assert status == 408
    assert b"Request Timeout" in body
    assert spooled_files(live.settings) == []
    listing = live.http.get("/api/v1/files", headers=owner.headers).json()
    assert listing["items"] == []


def test_a_download_nobody_reads_is_dropped(slow_live):
    live = slow_live
    owner = live.account()
    size = 8 * 1024 * 1024
    file_id = _ready_file(live, owner, size)
    sock = _start_unread_download(live, owner, file_id)
    with contextlib.closing(sock):
        time.sleep(IDLE * 3)  # reads nothing: the server gives up on it
        status, headers, body = _response(sock)  # reads what was queued, up to the close
    assert status == 200
    assert int(headers["content-length"]) == size
    assert 0 < len(body) < size  # ended short: dropped, not finished


def test_a_download_whose_client_went_away_stops_there(slow_live, caplog):
    live = slow_live
    owner = live.account()
    size = 16 * 1024 * 1024
    file_id = _ready_file(live, owner, size)
    caplog.set_level(logging.INFO, logger="instashare.access")
    url = f"{live.url}/api/v1/files/{file_id}/content?format=original"
    with httpx.stream("GET", url, headers=owner.headers, timeout=30) as response:
        assert response.status_code == 200
        next(response.iter_raw(64 * 1024))  # then goes away

    def logged() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "instashare.access" and r.status == 200]

    wait_until(lambda: logged(), 30, what="the download's access log line")
    [record] = logged()
    # What it sent before the client left (a few MiB of buffers at most), not the whole
    # file handed to a closed connection and read from storage for no one.
    assert record.bytes_out < size // 2


def test_a_download_read_slowly_but_steadily_completes(slow_live):
    live = slow_live
    owner = live.account()
    size = 2 * 1024 * 1024
    file_id = _ready_file(live, owner, size)
    sock = _start_unread_download(live, owner, file_id)
    with contextlib.closing(sock):
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(4096)
        body = received.split(b"\r\n\r\n", 1)[1]
        started = time.monotonic()
        while len(body) < size:
            body += sock.recv(256 * 1024)
            # Slower than the server would send, never idle for as long as IDLE.
            time.sleep(0.05)
        assert len(body) == size
    assert time.monotonic() - started > IDLE  # it did take longer than the idle time


def test_a_download_in_flight_holds_no_database_connection(slow_live, engine):
    live = slow_live
    owner = live.account()
    file_id = _ready_file(live, owner, 8 * 1024 * 1024)
    held = [_start_unread_download(live, owner, file_id) for _ in range(3)]
    try:
        for sock in held:
            assert sock.recv(12).startswith(b"HTTP/1.1 200")  # the body is on its way
        # The server shares the test's engine: its pool lends out nothing meanwhile.
        assert engine.pool.checkedout() == 0
    finally:
        for sock in held:
            sock.close()
