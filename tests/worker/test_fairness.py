"""One account's backlog of large files does not hold up another account's small file.

A real worker (`instashare-server worker`, one slot, with its small-file lane) on a
database and a `filesystem://` broker of its own, as `instashare-server dev` runs it.
"""

from __future__ import annotations

import dataclasses
import signal

import pytest

from tests.helpers import (
    WorkerProcess,
    account_in,
    committing_app,
    fresh_database,
    upload,
    wait_until,
)
from tests.worker.test_lifecycle import text_log

pytestmark = pytest.mark.slow  # starts a worker process

MIB = 1024 * 1024
BACKLOG = 8


def test_a_small_file_does_not_wait_behind_another_accounts_backlog(local_settings, tmp_path):
    with fresh_database("instashare_fairness") as url:
        own = dataclasses.replace(
            local_settings,
            database_url=url,
            broker_url="filesystem://",
            data_dir=tmp_path / "data",
        )
        with committing_app(own) as app, app.test_client() as client:
            alice, bob = account_in(app), account_in(app)
            # Queued before any worker runs: alice's backlog first, then bob's small file.
            large = [
                upload(client, alice, text_log(12 * MIB), filename=f"big-{i}.log").json()["id"]
                for i in range(BACKLOG)
            ]
            small = upload(client, bob, b"hello", filename="note.txt").json()["id"]
            worker = WorkerProcess(own, tmp_path / "worker.log", concurrency=1).start()
            try:

                def status(account, file_id) -> str:
                    got = client.get(f"/api/v1/files/{file_id}", headers=account.headers)
                    return got.json()["status"]

                wait_until(
                    lambda: status(bob, small) == "ready",
                    120,
                    0.02,
                    what=f"bob's small file ready (see {worker.log_path})",
                )
                done = sum(status(alice, file_id) == "ready" for file_id in large)
                # First in, first out, it would come after all of them.
                assert done <= BACKLOG // 2, f"{done} of alice's {BACKLOG} large files went first"
                wait_until(
                    lambda: all(status(alice, f) == "ready" for f in large), 180, 0.2,
                    what="the backlog done",
                )  # fmt: skip
            finally:
                worker.stop(signal.SIGKILL)
