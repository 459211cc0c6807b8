"""The job's lease: claim, renew, complete, release, fail and the sweep's queries.

Each test runs in the run's database inside a transaction rolled back at its end (the
services' commits become savepoints), on rows made by the factories. Nothing sweeps that
database, so the unsent and expired files these tests make on purpose stay as they are.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import delete, event

from app.db import utcnow
from app.models import File, FileStatus
from app.services import leases
from tests.factories import FileFactory
from tests.services.lease_rows import LEASE, RESULT, ago, expire_lease, fresh


def test_claim_takes_a_pending_file(session, factories):
    file = FileFactory()
    version, updated_at = file.version, file.updated_at
    before = utcnow()
    job = leases.claim(session, file.id, LEASE)
    assert job is not None
    assert (job.file_id, job.owner_id, job.name, job.attempts) == (
        file.id,
        file.owner_id,
        file.name,
        1,
    )
    assert job.staged_key == f"tmp/{file.owner_id}/uploads/{file.id}"
    assert job.archive_key == f"{file.owner_id}/{file.id}.zip"
    row = fresh(session, file)
    assert row.status == FileStatus.PROCESSING
    assert row.lease_token == job.token
    assert before + dt.timedelta(seconds=LEASE - 1) < row.lease_expires_at
    assert row.lease_expires_at <= utcnow() + dt.timedelta(seconds=LEASE)
    assert row.version == version + 1  # visible: the ETag moves
    assert row.updated_at > updated_at


def test_claiming_a_pending_file_is_one_statement(session, factories, engine):
    """Every small file's job claims it: one UPDATE ... RETURNING, no look before or after."""
    file = FileFactory()
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        if "SAVEPOINT" not in statement:
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        job = leases.claim(session, file.id, LEASE, leases.Delivery.here("task-1", 0))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert job is not None and (job.size, job.crc32, job.content_type) == (
        file.size,
        file.crc32,
        file.content_type,
    )
    assert job.created_at == file.created_at and job.sha256 == file.sha256
    assert len(sent) == 1 and sent[0].startswith("UPDATE files"), sent


def test_second_claim_while_the_lease_is_live_gets_nothing(session, factories):
    file = FileFactory()
    first = leases.claim(session, file.id, LEASE)
    assert first is not None
    version = fresh(session, file).version
    assert leases.claim(session, file.id, LEASE) is None
    row = fresh(session, file)
    assert (row.lease_token, row.attempts, row.version) == (first.token, 1, version)


def test_claim_after_the_lease_expired_takes_over(session, factories):
    file = FileFactory()
    first = leases.claim(session, file.id, LEASE)
    expire_lease(session, file)
    second = leases.claim(session, file.id, LEASE)
    assert second is not None
    assert second.token != first.token
    assert second.attempts == 2
    assert fresh(session, file).lease_token == second.token
    # The first holder finds out at its next renewal, and cannot finish.
    assert not leases.renew(session, first, LEASE)
    assert not leases.complete(session, first, RESULT)
    assert fresh(session, file).status == FileStatus.PROCESSING
    assert leases.complete(session, second, RESULT)


@pytest.mark.parametrize("status", [FileStatus.READY, FileStatus.FAILED])
def test_claim_leaves_finished_files_alone(session, factories, status):
    file = FileFactory(status=status)
    assert leases.claim(session, file.id, LEASE) is None
    assert fresh(session, file).version == file.version


def test_claim_of_a_missing_file_is_none(session):
    assert leases.claim(session, uuid.uuid4(), LEASE) is None


def test_renew_extends_the_lease(session, factories):
    file = FileFactory()
    job = leases.claim(session, file.id, 2)
    first_expiry = fresh(session, file).lease_expires_at
    version, updated_at = fresh(session, file).version, fresh(session, file).updated_at
    assert leases.renew(session, job, LEASE)
    row = fresh(session, file)
    assert row.lease_expires_at > first_expiry + dt.timedelta(seconds=LEASE - 3)
    # Bookkeeping, not a change the user sees: neither the ETag nor updated_at moves.
    assert (row.version, row.updated_at) == (version, updated_at)


def test_renew_fails_once_the_file_is_deleted(session, factories):
    file = FileFactory()
    job = leases.claim(session, file.id, LEASE)
    session.execute(delete(File).where(File.id == file.id))
    session.commit()
    assert not leases.renew(session, job, LEASE)
    assert not leases.complete(session, job, RESULT)


def test_complete_marks_the_file_ready(session, factories):
    file = FileFactory()
    job = leases.claim(session, file.id, LEASE)
    version = fresh(session, file).version
    assert leases.complete(session, job, RESULT)
    row = fresh(session, file)
    assert row.status == FileStatus.READY
    assert (row.compressed_size, row.compression, row.sha256) == (7, "deflate", "ab" * 32)
    assert row.processed_at is not None
    assert (row.lease_token, row.lease_expires_at, row.error) == (None, None, None)
    assert row.version == version + 1
    # Completing twice (a duplicate that somehow kept the token) changes nothing.
    assert not leases.complete(session, job, RESULT)
    assert fresh(session, file).version == version + 1


def test_complete_with_a_stale_token_is_refused(session, factories):
    file = FileFactory()
    job = leases.claim(session, file.id, LEASE)
    stale = leases.Claim(**{**job.__dict__, "token": uuid.uuid4()})
    version = fresh(session, file).version
    assert not leases.complete(session, stale, RESULT)
    row = fresh(session, file)
    assert (row.status, row.version, row.compressed_size) == (FileStatus.PROCESSING, version, None)


def test_release_gives_the_file_back(session, factories):
    file = FileFactory()
    job = leases.claim(session, file.id, LEASE)
    leases.release(session, job, "OperationalError: " + "x" * 5000)
    row = fresh(session, file)
    assert row.status == FileStatus.PENDING
    assert (row.lease_token, row.lease_expires_at) == (None, None)
    assert row.error.startswith("OperationalError")
    assert len(row.error) == leases.MAX_ERROR
    again = leases.claim(session, file.id, LEASE)
    assert again is not None
    assert again.attempts == 2
    assert fresh(session, file).error is None


def test_release_with_a_lost_lease_does_nothing(session, factories):
    file = FileFactory()
    first = leases.claim(session, file.id, LEASE)
    expire_lease(session, file)
    second = leases.claim(session, file.id, LEASE)
    leases.release(session, first, "late")
    row = fresh(session, file)
    assert (row.status, row.lease_token, row.error) == (FileStatus.PROCESSING, second.token, None)


def test_fail_with_the_lease(session, factories):
    file = FileFactory()
    job = leases.claim(session, file.id, LEASE)
    leases.fail(session, file.id, "The uploaded bytes are missing from storage.", job)
    row = fresh(session, file)
    assert row.status == FileStatus.FAILED
    assert row.error == "The uploaded bytes are missing from storage."
    assert row.processed_at is not None
    assert row.lease_token is None


def test_fail_with_a_lost_lease_does_nothing(session, factories):
    file = FileFactory()
    first = leases.claim(session, file.id, LEASE)
    expire_lease(session, file)
    leases.claim(session, file.id, LEASE)
    leases.fail(session, file.id, "late", first)
    assert fresh(session, file).status == FileStatus.PROCESSING


def test_fail_without_a_lease_never_undoes_ready(session, factories):
    ready = FileFactory(status=FileStatus.READY)
    pending = FileFactory()
    leases.fail(session, ready.id, "gave up")
    leases.fail(session, pending.id, "gave up")
    assert fresh(session, ready).status == FileStatus.READY
    assert fresh(session, pending).status == FileStatus.FAILED


def test_due_for_delivery(session, factories):
    lease = 10
    unsent = FileFactory()
    just_sent = FileFactory(enqueued_at=utcnow())
    sent_long_ago = FileFactory(enqueued_at=ago(2 * lease))
    expired = FileFactory(
        status=FileStatus.PROCESSING, lease_token=uuid.uuid4(), lease_expires_at=ago(1)
    )
    held = FileFactory(
        status=FileStatus.PROCESSING,
        lease_token=uuid.uuid4(),
        lease_expires_at=utcnow() + dt.timedelta(seconds=lease),
        enqueued_at=ago(10 * lease),
    )
    ready = FileFactory(status=FileStatus.READY, enqueued_at=None)
    failed = FileFactory(status=FileStatus.FAILED, enqueued_at=None)
    due = [d.file_id for d in leases.due_for_delivery(session, lease_seconds=lease, limit=10_000)]
    assert {unsent.id, sent_long_ago.id, expired.id} <= set(due)
    assert not {just_sent.id, held.id, ready.id, failed.id} & set(due)


def test_due_for_delivery_oldest_first_and_limited(session, factories):
    files = [FileFactory() for _ in range(3)]
    ours = [d.file_id for d in leases.due_for_delivery(session, lease_seconds=LEASE, limit=10_000)]
    positions = [ours.index(f.id) for f in files]
    assert positions == sorted(positions)
    assert len(leases.due_for_delivery(session, lease_seconds=LEASE, limit=2)) == 2


def test_fail_exhausted(session, factories):
    spent = leases.MAX_ATTEMPTS
    pending = FileFactory(attempts=spent)
    expired = FileFactory(
        attempts=spent,
        status=FileStatus.PROCESSING,
        lease_token=uuid.uuid4(),
        lease_expires_at=ago(1),
    )
    held = FileFactory(
        attempts=spent,
        status=FileStatus.PROCESSING,
        lease_token=uuid.uuid4(),
        lease_expires_at=utcnow() + dt.timedelta(seconds=LEASE),
    )
    ready = FileFactory(attempts=spent, status=FileStatus.READY)
    fresh_pending = FileFactory(attempts=spent - 1)
    assert leases.fail_exhausted(session) >= 2
    for file in (pending, expired):
        row = fresh(session, file)
        assert row.status == FileStatus.FAILED
        assert row.error == f"Compression did not finish after {spent} attempts."
        assert row.lease_token is None
    assert fresh(session, held).status == FileStatus.PROCESSING
    assert fresh(session, ready).status == FileStatus.READY
    assert fresh(session, fresh_pending).status == FileStatus.PENDING
    assert leases.fail_exhausted(session) == 0


# Taking over a live lease: only the same message, once the job that held it is over.


def dead_pid() -> int:
    """The pid of a process that has ended."""
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_redelivery_after_its_process_died_takes_the_lease_over(session, factories):
    file = FileFactory()
    here = leases.Delivery.here("task-1", 0)
    dead = leases.Delivery("task-1", 0, here.host, dead_pid())
    first = leases.claim(session, file.id, LEASE, dead)
    assert first is not None
    second = leases.claim(session, file.id, LEASE, here)
    assert second is not None
    assert second.attempts == 2
    row = fresh(session, file)
    assert (row.lease_token, row.lease_holder) == (second.token, here.encode())
    assert not leases.renew(session, first, LEASE)  # the dead job's lease is gone


def test_a_retry_of_the_same_message_takes_the_lease_over(session, factories):
    file = FileFactory()
    # The first run asked for its retry from another pool process, which lives on.
    first = leases.claim(session, file.id, LEASE, leases.Delivery("task-1", 0, "elsewhere", 1))
    assert first is not None
    retry = leases.Delivery("task-1", 1, "other-host", 2)
    assert leases.claim(session, file.id, LEASE, retry) is not None


HOST = leases.Delivery.here("-", 0).host


@pytest.mark.parametrize(
    ("holder", "asking"),
    [
        # Another message for the same file (a duplicate, or the sweep's): never.
        (("task-2", 0, HOST, "dead"), ("task-1", 5, HOST, "own")),
        # The same message, held by a process that lives (pid 1 always does).
        (("task-1", 0, HOST, 1), ("task-1", 0, HOST, "own")),
        # The same message held on another host, where nobody can see whether it lives.
        (("task-1", 0, "other-host", "dead"), ("task-1", 0, HOST, "own")),
    ],
    ids=["another-message", "holder-alive", "holder-elsewhere"],
)
def test_a_live_holder_keeps_its_lease(session, factories, holder, asking):
    import os

    pids = {"dead": dead_pid(), "own": os.getpid()}

    def delivery(task_id, retries, host, pid) -> leases.Delivery:
        return leases.Delivery(task_id, retries, host, pids.get(pid, pid))

    file = FileFactory()
    job = leases.claim(session, file.id, LEASE, delivery(*holder))
    assert job is not None
    version = fresh(session, file).version
    assert leases.claim(session, file.id, LEASE, delivery(*asking)) is None
    row = fresh(session, file)
    assert (row.lease_token, row.attempts, row.version) == (job.token, 1, version)
