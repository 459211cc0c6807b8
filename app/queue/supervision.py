"""How `instashare-server worker` runs Celery: with its exit status, and its small-file lane
ending with it (and it with the lane)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

log = logging.getLogger(__name__)


def end_with_this_process() -> None:
    """In a child, before it runs: Linux ends it (SIGTERM) when its parent dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def run_celery(celery, argv: list[str]) -> None:
    """Celery's command `argv` in this process; exits with the worker's status when that is
    not 0.

    Celery's own entry points drop it (`worker_main` and `start` return nothing): a worker
    ending on an "Unrecoverable error" would exit 0, and a supervisor that restarts on
    failure would leave it down. The worker hands its status to `worker_shutdown`.
    """
    from celery import signals

    statuses: list[int] = []

    def record(sender, **_kwargs) -> None:
        statuses.append(getattr(sender, "exitcode", None) or 0)

    signals.worker_shutdown.connect(record, weak=False)
    celery.start(argv)
    if any(statuses):
        sys.exit(max(statuses))


# How long a lane stopped by SIGTERM or SIGINT waits for the worker's own stop to be seen.
LANE_STOP_GRACE_SECONDS = 5.0


class LaneWatch:
    """The small-file lane, watched: should it exit on its own, the whole worker stops
    (a warm shutdown, then status 1) so that its supervisor starts both again."""

    def __init__(self, lane: subprocess.Popen):
        from celery import signals

        self.lane = lane
        self.failed = False
        self.stopping = threading.Event()
        # Celery's SIGTERM/SIGINT handler: the lane, in our process group, is stopping too.
        signals.worker_shutting_down.connect(self._on_shutdown, weak=False)
        threading.Thread(target=self._watch, name="small-lane-watch", daemon=True).start()

    def _on_shutdown(self, **_kwargs) -> None:
        self.stopping.set()

    def _watch(self) -> None:
        status = self.lane.wait()
        if status in (-signal.SIGTERM, -signal.SIGINT):
            # A stop sent to the whole process group can end the lane before this process's
            # own handler has run (a busy machine): a few seconds for it to say so.
            self.stopping.wait(LANE_STOP_GRACE_SECONDS)
        if self.stopping.is_set():
            return
        self.failed = True
        log.error(
            "The small-file lane exited on its own (status %s); the worker stops too, "
            "so that its supervisor starts both again.",
            status,
        )
        os.kill(os.getpid(), signal.SIGTERM)  # Celery's warm shutdown: running jobs finish

    def stop(self) -> None:
        """The worker is done: a warm shutdown of the lane (its running job finishes)."""
        self.stopping.set()
        if self.lane.poll() is None:
            self.lane.send_signal(signal.SIGTERM)
            self.lane.wait()
