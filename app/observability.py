"""Logging as JSON lines (with the request id), and Prometheus metrics (the HTTP edge's
request ids, access lines and request metrics are app.http.observer's).

With several gunicorn workers, `instashare-server serve` points PROMETHEUS_MULTIPROC_DIR at
a fresh directory before the workers start, and /metrics aggregates every process.
"""

from __future__ import annotations

import json
import logging
import os
import time
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

from app.queue.jobs import REQUEST_ID

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
MAILS = Counter(
    "instashare_mails_total",
    "Mail jobs the worker ran, by outcome: sent, retry (the server was down or said later), "
    "given-up, refused, expired (its link ran out first), unconfigured",
    ["outcome"],
)
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
