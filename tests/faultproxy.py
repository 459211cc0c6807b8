"""A fault-injecting HTTP proxy between the real google-cloud-storage client and the emulator.

`gcp-storage-emulator` answers every request as well as it can: it never says 503 or 429,
never stalls, never drops a connection, and ignores preconditions. The proxy sits on a
loopback port in front of it (the client reaches it as `STORAGE_EMULATOR_HOST`), forwards
every request, streaming both bodies, and does what a test scripts:

    proxy.fail("PUT", r"/upload/", status=503, nth=1, times=3)   # 503 on PUTs 1-3
    proxy.stall("GET", r"alt=media", seconds=30)                   # hold every download
    proxy.reset("PUT", r"/upload/", during="request", after_bytes=1 << 20)
    proxy.requests("POST", r"uploadType=resumable")                # what was asked

A rule counts the requests that match its method and pattern (the pattern is searched in
the percent-decoded path with its query string, so `/o/<owner>/<name>` reads as a key)
and acts on the `nth` to the `nth + times - 1`th of them (`times=None`: every one from
the `nth` on). Every request is recorded (method, path,
query, headers) before any rule acts on it, so a test can assert that preconditions were
sent (`ifGenerationMatch`) and which calls a probe makes.

The emulator builds resumable-session URLs from the Host header, which the proxy passes
through unchanged: the session's `Content-Range` PUTs come back through the proxy too.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
}
_PIECE = 64 * 1024


@dataclass(frozen=True)
class Recorded:
    """One request as the proxy received it."""

    method: str
    path: str  # without the query string, percent-decoded
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    target: str  # the path with its query string, percent-decoded: what rules search

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(eq=False)
class Rule:
    method: str | None
    pattern: re.Pattern[str]
    action: str  # "status", "stall", "reset"
    nth: int = 1
    times: int | None = 1
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    during: str = "response"  # stall/reset: "request" (before forwarding) or "response"
    after_bytes: int = 0
    seen: int = 0
    acted: int = 0

    def matches(self, method: str, target: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.pattern.search(target))

    def fires(self) -> bool:
        """Count one matching request; whether the rule acts on it."""
        self.seen += 1
        if self.seen < self.nth:
            return False
        if self.times is not None and self.seen >= self.nth + self.times:
            return False
        self.acted += 1
        return True


class FaultProxy:
    """The proxy server (threaded, loopback) and its script; see the module docstring."""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._recorded: list[Recorded] = []
        self._released = threading.Event()
        # An origin whose pages may call through the proxy (CORS), as GCS allows the origin
        # a resumable session was opened with to write to it: preflights answered here.
        self.cors: str | None = None
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    # --- the script ----------------------------------------------------------------------

    def _add(self, method: str | None, pattern: str, action: str, **kw) -> Rule:
        rule = Rule(method.upper() if method else None, re.compile(pattern), action, **kw)
        with self._lock:
            self._rules.append(rule)
        return rule

    def fail(
        self,
        method: str | None = None,
        pattern: str = "",
        *,
        status: int = 503,
        nth: int = 1,
        times: int | None = 1,
        retry_after: int | None = None,
    ) -> Rule:
        """Answer `status` (503, 429, ...) instead of forwarding the matching requests."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return self._add(
            method, pattern, "status", status=status, nth=nth, times=times, headers=headers
        )

    def stall(
        self,
        method: str | None = None,
        pattern: str = "",
        *,
        seconds: float,
        nth: int = 1,
        times: int | None = 1,
        during: str = "request",
        after_bytes: int = 0,
    ) -> Rule:
        """Hold the matching requests for `seconds` (or until `release()`).

        `during="request"`: before anything is forwarded (nothing answers). `"response"`:
        after the response's headers and its first `after_bytes` bytes went out (a stall
        mid-download), then the rest.
        """
        return self._add(
            method,
            pattern,
            "stall",
            seconds=seconds,
            nth=nth,
            times=times,
            during=during,
            after_bytes=after_bytes,
        )

    def reset(
        self,
        method: str | None = None,
        pattern: str = "",
        *,
        during: str = "response",
        after_bytes: int = 0,
        nth: int = 1,
        times: int | None = 1,
    ) -> Rule:
        """Reset the client's connection (TCP RST) mid-body.

        `during="request"`: after reading `after_bytes` of the request body, before the
        emulator sees the request. `"response"`: after the response's headers and
        `after_bytes` bytes of its body.
        """
        return self._add(
            method, pattern, "reset", during=during, after_bytes=after_bytes, nth=nth, times=times
        )

    def remove(self, rule: Rule) -> None:
        """Stop applying `rule` (the requests stay recorded)."""
        with self._lock:
            self._rules[:] = [r for r in self._rules if r is not rule]

    def release(self) -> None:
        """End every stall now (and any that begin until `clear()`)."""
        self._released.set()

    def clear(self) -> None:
        """Forget the rules and the recorded requests; end stalls."""
        self._released.set()
        with self._lock:
            self._rules.clear()
            self._recorded.clear()
        self._released = threading.Event()

    def requests(self, method: str | None = None, pattern: str = "") -> list[Recorded]:
        """The recorded requests matching `method` and `pattern`, in arrival order."""
        found = re.compile(pattern)
        with self._lock:
            recorded = list(self._recorded)
        return [
            r
            for r in recorded
            if (method is None or r.method == method.upper()) and found.search(r.target)
        ]

    # --- used by the handler -------------------------------------------------------------

    def _arrive(self, recorded: Recorded) -> Rule | None:
        with self._lock:
            self._recorded.append(recorded)
            for rule in self._rules:
                if rule.matches(recorded.method, recorded.target) and rule.fires():
                    return rule
        return None

    def _wait(self, seconds: float) -> None:
        self._released.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:
        return

    def _any(self) -> None:
        try:
            self._proxy()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout, a test that is over): nothing to answer.
            self.close_connection = True

    def _proxy(self) -> None:
        proxy = self.owner
        split = urlsplit(self.path)
        recorded = Recorded(
            self.command,
            unquote(split.path),
            parse_qs(split.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
            unquote(self.path),
        )
        rule = proxy._arrive(recorded)
        body = self._request_body()
        if rule is not None and rule.action == "status":
            for _ in body:  # read what was sent, so the client sees the answer, not a reset
                pass
            self._answer(rule.status, rule.headers)
            return
        if rule is not None and rule.action == "stall" and rule.during == "request":
            proxy._wait(rule.seconds)
        if rule is not None and rule.action == "reset" and rule.during == "request":
            read = 0
            for piece in body:
                read += len(piece)
                if read >= rule.after_bytes:
                    break
            self._reset()
            return
        self._forward(body, rule)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

    def do_OPTIONS(self) -> None:
        if self.owner.cors is None:
            self._any()
            return
        self.send_response_only(204)
        self._cors_headers()
        self.send_header("Access-Control-Allow-Methods", "PUT, GET, HEAD")
        self.send_header("Access-Control-Allow-Headers", "Content-Range, Content-Type")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _cors_headers(self) -> None:
        if self.owner.cors is not None:
            self.send_header("Access-Control-Allow-Origin", self.owner.cors)
            self.send_header("Access-Control-Expose-Headers", "Range, Content-Range")

    def _request_body(self) -> Iterator[bytes]:
        """The request's body in pieces, as it arrives (Content-Length or chunked)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                remaining = size
                while remaining:
                    piece = self.rfile.read(min(_PIECE, remaining))
                    if not piece:
                        return
                    remaining -= len(piece)
                    yield piece
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            piece = self.rfile.read(min(_PIECE, remaining))
            if not piece:
                return
            remaining -= len(piece)
            yield piece

    def _answer(self, status: int, headers: dict[str, str]) -> None:
        body = b'{"error": {"code": %d, "message": "injected by the test proxy"}}' % status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        """Drop the client's connection with a TCP RST (SO_LINGER 0), not a clean close."""
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()

    def _forward(self, body: Iterator[bytes], rule: Rule | None) -> None:
        host, port = self.owner.upstream
        upstream = http.client.HTTPConnection(host, port, timeout=300)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    upstream.putheader(name, value)
            if chunked:
                upstream.putheader("Transfer-Encoding", "chunked")
            upstream.endheaders()
            for piece in body:
                upstream.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                upstream.send(b"0\r\n\r\n")
            response = upstream.getresponse()
            self._relay(response, rule)
        finally:
            upstream.close()

    def _relay(self, response: http.client.HTTPResponse, rule: Rule | None) -> None:
        acting = rule if rule is not None and rule.during == "response" else None
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self._cors_headers()
        if length is None and self.command != "HEAD" and response.status not in (204, 304):
            # Unknown length: stream until the end, then close (no re-chunking needed).
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        sent = 0
        if acting is not None and acting.after_bytes == 0:
            self.wfile.flush()
            if self._act(acting):
                return
            acting = None
        while True:
            want = _PIECE
            if acting is not None:
                want = min(want, acting.after_bytes - sent)
            piece = response.read(want)
            if not piece:
                break
            self.wfile.write(piece)
            sent += len(piece)
            if acting is not None and sent >= acting.after_bytes:
                self.wfile.flush()
                if self._act(acting):
                    return
                acting = None
        self.wfile.flush()

    def _act(self, rule: Rule) -> bool:
        """Apply a response-time rule; whether the connection is gone."""
        if rule.action == "reset":
            self._reset()
            return True
        self.owner._wait(rule.seconds)
        return False


@contextlib.contextmanager
def running(upstream: str) -> Iterator[FaultProxy]:
    """A FaultProxy in front of `upstream` for the block's duration."""
    proxy = FaultProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.close()


def wait_for_requests(
    proxy: FaultProxy, method: str | None, pattern: str, count: int = 1, timeout: float = 30
) -> list[Recorded]:
    """Poll until `count` matching requests were recorded; them."""
    deadline = time.monotonic() + timeout
    while True:
        found = proxy.requests(method, pattern)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} {method} {pattern!r} request(s) not seen in {timeout}s")
        time.sleep(0.05)
