"""The job against a storage that misbehaves: 503s past the library's retries, two writers.

A real worker process talks to the GCS emulator through the fault proxy
(tests/faultproxy.py); the app that takes the uploads talks to the emulator directly. The
archives are over 8 MiB, so the worker writes them through resumable sessions.
"""

from __future__ import annotations

import dataclasses
import io
import os
import uuid
import zipfile
from collections.abc import Iterator

import pytest

from app.models import File
from tests.helpers import (
    WorkerProcess,
    account_in,
    committing_app,
    fresh_database,
    listening,
    make_settings,
    proxied_env,
    proxied_gcs,
    runtime,
    upload,
    wait_for_status,
    wait_until,
)
from tests.worker.support import wait_for_results

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


def _log_text(size: int) -> bytes:
    """Text that each compression setting packs to a different size."""
    line = b"%08d 2026-12-07T13:%02d:%02dZ INFO request served in %d ms for account %x\n"
    out = bytearray()
    i = 0
    while len(out) < size:
        out += line % (i, i // 60 % 60, i % 60, i * 7919 % 1000, i * 2654435761 % 2**32)
        i += 1
    return bytes(out[:size])


def test_a_writer_whose_lease_ran_out_leaves_the_archive_its_successor_recorded(
    fault_settings, fault_proxy, workers, tmp_path
):
    content = _log_text(3 * MIB)
    # Two workers that write different archives of the same file. The first one's storage
    # calls may take longer than its lease (a paused VM or process does the same).
    slow = dataclasses.replace(
        fault_settings, compression="small", gcs_timeout_seconds=120, gcs_deadline_seconds=120
    )
    fast = dataclasses.replace(fault_settings, compression="fast")
    with committing_app(fault_settings) as app, app.test_client() as client:
        # The app's reads go through the proxy too: it records what each GET names.
        runtime(app).storage = proxied_gcs(fault_proxy)
        account = account_in(app)
        created = upload(client, account, content, "server.log")
        assert created.status_code == 202, created.text
        file_id = created.json()["id"]
        # The first attempt's upload session is held before its bytes reach storage: its
        # lease runs out, and the second worker takes the file over.
        held = fault_proxy.stall(
            "PUT", rf"upload_id=[^&]*/{file_id}\.zip", seconds=120, during="request"
        )
        first = WorkerProcess(slow, tmp_path / "first.log", 1, extra_env=proxied_env(fault_proxy))
        workers.append(first.start())
        wait_until(lambda: held.acted, 60, what="the first worker's write to be held")
        second = WorkerProcess(fast, tmp_path / "second.log", 1, extra_env=proxied_env(fault_proxy))
        workers.append(second.start())
        ready = wait_for_status(client, account, file_id, {"ready", "failed"}, 90)
        assert ready["status"] == "ready", ready

        # The first worker's write goes through now, long after its lease ran out.
        fault_proxy.release()
        # (Then, maybe, the job the sweep sent again while it was held: nothing to do.)
        assert wait_for_results(first, 1, 60)[0] == "lease-lost"

        fault_proxy.clear()
        zipped = client.get(f"/api/v1/files/{file_id}/content", headers=account.headers)
        original = client.get(
            f"/api/v1/files/{file_id}/content?format=original", headers=account.headers
        )
        with runtime(app).sessions() as session:
            row = session.get(File, uuid.UUID(file_id))
            assert row is not None
            recorded = (row.archive_object, row.archive_generation, row.compressed_size)
            crc = row.crc32
        stored = sorted(runtime(app).storage.list(f"{account.id}/"))

    assert zipped.status_code == 200 and original.status_code == 200
    # The bytes served are the archive the row describes: its size, its entry's CRC.
    assert len(zipped.content) == ready["compressed_size"] == recorded[2]
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        (entry,) = archive.infolist()
        assert crc == entry.CRC
        assert archive.read(entry) == content
    assert original.content == content
    # The second attempt's archive, recorded with its generation; the first one's is gone.
    assert recorded[0] == f"{account.id}/{file_id}.2.zip"
    assert stored == [recorded[0]]
    # Every read of the archive named the recorded generation: one version per response.
    reads = fault_proxy.requests("GET", rf"/o/{account.id}/{file_id}")
    assert reads
    assert {r.param("generation") for r in reads} == {str(recorded[1])}, [r.target for r in reads]
