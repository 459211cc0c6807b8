"""`instashare-server reconcile`: storage against the database, listed and repaired.

A database and a storage area of the test's own (a fresh PostgreSQL database; a bucket
of its own on the emulator, or a directory), with both kinds of drift laid out in them:
the command, run as an operator runs it, lists each finding, exits 1, repairs them with
`--repair`, and a real worker then compresses again the file it re-queued.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_session_factory
from app.models import File, FileStatus, Upload, User
from app.services import reconcile
from app.settings import Settings
from app.storage import Storage, make_storage
from tests.factories import PASSWORD_HASH
from tests.helpers import (
    WorkerProcess,
    fresh_database,
    make_settings,
    redis_db,
    settings_env,
    wait_until,
)
from tests.test_server_command import run_cli

# A broker database of its own: no other test's worker takes these jobs.
pytestmark = pytest.mark.slow  # every test here starts a worker (and the command)

RECONCILE_BROKER_DB = 7


@dataclass
class Deployment:
    settings: Settings
    sessions: sessionmaker
    storage: Storage

    def cli(self, *args: str):
        return run_cli("reconcile", *args, env=settings_env(self.settings))


@pytest.fixture
def deployment(tmp_path, backend, redis_url, request) -> Iterator[Deployment]:
    """A fresh database and storage of its own (reconcile judges everything it finds)."""
    bucket = f"reconcile-{uuid.uuid4().hex[:12]}"
    if backend == "gcs":
        request.getfixturevalue("gcs_emulator")
    with fresh_database() as url:
        broker = redis_db(RECONCILE_BROKER_DB)
        settings = make_settings(
            tmp_path / "data", url, backend, gcs_bucket=bucket, broker_url=broker
        )
        storage = make_storage(settings)
        if backend == "gcs":
            storage.client.create_bucket(bucket)  # type: ignore[attr-defined]
        engine = make_engine(url)
        try:
            yield Deployment(settings, make_session_factory(engine), storage)
        finally:
            engine.dispose()


def _put(storage: Storage, key: str, data: bytes) -> None:
    with storage.writer(key, "application/octet-stream") as sink:
        sink.write(data)


def _file(session: Session, owner: uuid.UUID, name: str, status: FileStatus, data: bytes) -> File:
    file = File(
        id=uuid.uuid4(),
        owner_id=owner,
        name=name,
        status=status,
        size=len(data),
        crc32=zlib.crc32(data),
        content_type="text/plain",
        attempts=1,
        enqueued_at=dt.datetime.now(dt.UTC),
        compressed_size=10 if status == FileStatus.READY else None,
    )
    session.add(file)
    return file


def test_reconcile_lists_and_repairs_both_kinds_of_drift(deployment, tmp_path):
    storage = deployment.storage
    owner = uuid.uuid4()
    data = b"the original bytes of a file\n" * 100
    with deployment.sessions() as session:
        session.add(User(id=owner, email=f"{owner}@example.com", password_hash=PASSWORD_HASH))
        session.flush()
        whole = _file(session, owner, "whole.txt", FileStatus.READY, data)
        requeue = _file(session, owner, "requeue.txt", FileStatus.READY, data)
        lost = _file(session, owner, "lost.txt", FileStatus.READY, data)
        unstaged = _file(session, owner, "unstaged.txt", FileStatus.PENDING, data)
        waiting = _file(session, owner, "waiting.txt", FileStatus.PENDING, data)
        upload = Upload(
            id=uuid.uuid4(),
            owner_id=owner,
            name="coming.bin",
            content_type="application/octet-stream",
            length=100,
            offset=5,
            crc32=0,
            parts=1,
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
        )
        session.add(upload)
        session.commit()
    # What each row needs, or not: a whole ready file, a pending one waiting for the worker,
    # an upload in progress with a part.
    _put(storage, whole.archive_key, b"a zip")
    _put(storage, waiting.staged_key, data)
    _put(storage, f"{upload.parts_prefix}000000000000000-abc", b"12345")
    # Drift of one kind: rows whose objects are gone (the archive of `requeue`, whose upload
    # is still staged; of `lost`, with nothing left; the staged upload of `unstaged`).
    _put(storage, requeue.staged_key, data)
    # Of the other: objects no row needs.
    orphan_archive = f"{owner}/{uuid.uuid4()}.zip"
    orphan_parts = f"tmp/{owner}/uploads/{uuid.uuid4()}.parts/000000000000000-def"
    leftover = whole.staged_key  # the file is ready: its staged upload is left over
    old_layout = f"{owner}/uploads/{uuid.uuid4()}.compose-0123456789ab-0"
    for key in (orphan_archive, orphan_parts, leftover, old_layout):
        _put(storage, key, b"left behind")
    _put(storage, "README.txt", b"not ours")

    # Within the grace period objects are not judged (an upload may be finishing); rows are.
    young = deployment.cli()
    assert young.returncode == 1, young.stderr
    assert [line.split(" ", 2)[:2] for line in young.stdout.splitlines()] == sorted(
        [["missing", str(f.id)] for f in (requeue, lost, unstaged)], key=lambda x: x[1]
    ), young.stdout

    listed = deployment.cli("--grace-seconds", "0")
    assert listed.returncode == 1, listed.stderr
    lines = listed.stdout.splitlines()
    by_subject = {line.split()[1]: line for line in lines}
    assert set(by_subject) == {
        orphan_archive, orphan_parts, leftover, old_layout, "README.txt",
        str(requeue.id), str(lost.id), str(unstaged.id),
    }, listed.stdout  # fmt: skip
    assert by_subject[orphan_archive].startswith(f"orphan  {orphan_archive} (11 bytes, written ")
    assert by_subject[orphan_archive].endswith("no file has this archive; --repair would delete it")
    assert "the file is ready: its staged upload is left over" in by_subject[leftover]
    assert by_subject["README.txt"].endswith("not a key Instashare writes; left alone")
    assert by_subject[str(requeue.id)] == (
        f"missing {requeue.id} (owner {owner}, ready): its archive is missing; "
        "--repair would queue it to be compressed again"
    )
    assert by_subject[str(lost.id)].endswith("--repair would mark it failed")
    assert by_subject[str(unstaged.id)] == (
        f"missing {unstaged.id} (owner {owner}, pending): its uploaded bytes are missing; "
        "--repair would mark it failed"
    )

    repaired = deployment.cli("--repair", "--grace-seconds", "0")
    assert repaired.returncode == 0, repaired.stderr
    assert len(repaired.stdout.splitlines()) == len(lines)
    keys = set(storage.list(""))
    assert keys == {
        whole.archive_key, waiting.staged_key, requeue.staged_key,
        f"{upload.parts_prefix}000000000000000-abc", "README.txt",
    }  # fmt: skip
    with deployment.sessions() as session:
        rows = {f.id: f for f in session.scalars(sa.select(File))}
    assert rows[whole.id].status == FileStatus.READY
    assert rows[waiting.id].status == FileStatus.PENDING
    assert (rows[requeue.id].status, rows[requeue.id].error) == (
        FileStatus.PENDING,
        reconcile.ARCHIVE_GONE_REQUEUED,
    )
    assert rows[requeue.id].enqueued_at is None  # for the worker's sweep to send
    assert (rows[lost.id].status, rows[lost.id].error) == (
        FileStatus.FAILED,
        "The archive is missing from storage and the upload is gone; upload the file again.",
    )
    assert (rows[unstaged.id].status, rows[unstaged.id].error) == (
        FileStatus.FAILED,
        "The uploaded bytes are missing from storage; upload the file again.",
    )

    # A real worker's sweep sends the re-queued file's job: it is ready again, from its upload.
    worker = WorkerProcess(deployment.settings, tmp_path / "worker.log", concurrency=1).start()
    try:

        def compressed() -> bool:
            with deployment.sessions() as session:
                return session.get(File, requeue.id).status == FileStatus.READY

        wait_until(compressed, 90, 0.2, what="the re-queued file ready")
        # Marked ready, then its staged upload deleted: a moment apart.
        wait_until(lambda: not storage.exists(requeue.staged_key), 30, 0.1, what="staged gone")
    finally:
        worker.kill()
    assert storage.exists(requeue.archive_key)

    again = deployment.cli("--grace-seconds", "0")
    assert again.returncode == 0, again.stdout
    assert again.stdout.splitlines() == [
        by_subject["README.txt"],
        "storage and database agree: every object has its row and every row its objects",
    ]
