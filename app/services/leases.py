"""The compression job's life: claim a file under a lease, keep it, finish or fail it.

The database, not the broker, says who works on a file. A job claims a file by moving it
to `processing` with a fresh lease token; only the holder of that token can finish it.
A worker that dies stops renewing its lease, and the periodic sweep hands the file to a
new job once the lease runs out. Delivering a job twice is therefore harmless.

The lease also names the delivery that holds it (`Delivery`): the broker hands a message
back at once when the worker process running it dies (or the job asks for a retry), and
that same message may then take the lease over without waiting for it to run out. A
different message for the same file (a duplicate, or the sweep's) never does.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Row,
    Table,
    Update,
    and_,
    bindparam,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from app.archive.writer import ArchiveResult
from app.db import rowcount, utcnow, without_transaction
from app.models import (
    File,
    FilePreview,
    FileStatus,
    archive_key_for,
    legacy_staged_key,
    staged_key,
)
from app.services.previews import Preview

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
MAX_ERROR = 2000


@dataclass(frozen=True)
class Delivery:
    """One delivery of a job's message: its task id, which retry it is, and who runs it."""

    task_id: str
    retries: int
    host: str
    pid: int

    @classmethod
    def here(cls, task_id: str, retries: int) -> Delivery:
        """This delivery, run by this process."""
        return cls(task_id, retries, socket.gethostname(), os.getpid())

    def encode(self) -> str:
        return f"{self.task_id} {self.retries} {self.pid} {self.host}"[:255]

    @classmethod
    def decode(cls, value: str | None) -> Delivery | None:
        try:
            task_id, retries, pid, host = (value or "").split(" ", 3)
            return cls(task_id, int(retries), host, int(pid))
        except ValueError:
            return None

    def supersedes(self, holder: Delivery) -> bool:
        """Whether `holder` (a live lease's) is over for sure, so this delivery may take it.

        Only the same message qualifies: a later retry of it (a job asks for its retry
        only once it has stopped), or its redelivery after the process that ran it died
        (on this host, where that can be seen). Otherwise two live jobs could both write.
        """
        if holder.task_id != self.task_id:
            return False
        if self.retries > holder.retries:
            return True
        if holder.host != self.host:
            return False
        if holder.pid == self.pid:
            return True  # a pool process runs one job at a time: that one has ended
        return not _alive(holder.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


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
    archive_key: str  # this attempt's own (app.models.archive_key_for)
    legacy_staged_key: str = ""  # where a file staged before the temporary prefix waits


def _visible_change(**values) -> dict:
    """Values for a change a user can see: it moves the ETag and `updated_at`."""
    return {**values, "version": File.version + 1, "updated_at": utcnow()}


def _update(session: Session, where: Sequence[ColumnElement[bool]], values: dict) -> int:
    """Set `values` on the files `where` selects and commit; how many rows changed."""
    result = session.execute(
        update(File).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    session.commit()
    return rowcount(result)


def _unclaimed(now: dt.datetime):
    """Waiting for a job: pending, or processing under a lease that ran out."""
    return or_(
        File.status == FileStatus.PENDING,
        and_(File.status == FileStatus.PROCESSING, File.lease_expires_at < now),
    )


def claim(
    session: Session, file_id: uuid.UUID, lease_seconds: int, delivery: Delivery | None = None
) -> Claim | None:
    """Take the file for processing, or None if it is done, gone or held by a live lease.

    A live lease is taken over when `delivery` supersedes its holder (see `Delivery`).
    The usual claim, of a pending file, is one statement (every small file pays for each).
    """
    now = utcnow()
    token = uuid.uuid4()
    without_transaction(session)  # the UPDATE alone is atomic: no BEGIN, no COMMIT
    taken = session.execute(
        _claiming(),
        {
            "file_id": file_id,
            "now": now,
            "token": token,
            "holder": delivery.encode() if delivery else None,
            "expires": now + dt.timedelta(seconds=lease_seconds),
        },
    ).first()
    session.commit()
    if taken is None and delivery is not None:
        held = session.execute(
            select(File.lease_token, File.lease_holder).where(
                File.id == file_id, File.status == FileStatus.PROCESSING
            )
        ).first()
        holder = Delivery.decode(held.lease_holder) if held else None
        if held and holder and delivery.supersedes(holder):
            log.info("compress %s: taking over the lease of %s", file_id, held.lease_holder)
            # Only that very lease: if another job took it meanwhile, this claim fails.
            claimable = or_(_unclaimed(now), File.lease_token == held.lease_token)
            taken = _take(session, file_id, claimable, token, lease_seconds, delivery)
        else:
            session.rollback()  # end the read
    if taken is None:
        return None
    return Claim(
        file_id=file_id,
        token=token,
        owner_id=taken.owner_id,
        name=taken.name,
        size=taken.size,
        crc32=taken.crc32,
        sha256=taken.sha256,
        content_type=taken.content_type,
        created_at=taken.created_at,
        attempts=taken.attempts,
        staged_key=staged_key(taken.owner_id, file_id),
        archive_key=archive_key_for(taken.owner_id, file_id, taken.attempts),
        legacy_staged_key=legacy_staged_key(taken.owner_id, file_id),
    )


# The two statements every file's job runs, built once each with parameters: building
# them (the ORM's bulk UPDATE, a dozen values) cost the worker more CPU than the database
# spent running them. `_take` and `_visible_change` say the same for the rarer paths.
_TABLE = cast(Table, File.__table__)  # Core: not the ORM's bulk UPDATE
_FILES = _TABLE.c
_RETURNED = (
    _FILES.owner_id,
    _FILES.name,
    _FILES.size,
    _FILES.crc32,
    _FILES.sha256,
    _FILES.content_type,
    _FILES.created_at,
    _FILES.attempts,
)


def _param(name: str, column) -> BindParameter:
    return bindparam(name, type_=column.type)


@functools.cache
def _claiming() -> Update:
    """`claim` of a file waiting for a job (`_unclaimed`): to processing under a lease,
    visibly (version and `updated_at` move), returning what the job needs."""
    now = _param("now", _FILES.updated_at)
    return (
        update(_TABLE)
        .where(
            _FILES.id == _param("file_id", _FILES.id),
            or_(
                _FILES.status == FileStatus.PENDING,
                and_(_FILES.status == FileStatus.PROCESSING, _FILES.lease_expires_at < now),
            ),
        )
        .values(
            status=FileStatus.PROCESSING,
            lease_token=_param("token", _FILES.lease_token),
            lease_holder=_param("holder", _FILES.lease_holder),
            lease_expires_at=_param("expires", _FILES.lease_expires_at),
            attempts=_FILES.attempts + 1,
            error=None,
            version=_FILES.version + 1,
            updated_at=now,
        )
        .returning(*_RETURNED)
    )


@functools.cache
def _completing() -> Update:
    """`complete`: ready, with the archive's `new_…` values, under the job's lease."""
    columns = (
        "archive_object",
        "archive_generation",
        "compressed_size",
        "compression",
        "seek_index",
        "entry_offset",
        "entry_compressed_size",
        "sha256",
        "processed_at",
        "updated_at",
    )
    return (
        update(_TABLE)
        .where(
            _FILES.id == _param("file_id", _FILES.id),
            _FILES.lease_token == _param("token", _FILES.lease_token),
            _FILES.status == FileStatus.PROCESSING,
        )
        .values(
            status=FileStatus.READY,
            lease_token=None,
            lease_expires_at=None,
            error=None,
            version=_FILES.version + 1,
            **{name: _param(f"new_{name}", _FILES[name]) for name in columns},
        )
    )


def _take(
    session: Session,
    file_id: uuid.UUID,
    claimable: ColumnElement[bool],
    token: uuid.UUID,
    lease_seconds: int,
    delivery: Delivery | None,
) -> Row | None:
    """Move the file to processing under the lease `token` if `claimable`, and commit;
    what the job needs of the row (RETURNING: no second look), or None."""
    change = _visible_change(
        status=FileStatus.PROCESSING,
        lease_token=token,
        lease_holder=delivery.encode() if delivery else None,
        lease_expires_at=utcnow() + dt.timedelta(seconds=lease_seconds),
        attempts=File.attempts + 1,
        error=None,
    )
    taken = session.execute(
        update(File)
        .where(File.id == file_id, claimable)
        .values(**change)
        .returning(
            File.owner_id,
            File.name,
            File.size,
            File.crc32,
            File.sha256,
            File.content_type,
            File.created_at,
            File.attempts,
        )
        .execution_options(synchronize_session=False)
    ).first()
    session.commit()
    return taken


def _held(job: Claim):
    return and_(
        File.id == job.file_id,
        File.lease_token == job.token,
        File.status == FileStatus.PROCESSING,
    )


def renew(session: Session, job: Claim, lease_seconds: int) -> bool:
    """Extend the lease; False when it was lost (expired and taken, or the file deleted)."""
    values = {
        "lease_expires_at": utcnow() + dt.timedelta(seconds=lease_seconds),
        # Bookkeeping: keep `updated_at` (its column default would bump it) unchanged.
        "updated_at": File.updated_at,
    }
    return _update(session, [_held(job)], values) == 1


def complete(
    session: Session,
    job: Claim,
    result: ArchiveResult,
    *,
    generation: int | None = None,
    preview: Preview | None = None,
) -> bool:
    """Mark the file ready with its archive (this attempt's key, its size and `generation`)
    and its preview, in one transaction; False if the lease was lost."""
    now = utcnow()
    ready = {
        "archive_object": job.archive_key,
        "archive_generation": generation,
        "compressed_size": result.compressed_size,
        "compression": result.method,
        "seek_index": result.seek_index,
        "entry_offset": result.entry_offset,
        "entry_compressed_size": result.entry_compressed_size,
        # Resumable uploads arrive in parts: their digest is first known here.
        "sha256": result.sha256,
        "processed_at": now,
        "updated_at": now,
    }
    if preview is None:
        without_transaction(session)  # one UPDATE, atomic alone: no BEGIN, no COMMIT
    changed = session.execute(
        _completing(),
        {"file_id": job.file_id, "token": job.token, **{f"new_{k}": v for k, v in ready.items()}},
    )
    done = rowcount(changed) == 1
    if done and preview is not None:
        # With `ready`, so a file shown ready has its preview already; only the attempt
        # that completes writes one.
        session.add(FilePreview(file_id=job.file_id, **preview.columns()))
    session.commit()
    return done


def release(session: Session, job: Claim, error: str) -> None:
    """Give the file back (pending) after a transient error, so a retry can claim it."""
    pending = _visible_change(
        status=FileStatus.PENDING, lease_token=None, lease_expires_at=None, error=error[:MAX_ERROR]
    )
    _update(session, [_held(job)], pending)


def fail(session: Session, file_id: uuid.UUID, error: str, job: Claim | None = None) -> None:
    """Mark the file failed with a readable reason (if it is not already ready)."""
    where = _held(job) if job else and_(File.id == file_id, File.status != FileStatus.READY)
    failed = _visible_change(
        status=FileStatus.FAILED,
        lease_token=None,
        lease_expires_at=None,
        error=error[:MAX_ERROR],
        processed_at=utcnow(),
    )
    _update(session, [where], failed)


def exists(session: Session, file_id: uuid.UUID) -> bool:
    return session.scalar(select(File.id).where(File.id == file_id)) is not None


class LeaseLost(Exception):
    """Another job now owns the file, or the file was deleted."""


@dataclass(frozen=True)
class Due:
    """A file whose job must be sent, and the id of the request that uploaded it."""

    file_id: uuid.UUID
    request_id: str | None
    size: int


def due_for_delivery(session: Session, *, lease_seconds: int, limit: int = 500) -> list[Due]:
    """Files whose job must be (re)sent: never sent, sent long ago, or whose lease expired."""
    now = utcnow()
    resend_before = now - dt.timedelta(seconds=lease_seconds)
    rows = session.execute(
        select(File.id, File.request_id, File.size)
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
    return [Due(file_id, request_id, size) for file_id, request_id, size in rows]


def fail_exhausted(session: Session) -> int:
    """Mark failed the files that used up their attempts (a job that kept dying)."""
    now = utcnow()
    failed = _visible_change(
        status=FileStatus.FAILED,
        lease_token=None,
        lease_expires_at=None,
        error=f"Compression did not finish after {MAX_ATTEMPTS} attempts.",
        processed_at=now,
    )
    return _update(session, [File.attempts >= MAX_ATTEMPTS, _unclaimed(now)], failed)
