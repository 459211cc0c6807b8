"""Storage against the database: objects no row accounts for, and rows whose objects are gone.

`instashare-server reconcile` walks the bucket (or the storage directory) once, in key
order, beside the files table read in the same order, a page at a time: memory stays flat
however many objects there are. What each key must have:

- `<owner>/<file>.zip`, an archive: a file row with that id and owner.
- `tmp/<owner>/uploads/<id>` (or `<owner>/uploads/<id>`, the layout before `tmp/`), a
  staged upload: a file not yet ready, or an upload being finished.
- `tmp/<owner>/uploads/<id>.parts/…` (or the older place), parts and compose
  intermediates: an upload row.

And what each row must have: a ready file its archive; a pending or processing one its
staged upload (or its archive, just written). Objects written within the grace period are
not judged (an upload may be finishing: its object lands just before its row commits).
Keys of any other shape are reported and never deleted: they are not Instashare's.

With `repair`, each finding is checked again first, then an orphan object is deleted; a
ready file without its archive is compressed again if its staged upload is still there
(pending, and the worker's sweep sends its job), and otherwise marked failed, as is a file
not yet ready whose upload is gone, with an error the owner can read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import (
    TEMP_PREFIX,
    File,
    FileStatus,
    Upload,
    archive_key_for,
    legacy_staged_key,
    staged_key,
)
from app.storage import Storage
from app.storage.base import StoredObject

DEFAULT_GRACE_SECONDS = 3600
PAGE = 1000

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# `<id>.zip`, or a later attempt's `<id>.<attempt>.zip` (app.models.archive_key_for).
_ARCHIVE = re.compile(rf"(?P<owner>{_UUID})/(?P<id>{_UUID})(?:\.[0-9]+)?\.zip")
# An upload's objects, in the owner's folder (before `tmp/`) or under `tmp/`: the staged
# upload, its parts and intermediates (`.parts/…`), or an old compose intermediate.
_UPLOAD = re.compile(
    rf"(?:{re.escape(TEMP_PREFIX)})?(?P<owner>{_UUID})/uploads/(?P<id>{_UUID})"
    r"(?P<rest>|\.parts/.+|\.compose-.+)"
)
_OURS = re.compile(rf"(?:{re.escape(TEMP_PREFIX)})?{_UUID}/")

ARCHIVE_GONE_REQUEUED = (
    "The archive was missing from storage; the file is being compressed again from its upload."
)
ARCHIVE_GONE_FAILED = (
    "The archive is missing from storage and the upload is gone; upload the file again."
)
UPLOAD_GONE_FAILED = "The uploaded bytes are missing from storage; upload the file again."
LEFT_OVER = "the file is ready: its staged upload is left over"


@dataclass(frozen=True)
class Orphan:
    """An object no row accounts for (or one left over by a row that no longer needs it)."""

    object: StoredObject
    reason: str
    repaired: bool = False


@dataclass(frozen=True)
class Missing:
    """A file whose objects are gone: what is missing, and what repair does (or did)."""

    file_id: uuid.UUID
    owner_id: uuid.UUID
    status: FileStatus
    reason: str
    remedy: str  # "requeue" or "fail"; "none" when it had moved on by the time of repair
    repaired: bool = False


@dataclass(frozen=True)
class Foreign:
    """An object whose key is not one Instashare writes: reported, never touched."""

    object: StoredObject


Finding = Orphan | Missing | Foreign


@dataclass(frozen=True)
class _Row:
    id: uuid.UUID
    owner_id: uuid.UUID
    status: FileStatus
    archive_key: str = ""  # the one archive object this row keeps (recorded, or in progress)

    @property
    def order(self) -> tuple[str, str]:
        return (str(self.owner_id), str(self.id))


def reconcile(
    session: Session,
    storage: Storage,
    *,
    repair: bool,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> Iterator[Finding]:
    """Every drift between storage and the files and uploads tables, as it is found."""
    cutoff = utcnow() - dt.timedelta(seconds=grace_seconds)
    rows = _files_in_order(session)
    row = next(rows, None)
    batch: list[tuple[StoredObject, re.Match[str]]] = []
    for obj in storage.scan(""):
        archive = _ARCHIVE.fullmatch(obj.key)
        if archive is not None:
            at = (archive["owner"], archive["id"])
            # Rows before this archive (in key order) have none.
            while row is not None and row.order < at:
                yield from _without_archive(session, storage, row, repair)
                row = next(rows, None)
            if row is not None and row.order == at and obj.key == row.archive_key:
                row = next(rows, None)
            elif row is not None and row.order == at:
                # Another attempt's archive, which no row records (its job lost the lease).
                if obj.updated <= cutoff:
                    yield _orphan(session, storage, obj, "no file records this archive", repair)
            elif obj.updated <= cutoff:
                yield _orphan(session, storage, obj, "no file has this archive", repair)
            continue
        if obj.updated > cutoff:
            continue
        upload = _UPLOAD.fullmatch(obj.key)
        if upload is not None:
            batch.append((obj, upload))
            if len(batch) >= PAGE:
                yield from _judge_uploads(session, storage, batch, repair)
                batch = []
        elif _OURS.match(obj.key):
            yield _orphan(session, storage, obj, "no kind of object kept in this folder", repair)
        else:
            yield Foreign(obj)
    yield from _judge_uploads(session, storage, batch, repair)
    while row is not None:
        yield from _without_archive(session, storage, row, repair)
        row = next(rows, None)


def _files_in_order(session: Session) -> Iterator[_Row]:
    """Every file (id, owner, status), in the order of their archive keys, a page at a time.

    UUIDs order alike as PostgreSQL's uuid, SQLite's hex text and their canonical strings,
    so `(owner_id, id)` is the order of `<owner>/<id>.zip` in a listing.
    """
    after: tuple[uuid.UUID, uuid.UUID] | None = None
    while True:
        query = select(File.owner_id, File.id, File.status, File.attempts, File.archive_object)
        if after is not None:
            query = query.where(tuple_(File.owner_id, File.id) > tuple_(*after))
        page = session.execute(query.order_by(File.owner_id, File.id).limit(PAGE)).all()
        session.commit()  # no transaction stays open while storage is listed
        for owner_id, file_id, status, attempts, recorded in page:
            # A ready file's archive is the one its job recorded; an unfinished file's, the
            # one its current attempt writes.
            key = recorded if status == FileStatus.READY and recorded else None
            attempt = 1 if status == FileStatus.READY else attempts
            key = key or archive_key_for(owner_id, file_id, attempt)
            yield _Row(file_id, owner_id, status, key)
        if len(page) < PAGE:
            return
        after = (page[-1].owner_id, page[-1].id)


def _without_archive(
    session: Session, storage: Storage, row: _Row, repair: bool
) -> Iterator[Missing]:
    if row.status == FileStatus.READY:
        found = _missing(row, "its archive is missing", storage)
    elif row.status in (FileStatus.PENDING, FileStatus.PROCESSING):
        if _staged_exists(storage, row.owner_id, row.id):
            return
        found = Missing(row.id, row.owner_id, row.status, "its uploaded bytes are missing", "fail")
    else:
        return  # failed: nothing is promised
    yield _repair_missing(session, storage, found) if repair else found


def _missing(row: _Row, reason: str, storage: Storage) -> Missing:
    remedy = "requeue" if _staged_exists(storage, row.owner_id, row.id) else "fail"
    return Missing(row.id, row.owner_id, row.status, reason, remedy)


def _staged_exists(storage: Storage, owner_id: uuid.UUID, file_id: uuid.UUID) -> bool:
    return storage.exists(staged_key(owner_id, file_id)) or storage.exists(
        legacy_staged_key(owner_id, file_id)
    )


def _repair_missing(session: Session, storage: Storage, found: Missing) -> Missing:
    """Check the row and storage again, under the row's lock; then requeue or fail it."""
    file = session.scalars(
        select(File).where(File.id == found.file_id).with_for_update()
    ).one_or_none()
    archive_key = file.archive_key if file is not None else ""
    staged = _staged_exists(storage, found.owner_id, found.file_id)
    if (
        file is None
        or file.status != found.status
        or storage.exists(archive_key)
        or (found.status != FileStatus.READY and staged)
    ):
        session.rollback()
        return dataclasses.replace(found, remedy="none", repaired=True)  # moved on meanwhile
    if found.status == FileStatus.READY and staged:
        values: dict = {
            "status": FileStatus.PENDING,
            "attempts": 0,
            "enqueued_at": None,  # the worker's sweep sends its job
            "error": ARCHIVE_GONE_REQUEUED,
        }
        remedy = "requeue"
    else:
        error = ARCHIVE_GONE_FAILED if found.status == FileStatus.READY else UPLOAD_GONE_FAILED
        values = {"status": FileStatus.FAILED, "error": error, "processed_at": utcnow()}
        remedy = "fail"
    session.execute(
        update(File)
        .where(File.id == found.file_id)
        .values(
            **values,
            lease_token=None,
            lease_expires_at=None,
            version=File.version + 1,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return Missing(found.file_id, found.owner_id, found.status, found.reason, remedy, repaired=True)


def _judge_uploads(
    session: Session,
    storage: Storage,
    batch: list[tuple[StoredObject, re.Match[str]]],
    repair: bool,
) -> Iterator[Orphan]:
    """Objects of uploads (staged, parts, intermediates): one lookup for the whole batch."""
    if not batch:
        return
    ids = {uuid.UUID(match["id"]) for _, match in batch}
    files = dict(
        session.execute(select(File.id, File.status).where(File.id.in_(ids))).tuples().all()
    )
    uploads = dict(
        session.execute(select(Upload.id, Upload.completed_at).where(Upload.id.in_(ids)))
        .tuples()
        .all()
    )
    owners = dict(
        session.execute(select(File.id, File.owner_id).where(File.id.in_(ids))).tuples().all()
    ) | dict(
        session.execute(select(Upload.id, Upload.owner_id).where(Upload.id.in_(ids))).tuples().all()
    )
    session.commit()
    for obj, match in batch:
        upload_id = uuid.UUID(match["id"])
        reason = _upload_object_orphaned(
            match["rest"], files.get(upload_id), upload_id in uploads, uploads.get(upload_id)
        )
        if reason is None and str(owners.get(upload_id)) != match["owner"]:
            reason = "it is in another owner's folder"
        if reason == LEFT_OVER and not storage.exists(f"{match['owner']}/{upload_id}.zip"):
            reason = None  # the only copy of a ready file whose archive is gone: keep it
        if reason is not None:
            yield _orphan(session, storage, obj, reason, repair, recheck=False)


def _upload_object_orphaned(
    rest: str, status: FileStatus | None, has_upload: bool, completed_at: dt.datetime | None
) -> str | None:
    """Why an upload's object is not needed (None: it is)."""
    unfinished = has_upload and completed_at is None
    if rest == "":  # the staged upload
        if status in (FileStatus.PENDING, FileStatus.PROCESSING, FileStatus.FAILED):
            return None
        if status == FileStatus.READY:
            return LEFT_OVER
        return None if unfinished else "no file or upload needs this staged upload"
    if rest.startswith(".parts/"):
        return None if has_upload else "no upload has these parts"
    return None if unfinished else "a compose intermediate of no upload in progress"


def _orphan(
    session: Session,
    storage: Storage,
    obj: StoredObject,
    reason: str,
    repair: bool,
    *,
    recheck: bool = True,
) -> Orphan:
    if not repair:
        return Orphan(obj, reason)
    archive = _ARCHIVE.fullmatch(obj.key) if recheck else None
    if archive is not None:
        file_id = uuid.UUID(archive["id"])
        owner = session.scalar(select(File.owner_id).where(File.id == file_id))
        session.commit()
        if str(owner) == archive["owner"]:
            return Orphan(obj, reason)  # its file exists after all: keep it
    storage.delete(obj.key)
    return Orphan(obj, reason, repaired=True)
