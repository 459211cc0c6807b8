"""Helpers for the tests that run real workers, or commit for real: accounts, jobs, archives.

These tests cannot use the rolled-back transaction of `tests/conftest.py` (a worker process
or a second connection must see their rows), so their accounts are committed rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import redis

from app.queue import COMPRESS_UPLOAD, QUEUE, SMALL_QUEUE
from app.runtime import build_runtime
from app.settings import Settings
from tests.helpers import Account, WorkerProcess, committed_account, fresh_database, wait_until

RESULT = re.compile(r"compress_upload\[[0-9a-f-]+\] succeeded in \S+s: '([a-z-]+)'")


def compress_results(worker: WorkerProcess) -> list[str]:
    """What each compress_upload run returned, in order, from the worker's log."""
    return RESULT.findall(worker.log())


def queued_compressions(broker_url: str) -> int:
    """Compression jobs a Redis broker still holds: waiting, or delivered and not acked."""
    client = redis.Redis.from_url(broker_url)
    try:
        waiting = [m for q in (QUEUE, SMALL_QUEUE) for m in client.lrange(q, 0, -1)]
        messages = waiting + client.hvals("unacked")
    finally:
        client.close()
    count = 0
    for raw in messages:
        message = json.loads(raw)
        if isinstance(message, list):  # unacked entries are [message, exchange, routing key]
            message = message[0]
        count += message.get("headers", {}).get("task") == COMPRESS_UPLOAD
    return count


def wait_for_results(worker: WorkerProcess, count: int, timeout: float = 60.0) -> list[str]:
    """Every compress_upload result, once there are `count` and the broker holds no more.

    With the broker empty of compression jobs (none waiting, none being run), no further
    result can appear: what the log shows then is all there will be.
    """
    broker_url = worker.settings.broker_url
    last: list[list[str]] = []

    def settled():
        if len(compress_results(worker)) < count or queued_compressions(broker_url):
            last.clear()
            return None
        # Read again (the broker was empty after this count), and twice in a row: a message
        # the worker is just taking off the queue is, for an instant, in neither place.
        results = compress_results(worker)
        stable = last == [results]
        last[:] = [results]
        return results if stable else None

    try:
        return wait_until(settled, timeout, what=f"{count} compress_upload results")
    except AssertionError:
        raise AssertionError(
            f"the worker ran fewer than {count} jobs in {timeout}s:\n{worker.log()[-3000:]}"
        ) from None


def unzip_test(path: Path) -> None:
    done = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert "No errors detected" in done.stdout, done.stdout[-2000:]


@dataclasses.dataclass
class LiveWorker:
    """An app that commits and sends its jobs to a Celery worker of its own."""

    client: object  # the app's test client
    account: Account
    storage: object
    worker: WorkerProcess


@contextlib.contextmanager
def live_worker(
    settings: Settings, tmp_path: Path, prefix: str, concurrency: int = 1
) -> Iterator[LiveWorker]:
    """This backend's app with a Celery worker (started at once, to boot meanwhile), on a
    database (`prefix`) and a `filesystem://` broker of their own."""
    from app.web import create_app

    with fresh_database(prefix) as url:
        own = dataclasses.replace(
            settings, database_url=url, broker_url="filesystem://", data_dir=tmp_path / "data"
        )
        worker = WorkerProcess(own, tmp_path / "worker.log", concurrency=concurrency).start()
        try:
            rt = build_runtime(own)
            try:
                app = create_app(own, runtime=rt)
                account = committed_account(rt.sessions, own)
                with app.test_client() as client:
                    yield LiveWorker(client, account, rt.storage, worker)
            finally:
                rt.sessions.kw["bind"].dispose()
        finally:
            worker.kill()
