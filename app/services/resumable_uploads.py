"""Resumable uploads (tus 1.0): create, append, inspect, terminate and expire them.

Any API process can take any request: progress lives in the `uploads` row, bytes in the
storage backend under `tmp/<user>/uploads/<id>.parts/`, as the backend keeps them
(`Storage.upload_chunk`: appended in place to one object, or a part object per PATCH). A
PATCH streams its body straight into storage (never whole in memory, never on local disk
when the backend is GCS), then moves the offset with an UPDATE that also checks it, so two
PATCHes racing for one upload cannot both land: the loser gets 409 and its part object is
removed. When the last byte lands the parts are concatenated (a server-side compose on
GCS) into the staged key of a new pending File with the same id, in the same transaction,
which also removes the upload's row and records its parts for removal (`deletions`); after
the commit the compression job is sent, then the parts go. A finished upload is answered
from its file: HEAD reports its full length.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import NoReturn

from isal import isal_zlib
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.db import rowcount, utcnow, without_transaction
from app.errors import STORAGE_DOWN, AppError, Conflict, NotFound, StorageUnavailable, TooLarge
from app.models import File, FileStatus, Upload, UploadPart
from app.queue.jobs import REQUEST_ID, JobQueue
from app.services import conflicts, deletions, files, folders, names, placement, quota, sizes
from app.services.part_stream import Chunk, NothingToKeep, PartStream
from app.settings import Settings
from app.storage import Busy, Storage
from app.storage.base import UploadChunk

RACED = "Another request wrote to this upload meanwhile; ask with HEAD and resume."


@dataclass(frozen=True)
class Limits:
    """What the settings allow an upload: its size, the owner's quota, its idle lifetime."""

    max_file_bytes: int
    quota_bytes: int
    expiry_seconds: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.max_upload_bytes, settings.quota_bytes, settings.upload_expiry_seconds)


@dataclass(frozen=True)
class Context:
    """What every step of writing an upload works with (one request's)."""

    session: Session
    storage: Storage
    jobs: JobQueue
    limits: Limits


@dataclass(frozen=True)
class Progress:
    """Where an upload stands after a request: what the tus headers report."""

    id: uuid.UUID
    offset: int
    length: int
    expires_at: dt.datetime
    file: File | None = None  # set once the last byte landed


def _progress(upload: Upload, file: File | None = None) -> Progress:
    return Progress(upload.id, upload.offset, upload.length, upload.expires_at, file)


def _made_file(session: Session, owner_id: uuid.UUID, upload_id: uuid.UUID) -> File | None:
    """The file a finished upload became (same id), if the owner still has it."""
    file = session.get(File, upload_id)
    return file if file is not None and file.owner_id == owner_id else None


def _gone(session: Session, owner_id: uuid.UUID, upload_id: uuid.UUID) -> AppError:
    """Why there is no upload row: it finished (409 to a write), or there never was one."""
    if _made_file(session, owner_id, upload_id) is not None:
        return Conflict(f"The upload {upload_id} is already complete.")
    return NotFound(f"There is no upload {upload_id}.")


def _unexpired(upload: Upload) -> Upload:
    if upload.completed_at is None and upload.expires_at <= utcnow():
        raise NotFound(f"The upload {upload.id} has expired.")
    return upload


def _owned(session: Session, owner_id: uuid.UUID, upload_id: uuid.UUID) -> Upload:
    upload = session.get(Upload, upload_id, populate_existing=True)
    if upload is None or upload.owner_id != owner_id:
        raise _gone(session, owner_id, upload_id)
    return _unexpired(upload)


def get(session: Session, owner_id: uuid.UUID, upload_id: uuid.UUID) -> Progress:
    """Where one of the owner's uploads stands (a finished one reports its full length)."""
    upload = session.get(Upload, upload_id, populate_existing=True)
    if upload is None or upload.owner_id != owner_id:
        file = _made_file(session, owner_id, upload_id)
        session.commit()
        if file is None:
            raise NotFound(f"There is no upload {upload_id}.")
        return Progress(file.id, file.size, file.size, file.created_at, file)
    _unexpired(upload)
    session.commit()  # end the read transaction (objects are not expired on commit)
    return _progress(upload)


def unfinished(session: Session, owner_id: uuid.UUID, *, limit: int) -> tuple[list[Upload], int]:
    """The owner's unfinished uploads, newest first (at most `limit`), and how many there
    are: what a person can still resume (by choosing the same file again) or discard."""
    where = (
        Upload.owner_id == owner_id,
        Upload.completed_at.is_(None),
        Upload.expires_at > utcnow(),
    )
    uploads = list(
        session.scalars(
            select(Upload).where(*where).order_by(Upload.created_at.desc(), Upload.id).limit(limit)
        )
    )
    total = session.scalar(select(func.count()).select_from(Upload).where(*where)) or 0
    return uploads, int(total)


def begin_create(
    ctx: Context,
    owner_id: uuid.UUID,
    *,
    length: int,
    metadata: dict[str, str | None],
    first: Chunk | None = None,
) -> tuple[Progress, PartWriter | None]:
    """Start an upload of `length` bytes; with a writer for its `first` bytes, if any.

    413 over the file size or the quota, 409 when the name is taken. The writer takes the
    new upload with it when it is aborted or its bytes are refused (checksum, length):
    nothing half-made.
    """
    upload = _start(ctx, owner_id, length, metadata)
    if first is None or upload.completed_at is not None:
        return _progress(upload), None

    def remove_upload() -> None:
        ctx.session.rollback()
        _remove(ctx.session, ctx.storage, upload.id, upload.temporary_keys)

    try:
        part = begin_append(ctx, owner_id, upload.id, first)
    except BaseException:
        remove_upload()
        raise
    part.on_refused = remove_upload
    return _progress(upload), part


def _start(
    ctx: Context, owner_id: uuid.UUID, length: int, metadata: dict[str, str | None], **columns
) -> Upload:
    """A new upload's checks, reservation and row (`columns`: a direct upload's), committed."""
    session, limits = ctx.session, ctx.limits
    if length > limits.max_file_bytes:
        raise TooLarge(
            f"A file may be at most {sizes.iec(limits.max_file_bytes)}; this one is "
            f"{sizes.iec(length)}.",
            limit="file",
        )
    target, filename = placement.upload_target(metadata)
    name = names.from_client_filename(filename)
    on_conflict = conflicts.conflict_rule(
        metadata.get("onConflict"), "The onConflict of Upload-Metadata"
    )
    conflicts.check_new_file(
        session, owner_id, target, name, on_conflict, size=length, quota_bytes=limits.quota_bytes
    )
    session.rollback()  # end the read: the reservation starts a transaction of its own
    if on_conflict == conflicts.RENAME:
        # Under the owner's lock, held until the upload's row (which holds the name) is in.
        folders.lock_owner(session, owner_id)
        name = conflicts.pick_name(session, owner_id, target, name)
    now = utcnow()
    upload = Upload(
        id=uuid.uuid4(),
        owner_id=owner_id,
        name=name,
        folder_id=target.base_id,
        relative_dir=target.relative_dir,
        content_type=names.content_type_for(
            name, metadata.get("filetype") or metadata.get("content_type")
        ),
        length=length,
        offset=0,
        crc32=0,
        parts=0,
        replaces=on_conflict == conflicts.REPLACE or None,
        expires_at=now + dt.timedelta(seconds=limits.expiry_seconds),
        created_at=now,
        updated_at=now,
        **columns,
    )
    # The whole length is held until the upload finishes or goes: parallel uploads cannot
    # overrun the quota between them.
    quota.reserve(session, limits.quota_bytes, owner_id, length)
    session.add(upload)
    session.flush()
    if length == 0:
        # Nothing to wait for: the empty file exists at once.
        _finish(ctx, upload, [], now, _place(ctx, upload))
        return upload
    session.commit()
    return upload


def begin_append(
    ctx: Context, owner_id: uuid.UUID, upload_id: uuid.UUID, chunk: Chunk
) -> PartWriter:
    """The writer for one PATCH body at `chunk.offset`, for a caller that receives the body
    itself (on an event loop): it `write`s each piece as it arrives, then `finish`es (which
    finishes the upload when it is complete), or `abort`s.

    The checks come first: 404, 409 when the offset is not the upload's, 413 when the body
    runs past its length. No transaction stays open in between, however slowly the body
    comes.
    """
    upload = _owned(ctx.session, owner_id, upload_id)
    ctx.session.commit()  # no transaction stays open while the body streams in
    if upload.direct:
        raise Conflict(
            f"The upload {upload_id} sends its bytes straight to storage, through its "
            "session URL, not with PATCH."
        )
    _check_offset(upload, chunk.offset)
    remaining = upload.length - chunk.offset
    if chunk.content_length is not None and chunk.content_length > remaining:
        raise TooLarge(
            f"The body of {chunk.content_length} bytes runs past the upload's length "
            f"({remaining} bytes remain).",
            limit="file",
        )
    return PartWriter(ctx, upload, chunk)


class PartWriter:
    """One request body on its way into an upload: `write` pieces, then `finish` or `abort`.

    Where they go is the storage's choice (see `Storage.upload_chunk`): appended in place,
    under a hold that makes a PATCH finding another one writing get 409 at once, or into a
    part object of its own, recorded when the offset moves.
    A body cut short by the client is kept as far as it got, as tus asks, unless it came
    with a checksum; 460 (and nothing kept) when the checksum does not match.

    The calls may come from different threads, one at a time.
    """

    def __init__(self, ctx: Context, upload: Upload, chunk: Chunk):
        self.ctx = ctx
        self.session = ctx.session
        self.upload = upload
        self.offset = chunk.offset
        self.stream = PartStream(upload.length - chunk.offset, chunk)
        self.on_refused: Callable[[], None] | None = None  # also undo what came before
        self._ended = False  # finished or aborted: later calls do nothing
        self._opened = ExitStack()
        try:
            # An upload begun before the temporary prefix existed goes on where it is.
            self._sink: UploadChunk = self._opened.enter_context(
                ctx.storage.upload_chunk(
                    upload.parts_prefix,
                    self.offset,
                    self._confirm,
                    earlier=upload.legacy_parts_prefix,
                )
            )
        except BaseException as exc:
            self._opened.close()
            ctx.session.rollback()
            _reraise(exc)

    def _confirm(self) -> None:
        without_transaction(self.session)  # one read: no BEGIN, no COMMIT
        current = self.session.get(Upload, self.upload.id, populate_existing=True)
        gone = (
            _gone(self.session, self.upload.owner_id, self.upload.id) if current is None else None
        )
        self.session.commit()  # again, no transaction stays open while the body streams in
        if current is None:  # finished, terminated or expired since the first look
            raise gone or NotFound(f"There is no upload {self.upload.id}.")
        _check_offset(current, self.offset)

    def write(self, pieces: Sequence[bytes]) -> None:
        """The next pieces of the body, in order (413 once they run past the upload's
        length). Taken as they came, not joined: one copy fewer, one system call."""
        assert not self._ended, "written after it ended"
        try:
            for piece in pieces:
                self.stream.feed(piece)
            self._sink.writelines(pieces)
        except BaseException as exc:
            self.abort(exc)
            _reraise(exc)

    def abort(self, exc: BaseException | None = None) -> None:
        """Keep nothing of this body (the caller is raising `exc`, or giving up)."""
        if self._ended:
            return
        self._ended = True
        try:
            self._discard(exc)
        finally:
            self._refused()

    def _discard(self, exc: BaseException | None) -> None:
        try:
            self._sink.discard()
            error = exc or _Abandoned()
            self._opened.__exit__(type(error), error, error.__traceback__)
        finally:
            self.session.rollback()

    def _refused(self) -> None:
        if self.on_refused is not None:
            self.on_refused()

    def finish(self) -> Progress:
        """Record what was written (a body cut short is kept as far as it got, unless it
        came with a checksum) and answer where the upload now stands."""
        if self._ended:
            return _progress(self.upload)
        self._ended = True
        try:
            self.stream.check(self.offset)
            self._sink.keep()  # stored (on disk, in place) before the new offset is recorded
        except NothingToKeep:
            self._discard(None)
            return _progress(self.upload)
        except BaseException as exc:
            self._ended = False
            self.abort(exc)
            _reraise(exc)
        try:
            # In place, from here the bytes stay even if recording fails: the next PATCH
            # cuts the object back to the recorded offset before it writes.
            return self._record()
        except BaseException:
            self.session.rollback()
            if self._sink.is_part:
                self.ctx.storage.delete(self._sink.key)
            self._refused()
            raise
        finally:
            self._opened.close()  # in place: releases the hold

    def _record(self) -> Progress:
        """Move the offset past the stored chunk (its part recorded, if it is one); finish
        the upload when that was its last byte."""
        session, upload, part, sink = self.session, self.upload, self.stream, self._sink
        now = utcnow()
        new_offset = upload.offset + part.size
        crc = isal_zlib.crc32_combine(upload.crc32, part.crc32, part.size) & 0xFFFFFFFF
        if new_offset == upload.length:
            return self._last(now, crc)
        values = {
            "offset": new_offset,
            "crc32": crc,
            "parts": upload.parts + 1,
            "updated_at": now,
            "expires_at": now + dt.timedelta(seconds=self.ctx.limits.expiry_seconds),
        }
        # The WHERE on the offset is the lock: a concurrent PATCH that landed first moved it
        # (and on PostgreSQL this UPDATE waits for that PATCH's transaction to end).
        moved = session.execute(
            update(Upload)
            .where(*_still_at(upload))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if rowcount(moved) != 1:
            raise Conflict(RACED)
        if sink.is_part:
            session.add(
                UploadPart(upload_id=upload.id, offset=upload.offset, size=part.size, key=sink.key)
            )
            session.flush()
        for name, value in values.items():
            set_committed_value(upload, name, value)  # what the UPDATE wrote, without a SELECT
        session.commit()
        return _progress(upload)

    def _last(self, now: dt.datetime, crc: int) -> Progress:
        """The last bytes landed: the upload becomes its file. No UPDATE of the row first:
        `_finish` deletes it under the same guard on the offset."""
        session, upload, sink = self.session, self.upload, self._sink
        placed = _place(self.ctx, upload)  # the owner, then the folder: a folder delete's order
        keys = [sink.key]  # in place: the one object every chunk went to
        if sink.is_part:  # the parts before this one, then this one (never recorded)
            earlier = select(UploadPart.key).where(UploadPart.upload_id == upload.id)
            keys = [*session.scalars(earlier.order_by(UploadPart.offset)), sink.key]
        set_committed_value(upload, "crc32", crc)
        file = _finish(self.ctx, upload, keys, now, placed)
        return _progress(upload, file)


def _still_at(upload: Upload) -> tuple:
    """Where the row is as `upload` saw it: unfinished, at its offset."""
    return (Upload.id == upload.id, Upload.offset == upload.offset, Upload.completed_at.is_(None))


class _Abandoned(Exception):
    """Why a writer is left when nobody raised: nothing of its body is kept."""


def _reraise(exc: BaseException) -> NoReturn:
    """Raise what a failure while storing a body means to the client."""
    if isinstance(exc, Busy):
        raise Conflict(
            "Another request is writing to this upload; ask with HEAD and resume."
        ) from None
    if isinstance(exc, (AppError, SQLAlchemyError)) or not isinstance(exc, Exception):
        raise exc
    raise StorageUnavailable(f"The chunk could not be stored: {STORAGE_DOWN}") from exc


def _check_offset(upload: Upload, offset: int) -> None:
    if upload.completed_at is not None:
        raise Conflict(f"The upload {upload.id} is already complete.")
    if offset != upload.offset:
        raise Conflict(
            f"Upload-Offset {offset} does not match the upload's offset {upload.offset}; "
            "ask with HEAD and resume from there."
        )


def _place(ctx: Context, upload: Upload) -> tuple[uuid.UUID | None, str | None]:
    """Take the owner's row, then find (or make) the folder the finished upload's file goes
    to: its id, and what holds the file's name there (`placement.place`).

    The upload's bytes move from reserved to stored first: that UPDATE holds the owner's
    row, which is the lock every write of a name takes (`folders.lock_owner`), at no
    statement of its own. An upload that can no longer land there (its folder was deleted
    meanwhile, or a file took the name a folder of its path needs) is removed, its
    reservation freed: 409.
    """
    target = placement.target_of(upload.folder_id, upload.relative_dir)
    try:
        quota.reservation_filled(ctx.session, upload.owner_id, upload.length)
        return placement.place(ctx.session, upload.owner_id, target, upload.name)
    except (NotFound, Conflict) as exc:
        ctx.session.rollback()
        _remove(ctx.session, ctx.storage, upload.id, upload.temporary_keys)
        raise Conflict(f"{exc.detail} The upload was cancelled and its bytes removed.") from None


def _finish(
    ctx: Context,
    upload: Upload,
    keys: list[str],
    now: dt.datetime,
    placed: tuple[uuid.UUID | None, str | None],
) -> File:
    """The upload, its objects `keys` concatenated, becomes a pending File (same id) in the
    caller's transaction, which this commits (the caller `_place`d it: the folder, and what
    holds the name there); then the job is sent and its parts go. The row goes only if it
    is still where `upload` saw it (409 otherwise: a concurrent PATCH landed first)."""
    folder_id, holder = placed
    session, storage = ctx.session, ctx.storage
    # Replacing: the old file goes in this transaction, so the name is never free between.
    replaced = []
    if upload.replaces and holder == "file":
        replaced = files.displace(session, upload.owner_id, folder_id, upload.name)
        holder = None
    # The row goes with the upload (its parts' rows with it: ON DELETE CASCADE): the file
    # (same id) answers for it from now on. Under the guard this is the PATCH's lock too
    # (on PostgreSQL the DELETE waits for a concurrent PATCH's transaction to end).
    gone = session.execute(
        delete(Upload).where(*_still_at(upload)).execution_options(synchronize_session=False)
    )
    if rowcount(gone) != 1:
        raise Conflict(RACED)
    file = File(
        id=upload.id,
        owner_id=upload.owner_id,
        folder_id=folder_id,
        name=conflicts.free_name(session, upload.owner_id, folder_id, upload.name, holder=holder),
        status=FileStatus.PENDING,
        size=upload.length,
        sha256=None,  # the worker computes it while compressing
        crc32=upload.crc32,
        content_type=upload.content_type,
        attempts=0,
        request_id=REQUEST_ID.get(),  # a job the sweep sends again carries it too
        # Sent just after the commit (unless the broker is down: `recorded` clears it); dying
        # in between, the sweep sends it a lease later. Saves a transaction per file.
        enqueued_at=now,
    )
    session.add(file)
    session.expunge(upload)
    set_committed_value(upload, "offset", upload.length)
    set_committed_value(upload, "completed_at", now)
    # Parts written before `tmp/` existed are where they were: that folder goes too.
    legacy = any(not key.startswith(upload.parts_prefix) for key in keys)
    prefixes = [upload.parts_prefix, *([upload.legacy_parts_prefix] if legacy else [])]
    leftovers = deletions.schedule(session, prefixes)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"You already have a file named {file.name!r}; retry.") from None
    try:
        # Intermediates go under the parts prefix: a crash mid-way leaves them where the
        # upload's expiry (or, after the commit, the deletion above) removes them.
        storage.concat(keys, file.staged_key, file.content_type, scratch=upload.parts_prefix)
    except Exception as exc:
        raise StorageUnavailable(f"The upload could not be assembled: {STORAGE_DOWN}") from exc
    try:
        session.commit()
    except BaseException:
        storage.delete(upload.staged_key)  # no object without its row
        raise
    # The job first (the worker gets it sooner): carry_out's rollback expires `file`, and
    # reading its id after that costs a SELECT.
    ctx.jobs.send_compression(session, file.id, size=file.size, recorded=True)
    # The parts (the upload is the file now) and what the file replaced, if it did.
    deletions.carry_out(session, storage, leftovers + replaced)
    return file


def terminate(session: Session, storage: Storage, owner_id: uuid.UUID, upload_id: uuid.UUID):
    """Cancel an upload and remove its parts (a finished upload's file stays)."""
    upload = session.get(Upload, upload_id)
    if upload is None or upload.owner_id != owner_id:
        if _made_file(session, owner_id, upload_id) is not None:
            session.commit()
            return  # finished: nothing of the upload is left to cancel
        raise NotFound(f"There is no upload {upload_id}.")
    _remove(session, storage, upload.id, upload.temporary_keys)


def _remove(
    session: Session,
    storage: Storage,
    upload_id: uuid.UUID,
    keys: Sequence[str],
    *,
    expired_by: dt.datetime | None = None,
) -> bool:
    """Delete the row, then its objects `keys`; False if it changed meanwhile (extended, gone).

    The objects are recorded for removal in the row's transaction (`deletions`): a process
    that dies after the commit leaves them to the worker's sweep, not to nobody.
    """
    where = [Upload.id == upload_id]
    if expired_by is not None:
        # A PATCH may have extended the upload since it was selected.
        where.append(Upload.expires_at <= expired_by)
    # The conditions are re-checked under the row's lock: a finish racing with us either
    # commits first (the row is gone, and so are we) or waits for our delete (and then 409s).
    removed = session.execute(
        delete(Upload)
        .where(*where)
        .returning(Upload.owner_id, Upload.length, Upload.completed_at)
        .execution_options(synchronize_session=False)
    ).first()
    if removed is None:
        session.commit()
        return False
    if removed.completed_at is None:
        quota.release(session, removed.owner_id, removed.length)
    # A finished row (kept by a version before this one) is a record only: its file stays.
    # Otherwise a finish that died before its commit may have left the staged object behind.
    pending = deletions.schedule(
        session, keys if removed.completed_at is None else [k for k in keys if k.endswith("/")]
    )
    session.commit()
    deletions.carry_out(session, storage, pending)
    return True


def expire(session: Session, storage: Storage, *, limit: int = 500) -> int:
    """Remove expired uploads and their parts (a finished one is just a record by then)."""
    now = utcnow()
    expired = [
        (upload.id, upload.temporary_keys)
        for upload in session.scalars(
            select(Upload).where(Upload.expires_at <= now).order_by(Upload.expires_at).limit(limit)
        )
    ]
    session.commit()
    return sum(_remove(session, storage, *row, expired_by=now) for row in expired)
