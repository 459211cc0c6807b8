"""The job against a storage that misbehaves: 503s past the library's retries, two writers.

A real worker process talks to the GCS emulator through the fault proxy
(tests/faultproxy.py); the app that takes the uploads talks to the emulator directly. The
archives are over 8 MiB, so the worker writes them through resumable sessions.
"""

from __future__ import annotations

import os
import re
import signal
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import replace

import pytest

from app.db import utcnow
from app.models import File
from app.queue.celery import make_celery
from app.queue.jobs import JobQueue, celery_sender
from tests.helpers import (
    WorkerProcess,
    account_in,
    committing_app,
    fresh_database,
    listening,
    make_settings,
    proxied_env,
    runtime,
    stored_keys,
    upload,
    wait_for_status,
    wait_until,
)
from tests.worker.test_compression_setting import deflated_size

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


@pytest.fixture
def second_broker_url(tmp_path) -> Iterator[str]:
    """A redis-server for worker B alone: worker A never sees the job sent there."""
    argv = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path), "--port"]  # fmt: skip
    with listening(lambda port: [*argv, str(port)]) as port:
        yield f"redis://127.0.0.1:{port}/0"


def test_two_workers_on_one_file_the_download_is_the_archive_the_row_records(
    fault_settings, fault_proxy, second_broker_url, workers, tmp_path
):
    """Worker A's lease runs out while its archive's last chunk hangs; worker B does the
    file (with the other compression setting, so its bytes differ); then A's write lands
    late. A download serves B's archive, the one the row records, and A's is removed."""
    # Deflates, but not below one 8 MiB chunk: the archive goes through a resumable session.
    content = os.urandom(12 * MIB).translate(bytes(i % 200 for i in range(256)))
    slow_storage = {"gcs_timeout_seconds": 300.0, "gcs_deadline_seconds": 300.0}
    settings_a = replace(fault_settings, compression="fast", **slow_storage)
    # B: a broker of its own (the test sends it the job, as the sweep would once A's lease
    # ran out; A's stopped scheduler holds the sweep), no proxy, the other compression.
    settings_b = replace(
        fault_settings, compression="small", broker_url=second_broker_url, **slow_storage
    )
    # A's second archive PUT is its session's last chunk: it waits until released.
    last_chunk = fault_proxy.stall("PUT", r"upload_id=", seconds=600, nth=2)
    with committing_app(settings_a) as app, app.test_client() as client:
        account = account_in(app)
        sessions = runtime(app).sessions
        worker_a = WorkerProcess(
            settings_a, tmp_path / "worker-a.log", 1, extra_env=proxied_env(fault_proxy)
        ).start()
        workers.append(worker_a)
        created = upload(client, account, content, "server.log")
        assert created.status_code == 202, created.text
        file_id = created.json()["id"]

        def row() -> File:
            with sessions() as session:
                return session.get_one(File, uuid.UUID(file_id))

        wait_until(lambda: last_chunk.acted, 120, what="worker A's last chunk held")
        wait_until(
            lambda: row().lease_expires_at < utcnow(), 60, what="worker A's lease running out"
        )
        assert worker_a.proc is not None
        os.killpg(worker_a.proc.pid, signal.SIGSTOP)  # A can neither renew nor sweep
        try:
            worker_b = WorkerProcess(settings_b, tmp_path / "worker-b.log", 1).start()
            workers.append(worker_b)
            sender = make_celery(settings_b)
            try:
                with sessions() as session:
                    jobs = JobQueue(celery_sender(sender))
                    assert jobs.send_compression(session, uuid.UUID(file_id))
            finally:
                sender.close()
            ready = wait_for_status(client, account, file_id, {"ready", "failed"}, 120)
            assert ready["status"] == "ready", (ready, worker_b.log())
        finally:
            os.killpg(worker_a.proc.pid, signal.SIGCONT)
        recorded = row()
        assert recorded.attempts == 2
        fault_proxy.release()  # A's last chunk reaches the emulator: A's archive exists now
        first_key = f"{account.id}/{file_id}.zip"
        wait_until(
            lambda: fault_proxy.requests("DELETE", re.escape(f"/{first_key}")),
            120,
            what=f"worker A removing its late archive\n{worker_a.log()}",
        )

        # The row names B's archive; A's is gone from the owner's folder (the proxy records
        # A's DELETE as it arrives, before the emulator carries it out).
        assert recorded.archive_object == f"{account.id}/{file_id}.2.zip"

        def archives() -> list[str]:
            return [k for k in stored_keys(app, account.id) if k.endswith(".zip")]

        wait_until(lambda: archives() == [recorded.archive_object], 30, what="one archive")
        assert row().archive_generation == recorded.archive_generation
        assert recorded.archive_generation == runtime(app).storage.generation(
            recorded.archive_object
        )
        # What a download serves is that archive: B's bytes, whole, holding the upload.
        zipped = client.get(f"/api/v1/files/{file_id}/content", headers=account.headers)
        assert zipped.status_code == 200, zipped.text
        assert len(zipped.content) == recorded.compressed_size
        path = tmp_path / "served.zip"
        path.write_bytes(zipped.content)
        with zipfile.ZipFile(path) as archive:
            (entry,) = archive.infolist()
            assert recorded.crc32 == entry.CRC
            assert archive.read(entry) == content
        # Deflated by B's setting, not A's (the worker's chunking moves a few bytes).
        small, fast = deflated_size("small", content), deflated_size("fast", content)
        assert abs(entry.compress_size - small) < abs(entry.compress_size - fast)
        original = client.get(
            f"/api/v1/files/{file_id}/content?format=original", headers=account.headers
        )
        assert original.status_code == 200
        assert original.content == content
