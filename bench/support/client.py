"""Talking to a running service: accounts, tus uploads, waiting for a file, downloads, and raw
HTTP/1.1 where a client library would be the bottleneck (or would hide what is measured)."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

from support.stack import API

MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


# --- accounts and files -----------------------------------------------------------------------


def register(base: str, email: str = "", password: str = "") -> tuple[str, str, str]:
    """An account (a new one unless `email` is given): (email, password, access token)."""
    email = email or f"bench-{uuid.uuid4().hex[:8]}@example.com"
    password = password or secrets.token_urlsafe(16)
    with httpx.Client(base_url=base, timeout=30) as http:
        http.post(f"{API}/users/register", json={"email": email, "password": password})
        login = http.post(f"{API}/users/login", json={"email": email, "password": password})
        login.raise_for_status()
        return email, password, login.json()["access_token"]


def account(base: str) -> dict[str, str]:
    """The Authorization header of a new account."""
    return {"Authorization": f"Bearer {register(base)[2]}"}


def tus_metadata(name: str) -> str:
    return "filename " + base64.b64encode(name.encode()).decode()


def tus_create(endpoint: str, headers: dict[str, str], size: int, name: str = "") -> str:
    """A new tus upload of `size` bytes at `endpoint` (its creation URL): the upload's URL."""
    name = name or f"bench-{uuid.uuid4().hex[:12]}.bin"
    creation = {**headers, **TUS, "Upload-Length": str(size), "Upload-Metadata": tus_metadata(name)}
    created = httpx.post(endpoint, headers=creation, timeout=60)
    if created.status_code != 201:
        raise SystemExit(f"tus creation answered {created.status_code}: {created.text}")
    return urljoin(endpoint, created.headers["Location"])


def _piece(path: Path, start: int, length: int):
    """`length` bytes of `path` from `start`, read a MiB at a time (never all in memory)."""
    with open(path, "rb") as source:
        for at in range(start, start + length, MIB):
            yield os.pread(source.fileno(), min(MIB, start + length - at), at)


def tus_upload(base: str, auth: dict[str, str], path: Path, patch_bytes: int) -> str:
    """Upload `path` over tus in `patch_bytes` PATCHes streamed from disk; the file's id."""
    size = path.stat().st_size
    url = tus_create(f"{base}{API}/uploads", auth, size, path.name)
    offset = 0
    with httpx.Client(timeout=600) as http:
        while offset < size:
            length = min(patch_bytes, size - offset)
            patched = http.patch(
                url,
                headers={
                    **auth,
                    **TUS,
                    "Content-Type": "application/offset+octet-stream",
                    "Content-Length": str(length),
                    "Upload-Offset": str(offset),
                },
                content=_piece(path, offset, length),
            )
            if patched.status_code != 204:
                raise SystemExit(f"PATCH at {offset} answered {patched.status_code}")
            offset = int(patched.headers["Upload-Offset"])
    return url.rstrip("/").rsplit("/", 1)[-1]


def wait_for_file(
    base: str,
    auth: dict[str, str],
    file_id: str,
    timeout: float = 120.0,
    settled: tuple[str, ...] = ("ready",),
    poll: float = 0.5,
) -> dict:
    """The file once its status is one of `settled` (SystemExit if it failed instead, or
    after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, headers=auth, timeout=60) as http:
        while True:
            got = http.get(f"{API}/files/{file_id}")
            got.raise_for_status()
            file = got.json()
            if file["status"] in settled:
                return file
            if file["status"] == "failed" or time.monotonic() > deadline:
                raise SystemExit(f"file {file_id} is {file['status']} after {timeout:g} s: {file}")
            time.sleep(poll)


def delete_file(base: str, auth: dict[str, str], file_id: str) -> None:
    got = httpx.delete(f"{base}{API}/files/{file_id}", headers=auth, timeout=60)
    if got.status_code != 204:
        raise SystemExit(f"DELETE of {file_id} answered {got.status_code}: {got.text}")


def curl_mib_s(url: str, headers: dict[str, str], expected: int) -> float:
    """Download `url` to /dev/null with curl; MiB/s (SystemExit unless all `expected` bytes)."""
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    status, size, seconds = out.split()
    if status != "200" or int(size) != expected:
        raise SystemExit(f"{url} answered {status} with {size} of {expected} bytes")
    return expected / MIB / float(seconds)


# --- raw HTTP/1.1 -----------------------------------------------------------------------------


def request_head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    """A request's line and headers, up to the blank line."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """(status, headers by lower-case name) of a response's head, without the blank line."""
    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def read_answer(reader: asyncio.StreamReader, *, head_only: bool = False) -> Answer:
    status, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
    length = int(headers.get("content-length", 0))
    body = b"" if head_only or not length else await reader.readexactly(length)
    return Answer(status, headers, body)


async def exchange(port: int, method: str, path: str, headers: dict[str, str]) -> Answer:
    """One bodiless request on a fresh connection, and its whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_head(method, path, {**headers, "Content-Length": "0"}))
        await writer.drain()
        return await read_answer(reader, head_only=method == "HEAD")
    finally:
        writer.close()


def tus_patch_head(auth: dict[str, str], url: str, length: int) -> bytes:
    """The head of a PATCH of a whole upload's `length` bytes, from offset 0."""
    headers = {
        **auth,
        **TUS,
        "Upload-Offset": "0",
        "Content-Length": str(length),
        "Content-Type": "application/offset+octet-stream",
    }
    return request_head("PATCH", url, headers)


def multipart_request(auth: dict[str, str], name: str, content: bytes) -> tuple[bytes, bytes]:
    """The head and body of a POST /upload_files of `content`."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {
        **auth,
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(body)),
    }
    return request_head("POST", f"{API}/upload_files", headers), body


class Http11:
    """A minimal keep-alive HTTP/1.1 client that sends bodies with sendfile(2).

    httpx tops out near 170 MiB/s here even against a raw sink (it is the bottleneck,
    not the server), so bodies go out like curl's: straight from the page cache.
    """

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""

    def close(self) -> None:
        self.sock.close()

    def request(self, method, path, headers, source=None, offset=0, count=0):
        """(status, headers, body) of one request, its body `count` bytes of `source`."""
        self.sock.sendall(request_head(method, path, {"Content-Length": str(count), **headers}))
        if count:
            self.sock.sendfile(source, offset, count)
        while b"\r\n\r\n" not in self.pending:
            self.pending += self._recv()
        head, _, rest = self.pending.partition(b"\r\n\r\n")
        status, answer = parse_head(head)
        length = int(answer.get("content-length", 0))
        while len(rest) < length:
            rest += self._recv()
        self.pending = rest[length:]
        return status, answer, rest[:length]

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data


# --- a keep-alive load generator ----------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending the same request again as each answer completes."""

    def __init__(self, load: KeepAlive, request: bytes):
        self.load = load
        self.request = request
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (head_end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:head_end]
            _, headers = parse_head(head)
            end = head_end + 4 + int(headers.get("content-length", 0))
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            self.load.answered(head, time.perf_counter() - self.sent_at)
            assert self.transport is not None
            if self.load.stopped:
                self.transport.close()
                return
            self._send()


class KeepAlive:
    """Connections each sending their request again as its last answer arrives; what they
    saw since `mark()`: answers, latencies (from a request's write to its answer's last
    byte) and failures (answers not starting with `ok`: their status lines)."""

    def __init__(self, ok: bytes = b"HTTP/1.1 200"):
        self.ok = ok
        self.count = 0
        self.latencies: list[float] = []
        self.failures: list[bytes] = []
        self.stopped = False
        self.marked_count, self.marked_at = 0, time.perf_counter()

    def answered(self, head: bytes, latency: float) -> None:
        self.count += 1
        self.latencies.append(latency)
        if not head.startswith(self.ok):
            self.failures.append(head.split(b"\r\n", 1)[0])

    def mark(self) -> None:
        """Start the measured window (the latencies until now were the warm-up's)."""
        self.latencies = []
        self.marked_count, self.marked_at = self.count, time.perf_counter()

    def rate(self) -> float:
        """Answers per second since `mark()`."""
        return (self.count - self.marked_count) / (time.perf_counter() - self.marked_at)

    async def close(self) -> None:
        self.stopped = True
        await asyncio.sleep(0.2)


async def keep_alive(
    port: int, requests: list[bytes], ok: bytes = b"HTTP/1.1 200", warm_up: float = 1.0
) -> KeepAlive:
    """A connection for each of `requests`, each sending it again and again; returned after
    `warm_up` seconds (call `mark()` to start measuring)."""
    load = KeepAlive(ok)
    loop = asyncio.get_running_loop()
    for request in requests:
        await loop.create_connection(lambda r=request: _Connection(load, r), "127.0.0.1", port)
    await asyncio.sleep(warm_up)
    return load
