"""An upload's life: pending, processing, ready (or failed), and the job run twice or late.

Every test runs once per storage backend (`app`, `client`, `storage` follow the `backend`
parameter). The job is the worker's own (`worker.tasks.compress_file`): the tests run it
with `run_jobs(app)` once they have set the stage, except the first, which watches a real
Celery worker move a file forward. That worker runs on a database and a `filesystem://`
broker of its own, so nothing else sweeps or takes its jobs. A delete while the job runs,
and the races with a worker's claim, need two real database connections: those tests
commit for real, on fresh users (removed at their end).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import uuid
import zipfile
from collections.abc import Iterator
from urllib.parse import unquote

import pytest

from app.db import make_session_factory
from app.errors import PreconditionFailed
from app.queue.jobs import JobQueue
from app.runtime import build_runtime
from app.services import compress_job, files, leases
from app.services.spool import SpooledUpload
from tests.helpers import (
    Account,
    InlineJobs,
    committed_account,
    remove_account,
    run_jobs,
    runtime,
    upload,
    wait_until,
)
from tests.worker.support import LiveWorker, live_worker, unzip_test

ORDER = ["pending", "processing", "ready"]


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


def filename_star(disposition: str) -> str:
    """The RFC 8187 `filename*` of a Content-Disposition, decoded."""
    match = re.search(r"filename\*=UTF-8''([^;]+)", disposition)
    assert match, disposition
    return unquote(match.group(1))


def run_to_ready(app, client, account, file_id: str) -> dict:
    """Run the upload's job; the file, ready."""
    assert run_jobs(app) == ["ready"]
    body = client.get(f"/api/v1/files/{file_id}", headers=account.headers).json()
    assert body["status"] == "ready", body
    return body


def listed(client, account, file_id: str, **query) -> dict:
    page = client.get("/api/v1/files", headers=account.headers, params={"limit": 100, **query})
    assert page.status_code == 200, page.text
    (item,) = [item for item in page.json()["items"] if item["id"] == file_id] or [None]
    return item


# A real worker, on a database and a broker of its own.


@pytest.fixture
def live(settings, tmp_path) -> Iterator[LiveWorker]:
    with live_worker(settings, tmp_path, "instashare_lifecycle") as running:
        yield running


def test_status_moves_forward_to_ready(live):
    client, alice, storage, worker = live.client, live.account, live.storage, live.worker
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

    def reached_ready() -> bool:
        got = client.get(f"/api/v1/files/{file_id}", headers=alice.headers)
        status = got.json()["status"]
        assert status in ORDER, (got.json(), worker.log()[-3000:])
        if status != seen[-1]:
            seen.append(status)
        return status == "ready"

    wait_until(reached_ready, 60, 0.005, what=f"file {file_id} ready (see {worker.log_path})")
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


# The job itself, run when the test says so.


def test_zip_round_trip(app, client, alice, storage, tmp_path):
    name = "informe año 2024.log"
    content = text_log(3 * 1024 * 1024 + 123)
    file_id = upload(client, alice, content, filename=name).json()["id"]
    body = run_to_ready(app, client, alice, file_id)

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
    assert not storage.exists(f"tmp/{alice.id}/uploads/{file_id}")


@pytest.mark.parametrize("name", ["notes.txt", "measurements 2024.log"])  # typed and untyped
def test_original_bytes_come_back_with_their_name(app, client, alice, name):
    content = text_log(1024 * 1024 + 7)
    file_id = upload(client, alice, content, filename=name).json()["id"]
    run_to_ready(app, client, alice, file_id)
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
def test_incompressible_input_is_stored(app, client, alice, tmp_path, filename, size):
    content = os.urandom(size)
    file_id = upload(client, alice, content, filename=filename).json()["id"]
    body = run_to_ready(app, client, alice, file_id)
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


def test_empty_file(app, client, alice, storage, tmp_path):
    file_id = upload(client, alice, b"", filename="empty").json()["id"]
    body = run_to_ready(app, client, alice, file_id)
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


# Jobs that come late, or twice.


def test_missing_staged_upload_fails_readably(app, client, alice, storage):
    created = upload(client, alice, text_log(100_000), filename="lost.log")
    assert created.status_code == 202, created.text
    file_id = created.json()["id"]
    staged_key = f"tmp/{alice.id}/uploads/{file_id}"
    assert storage.exists(staged_key)
    storage.delete(staged_key)  # before the job runs
    assert run_jobs(app) == ["failed"]
    body = client.get(f"/api/v1/files/{file_id}", headers=alice.headers).json()
    assert body["status"] == "failed", body
    assert body["error"] == "The uploaded bytes are missing from storage."
    assert body["processed_at"] is not None
    assert body["compressed_size"] is None

    for params in ({}, {"format": "original"}):
        got = client.get(f"/api/v1/files/{file_id}/content", headers=alice.headers, params=params)
        assert got.status_code == 409
        assert got.headers["Content-Type"] == "application/problem+json"
        problem = got.json()
        assert problem["status"] == 409
        assert "The uploaded bytes are missing from storage." in problem["detail"]
        assert "Retry-After" not in got.headers  # failed for good: retrying will not help
    assert objects(storage, alice) == []


def test_file_deleted_while_pending_leaves_no_objects(app, client, alice, storage):
    file_id = upload(client, alice, text_log(200_000), filename="gone.log").json()["id"]
    assert client.get(f"/api/v1/files/{file_id}", headers=alice.headers).json()["status"] == (
        "pending"
    )
    assert client.delete(f"/api/v1/files/{file_id}", headers=alice.headers).status_code == 204
    assert objects(storage, alice) == []
    assert run_jobs(app) == ["skipped"]  # its job found nothing to do
    assert objects(storage, alice) == []


# Tests that need two real database connections commit for real, on fresh users.


@dataclasses.dataclass
class Committed:
    app: object  # on committing sessions of the run's database; its jobs held inline
    account: Account


@pytest.fixture(scope="module")
def _committing_apps() -> dict:
    return {}


@pytest.fixture
def make_committed(_committing_apps, engine) -> Iterator:
    """An app for some settings that commits for real, and a fresh committed user.

    The user goes at the end, with its rows and objects.
    """
    from app.web import create_app

    made: list[Committed] = []

    def make(settings) -> Committed:
        app = _committing_apps.get(settings)
        if app is None:
            sessions = make_session_factory(engine)
            rt = build_runtime(settings, sessions=sessions, jobs=InlineJobs())
            app = _committing_apps[settings] = create_app(settings, runtime=rt)
        rt = runtime(app)
        rt.jobs.waiting.clear()
        made.append(Committed(app, committed_account(rt.sessions, settings)))
        return made[-1]

    yield make
    for committed in made:
        rt = runtime(committed.app)
        for key in list(rt.storage.list(f"{committed.account.id}/")):
            rt.storage.delete(key)
        remove_account(rt.sessions, committed.account)


def test_file_deleted_while_processing_leaves_no_objects(make_committed, settings):
    # The API's delete commits while the job's transaction is open: two connections.
    committed = make_committed(settings)
    app, alice = committed.app, committed.account
    storage = runtime(app).storage
    client = app.test_client()
    lease = 60
    file_id = upload(client, alice, text_log(3_000_000), filename="gone.log").json()["id"]
    deletions = []

    def delete_mid_write() -> None:
        if not deletions:
            got = client.get(f"/api/v1/files/{file_id}", headers=alice.headers)
            assert got.json()["status"] == "processing"
            deleted = client.delete(f"/api/v1/files/{file_id}", headers=alice.headers)
            deletions.append(deleted.status_code)

    with runtime(app).sessions() as session:
        # This test is the worker holding the job, and runs the job's own code.
        job = leases.claim(session, uuid.UUID(file_id), lease)
        assert job is not None
        done = compress_job.compress(
            session, storage, job, lease_seconds=lease, on_progress=delete_mid_write
        )
    assert (done, deletions) == (False, [204])
    assert objects(storage, alice) == []
    assert run_jobs(app) == ["skipped"]  # the queued job finds no file
    assert objects(storage, alice) == []


def test_running_the_job_again_changes_nothing(app, client, alice, storage):
    rt = runtime(app)
    file_id = upload(client, alice, text_log(500_000), filename="again.log").json()["id"]
    run_to_ready(app, client, alice, file_id)  # the upload's one job: ready
    before = client.get(f"/api/v1/files/{file_id}", headers=alice.headers)
    archive_key = f"{alice.id}/{file_id}.zip"
    archive_bytes = b"".join(storage.iter_chunks(archive_key))
    objects_before = objects(storage, alice)

    with rt.sessions() as session:
        assert rt.jobs.send_compression(session, uuid.UUID(file_id))
        assert rt.jobs.send_compression(session, uuid.UUID(file_id))
    assert run_jobs(app) == ["skipped", "skipped"]

    after = client.get(f"/api/v1/files/{file_id}", headers=alice.headers)
    assert after.headers["ETag"] == before.headers["ETag"]
    assert after.json() == before.json()  # updated_at included: resending is bookkeeping
    assert objects(storage, alice) == objects_before
    assert b"".join(storage.iter_chunks(archive_key)) == archive_bytes


def spooled(app, data: bytes) -> SpooledUpload:
    """An upload as the multipart parser leaves it: spooled to disk, measured."""
    upload, fd = SpooledUpload.create(runtime(app).settings.spool_root)
    with os.fdopen(fd, "wb") as sink:
        sink.write(data)
    upload.update(data)
    return upload


def test_delete_racing_the_workers_claim(make_committed, local_settings):
    committed = make_committed(local_settings)
    rt, account = runtime(committed.app), committed.account
    with committed.app.test_client() as client:
        with rt.sessions() as worker_session, rt.sessions() as api_session:
            # The upload's own job must not get there first: send it to nobody.
            file = files.create(
                api_session,
                rt.storage,
                JobQueue(lambda task, args, queue: None),
                owner_id=uuid.UUID(account.id),
                upload=spooled(committed.app, b"racing\n"),
                name="race.txt",
                quota_bytes=10**9,
            )
            files.get(api_session, file.owner_id, file.id)  # the API has read the file
            job = leases.claim(worker_session, file.id, 60)
            assert job is not None
            files.delete(api_session, rt.storage, file.owner_id, file.id)
            # The worker learns it at its next lease renewal, and stops.
            assert leases.renew(worker_session, job, 60) is False
        assert client.get(f"/api/v1/files/{file.id}", headers=account.headers).status_code == 404
        assert list(rt.storage.list(f"{account.id}/")) == []


@pytest.mark.parametrize("with_if_match", [False, True])
def test_rename_racing_the_workers_claim(make_committed, local_settings, with_if_match):
    """Without If-Match the rename just happens; with the ETag read before, it is 412."""
    committed = make_committed(local_settings)
    rt, account = runtime(committed.app), committed.account
    with committed.app.test_client() as client:
        with rt.sessions() as worker_session, rt.sessions() as api_session:
            file = files.create(
                api_session,
                rt.storage,
                JobQueue(lambda task, args, queue: None),  # its own job must not get there first
                owner_id=uuid.UUID(account.id),
                upload=spooled(committed.app, b"racing\n"),
                name="before.txt",
                quota_bytes=10**9,
            )
            file_id, owner_id = file.id, file.owner_id
            read = files.get(api_session, owner_id, file_id)  # the API has read it
            tag = files.etag(read)
            assert leases.claim(worker_session, file_id, 60) is not None
            if with_if_match:
                with pytest.raises(PreconditionFailed):
                    files.rename(api_session, owner_id, file_id, "after.txt", if_match=tag)
            else:
                renamed = files.rename(api_session, owner_id, file_id, "after.txt")
                assert (renamed.name, renamed.status.value) == ("after.txt", "processing")
        shown = client.get(f"/api/v1/files/{file_id}", headers=account.headers).json()
        assert shown["name"] == ("before.txt" if with_if_match else "after.txt")
