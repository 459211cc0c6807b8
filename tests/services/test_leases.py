"""The job's lease: claim, renew, complete, release, fail and the sweep's queries.

These run against a PostgreSQL database of their own: the suite's shared database is
swept every second by the session's workers, which would claim and fail the unsent files
these tests create on purpose.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
import zlib
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from app.db import make_engine, make_session_factory, utcnow
from app.models import File, FileStatus, User
from app.services import processing
from app.services.compression import ArchiveResult
from app.storage.local import LocalStorage
from tests.conftest import fresh_database

LEASE = 30


@pytest.fixture(scope="module")
def engine() -> Iterator[sa.Engine]:
    """A fresh, migrated PostgreSQL database for this module, dropped at the end."""
    with fresh_database("instashare_processing") as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def sessions(engine):
    return make_session_factory(engine)


@pytest.fixture
def session(sessions) -> Iterator[Session]:
    with sessions() as session:
        yield session


@pytest.fixture
def owner(session) -> User:
    user = User(email=f"{uuid.uuid4().hex[:12]}@example.com", password_hash="not-a-hash")
    session.add(user)
    session.commit()
    return user


@pytest.fixture
def make_file(session, owner):
    def make(**values) -> File:
        values.setdefault("status", FileStatus.PENDING)
        file = File(
            id=uuid.uuid4(),
            owner_id=owner.id,
            name=f"{uuid.uuid4().hex[:8]}.txt",
            size=values.pop("size", 11),
            sha256=values.pop("sha256", None),
            crc32=values.pop("crc32", 0),
            content_type="text/plain",
            attempts=values.pop("attempts", 0),
            **values,
        )
        session.add(file)
        session.commit()
        return file

    return make


def fresh(session: Session, file: File) -> File:
    session.expire_all()
    return session.get(File, file.id)


def ago(seconds: float) -> dt.datetime:
    return utcnow() - dt.timedelta(seconds=seconds)


def expire_lease(session: Session, file: File) -> None:
    session.execute(update(File).where(File.id == file.id).values(lease_expires_at=ago(1)))
    session.commit()


RESULT = ArchiveResult(method="deflate", compressed_size=7, crc32=0, size=11, sha256="ab" * 32)


def test_claim_takes_a_pending_file(session, make_file):
    file = make_file()
    version, updated_at = file.version, file.updated_at
    before = utcnow()
    job = processing.claim(session, file.id, LEASE)
    assert job is not None
    assert (job.file_id, job.owner_id, job.name, job.attempts) == (
        file.id,
        file.owner_id,
        file.name,
        1,
    )
    assert job.staged_key == f"{file.owner_id}/uploads/{file.id}"
    assert job.archive_key == f"{file.owner_id}/{file.id}.zip"
    row = fresh(session, file)
    assert row.status == FileStatus.PROCESSING
    assert row.lease_token == job.token
    assert before + dt.timedelta(seconds=LEASE - 1) < row.lease_expires_at
    assert row.lease_expires_at <= utcnow() + dt.timedelta(seconds=LEASE)
    assert row.version == version + 1  # visible: the ETag moves
    assert row.updated_at > updated_at


def test_second_claim_while_the_lease_is_live_gets_nothing(session, make_file):
    file = make_file()
    first = processing.claim(session, file.id, LEASE)
    assert first is not None
    version = fresh(session, file).version
    assert processing.claim(session, file.id, LEASE) is None
    row = fresh(session, file)
    assert (row.lease_token, row.attempts, row.version) == (first.token, 1, version)


def test_claim_after_the_lease_expired_takes_over(session, make_file):
    file = make_file()
    first = processing.claim(session, file.id, LEASE)
    expire_lease(session, file)
    second = processing.claim(session, file.id, LEASE)
    assert second is not None
    assert second.token != first.token
    assert second.attempts == 2
    assert fresh(session, file).lease_token == second.token
    # The first holder finds out at its next renewal, and cannot finish.
    assert not processing.renew(session, first, LEASE)
    assert not processing.complete(session, first, RESULT)
    assert fresh(session, file).status == FileStatus.PROCESSING
    assert processing.complete(session, second, RESULT)


@pytest.mark.parametrize("status", [FileStatus.READY, FileStatus.FAILED])
def test_claim_leaves_finished_files_alone(session, make_file, status):
    file = make_file(status=status)
    assert processing.claim(session, file.id, LEASE) is None
    assert fresh(session, file).version == file.version


def test_claim_of_a_missing_file_is_none(session):
    assert processing.claim(session, uuid.uuid4(), LEASE) is None


def test_renew_extends_the_lease(session, make_file):
    file = make_file()
    job = processing.claim(session, file.id, 2)
    first_expiry = fresh(session, file).lease_expires_at
    version, updated_at = fresh(session, file).version, fresh(session, file).updated_at
    assert processing.renew(session, job, LEASE)
    row = fresh(session, file)
    assert row.lease_expires_at > first_expiry + dt.timedelta(seconds=LEASE - 3)
    # Bookkeeping, not a change the user sees: neither the ETag nor updated_at moves.
    assert (row.version, row.updated_at) == (version, updated_at)


def test_renew_fails_once_the_file_is_deleted(session, make_file):
    file = make_file()
    job = processing.claim(session, file.id, LEASE)
    session.execute(delete(File).where(File.id == file.id))
    session.commit()
    assert not processing.renew(session, job, LEASE)
    assert not processing.complete(session, job, RESULT)


def test_complete_marks_the_file_ready(session, make_file):
    file = make_file()
    job = processing.claim(session, file.id, LEASE)
    version = fresh(session, file).version
    assert processing.complete(session, job, RESULT)
    row = fresh(session, file)
    assert row.status == FileStatus.READY
    assert (row.compressed_size, row.compression, row.sha256) == (7, "deflate", "ab" * 32)
    assert row.processed_at is not None
    assert (row.lease_token, row.lease_expires_at, row.error) == (None, None, None)
    assert row.version == version + 1
    # Completing twice (a duplicate that somehow kept the token) changes nothing.
    assert not processing.complete(session, job, RESULT)
    assert fresh(session, file).version == version + 1


def test_complete_with_a_stale_token_is_refused(session, make_file):
    file = make_file()
    job = processing.claim(session, file.id, LEASE)
    stale = processing.Claim(**{**job.__dict__, "token": uuid.uuid4()})
    version = fresh(session, file).version
    assert not processing.complete(session, stale, RESULT)
    row = fresh(session, file)
    assert (row.status, row.version, row.compressed_size) == (FileStatus.PROCESSING, version, None)


def test_release_gives_the_file_back(session, make_file):
    file = make_file()
    job = processing.claim(session, file.id, LEASE)
    processing.release(session, job, "OperationalError: " + "x" * 5000)
    row = fresh(session, file)
    assert row.status == FileStatus.PENDING
    assert (row.lease_token, row.lease_expires_at) == (None, None)
    assert row.error.startswith("OperationalError")
    assert len(row.error) == processing.MAX_ERROR
    again = processing.claim(session, file.id, LEASE)
    assert again is not None
    assert again.attempts == 2
    assert fresh(session, file).error is None


def test_release_with_a_lost_lease_does_nothing(session, make_file):
    file = make_file()
    first = processing.claim(session, file.id, LEASE)
    expire_lease(session, file)
    second = processing.claim(session, file.id, LEASE)
    processing.release(session, first, "late")
    row = fresh(session, file)
    assert (row.status, row.lease_token, row.error) == (FileStatus.PROCESSING, second.token, None)


def test_fail_with_the_lease(session, make_file):
    file = make_file()
    job = processing.claim(session, file.id, LEASE)
    processing.fail(session, file.id, "The uploaded bytes are missing from storage.", job)
    row = fresh(session, file)
    assert row.status == FileStatus.FAILED
    assert row.error == "The uploaded bytes are missing from storage."
    assert row.processed_at is not None
    assert row.lease_token is None


def test_fail_with_a_lost_lease_does_nothing(session, make_file):
    file = make_file()
    first = processing.claim(session, file.id, LEASE)
    expire_lease(session, file)
    processing.claim(session, file.id, LEASE)
    processing.fail(session, file.id, "late", first)
    assert fresh(session, file).status == FileStatus.PROCESSING


def test_fail_without_a_lease_never_undoes_ready(session, make_file):
    ready = make_file(status=FileStatus.READY)
    pending = make_file()
    processing.fail(session, ready.id, "gave up")
    processing.fail(session, pending.id, "gave up")
    assert fresh(session, ready).status == FileStatus.READY
    assert fresh(session, pending).status == FileStatus.FAILED


def test_due_for_delivery(session, make_file):
    lease = 10
    unsent = make_file()
    just_sent = make_file(enqueued_at=utcnow())
    sent_long_ago = make_file(enqueued_at=ago(2 * lease))
    expired = make_file(
        status=FileStatus.PROCESSING, lease_token=uuid.uuid4(), lease_expires_at=ago(1)
    )
    held = make_file(
        status=FileStatus.PROCESSING,
        lease_token=uuid.uuid4(),
        lease_expires_at=utcnow() + dt.timedelta(seconds=lease),
        enqueued_at=ago(10 * lease),
    )
    ready = make_file(status=FileStatus.READY, enqueued_at=None)
    failed = make_file(status=FileStatus.FAILED, enqueued_at=None)
    due = processing.due_for_delivery(session, lease_seconds=lease, limit=10_000)
    assert {unsent.id, sent_long_ago.id, expired.id} <= set(due)
    assert not {just_sent.id, held.id, ready.id, failed.id} & set(due)


def test_due_for_delivery_oldest_first_and_limited(session, make_file):
    files = [make_file() for _ in range(3)]
    ours = processing.due_for_delivery(session, lease_seconds=LEASE, limit=10_000)
    positions = [ours.index(f.id) for f in files]
    assert positions == sorted(positions)
    assert len(processing.due_for_delivery(session, lease_seconds=LEASE, limit=2)) == 2


def test_fail_exhausted(session, make_file):
    spent = processing.MAX_ATTEMPTS
    pending = make_file(attempts=spent)
    expired = make_file(
        attempts=spent,
        status=FileStatus.PROCESSING,
        lease_token=uuid.uuid4(),
        lease_expires_at=ago(1),
    )
    held = make_file(
        attempts=spent,
        status=FileStatus.PROCESSING,
        lease_token=uuid.uuid4(),
        lease_expires_at=utcnow() + dt.timedelta(seconds=LEASE),
    )
    ready = make_file(attempts=spent, status=FileStatus.READY)
    fresh_pending = make_file(attempts=spent - 1)
    assert processing.fail_exhausted(session) >= 2
    for file in (pending, expired):
        row = fresh(session, file)
        assert row.status == FileStatus.FAILED
        assert row.error == f"Compression did not finish after {spent} attempts."
        assert row.lease_token is None
    assert fresh(session, held).status == FileStatus.PROCESSING
    assert fresh(session, ready).status == FileStatus.READY
    assert fresh(session, fresh_pending).status == FileStatus.PENDING
    assert processing.fail_exhausted(session) == 0


# run(): the claimed job end to end, against a LocalStorage in a temp dir.


@pytest.fixture
def store(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


@pytest.fixture
def staged(store, make_file):
    """A pending file whose upload is staged in `store`; (file, bytes)."""

    def make(data: bytes, sha256: str | None = None) -> File:
        file = make_file(size=len(data), crc32=zlib.crc32(data), sha256=sha256)
        with store.writer(file.staged_key, "text/plain") as sink:
            sink.write(data)
        return file

    return make


def on_disk(store: LocalStorage) -> set[str]:
    return {str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file()}


def text(size: int) -> bytes:
    return b"".join(b"%08d some log text, %d\n" % (i, i % 97) for i in range(size // 24 + 1))[:size]


def test_run_compresses_and_drops_the_staged_upload(session, store, staged):
    data = text(2_500_000)
    file = staged(data)
    job = processing.claim(session, file.id, LEASE)
    assert processing.run(session, store, job, lease_seconds=LEASE)
    row = fresh(session, file)
    assert row.status == FileStatus.READY
    assert row.sha256 == hashlib.sha256(data).hexdigest()  # filled in when the upload had none
    assert row.compressed_size == store.size(file.archive_key)
    assert on_disk(store) == {file.archive_key}


def test_run_for_a_file_deleted_after_its_archive_was_written(sessions, session, store, staged):
    file = staged(text(1_000_000))
    job = processing.claim(session, file.id, LEASE)

    def delete_row() -> None:
        with sessions() as other:
            other.execute(delete(File).where(File.id == file.id))
            other.commit()

    assert not processing.run(session, store, job, lease_seconds=LEASE, on_progress=delete_row)
    assert on_disk(store) == set()


def test_run_for_a_file_deleted_mid_write(sessions, session, store, staged):
    lease = 2  # renewed every second
    file = staged(text(3 * 1024 * 1024))
    job = processing.claim(session, file.id, lease)
    calls = []

    def delete_row_then_stall() -> None:
        calls.append(1)
        if len(calls) == 1:
            with sessions() as other:
                other.execute(delete(File).where(File.id == file.id))
                other.commit()
            time.sleep(1.1)

    assert not processing.run(
        session, store, job, lease_seconds=lease, on_progress=delete_row_then_stall
    )
    assert len(calls) == 1  # the renewal due right after the delete found it gone
    assert on_disk(store) == set()


def test_run_that_lost_its_lease_mid_write_publishes_nothing(session, store, staged):
    lease = 2
    file = staged(text(3 * 1024 * 1024))
    job = processing.claim(session, file.id, lease)
    calls = []

    def lose_lease() -> None:
        calls.append(1)
        if len(calls) == 1:
            expire_lease(session, file)
            assert processing.claim(session, file.id, LEASE) is not None
            time.sleep(1.1)

    with pytest.raises(processing.LeaseLost):
        processing.run(session, store, job, lease_seconds=lease, on_progress=lose_lease)
    assert on_disk(store) == {file.staged_key}  # the new holder still needs it
    assert fresh(session, file).status == FileStatus.PROCESSING
