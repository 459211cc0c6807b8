"""The compression job's life: claim a file under a lease, keep it, finish or fail it.

The database, not the broker, says who works on a file. A job claims a file by moving it
to `processing` with a fresh lease token; only the holder of that token can finish it.
A worker that dies stops renewing its lease, and the periodic sweep hands the file to a
new job once the lease runs out. Delivering a job twice is therefore harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Result, and_, or_, select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import File, FileStatus
from app.services.compression import ArchiveResult, write_archive
from app.storage import Storage

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
MAX_ERROR = 2000


@dataclass(frozen=True)
class Claim:
    file_id: uuid.UUID
    token: uuid.UUID
    owner_id: uuid.UUID
    name: str
    size: int
    crc32: int
    sha256: str | None
    content_type: str
    created_at: dt.datetime
    attempts: int
    staged_key: str
    archive_key: str


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE matched (typed: Session.execute returns a CursorResult for DML)."""
    return cast(CursorResult[Any], result).rowcount


def _visible_change(**values) -> dict:
    """Values for a change a user can see: it moves the ETag and `updated_at`."""
    return {**values, "version": File.version + 1, "updated_at": utcnow()}


def claim(session: Session, file_id: uuid.UUID, lease_seconds: int) -> Claim | None:
    """Take the file for processing, or None if it is done, gone or held by a live lease."""
    now = utcnow()
    token = uuid.uuid4()
    result = session.execute(
        update(File)
        .where(
            File.id == file_id,
            or_(
                File.status == FileStatus.PENDING,
                and_(File.status == FileStatus.PROCESSING, File.lease_expires_at < now),
            ),
        )
        .values(
            **_visible_change(
                status=FileStatus.PROCESSING,
                lease_token=token,
                lease_expires_at=now + dt.timedelta(seconds=lease_seconds),
                attempts=File.attempts + 1,
                error=None,
            )
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if _rowcount(result) != 1:
        return None
    file = session.scalars(
        select(File).where(File.id == file_id).execution_options(populate_existing=True)
    ).one()
    return Claim(
        file_id=file.id,
        token=token,
        owner_id=file.owner_id,
        name=file.name,
        size=file.size,
        crc32=file.crc32,
        sha256=file.sha256,
        content_type=file.content_type,
        created_at=file.created_at,
        attempts=file.attempts,
        staged_key=file.staged_key,
        archive_key=file.archive_key,
    )


def _held(job: Claim):
    return and_(
        File.id == job.file_id,
        File.lease_token == job.token,
        File.status == FileStatus.PROCESSING,
    )


def renew(session: Session, job: Claim, lease_seconds: int) -> bool:
    """Extend the lease; False when it was lost (expired and taken, or the file deleted)."""
    result = session.execute(
        update(File)
        .where(_held(job))
        .values(
            lease_expires_at=utcnow() + dt.timedelta(seconds=lease_seconds),
            # Bookkeeping: keep `updated_at` (its column default would bump it) unchanged.
            updated_at=File.updated_at,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return _rowcount(result) == 1


def complete(session: Session, job: Claim, result: ArchiveResult) -> bool:
    """Mark the file ready with its archive's size; False if the lease was lost."""
    updated = session.execute(
        update(File)
        .where(_held(job))
        .values(
            **_visible_change(
                status=FileStatus.READY,
                compressed_size=result.compressed_size,
                compression=result.method,
                # Resumable uploads arrive in parts: their digest is first known here.
                sha256=result.sha256,
                processed_at=utcnow(),
                lease_token=None,
                lease_expires_at=None,
                error=None,
            )
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return _rowcount(updated) == 1


def release(session: Session, job: Claim, error: str) -> None:
    """Give the file back (pending) after a transient error, so a retry can claim it."""
    session.execute(
        update(File)
        .where(_held(job))
        .values(
            **_visible_change(
                status=FileStatus.PENDING,
                lease_token=None,
                lease_expires_at=None,
                error=error[:MAX_ERROR],
            )
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()


def fail(session: Session, file_id: uuid.UUID, error: str, job: Claim | None = None) -> None:
    """Mark the file failed with a readable reason (if it is not already ready)."""
    where = _held(job) if job else and_(File.id == file_id, File.status != FileStatus.READY)
    session.execute(
        update(File)
        .where(where)
        .values(
            **_visible_change(
                status=FileStatus.FAILED,
                lease_token=None,
                lease_expires_at=None,
                error=error[:MAX_ERROR],
                processed_at=utcnow(),
            )
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()


def exists(session: Session, file_id: uuid.UUID) -> bool:
    return session.scalar(select(File.id).where(File.id == file_id)) is not None


class LeaseLost(Exception):
    """Another job now owns the file, or the file was deleted."""


def run(
    session: Session,
    storage: Storage,
    job: Claim,
    *,
    lease_seconds: int,
    on_progress: Callable[[], None] = lambda: None,
) -> bool:
    """Compress a claimed file, verify it, mark it ready and drop the staged upload.

    Returns False (and leaves no objects behind) when the file was deleted meanwhile.
    """
    renew_every = max(lease_seconds / 3, 1)
    last_renewal = time.monotonic()

    def heartbeat() -> None:
        nonlocal last_renewal
        on_progress()
        if time.monotonic() - last_renewal >= renew_every:
            if not renew(session, job, lease_seconds):
                raise LeaseLost(str(job.file_id))
            last_renewal = time.monotonic()

    if job.attempts > 1:
        # An earlier attempt died (its lease ran out); it may have left a partial archive.
        storage.discard_partial(job.archive_key)
    try:
        result = write_archive(
            storage,
            source_key=job.staged_key,
            archive_key=job.archive_key,
            entry_name=job.name,
            size=job.size,
            crc32=job.crc32,
            sha256=job.sha256,
            content_type=job.content_type,
            modified_at=job.created_at,
            heartbeat=heartbeat,
        )
    except Exception:
        # A file deleted meanwhile shows up as whatever broke first (a lost lease, its
        # staged bytes gone from under the reader): that is no failure, just nothing to do.
        session.rollback()
        if not exists(session, job.file_id):
            storage.delete(job.archive_key)
            storage.delete(job.staged_key)
            return False
        raise
    if not complete(session, job, result):
        if not exists(session, job.file_id):
            # Deleted while we worked: the archive we just wrote must not outlive its row.
            storage.delete(job.archive_key)
            storage.delete(job.staged_key)
            return False
        raise LeaseLost(str(job.file_id))
    storage.delete(job.staged_key)
    return True


def due_for_delivery(session: Session, *, lease_seconds: int, limit: int = 500) -> list[uuid.UUID]:
    """Files whose job must be (re)sent: never sent, sent long ago, or whose lease expired."""
    now = utcnow()
    resend_before = now - dt.timedelta(seconds=lease_seconds)
    rows = session.scalars(
        select(File.id)
        .where(
            or_(
                and_(
                    File.status == FileStatus.PENDING,
                    or_(File.enqueued_at.is_(None), File.enqueued_at < resend_before),
                ),
                and_(File.status == FileStatus.PROCESSING, File.lease_expires_at < now),
            )
        )
        .order_by(File.created_at)
        .limit(limit)
    )
    return list(rows)


def fail_exhausted(session: Session) -> int:
    """Mark failed the files that used up their attempts (a job that kept dying)."""
    now = utcnow()
    result = session.execute(
        update(File)
        .where(
            File.attempts >= MAX_ATTEMPTS,
            or_(
                File.status == FileStatus.PENDING,
                and_(File.status == FileStatus.PROCESSING, File.lease_expires_at < now),
            ),
        )
        .values(
            **_visible_change(
                status=FileStatus.FAILED,
                lease_token=None,
                lease_expires_at=None,
                error=f"Compression did not finish after {MAX_ATTEMPTS} attempts.",
                processed_at=now,
            )
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return _rowcount(result)
