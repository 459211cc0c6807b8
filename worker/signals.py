"""Worker-side process life and observability: signals, request ids in job logs, metrics."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

from celery import signals

from app.observability import JOB_DURATION, JOB_FAILURES, JOB_RETRIES
from app.queue import COMPRESS_UPLOAD
from app.queue.jobs import REQUEST_ID

log = logging.getLogger(__name__)


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
def _job_retried(sender=None, **_kwargs) -> None:
    if getattr(sender, "name", None) == COMPRESS_UPLOAD:  # a mail's retries are MAILS'
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


# --- process life ---------------------------------------------------------------------------

PR_SET_PDEATHSIG = 1  # linux/prctl.h


@signals.beat_embedded_init.connect
def _beat_dies_with_its_worker(**_kwargs) -> None:
    """The embedded beat (`worker --beat`) ends when its worker's main process does.

    Killed with `kill -9`, the worker cannot stop its beat; reparented, the beat would go
    on sending the sweeps beside the next worker's own beat. Linux signals it instead.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("beat: cannot ask to end with the worker: errno %d", ctypes.get_errno())
    if os.getppid() == 1:  # the worker died before that took effect
        os._exit(0)


@signals.worker_process_init.connect
def _leave_sigterm_to_the_main_process(**_kwargs) -> None:
    """A pool process ignores SIGTERM unless its own worker sends it.

    systemd and some supervisors send SIGTERM to the worker's whole process group: the
    main process starts its warm shutdown and lets the running jobs finish, which a pool
    process killed by that same signal could not (WorkerLostError). The pool's own
    SIGTERMs (a cold shutdown, a hard time limit) come from the main process and still
    end it. A signal handler cannot see the sender, so a thread waits for the signal.
    """
    if not hasattr(signal, "sigwaitinfo"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return
    worker = os.getppid()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # when it is let through, it ends us
    # Blocked in this (the only) thread, and so in every thread started from now on:
    # SIGTERM then waits for the thread below instead of ending the process.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def wait_for_sigterm() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            if info.si_pid == worker:
                # Sent again, to the one thread that now lets it through.
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=wait_for_sigterm, name="sigterm", daemon=True).start()
