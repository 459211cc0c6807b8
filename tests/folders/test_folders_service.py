"""The folder service on PostgreSQL and on SQLite (the embedded default), committed for real.

Uploads of one new folder racing on threads (each its own session and connection) make
one folder on both; a folder delete counts exactly on both (SQLite keeps row triggers for
the status counters, and records the objects from Python rather than in one statement).
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

from app.db import make_session_factory
from app.models import File, FileStatus, Folder, PendingDeletion, Upload, User
from app.queue.jobs import JobQueue
from app.services import entries, files, folders, quota, resumable_uploads
from app.services.spool import SpooledUpload
from app.storage.local import LocalStorage
from tests.factories import UserFactory
from tests.helpers import committing_engine

RACERS = 12
QUOTA = 10**9


class Jobs(JobQueue):
    """Jobs counted by task, sent nowhere."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        super().__init__(lambda task, _args, _queue: self.sent.append(task))


@dataclass
class Owner:
    sessions: sessionmaker
    storage: LocalStorage
    spool: Path
    id: uuid.UUID
    jobs: Jobs


@pytest.fixture(params=["postgresql", "sqlite"])
def owner(request, tmp_path):
    """A committed account on PostgreSQL (the run's database) or a fresh SQLite file."""
    engine = committing_engine(request, tmp_path)
    sessions = make_session_factory(engine)
    user = UserFactory.build()
    with sessions() as session:
        session.add(user)
        session.commit()
    spool = tmp_path / "spool"
    spool.mkdir()
    yield Owner(sessions, LocalStorage(tmp_path / "storage"), spool, user.id, Jobs())
    with sessions() as session:
        session.execute(sa.delete(PendingDeletion))
        session.execute(sa.delete(User).where(User.id == user.id))  # cascades
        session.commit()
    if request.param == "sqlite":
        engine.dispose()


def _upload(owner: Owner, relative_path: str, size: int = 10) -> File:
    spooled, fd = SpooledUpload.create(owner.spool)
    with os.fdopen(fd, "wb") as sink:
        sink.write(b"m" * size)
    spooled.update(b"m" * size)
    try:
        with owner.sessions() as session:
            return files.create(
                session,
                owner.storage,
                owner.jobs,
                owner_id=owner.id,
                upload=spooled,
                name=None,
                quota_bytes=QUOTA,
                relative_path=relative_path,
            )
    finally:
        spooled.discard()


def test_uploads_racing_into_one_new_folder_make_one_folder(owner):
    start = threading.Barrier(RACERS)

    def run(n: int) -> uuid.UUID | None:
        start.wait()
        return _upload(owner, f"shared/inner/{n}.bin").folder_id

    with ThreadPoolExecutor(RACERS) as pool:
        placed = set(pool.map(run, range(RACERS)))
    with owner.sessions() as session:
        made = session.execute(
            sa.select(Folder.name, Folder.parent_id).where(Folder.owner_id == owner.id)
        ).all()
        assert sorted(name for name, _ in made) == ["inner", "shared"]
        assert len(placed) == 1
        listing = entries.list_entries(session, owner.id, placed.pop(), limit=100)
        assert listing.total == RACERS
        assert [a.name for a in listing.ancestors] == ["shared"]


def test_a_folder_delete_counts_exactly_and_records_every_object(owner, monkeypatch):
    monkeypatch.setattr(folders, "INLINE_FILES", 3)  # more than this: the worker's job
    kept = _upload(owner, "kept.bin", 7)
    for n in range(5):
        _upload(owner, f"doomed/{'sub/' * (n % 3)}{n}.bin", 100)
    with owner.sessions() as session:
        doomed = session.scalar(
            sa.select(Folder.id).where(Folder.owner_id == owner.id, Folder.parent_id.is_(None))
        )
        # One ready, one failed after two attempts: their statuses move the counters.
        ready, failed = session.scalars(
            sa.select(File.id).where(File.folder_id.isnot(None)).limit(2)
        ).all()
        session.execute(
            sa.update(File)
            .where(File.id == ready)
            .values(status=FileStatus.READY, archive_object=f"{owner.id}/{ready}.zip")
        )
        session.execute(
            sa.update(File).where(File.id == failed).values(status=FileStatus.FAILED, attempts=2)
        )
        session.commit()
        ctx = resumable_uploads.Context(
            session, owner.storage, owner.jobs, resumable_uploads.Limits(QUOTA, QUOTA, 3600)
        )
        resumable_uploads.begin_create(
            ctx, owner.id, length=50, metadata={"filename": "x", "folderId": str(doomed)}
        )
        assert quota.usage(session, owner.id) == quota.Usage(6, 507, 50)

    with owner.sessions() as session:
        removed = folders.delete(session, owner.storage, owner.jobs, owner.id, doomed)
    assert (removed.folders, removed.files, removed.uploads) == (3, 5, 1)
    assert owner.jobs.sent.count("worker.tasks.finish_deletions") == 1
    with owner.sessions() as session:
        assert quota.usage(session, owner.id) == quota.Usage(1, 7, 0)
        assert [d for d in quota.recount(session, repair=False) if d.owner_id == owner.id] == []
        assert session.scalar(sa.select(sa.func.count()).select_from(Upload)) == 0
        keys = set(session.scalars(sa.select(PendingDeletion.key)))
        assert session.scalar(sa.select(sa.func.count()).select_from(Folder)) == 0
    # Archive and staged key of each; for those not ready the legacy staged key and each
    # attempt's archive. (The upload's few keys were carried out right after the commit.)
    assert f"{owner.id}/{failed}.2.zip" in keys
    assert f"tmp/{owner.id}/uploads/{ready}" in keys
    assert f"{owner.id}/uploads/{ready}" not in keys  # ready: no legacy staging
    assert not any(k.endswith(".parts/") for k in keys)
    assert not any(str(kept.id) in k for k in keys)
    assert len(keys) == 5 * 2 + 4 + 1  # archives and staged, legacy staged, attempt 2
