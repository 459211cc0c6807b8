"""An upload's life with a real Celery worker: pending, processing, ready (or failed).

Most tests run once per storage backend (the `client`, `storage` and `worker` fixtures
follow the `backend` parameter). The failure test runs its own app and worker on a broker
database of its own, so the job waits in a queue nobody reads until the test is ready.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import subprocess
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
import redis

from app.errors import PreconditionFailed
from app.services import files, processing
from app.services.jobs import JobQueue
from app.services.spool import SpooledUpload
from tests.conftest import (
    REDIS_URL,
    Account,
    WorkerProcess,
    new_email,
    upload,
    wait_for_status,
)

ORDER = ["pending", "processing", "ready"]
RESULT = re.compile(r"compress_upload\[[0-9a-f-]+\] succeeded in \S+s: '([a-z-]+)'")
# A Redis database no other fixture uses: the private queue's.
PRIVATE_BROKER_DB = 11


def text_log(size: int) -> bytes:
    """Log-like text that deflates well but not absurdly well."""
    lines = (
        b"2024-05-17T09:%02d:%02d.%03dZ INFO req=%08x GET /api/v1/files/%d -> 200 in %d ms\n"
        % (i // 60 % 60, i % 60, i % 1000, i * 2654435761 % 2**32, i % 9973, i % 311)
        for i in range(size // 60 + 1)
    )
    return b"".join(lines)[:size]


def objects(storage, account: Account) -> list[str]:
    return sorted(storage.list(f"{account.id}/"))


def compress_results(worker: WorkerProcess) -> list[str]:
    """What each compress_upload run returned, in order, from the worker's log."""
    return RESULT.findall(worker.log())


def wait_for_results(
    worker: WorkerProcess, seen: int, count: int = 1, timeout: float = 30.0
) -> list[str]:
    """The compress_upload results after the first `seen`, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        results = compress_results(worker)
        if len(results) >= seen + count:
            time.sleep(0.2)  # one more would be a job too many: let it show
            return compress_results(worker)[seen:]
        time.sleep(0.05)
    raise AssertionError(
        f"the worker ran no {count} new job(s) in {timeout}s:\n{worker.log()[-3000:]}"
    )


def unzip_test(path: Path) -> None:
    done = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No errors detected" in done.stdout, done.stdout


def filename_star(disposition: str) -> str:
    """The RFC 8187 `filename*` of a Content-Disposition, decoded."""
    match = re.search(r"filename\*=UTF-8''([^;]+)", disposition)
    assert match, disposition
    return unquote(match.group(1))


def wait_ready(client, account, file_id: str, worker: WorkerProcess) -> dict:
    body = wait_for_status(client, account, file_id, {"ready", "failed"})
    assert body["status"] == "ready", (body, worker.log()[-3000:])
    return body


def listed(client, account, file_id: str, **query) -> dict:
    page = client.get("/api/v1/files", headers=account.headers, params={"limit": 100, **query})
    assert page.status_code == 200, page.text
    (item,) = [item for item in page.json()["items"] if item["id"] == file_id] or [None]
    return item


def test_status_moves_forward_to_ready(client, alice, worker, storage):
    content = text_log(4 * 1024 * 1024)
    created = upload(client, alice, content, filename="server.log")
    assert created.status_code == 202, created.text
    first = created.json()
    file_id = first["id"]
    assert created.headers["Location"] == f"/api/v1/files/{file_id}"
    assert first["status"] == "pending"
    assert (first["compressed_size"], first["processed_at"], first["error"]) == (None, None, None)
    assert first["size"] == len(content)
    assert first["sha256"] == hashlib.sha256(content).hexdigest()
    assert listed(client, alice, file_id)["status"] in ORDER

    seen = ["pending"]
    deadline = time.monotonic() + 60
    while seen[-1] != "ready" and time.monotonic() < deadline:
        got = client.get(f"/api/v1/files/{file_id}", headers=alice.headers)
        status = got.json()["status"]
        assert status in ORDER, (got.json(), worker.log()[-3000:])
        if status != seen[-1]:
            seen.append(status)
        time.sleep(0.005)
    # Never backwards; `processing` may flash by between two polls.
    assert seen[-1] == "ready", seen
    assert [ORDER.index(s) for s in seen] == sorted(ORDER.index(s) for s in seen)

    ready = client.get(f"/api/v1/files/{file_id}", headers=alice.headers)
    body = ready.json()
    archive_key = f"{alice.id}/{file_id}.zip"
    assert body["compressed_size"] == storage.size(archive_key)
    assert 0 < body["compressed_size"] < len(content) / 3
    assert body["processed_at"] >= body["created_at"]
    assert body["updated_at"] >= body["processed_at"]
    assert body["error"] is None
    assert ready.headers["ETag"] != created.headers["ETag"]
    assert listed(client, alice, file_id) == body
    assert listed(client, alice, file_id, status="ready") == body
    assert listed(client, alice, file_id, status="pending") is None


def test_zip_round_trip(client, alice, worker, storage, tmp_path):
    name = "informe año 2024.log"
    content = text_log(3 * 1024 * 1024 + 123)
    file_id = upload(client, alice, content, filename=name).json()["id"]
    body = wait_ready(client, alice, file_id, worker)

    zipped = client.get(f"/api/v1/files/{file_id}/content", headers=alice.headers)
    assert zipped.status_code == 200
    assert zipped.headers["Content-Type"] == "application/zip"
    assert filename_star(zipped.headers["Content-Disposition"]) == f"{name}.zip"
    assert len(zipped.content) == body["compressed_size"] < len(content)
    path = tmp_path / "download.zip"
    path.write_bytes(zipped.content)
    unzip_test(path)
    with zipfile.ZipFile(path) as archive:
        (entry,) = archive.infolist()
        assert entry.filename == name
        assert entry.compress_type == zipfile.ZIP_DEFLATED
        assert archive.read(entry) == content

    # The staged upload is gone; the archive sits in the owner's folder.
    assert objects(storage, alice) == [f"{alice.id}/{file_id}.zip"]
    assert not storage.exists(f"{alice.id}/uploads/{file_id}")


@pytest.mark.parametrize("name", ["notes.txt", "measurements 2024.log"])  # typed and untyped
def test_original_bytes_come_back_with_their_name(client, alice, worker, name):
    content = text_log(1024 * 1024 + 7)
    file_id = upload(client, alice, content, filename=name).json()["id"]
    wait_ready(client, alice, file_id, worker)
    original = client.get(
        f"/api/v1/files/{file_id}/content", headers=alice.headers, params={"format": "original"}
    )
    assert original.status_code == 200, original.text
    assert original.content == content
    own_type = "text/plain" if name.endswith(".txt") else "application/octet-stream"
    assert original.headers["Content-Type"].startswith(own_type)
    assert filename_star(original.headers["Content-Disposition"]) == name


@pytest.mark.parametrize(
    ("filename", "size"), [("noise.bin", 1024 * 1024), ("holiday.jpg", 300 * 1024)]
)
def test_incompressible_input_is_stored(client, alice, worker, tmp_path, filename, size):
    content = os.urandom(size)
    file_id = upload(client, alice, content, filename=filename).json()["id"]
    body = wait_ready(client, alice, file_id, worker)
    overhead = body["compressed_size"] - size
    assert 0 < overhead <= 200  # local header, directory and end record
    assert overhead / size < 0.001
    zipped = client.get(f"/api/v1/files/{file_id}/content", headers=alice.headers).content
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        (entry,) = archive.infolist()
        assert entry.compress_type == zipfile.ZIP_STORED
        assert archive.read(entry) == content
    (tmp_path / "stored.zip").write_bytes(zipped)
    unzip_test(tmp_path / "stored.zip")


def test_empty_file(client, alice, worker, storage, tmp_path):
    file_id = upload(client, alice, b"", filename="empty").json()["id"]
    body = wait_ready(client, alice, file_id, worker)
    assert body["size"] == 0
    zipped = client.get(f"/api/v1/files/{file_id}/content", headers=alice.headers)
    (tmp_path / "empty.zip").write_bytes(zipped.content)
    unzip_test(tmp_path / "empty.zip")
    with zipfile.ZipFile(tmp_path / "empty.zip") as archive:
        assert archive.namelist() == ["empty"]
        assert archive.read("empty") == b""
    original = client.get(
        f"/api/v1/files/{file_id}/content", headers=alice.headers, params={"format": "original"}
    )
    assert (original.status_code, original.content) == (200, b"")
    assert objects(storage, alice) == [f"{alice.id}/{file_id}.zip"]


# With a queue of their own that no worker reads until the test has set the stage.


@dataclasses.dataclass
class PrivateQueue:
    client: object
    account: Account
    storage: object
    runtime: object
    worker: WorkerProcess


@pytest.fixture
def private_queue(settings, tmp_path) -> Iterator[PrivateQueue]:
    """The backend's app on a private, empty broker database; its worker is not started."""
    from app.web import create_app

    broker_url = REDIS_URL.rsplit("/", 1)[0] + f"/{PRIVATE_BROKER_DB}"
    redis.Redis.from_url(broker_url).flushdb()
    private = dataclasses.replace(settings, broker_url=broker_url, data_dir=tmp_path / "data")
    app = create_app(private)
    runtime = app.app.extensions["instashare"]
    worker = WorkerProcess(private, tmp_path / "worker.log", concurrency=1)
    with app.test_client() as client:
        yield PrivateQueue(client, Account(client, new_email()), runtime.storage, runtime, worker)
    worker.stop()


def test_missing_staged_upload_fails_readably(private_queue):
    q = private_queue
    created = upload(q.client, q.account, text_log(100_000), filename="lost.log")
    assert created.status_code == 202, created.text
    file_id = created.json()["id"]
    staged_key = f"{q.account.id}/uploads/{file_id}"
    assert q.storage.exists(staged_key)
    q.storage.delete(staged_key)  # before any worker could see the job
    q.worker.start()
    body = wait_for_status(q.client, q.account, file_id, {"ready", "failed"})
    assert body["status"] == "failed", (body, q.worker.log()[-3000:])
    assert body["error"] == "The uploaded bytes are missing from storage."
    assert body["processed_at"] is not None
    assert body["compressed_size"] is None

    for params in ({}, {"format": "original"}):
        got = q.client.get(
            f"/api/v1/files/{file_id}/content", headers=q.account.headers, params=params
        )
        assert got.status_code == 409
        assert got.headers["Content-Type"] == "application/problem+json"
        problem = got.json()
        assert problem["status"] == 409
        assert "The uploaded bytes are missing from storage." in problem["detail"]
        assert "Retry-After" not in got.headers  # failed for good: retrying will not help
    assert objects(q.storage, q.account) == []


def test_file_deleted_while_pending_leaves_no_objects(private_queue):
    q = private_queue
    file_id = upload(q.client, q.account, text_log(200_000), filename="gone.log").json()["id"]
    assert (
        q.client.get(f"/api/v1/files/{file_id}", headers=q.account.headers).json()["status"]
        == "pending"
    )
    assert q.client.delete(f"/api/v1/files/{file_id}", headers=q.account.headers).status_code == 204
    assert objects(q.storage, q.account) == []
    q.worker.start()
    assert wait_for_results(q.worker, 0) == ["skipped"]  # its job found nothing to do
    assert objects(q.storage, q.account) == []


def test_file_deleted_while_processing_leaves_no_objects(private_queue):
    q = private_queue
    lease = 60
    file_id = upload(q.client, q.account, text_log(3_000_000), filename="gone.log").json()["id"]
    deletions = []

    def delete_mid_write() -> None:
        if not deletions:
            got = q.client.get(f"/api/v1/files/{file_id}", headers=q.account.headers)
            assert got.json()["status"] == "processing"
            deleted = q.client.delete(f"/api/v1/files/{file_id}", headers=q.account.headers)
            deletions.append(deleted.status_code)

    with q.runtime.sessions() as session:
        # This test is the worker holding the job, and runs the job's own code.
        job = processing.claim(session, uuid.UUID(file_id), lease)
        assert job is not None
        done = processing.run(
            session, q.storage, job, lease_seconds=lease, on_progress=delete_mid_write
        )
    assert (done, deletions) == (False, [204])
    assert objects(q.storage, q.account) == []
    q.worker.start()
    assert wait_for_results(q.worker, 0) == ["skipped"]  # the queued job finds no file
    assert objects(q.storage, q.account) == []


def test_running_the_job_again_changes_nothing(private_queue):
    q = private_queue
    q.worker.start()
    file_id = upload(q.client, q.account, text_log(500_000), filename="again.log").json()["id"]
    wait_ready(q.client, q.account, file_id, q.worker)
    before = q.client.get(f"/api/v1/files/{file_id}", headers=q.account.headers)
    archive_key = f"{q.account.id}/{file_id}.zip"
    archive_bytes = b"".join(q.storage.iter_chunks(archive_key))
    objects_before = objects(q.storage, q.account)

    seen = len(compress_results(q.worker))
    assert seen == 1
    with q.runtime.sessions() as session:
        assert q.runtime.jobs.send_compression(session, uuid.UUID(file_id))
        assert q.runtime.jobs.send_compression(session, uuid.UUID(file_id))
    assert wait_for_results(q.worker, seen, count=2) == ["skipped", "skipped"]

    after = q.client.get(f"/api/v1/files/{file_id}", headers=q.account.headers)
    assert after.headers["ETag"] == before.headers["ETag"]
    assert after.json() == before.json()  # updated_at included: resending is bookkeeping
    assert objects(q.storage, q.account) == objects_before
    assert b"".join(q.storage.iter_chunks(archive_key)) == archive_bytes


def spooled(app, data: bytes) -> SpooledUpload:
    """An upload as the multipart parser leaves it: spooled to disk, measured."""
    upload, fd = SpooledUpload.create(app.app.extensions["instashare"].settings.spool_root)
    with os.fdopen(fd, "wb") as sink:
        sink.write(data)
    upload.update(data)
    return upload


def test_delete_racing_the_workers_claim(local_app):
    runtime = local_app.app.extensions["instashare"]
    with local_app.test_client() as client:
        account = Account(client, new_email())
        with runtime.sessions() as worker_session, runtime.sessions() as api_session:
            # The upload's own job must not get there first: send it to nobody.
            file = files.create(
                api_session,
                runtime.storage,
                JobQueue(lambda task, args: None),
                owner_id=uuid.UUID(account.id),
                upload=spooled(local_app, b"racing\n"),
                name="race.txt",
                quota_bytes=10**9,
            )
            files.get(api_session, file.owner_id, file.id)  # the API has read the file
            job = processing.claim(worker_session, file.id, 60)
            assert job is not None
            files.delete(api_session, runtime.storage, file.owner_id, file.id)
            # The worker learns it at its next lease renewal, and stops.
            assert processing.renew(worker_session, job, 60) is False
        assert client.get(f"/api/v1/files/{file.id}", headers=account.headers).status_code == 404
        assert list(runtime.storage.list(f"{account.id}/")) == []


@pytest.mark.parametrize("with_if_match", [False, True])
def test_rename_racing_the_workers_claim(local_app, with_if_match):
    """Without If-Match the rename just happens; with the ETag read before, it is 412."""
    runtime = local_app.app.extensions["instashare"]
    with local_app.test_client() as client:
        account = Account(client, new_email())
        with runtime.sessions() as worker_session, runtime.sessions() as api_session:
            file = files.create(
                api_session,
                runtime.storage,
                JobQueue(lambda task, args: None),  # its own job must not get there first
                owner_id=uuid.UUID(account.id),
                upload=spooled(local_app, b"racing\n"),
                name="before.txt",
                quota_bytes=10**9,
            )
            file_id, owner_id = file.id, file.owner_id
            read = files.get(api_session, owner_id, file_id)  # the API has read it
            tag = files.etag(read)
            assert processing.claim(worker_session, file_id, 60) is not None
            if with_if_match:
                with pytest.raises(PreconditionFailed):
                    files.rename(api_session, owner_id, file_id, "after.txt", if_match=tag)
            else:
                renamed = files.rename(api_session, owner_id, file_id, "after.txt")
                assert (renamed.name, renamed.status.value) == ("after.txt", "processing")
        shown = client.get(f"/api/v1/files/{file_id}", headers=account.headers).json()
        assert shown["name"] == ("before.txt" if with_if_match else "after.txt")
