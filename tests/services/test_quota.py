"""Usage counters and the quota: exact under concurrent uploads, on PostgreSQL and SQLite.

These race for real: each upload runs in its own thread with its own session (and so its
own connection), on committed rows; the rolled-back transaction of the other tests would
put every thread on one connection.
"""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from app.archive.writer import ArchiveResult
from app.db import make_session_factory
from app.errors import TooLarge
from app.models import File, FileStatus, Upload, User
from app.queue.jobs import JobQueue
from app.services import files, leases, quota, resumable_uploads
from app.services.spool import SpooledUpload
from app.storage.local import LocalStorage
from tests.factories import UserFactory
from tests.helpers import committing_engine

QUOTA = 20_000
SIZE = 3_000  # so exactly six fit
RACERS = 30
NOWHERE = JobQueue(lambda _task, _args, _queue: None)  # the jobs are not what these tests are about


@dataclass
class Owner:
    sessions: sessionmaker
    storage: LocalStorage
    spool: Path
    id: uuid.UUID

    def usage(self) -> quota.Usage:
        with self.sessions() as session:
            return quota.usage(session, self.id)

    def drift(self) -> list[quota.Drift]:
        with self.sessions() as session:
            return [d for d in quota.recount(session, repair=False) if d.owner_id == self.id]


@pytest.fixture(params=["postgresql", "sqlite"])
def owner(request, tmp_path) -> Owner:
    """A committed account on PostgreSQL (the run's database) or a fresh SQLite file."""
    engine = committing_engine(request, tmp_path)
    sessions = make_session_factory(engine)
    user = UserFactory.build()
    with sessions() as session:
        session.add(user)
        session.commit()
    yield Owner(sessions, LocalStorage(tmp_path / "storage"), tmp_path / "spool", user.id)
    with sessions() as session:
        session.execute(sa.delete(User).where(User.id == user.id))  # cascades
        session.commit()
    if request.param == "sqlite":
        engine.dispose()


def _multipart(owner: Owner, n: int) -> str:
    upload, fd = SpooledUpload.create(owner.spool)
    with os.fdopen(fd, "wb") as sink:
        sink.write(b"m" * SIZE)
    upload.update(b"m" * SIZE)
    try:
        with owner.sessions() as session:
            files.create(
                session,
                owner.storage,
                NOWHERE,
                owner_id=owner.id,
                upload=upload,
                name=f"multipart-{n}.bin",
                quota_bytes=QUOTA,
            )
    finally:
        upload.discard()
    return "multipart"


def _resumable(owner: Owner, n: int) -> str:
    with owner.sessions() as session:
        ctx = resumable_uploads.Context(
            session, owner.storage, NOWHERE, resumable_uploads.Limits(QUOTA, QUOTA, 3600)
        )
        resumable_uploads.begin_create(
            ctx, owner.id, length=SIZE, metadata={"filename": f"resumable-{n}.bin"}
        )
    return "resumable"


def race(owner: Owner, uploads) -> list[str]:
    """Start every upload at once (a barrier), each on its own thread; what each came to."""
    start = threading.Barrier(len(uploads))

    def run(n: int, upload) -> str:
        start.wait()
        try:
            return upload(owner, n)
        except TooLarge:
            return "over quota"

    owner.spool.mkdir(exist_ok=True)
    with ThreadPoolExecutor(len(uploads)) as pool:
        return list(pool.map(run, range(len(uploads)), uploads))


def _rows(owner: Owner) -> tuple[int, int, int]:
    with owner.sessions() as session:
        stored = session.scalars(sa.select(File.size).where(File.owner_id == owner.id)).all()
        reserved = session.scalars(
            sa.select(Upload.length).where(
                Upload.owner_id == owner.id, Upload.completed_at.is_(None)
            )
        ).all()
    return len(stored), sum(stored), sum(reserved)


@pytest.mark.parametrize(
    "mix",
    [
        pytest.param([_multipart] * RACERS, id="multipart"),
        pytest.param([_resumable] * RACERS, id="resumable"),
        pytest.param([_multipart, _resumable] * (RACERS // 2), id="mixed"),
    ],
)
def test_parallel_uploads_never_pass_the_quota(owner, mix):
    outcomes = race(owner, mix)
    admitted = [o for o in outcomes if o != "over quota"]
    assert len(admitted) == QUOTA // SIZE, outcomes  # exactly as many as fit, no more
    usage = owner.usage()
    assert usage.bytes_stored + usage.bytes_reserved == len(admitted) * SIZE <= QUOTA
    # The counters say what the rows say.
    assert (usage.file_count, usage.bytes_stored, usage.bytes_reserved) == _rows(owner)
    assert owner.drift() == []
    # Every refused multipart upload took its staged bytes away again.
    staged = list(owner.storage.list(f"tmp/{owner.id}/uploads/"))
    assert len(staged) == admitted.count("multipart"), staged


def test_counters_follow_deletes_and_cancelled_uploads(owner):
    race(owner, [_multipart, _multipart, _resumable])
    with owner.sessions() as session:
        [first, _] = session.scalars(sa.select(File.id).where(File.owner_id == owner.id)).all()
        [upload] = session.scalars(sa.select(Upload.id).where(Upload.owner_id == owner.id)).all()
        files.delete(session, owner.storage, owner.id, first)
        resumable_uploads.terminate(session, owner.storage, owner.id, upload)
    assert owner.usage() == quota.Usage(file_count=1, bytes_stored=SIZE, bytes_reserved=0)
    assert owner.drift() == []


def test_recount_reports_drift_and_repairs_it(owner):
    race(owner, [_multipart, _resumable])
    with owner.sessions() as session:
        session.execute(
            sa.update(User).where(User.id == owner.id).values(file_count=7, bytes_reserved=0)
        )
        session.commit()
    [drift] = owner.drift()
    assert drift.counted == quota.Usage(7, SIZE, 0)
    assert drift.actual == quota.Usage(1, SIZE, SIZE)
    with owner.sessions() as session:
        assert [d.owner_id for d in quota.recount(session, repair=True)] == [owner.id]
    assert owner.usage() == quota.Usage(1, SIZE, SIZE)
    assert owner.drift() == []


# --- files by status: counters kept by triggers, checked by the same recount ---------------


def _by_status(owner: Owner) -> tuple[int, ...]:
    with owner.sessions() as session:
        return tuple(
            session.execute(sa.select(*quota.STATUS_COUNTERS).where(User.id == owner.id)).one()
        )


def test_status_counters_hold_while_uploads_deletes_and_jobs_race(owner):
    race(owner, [_multipart] * 5)  # five of the six that fit
    with owner.sessions() as session:
        ids = session.scalars(
            sa.select(File.id).where(File.owner_id == owner.id).order_by(File.name)
        ).all()
    done = ArchiveResult(method="deflate", compressed_size=10, crc32=0, size=SIZE, sha256="0")

    def job(index: int, outcome: str):
        def run(owner: Owner, _n: int) -> str:
            with owner.sessions() as session:
                claim = leases.claim(session, ids[index], lease_seconds=60)
                if claim is None:
                    return "gone"
                if outcome == "ready":
                    leases.complete(session, claim, done)
                elif outcome == "failed":
                    leases.fail(session, claim.file_id, "broken", claim)
                else:
                    leases.release(session, claim, "try again")
            return outcome

        return run

    def delete(index: int):
        def run(owner: Owner, _n: int) -> str:
            with owner.sessions() as session:
                files.delete(session, owner.storage, owner.id, ids[index])
            return "deleted"

        return run

    # Jobs finish, fail and give back files 0-2 while files 3, 4 and 0 are deleted and
    # three more uploads come in (as many fit as the deletes made room for): all at once.
    outcomes = race(
        owner,
        [job(0, "ready"), job(1, "failed"), job(2, "pending"), delete(3), delete(4),
         delete(0), *[lambda owner, n: _multipart(owner, n + 10)] * 3],
    )  # fmt: skip
    assert outcomes.count("deleted") == 3 and outcomes.count("multipart") >= 1
    assert owner.drift() == []
    with owner.sessions() as session:
        statuses = session.scalars(sa.select(File.status).where(File.owner_id == owner.id)).all()
    assert _by_status(owner) == tuple(statuses.count(s) for s in FileStatus)


def test_recount_reports_and_repairs_drifted_status_counters(owner):
    race(owner, [_multipart, _multipart])
    with owner.sessions() as session:
        session.execute(sa.update(User).where(User.id == owner.id).values(files_ready=5))
        session.commit()
    [drift] = owner.drift()
    assert drift.counted == drift.actual  # usage itself is right
    assert (drift.counted_by_status, drift.actual_by_status) == ((2, 0, 5, 0), (2, 0, 0, 0))
    with owner.sessions() as session:
        [repaired] = quota.recount(session, repair=True)
    assert repaired.owner_id == owner.id
    assert _by_status(owner) == (2, 0, 0, 0)
    assert owner.drift() == []
