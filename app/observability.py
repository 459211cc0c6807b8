"""Request ids, one JSON log line per request, and Prometheus metrics.

With several gunicorn workers, `instashare-server serve` points PROMETHEUS_MULTIPROC_DIR at
a fresh directory before the workers start, and /metrics aggregates every process.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from typing import TextIO

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.queue.jobs import REQUEST_ID

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

REQUESTS = Counter(
    "instashare_http_requests_total", "HTTP requests", ["operation", "method", "status"]
)
LATENCY = Histogram(
    "instashare_http_request_duration_seconds",
    "Time to answer a request (to its last byte)",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
BYTES_IN = Counter("instashare_uploaded_bytes_total", "Request body bytes received")
BYTES_OUT = Counter("instashare_downloaded_bytes_total", "Response body bytes sent")
JOB_DURATION = Histogram(
    "instashare_job_duration_seconds",
    "Compression job run time",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
JOB_FAILURES = Counter("instashare_job_failures_total", "Compression jobs that ended failed")
JOB_RETRIES = Counter("instashare_job_retries_total", "Compression jobs retried after an error")
SHARE_DOWNLOADS = Counter(
    "instashare_share_downloads_total",
    "Downloads through share links (as a link's limit counts them: resumes, HEAD and 304 not)",
)
SHARE_REFUSALS = Counter(
    "instashare_share_refusals_total", "Uses of share links refused, by reason", ["reason"]
)
SHARE_REFUSAL_REASONS = (
    "expired",
    "revoked",
    "exhausted",
    "bad_password",
    "throttled",
    "not_ready",
)
PASSWORD_TURN_WAITS = Histogram(
    "instashare_password_turn_wait_seconds",
    "How long password checks (logins, share links) waited for their turn under a guessing "
    "campaign (beyond the per-account or per-link cap)",
    buckets=(0.5, 1, 2, 5, 10, 20, 30),
)
for _reason in SHARE_REFUSAL_REASONS:
    SHARE_REFUSALS.labels(_reason)  # every reason shows from the start, at 0


def share_refused(reason: str) -> None:
    """Count one refused use of a share link."""
    if reason in SHARE_REFUSAL_REASONS:
        SHARE_REFUSALS.labels(reason).inc()


access_log = logging.getLogger("instashare.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields given to the logger are kept."""

    _skip = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    _second: tuple[int, str] = (-1, "")

    def _timestamp(self, record: logging.LogRecord) -> str:
        # One strftime per second, not per line: the access log writes one per request.
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, self.formatTime(record, "%Y-%m-%dT%H:%M:%S"))
        return f"{self._second[1]}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self._timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        line.update({k: v for k, v in vars(record).items() if k not in self._skip})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """JSON lines on `stream` (stderr) for the whole process; our access line replaces uvicorn's."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.Formatter.converter = time.gmtime
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error", "celery"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def request_id_from(value: str | None) -> str:
    """The client's X-Request-ID when it is sane, else a fresh one."""
    if value and _VALID_REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


class RequestObserver:
    """ASGI middleware: request id in and out, a JSON access line, request metrics."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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


class StateCollector:
    """Gauges read at scrape time: files by status and the broker's queue depth."""

    def __init__(self, files_by_status: Callable[[], dict[str, int]], queue_depth: Callable):
        self.files_by_status = files_by_status
        self.queue_depth = queue_depth

    def collect(self):
        files = GaugeMetricFamily("instashare_files", "Files by status", labels=["status"])
        for status, count in self.files_by_status().items():
            files.add_metric([status], count)
        yield files
        depth = self.queue_depth()
        if depth is not None:
            yield GaugeMetricFamily(
                "instashare_queue_depth", "Jobs waiting in the broker queue", value=depth
            )


def render(extra_collector: StateCollector | None = None) -> tuple[bytes, str]:
    """The metrics page: every process's metrics in multiprocess mode, plus the state gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    output = generate_latest(registry)
    if extra_collector is not None:
        state = CollectorRegistry()
        state.register(extra_collector)
        output += generate_latest(state)
    return output, CONTENT_TYPE_LATEST
