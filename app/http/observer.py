"""ASGI middleware: a request id in and out, one JSON access line per request, and the
request metrics (app.observability defines them)."""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid

from starlette.types import Message, Receive, Scope, Send

from app.http.middleware import HttpMiddleware
from app.observability import BYTES_IN, BYTES_OUT, LATENCY, REQUESTS
from app.queue.jobs import REQUEST_ID

access_log = logging.getLogger("instashare.access")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_from(value: str | None) -> str:
    """The client's X-Request-ID when it is sane, else a fresh one."""
    if value and _VALID_REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


class RequestObserver(HttpMiddleware):
    """ASGI middleware: request id in and out, a JSON access line, request metrics."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent = [v for k, v in scope["headers"] if k == b"x-request-id"]
        rid = request_id_from(sent[0].decode("latin-1") if len(sent) == 1 else None)
        if sent != [rid.encode()]:
            # Downstream (handlers, the job sender) sees the id the client will see.
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"x-request-id"] + [
                (b"x-request-id", rid.encode())
            ]
        # Connexion records the operation and the user in scope["extensions"], on shallow
        # copies of this scope: an extensions dict made here is the one they share with us.
        scope.setdefault("extensions", {})
        token = REQUEST_ID.set(rid)
        start = time.perf_counter()
        state = {"status": 500, "in": 0, "out": 0}

        async def receive_() -> Message:
            message = await receive()
            state["in"] += len(message.get("body", b""))
            return message

        async def send_(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            elif message["type"] == "http.response.body":
                state["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive_, send_)
        finally:
            REQUEST_ID.reset(token)
            self._record(scope, rid, state, time.perf_counter() - start)

    @staticmethod
    def _record(scope: Scope, rid: str, state: dict, seconds: float) -> None:
        extensions = scope.get("extensions", {})
        operation = extensions.get("connexion_routing", {}).get("operation_id") or "unrouted"
        user = (extensions.get("connexion_context") or {}).get("user")
        _requests(operation, scope["method"], state["status"]).inc()
        _latency(operation).observe(seconds)
        BYTES_IN.inc(state["in"])
        BYTES_OUT.inc(state["out"])
        path = _redacted(scope["path"])
        access_log.info(
            "%s %s %s",
            scope["method"],
            path,
            state["status"],
            extra={
                "request_id": rid,
                "user_id": user,
                "operation": operation,
                "method": scope["method"],
                "path": path,
                "status": state["status"],
                "bytes_in": state["in"],
                "bytes_out": state["out"],
                "duration_ms": round(seconds * 1000, 2),
            },
        )


# Paths whose segment after the prefix opens a file to whoever holds it (a share link's
# token, a download grant): the logs keep the prefix, not the credential. In any case and
# with any run of slashes: a mistyped `/S/{token}` or `//s/{token}` answers 404, but the
# token in it is the real one all the same.
_SECRET_PATHS = re.compile(r"^(/+s/+|/+api/+v1/+downloads/+)(?!-/)[^/]+", re.IGNORECASE)


def _redacted(path: str) -> str:
    return _SECRET_PATHS.sub(r"\1…", path)


# The labelled series, looked up once each (prometheus_client's `labels` takes a lock and
# builds its key on every call). Operations, methods and statuses are few.
@functools.lru_cache(maxsize=1024)
def _requests(operation: str, method: str, status: int):
    return REQUESTS.labels(operation, method, str(status))


@functools.lru_cache(maxsize=1024)
def _latency(operation: str):
    return LATENCY.labels(operation)
