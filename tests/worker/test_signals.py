"""A pool process and SIGTERM: a supervisor's is ignored, its own worker's still ends it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import wait_until

pytestmark = pytest.mark.slow  # starts a Python process of its own

CHILD = """
import time
from worker.signals import _leave_sigterm_to_the_main_process

_leave_sigterm_to_the_main_process()
print("ready", flush=True)
time.sleep(60)
"""


def test_a_pool_process_ends_on_its_workers_sigterm_only(tmp_path):
    # The test is the worker's main process here: the child is its pool process.
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        # SIGTERM from someone else (systemd signalling the whole group): the job goes on.
        subprocess.run(["kill", "-TERM", str(child.pid)], check=True)
        time.sleep(0.5)
        assert child.poll() is None
        # The worker's own (a cold shutdown, a hard time limit): it ends at once.
        os.kill(child.pid, signal.SIGTERM)
        wait_until(lambda: child.poll() is not None, 10, what="the child ending")
        assert child.returncode == -signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
