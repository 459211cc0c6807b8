"""Resumable uploads (tus 1.0): create, append, inspect, terminate and expire them.

Any API process can take any request: progress lives in the `uploads` row, bytes in the
storage backend, one part object per PATCH under `tmp/<user>/uploads/<id>.parts/`. A PATCH
streams its body straight into a storage writer (never whole in memory, never on local
disk when the backend is GCS), then records the part with an UPDATE that also checks the
offset, so two PATCHes racing for one upload cannot both land: the loser gets 409 and
its part object is removed. When the last byte lands the parts are concatenated (a
server-side compose on GCS) into the staged key of a new pending File with the same id,
in the same transaction, which also removes the upload's row and records its parts for
removal (`deletions`); the parts go after the commit, and the compression job is sent.
A finished upload is answered from its file: HEAD reports its full length.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import BinaryIO, NoReturn, Protocol

from isal import isal_zlib
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.context import REQUEST_ID
from app.db import rowcount, utcnow
from app.errors import (
    STORAGE_DOWN,
    AppError,
    ChecksumMismatch,
    Conflict,
    InvalidInput,
    NotFound,
    StorageUnavailable,
    TooLarge,
)
from app.models import File, FileStatus, Upload, UploadPart
from app.queue.jobs import JobQueue
from app.services import admission, deletions, names
from app.storage import Busy, Storage
from app.storage.base import Appending

CHECKSUMS: dict[str, Callable[[], hashlib._Hash]] = {
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "md5": lambda: hashlib.md5(usedforsecurity=False),
    "sha256": hashlib.sha256,
}
READ_SIZE = 1024 * 1024


class Body(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes


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


def create(
    session: Session,
    storage: Storage,
    jobs: JobQueue,
    *,
    owner_id: uuid.UUID,
    length: int,
    metadata: dict[str, str | None],
    max_file_bytes: int,
    quota_bytes: int,
    expiry_seconds: int,
    body: Body | None = None,
    content_length: int | None = None,
    checksum: Checksum | None = None,
) -> Progress:
    """Start an upload of `length` bytes, with its first bytes when `body` is given.

    413 over the file size or the quota, 409 when the name is taken. If the first bytes
    are refused (checksum, length), the new upload is removed again: nothing half-made.
    """
    progress, part = begin_create(
        session,
        storage,
        jobs,
        owner_id=owner_id,
        length=length,
        metadata=metadata,
        max_file_bytes=max_file_bytes,
        quota_bytes=quota_bytes,
        expiry_seconds=expiry_seconds,
        with_body=body is not None,
        content_length=content_length,
        checksum=checksum,
    )
    return progress if part is None or body is None else part.pump(body)


def begin_create(
    session: Session,
    storage: Storage,
    jobs: JobQueue,
    *,
    owner_id: uuid.UUID,
    length: int,
    metadata: dict[str, str | None],
    max_file_bytes: int,
    quota_bytes: int,
    expiry_seconds: int,
    with_body: bool,
    content_length: int | None = None,
    checksum: Checksum | None = None,
) -> tuple[Progress, PartWriter | None]:
    """`create`, with its first bytes (when `with_body`) left to the caller to write.

    The writer, if any, takes the new upload with it when it is aborted or its bytes are
    refused.
    """
    upload = _start(
        session,
        storage,
        jobs,
        owner_id=owner_id,
        length=length,
        metadata=metadata,
        max_file_bytes=max_file_bytes,
        quota_bytes=quota_bytes,
        expiry_seconds=expiry_seconds,
    )
    if not with_body or upload.completed_at is not None:
        return _progress(upload), None

    def remove_upload() -> None:
        session.rollback()
        _remove(session, storage, upload.id, upload.temporary_keys)

    try:
        part = begin_append(
            session,
            storage,
            jobs,
            owner_id=owner_id,
            upload_id=upload.id,
            offset=0,
            content_length=content_length,
            checksum=checksum,
            expiry_seconds=expiry_seconds,
        )
    except BaseException:
        remove_upload()
        raise
    part.on_refused = remove_upload
    return _progress(upload), part


def _start(
    session: Session,
    storage: Storage,
    jobs: JobQueue,
    *,
    owner_id: uuid.UUID,
    length: int,
    metadata: dict[str, str | None],
    max_file_bytes: int,
    quota_bytes: int,
    expiry_seconds: int,
) -> Upload:
    if length > max_file_bytes:
        raise TooLarge(
            f"A file may be at most {max_file_bytes} bytes; this one is {length}.", limit="file"
        )
    filename = metadata.get("filename") or metadata.get("name")
    if not filename:
        raise InvalidInput("Upload-Metadata must carry the file's name as `filename`.")
    name = names.from_client_filename(filename)
    admission.check_new_file(session, quota_bytes, owner_id, name, length)
    session.rollback()  # end the read: the reservation starts a transaction of its own
    now = utcnow()
    upload = Upload(
        id=uuid.uuid4(),
        owner_id=owner_id,
        name=name,
        content_type=admission.content_type_for(
            name, metadata.get("filetype") or metadata.get("content_type")
        ),
        length=length,
        offset=0,
        crc32=0,
        parts=0,
        expires_at=now + dt.timedelta(seconds=expiry_seconds),
        created_at=now,
        updated_at=now,
    )
    # The whole length is held until the upload finishes or goes: parallel uploads cannot
    # overrun the quota between them.
    admission.reserve(session, quota_bytes, owner_id, length)
    session.add(upload)
    session.flush()
    if length == 0:
        # Nothing to wait for: the empty file exists at once.
        file, leftovers = _finish(session, storage, upload, [], now)
        _commit_finished(session, storage, jobs, upload, file, leftovers)
        return upload
    session.commit()
    return upload


def append(
    session: Session,
    storage: Storage,
    jobs: JobQueue,
    *,
    owner_id: uuid.UUID,
    upload_id: uuid.UUID,
    offset: int,
    body: Body,
    content_length: int | None,
    checksum: Checksum | None,
    expiry_seconds: int,
) -> Progress:
    """Store one PATCH body at `offset` as a part; finish the upload when it is complete.

    409 when `offset` is not the upload's, 413 when the body runs past its length, 460
    (and nothing stored) when the checksum does not match. A body cut short by the client
    is kept as far as it got, as tus asks, unless it came with a checksum.
    """
    part = begin_append(
        session,
        storage,
        jobs,
        owner_id=owner_id,
        upload_id=upload_id,
        offset=offset,
        content_length=content_length,
        checksum=checksum,
        expiry_seconds=expiry_seconds,
    )
    return part.pump(body)


def begin_append(
    session: Session,
    storage: Storage,
    jobs: JobQueue,
    *,
    owner_id: uuid.UUID,
    upload_id: uuid.UUID,
    offset: int,
    content_length: int | None,
    checksum: Checksum | None,
    expiry_seconds: int,
) -> PartWriter:
    """`append` in steps, for a caller that receives the body itself (on an event loop).

    The checks come first (404, 409, 413), then the writer is open: the caller `write`s
    each chunk as it arrives and then `finish`es, or `abort`s. No transaction stays open
    in between, however slowly the body comes.
    """
    upload = _owned(session, owner_id, upload_id)
    session.commit()  # no transaction stays open while the body streams in
    _check_offset(upload, offset)
    remaining = upload.length - offset
    if content_length is not None and content_length > remaining:
        raise TooLarge(
            f"The body of {content_length} bytes runs past the upload's length "
            f"({remaining} bytes remain).",
            limit="file",
        )
    return PartWriter(
        session,
        storage,
        jobs,
        upload,
        offset,
        _PartStream(remaining, checksum, content_length),
        expiry_seconds,
    )


class PartWriter:
    """One request body on its way into an upload: `write` chunks, then `finish` or `abort`.

    On a backend that appends in place, every PATCH extends one data object, under the
    backend's lock: a PATCH that finds another one writing gets 409 at once, and the
    offset is re-read under the lock. No assembly at the end (the finished upload is the
    data object, renamed), so the last PATCH costs what the others do. Elsewhere each
    PATCH stores a part object of its own.

    The calls may come from different threads, one at a time.
    """

    def __init__(
        self,
        session: Session,
        storage: Storage,
        jobs: JobQueue,
        upload: Upload,
        offset: int,
        stream: _PartStream,
        expiry_seconds: int,
    ):
        self.session = session
        self.storage = storage
        self.jobs = jobs
        self.upload = upload
        self.offset = offset
        self.stream = stream
        self.expiry_seconds = expiry_seconds
        self.on_refused: Callable[[], None] | None = None  # also undo what came before
        self._key: str | None = None
        self._data_key: str | None = None
        self._ended = False  # finished or aborted: later calls do nothing
        self._opened = ExitStack()
        self._appender: Appending | None = None
        self._sink: Appending | BinaryIO
        try:
            if storage.appendable:
                self._data_key = _data_key(storage, upload, offset)
                self._appender = self._opened.enter_context(
                    storage.appender(self._data_key, offset, self._confirm)
                )
                self._sink = self._appender
            else:
                self._key = f"{upload.parts_prefix}{offset:015d}-{uuid.uuid4().hex[:12]}"
                # Not fsynced: the worker checks the assembled bytes against size and CRC-32.
                self._sink = self._opened.enter_context(
                    storage.writer(self._key, "application/octet-stream", durable=False)
                )
        except BaseException as exc:
            self._opened.close()
            session.rollback()
            _reraise(exc)

    @property
    def size(self) -> int:
        """The bytes written so far."""
        return self.stream.size

    def _confirm(self) -> None:
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

    def pump(self, body: Body) -> Progress:
        """Write all of `body` (read until it ends), then `finish`."""
        while chunk := body.read(READ_SIZE):
            self.write((chunk,))
        return self.finish()

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
            if self._appender is not None:
                self._appender.discard()
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
            if self._appender is not None:
                self._appender.persist()  # on disk before the new offset is recorded and reported
            else:
                self._opened.close()  # the part object is stored
        except _NothingToKeep:
            self._discard(None)
            return _progress(self.upload)
        except BaseException as exc:
            self._ended = False
            self.abort(exc)
            _reraise(exc)
        try:
            # In place, from here the bytes stay even if recording fails: the next PATCH
            # cuts the object back to the recorded offset before it writes.
            return _record_part(
                self.session,
                self.storage,
                self.jobs,
                self.upload,
                self._key or self._data_key,
                self.stream,
                self.expiry_seconds,
                in_place=self._appender is not None,
            )
        except BaseException:
            self.session.rollback()
            if self._key is not None:
                self.storage.delete(self._key)
            self._refused()
            raise
        finally:
            self._opened.close()  # in place: releases the lock


def _data_key(storage: Storage, upload: Upload, offset: int) -> str:
    """The object an in-place upload appends to; one begun before the temporary prefix
    existed goes on where its bytes already are."""
    if (
        offset > 0
        and not storage.exists(upload.data_key)
        and storage.exists(upload.legacy_data_key)
    ):
        return upload.legacy_data_key
    return upload.data_key


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


class _NothingToKeep(Exception):
    """An empty body, or one cut short that cannot be verified against its checksum."""


class _PartStream:
    """Measures a body as it passes: its size, CRC-32 and the requested checksum."""

    def __init__(self, limit: int, checksum: Checksum | None, content_length: int | None):
        self.limit = limit
        self.checksum = checksum
        self.content_length = content_length
        self.size = 0
        self.crc32 = 0
        self._hash = CHECKSUMS[checksum.algorithm]() if checksum else None

    def feed(self, chunk: bytes) -> None:
        if self.size + len(chunk) > self.limit:
            raise TooLarge(
                f"The body runs past the upload's length ({self.limit} bytes remained).",
                limit="file",
            )
        self.size += len(chunk)
        self.crc32 = isal_zlib.crc32(chunk, self.crc32)
        if self._hash is not None:
            self._hash.update(chunk)

    @property
    def digest(self) -> bytes:
        return self._hash.digest() if self._hash is not None else b""

    def check(self, offset: int) -> None:
        """Raise unless what was copied is to be kept: not empty, whole, its checksum right."""
        cut_short = self.content_length is not None and self.size < self.content_length
        if self.size == 0 or (cut_short and self.checksum is not None):
            raise _NothingToKeep
        if self.checksum is not None and self.digest != self.checksum.digest:
            raise ChecksumMismatch(
                f"The chunk's {self.checksum.algorithm} does not match Upload-Checksum; it "
                f"was discarded and the offset stays {offset}."
            )


def _record_part(
    session: Session,
    storage: Storage,
    jobs: JobQueue,
    upload: Upload,
    key: str | None,
    part: _PartStream,
    expiry_seconds: int,
    *,
    in_place: bool = False,
) -> Progress:
    """Move the offset past a stored chunk; `key` names its part object (or, `in_place`,
    the one object every chunk is appended to)."""
    now = utcnow()
    new_offset = upload.offset + part.size
    crc = isal_zlib.crc32_combine(upload.crc32, part.crc32, part.size) & 0xFFFFFFFF
    values = {
        "offset": new_offset,
        "crc32": crc,
        "parts": upload.parts + 1,
        "updated_at": now,
        "expires_at": now + dt.timedelta(seconds=expiry_seconds),
    }
    # The WHERE on the offset is the lock: a concurrent PATCH that landed first moved it
    # (and on PostgreSQL this UPDATE waits for that PATCH's transaction to end).
    moved = session.execute(
        update(Upload)
        .where(
            Upload.id == upload.id,
            Upload.offset == upload.offset,
            Upload.completed_at.is_(None),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) != 1:
        raise Conflict("Another request wrote to this upload meanwhile; ask with HEAD and resume.")
    if key is not None and not in_place:
        session.add(UploadPart(upload_id=upload.id, offset=upload.offset, size=part.size, key=key))
        session.flush()
    for name, value in values.items():
        set_committed_value(upload, name, value)  # what the UPDATE wrote, without a SELECT
    if new_offset < upload.length:
        session.commit()
        return _progress(upload)
    if in_place:
        keys = [key or upload.data_key]
    else:
        keys = list(
            session.scalars(
                select(UploadPart.key)
                .where(UploadPart.upload_id == upload.id)
                .order_by(UploadPart.offset)
            )
        )
    file, leftovers = _finish(session, storage, upload, keys, now)
    _commit_finished(session, storage, jobs, upload, file, leftovers)
    return _progress(upload, file)


def _commit_finished(
    session: Session,
    storage: Storage,
    jobs: JobQueue,
    upload: Upload,
    file: File,
    leftovers: list[uuid.UUID],
) -> None:
    try:
        session.commit()
    except BaseException:
        storage.delete(upload.staged_key)  # no object without its row
        raise
    deletions.carry_out(session, storage, leftovers)  # the parts: the upload is the file now
    jobs.send_compression(session, file.id)


def _finish(
    session: Session, storage: Storage, upload: Upload, keys: list[str], now: dt.datetime
) -> tuple[File, list[uuid.UUID]]:
    """Inside the caller's transaction: the pending File and its staged object; the upload's
    row gone, its parts recorded for removal once this commits (their deletion ids)."""
    file = File(
        id=upload.id,
        owner_id=upload.owner_id,
        name=admission.free_name(session, upload.owner_id, upload.name),
        status=FileStatus.PENDING,
        size=upload.length,
        sha256=None,  # the worker computes it while compressing
        crc32=upload.crc32,
        content_type=upload.content_type,
        attempts=0,
        request_id=REQUEST_ID.get(),  # a job the sweep sends again carries it too
    )
    session.add(file)
    admission.reservation_filled(session, upload.owner_id, upload.length)
    session.execute(delete(UploadPart).where(UploadPart.upload_id == upload.id))
    # The row goes with the upload: the file (same id) answers for it from now on.
    session.execute(
        delete(Upload).where(Upload.id == upload.id).execution_options(synchronize_session=False)
    )
    session.expunge(upload)
    set_committed_value(upload, "offset", upload.length)
    set_committed_value(upload, "completed_at", now)
    # Parts written before `tmp/` existed are where they were: that folder goes too.
    legacy = any(not key.startswith(upload.parts_prefix) for key in keys)
    folders = [upload.parts_prefix, *([upload.legacy_parts_prefix] if legacy else [])]
    leftovers = deletions.schedule(session, folders)
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
    return file, leftovers


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
    options = {"synchronize_session": False}
    removed = session.execute(
        delete(Upload)
        .where(*where)
        .returning(Upload.owner_id, Upload.length, Upload.completed_at)
        .execution_options(**options)
    ).first()
    if removed is None:
        session.commit()
        return False
    if removed.completed_at is None:
        admission.release(session, removed.owner_id, removed.length)
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
