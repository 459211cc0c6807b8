"""The compression job's life: claim a file under a lease, keep it, finish or fail it.

The database, not the broker, says who works on a file. A job claims a file by moving it
to `processing` with a fresh lease token; only the holder of that token can finish it.
A worker that dies stops renewing its lease, and the periodic sweep hands the file to a
new job once the lease runs out. Delivering a job twice is therefore harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from app.db import rowcount, utcnow
from app.models import File, FileStatus
from app.services.compression import ArchiveResult

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
    legacy_staged_key: str = ""  # where a file staged before the temporary prefix waits


def _visible_change(**values) -> dict:
    """Values for a change a user can see: it moves the ETag and `updated_at`."""
    return {**values, "version": File.version + 1, "updated_at": utcnow()}


def _unclaimed(now: dt.datetime):
    """Waiting for a job: pending, or processing under a lease that ran out."""
    return or_(
        File.status == FileStatus.PENDING,
        and_(File.status == FileStatus.PROCESSING, File.lease_expires_at < now),
    )


def claim(session: Session, file_id: uuid.UUID, lease_seconds: int) -> Claim | None:
    """Take the file for processing, or None if it is done, gone or held by a live lease."""
    now = utcnow()
    token = uuid.uuid4()
    result = session.execute(
        update(File)
        .where(
            File.id == file_id,
            _unclaimed(now),
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
    if rowcount(result) != 1:
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
        legacy_staged_key=file.legacy_staged_key,
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
    return rowcount(result) == 1


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
                seek_index=result.seek_index,
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
    return rowcount(updated) == 1


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
            _unclaimed(now),
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
    return rowcount(result)
