"""The job against a storage that misbehaves: 503s past the library's retries, two writers.

A real worker process talks to the GCS emulator through the fault proxy
(tests/faultproxy.py); the app that takes the uploads talks to the emulator directly. The
archives are over 8 MiB, so the worker writes them through resumable sessions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.helpers import (
    WorkerProcess,
    account_in,
    committing_app,
    fresh_database,
    listening,
    make_settings,
    proxied_env,
    upload,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.slow  # real workers and a redis-server of each test's own

MIB = 1024 * 1024
LEASE_SECONDS = 5


@pytest.fixture(scope="module")
def faults_db_url() -> Iterator[str]:
    with fresh_database("instashare_faults") as url:
        yield url


@pytest.fixture
def broker_url(tmp_path) -> Iterator[str]:
    """A redis-server of this test's own: no other worker takes its jobs."""
    argv = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path), "--port"]  # fmt: skip
    with listening(lambda port: [*argv, str(port)]) as port:
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def fault_settings(tmp_path, faults_db_url, broker_url, redis_url, gcs_emulator):
    return make_settings(
        tmp_path / "data",
        faults_db_url,
        "gcs",
        broker_url=broker_url,
        job_lease_seconds=LEASE_SECONDS,
        sweep_interval_seconds=0.5,
        # The library's own retries give up after this long (its default: 120 s).
        gcs_deadline_seconds=2.0,
        gcs_timeout_seconds=2.0,
    )


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.kill()


def test_a_storage_outage_while_the_archive_is_written_is_retried_not_failed(
    fault_settings, fault_proxy, workers, tmp_path
):
    content = os.urandom(9 * MIB)  # stored as it is: an archive over one 8 MiB chunk
    # Every chunk of every archive upload session answers 503, until the job gave up once.
    outage = fault_proxy.fail("PUT", r"upload_id=", status=503, times=None)
    with committing_app(fault_settings) as app, app.test_client() as client:
        account = account_in(app)
        worker = WorkerProcess(
            fault_settings, tmp_path / "worker.log", 1, extra_env=proxied_env(fault_proxy)
        ).start()
        workers.append(worker)
        created = upload(client, account, content, "big.bin")
        assert created.status_code == 202, created.text
        file_id = created.json()["id"]

        def given_back():
            body = client.get(f"/api/v1/files/{file_id}", headers=account.headers).json()
            assert body["status"] != "failed", body
            return body if body["status"] == "pending" and body["error"] else None

        waiting = wait_until(given_back, 90, what="the job giving the file back")
        assert waiting["error"] == "The storage did not answer. It will be tried again shortly."
        assert fault_proxy.requests("POST", r"uploadType=resumable")
        fault_proxy.remove(outage)

        ready = wait_for_status(client, account, file_id, {"ready", "failed"}, 90)
        assert ready["status"] == "ready", ready
        assert ready["error"] is None
        original = client.get(
            f"/api/v1/files/{file_id}/content?format=original", headers=account.headers
        )
        assert original.status_code == 200
        assert original.content == content
    refused = [r for r in fault_proxy.requests("PUT", r"upload_id=")]
    assert len(refused) >= 2, "the outage was not seen"
