"""Direct uploads: the client sends the bytes straight to the bucket, the service keeps the rules.

Starting one makes the same checks and the same reservation as a tus creation (it is an
`uploads` row, `direct`), then opens a GCS resumable session for the upload's quarantine
object (`Upload.direct_key`, under its parts prefix) bound to the declared size, and hands
the session URL to the client. The URL is the capability to write that object: it is
never logged and never stored, only its SHA-256 (to recognise it when the client cancels).

Completing reads what the storage measured of the object (size, CRC32C, MD5); bytes that
are not the ones declared are removed with the upload (422). Otherwise the object is
composed (server-side) into the staged key of a pending File with the upload's id and the
compression job is sent, exactly as when a tus upload's last byte lands. The CRC-32 the
ZIP entry records is the client's to say (the service never reads the bytes): the worker
checks it as it reads them, as it checks a tus upload's.

Cancelling ends the session and removes the upload; an abandoned one expires with the tus
uploads (`resumable_uploads.expire`), its reservation released and its quarantine removed.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.db import utcnow
from app.errors import (
    STORAGE_DOWN,
    Conflict,
    InvalidInput,
    NotFound,
    StorageUnavailable,
    Unprocessable,
)
from app.models import File, Upload
from app.services import resumable_uploads, sizes
from app.services.resumable_uploads import Context
from app.storage.direct import DirectSessions, ObjectFacts

# How much a client should send per PUT: a multiple of 256 KiB, as GCS requires of every
# chunk but the last; a broken PUT re-sends at most this much.
CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Declaration:
    """What a client says of the file it is about to send."""

    name: str
    size: int
    folder_id: str | None = None
    relative_path: str | None = None
    content_type: str | None = None
    on_conflict: str | None = None
    crc32c: str | None = None  # base64 of the big-endian CRC32C, as GCS reports it
    md5: str | None = None  # base64 of the MD5 digest


@dataclass(frozen=True)
class Started:
    upload: Upload
    session_url: str  # handed to the client once, kept nowhere


def sessions_of(ctx: Context, enabled: bool) -> DirectSessions:
    """The storage's sessions, when direct uploads are offered here; 404 otherwise."""
    sessions = ctx.storage.direct_sessions() if enabled else None
    if sessions is None:
        raise NotFound(
            "Direct uploads are not offered by this server; send the file with tus "
            "(POST /api/v1/uploads)."
        )
    return sessions


def fingerprint(session_url: str) -> str:
    return hashlib.sha256(session_url.encode()).hexdigest()


def start(
    ctx: Context,
    sessions: DirectSessions,
    owner_id: uuid.UUID,
    declared: Declaration,
    *,
    origin: str | None,
) -> Started:
    """Check the name and the quota and reserve the size (as a tus creation does), then
    open the session. 413 over the file size or the quota, 409 when the name is taken."""
    metadata = {
        "filename": declared.name,
        "folderId": declared.folder_id,
        "relativePath": declared.relative_path,
        "onConflict": declared.on_conflict,
        "filetype": declared.content_type,
    }
    upload = resumable_uploads._start(
        ctx,
        owner_id,
        declared.size,
        metadata,
        direct=True,
        declared_crc32c=declared.crc32c,
        declared_md5=declared.md5,
    )
    session = ctx.session
    try:
        url = sessions.open_session(
            upload.direct_key,
            size=upload.length,
            content_type=upload.content_type,
            origin=origin,
        )
    except Exception as exc:
        resumable_uploads._remove(session, ctx.storage, upload.id, upload.temporary_keys)
        raise StorageUnavailable(f"The upload could not be started: {STORAGE_DOWN}") from exc
    session.execute(
        update(Upload)
        .where(Upload.id == upload.id)
        .values(session_sha256=fingerprint(url))
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return Started(upload, url)


def _direct(session: Session, owner_id: uuid.UUID, upload_id: uuid.UUID) -> Upload | None:
    """The owner's unfinished direct upload; None when it became a file already."""
    upload = session.get(Upload, upload_id, populate_existing=True)
    if upload is None or upload.owner_id != owner_id:
        if resumable_uploads._made_file(session, owner_id, upload_id) is not None:
            return None
        raise NotFound(f"There is no upload {upload_id}.")
    resumable_uploads._unexpired(upload)
    if not upload.direct:
        raise Conflict(f"The upload {upload_id} is a tus upload: send its bytes with PATCH.")
    return upload


def _mismatch(upload: Upload, facts: ObjectFacts) -> str | None:
    """Why the stored object is not what the upload declared, if it is not."""
    if facts.size != upload.length:
        return (
            f"The storage received {sizes.iec(facts.size)} ({facts.size} bytes), but the "
            f"upload declared {sizes.iec(upload.length)} ({upload.length} bytes)."
        )
    if upload.declared_crc32c and facts.crc32c != upload.declared_crc32c:
        return (
            f"The bytes received have CRC32C {facts.crc32c}, but the upload declared "
            f"{upload.declared_crc32c}."
        )
    if upload.declared_md5 and facts.md5 != upload.declared_md5:
        return (
            f"The bytes received have MD5 {facts.md5}, but the upload declared "
            f"{upload.declared_md5}."
        )
    return None


def complete(
    ctx: Context, sessions: DirectSessions, owner_id: uuid.UUID, upload_id: uuid.UUID, crc32: int
) -> tuple[File, bool]:
    """The upload, its object checked, becomes a pending File (same id) handed to the
    worker; with True when it became one now, False when an earlier call did (a retry).

    409 while the session has not received every byte; 422 (and the upload removed) when
    the bytes are not the ones declared.
    """
    session = ctx.session
    upload = _direct(session, owner_id, upload_id)
    if upload is None:
        return _made(session, owner_id, upload_id), False
    session.commit()  # no transaction stays open while the storage answers
    try:
        facts = sessions.facts(upload.direct_key)
    except Exception as exc:
        raise StorageUnavailable(f"The upload could not be checked: {STORAGE_DOWN}") from exc
    if facts is None:
        raise Conflict(
            "The storage holds no finished object for this upload yet: send the rest of its "
            f"{upload.length} bytes to the session URL (ask it how many it has with "
            f"`Content-Range: bytes */{upload.length}`), then complete it again."
        )
    problem = _mismatch(upload, facts)
    if problem is not None:
        resumable_uploads._remove(session, ctx.storage, upload.id, upload.temporary_keys)
        raise Unprocessable(f"{problem} The upload was cancelled and its bytes removed.")
    # The owner's lock and the folder first (as a tus upload's last PATCH), then the row:
    # of two completes at once, the second finds it gone and answers with the file.
    folder_id = resumable_uploads._place(ctx, upload)
    locked = session.get(Upload, upload.id, with_for_update=True, populate_existing=True)
    if locked is None:
        session.rollback()
        return _made(session, owner_id, upload_id), False
    set_committed_value(locked, "crc32", crc32)
    file = resumable_uploads._finish(ctx, locked, [locked.direct_key], utcnow(), folder_id)
    return file, True


def _made(session: Session, owner_id: uuid.UUID, upload_id: uuid.UUID) -> File:
    file = resumable_uploads._made_file(session, owner_id, upload_id)
    session.commit()
    if file is None:  # deleted since
        raise NotFound(f"There is no upload {upload_id}.")
    return file


def cancel(
    ctx: Context,
    sessions: DirectSessions,
    owner_id: uuid.UUID,
    upload_id: uuid.UUID,
    session_url: str | None,
) -> None:
    """End the session (given its URL, which must be this upload's) and remove the upload,
    its reservation and whatever its session stored."""
    session = ctx.session
    upload = _direct(session, owner_id, upload_id)
    if upload is None:
        session.commit()
        raise Conflict(f"The upload {upload_id} is already complete.")
    session.commit()
    if session_url is not None:
        if fingerprint(session_url) != upload.session_sha256:
            raise InvalidInput(f"That session URL is not the one of the upload {upload_id}.")
        try:
            sessions.cancel_session(session_url)
        except Exception as exc:
            raise StorageUnavailable(f"The session could not be ended: {STORAGE_DOWN}") from exc
    resumable_uploads._remove(session, ctx.storage, upload.id, upload.temporary_keys)
