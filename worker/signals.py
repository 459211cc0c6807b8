"""Worker-side observability: request ids in job log lines, job metrics."""

from __future__ import annotations

import time

from celery import signals

from app.context import REQUEST_ID
from app.observability import JOB_DURATION, JOB_FAILURES, JOB_RETRIES
from app.queue import COMPRESS_UPLOAD


def _request_id(request) -> str | None:
    # Custom message headers surface as attributes of the task request (Celery 5).
    value = getattr(request, "x_request_id", None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get("x_request_id")
    return value


@signals.task_prerun.connect
def _job_started(task=None, **_kwargs) -> None:
    REQUEST_ID.set(_request_id(task.request))
    task.request._instashare_started = time.perf_counter()


@signals.task_postrun.connect
def _job_finished(task=None, retval=None, state=None, **_kwargs) -> None:
    started = getattr(task.request, "_instashare_started", None)
    if task.name == COMPRESS_UPLOAD and started is not None and state != "RETRY":
        outcome = retval if isinstance(retval, str) else (state or "unknown").lower()
        JOB_DURATION.labels(outcome).observe(time.perf_counter() - started)
        if outcome == "failed":
            JOB_FAILURES.inc()
    REQUEST_ID.set(None)


@signals.task_retry.connect
def _job_retried(**_kwargs) -> None:
    JOB_RETRIES.inc()


@signals.worker_process_shutdown.connect
def _process_gone(pid=None, **_kwargs) -> None:
    import os

    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and pid:
        multiprocess.mark_process_dead(pid)


@signals.worker_shutdown.connect
def _exit_quickly(**_kwargs) -> None:
    # What is left is freed by the exit: the collector need not walk it first (a second
    # of a stop, on a busy machine).
    import gc

    gc.freeze()
