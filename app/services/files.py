"""Files: creating them from uploads, listing, renaming, deleting and reading them back."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Integer, bindparam, func, select, true, tuple_
from sqlalchemy import delete as sql_delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.archive.reader import ArchiveReader, EntryAt
from app.db import rowcount
from app.errors import (
    STORAGE_DOWN,
    Conflict,
    InvalidInput,
    NotFound,
    NotReady,
    PreconditionFailed,
    StorageUnavailable,
    Unauthorized,
)
from app.models import File, FileStatus, User
from app.queue.jobs import REQUEST_ID, JobQueue
from app.services import (
    conflicts,
    cursors,
    deletions,
    folders,
    names,
    placement,
    quota,
    tokens,
    users,
)
from app.services.spool import SpooledUpload
from app.storage import Storage

SORTS = {
    "created_at": (File.created_at, False),
    "-created_at": (File.created_at, True),
    "name": (File.name, False),
    "-name": (File.name, True),
}
# The owner's counter of files in each status (kept by triggers, see app.models.User).
STATUS_COUNTERS = {
    FileStatus.PENDING: User.files_pending,
    FileStatus.PROCESSING: User.files_processing,
    FileStatus.READY: User.files_ready,
    FileStatus.FAILED: User.files_failed,
}
RETRY_AFTER_SECONDS = 2


class Listed(Protocol):
    """A file as a page lists it: its columns, to read (a File, or a row of its table)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def name(self) -> str: ...
    @property
    def folder_id(self) -> uuid.UUID | None: ...
    @property
    def status(self) -> FileStatus: ...
    @property
    def size(self) -> int: ...
    @property
    def compressed_size(self) -> int | None: ...
    @property
    def content_type(self) -> str: ...
    @property
    def sha256(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def updated_at(self) -> dt.datetime: ...
    @property
    def processed_at(self) -> dt.datetime | None: ...
    @property
    def has_preview(self) -> bool: ...


# The columns a page lists (`Listed`), and no more: each is converted on the way out.
LISTED = (
    File.id,
    File.name,
    File.folder_id,
    File.status,
    File.size,
    File.compressed_size,
    File.content_type,
    File.sha256,
    File.error,
    File.created_at,
    File.updated_at,
    File.processed_at,
    File.has_preview.label("has_preview"),
)


@dataclass(frozen=True)
class Page:
    items: Sequence[Listed]
    next_cursor: str | None
    total: int


@dataclass(frozen=True)
class Download:
    """What a download answers with: how to read the bytes, and how to describe them."""

    read: Callable[[int, int | None], Iterator[bytes]]  # (start, length or None for all)
    size: int
    content_type: str
    filename: str
    etag: str
    # The bytes are exactly one stored object, (key, generation): a signed URL may serve
    # them. None where they are made on the way out (an original cut out of its ZIP, a
    # renamed file's rewritten headers, a multi-file ZIP).
    stored: tuple[str, int | None] | None = None

    @property
    def chunks(self) -> Iterator[bytes]:
        """All the bytes, in chunks."""
        return self.read(0, None)

    def chunks_from(self, start: int, length: int | None) -> Iterator[bytes]:
        """`length` bytes (or all) from `start`, in chunks; nothing is read before iteration."""
        return self.read(start, length)


def etag(file: File) -> str:
    return f'"{file.version}"'


def _owned(session: Session, owner_id: uuid.UUID, file_id: uuid.UUID) -> File:
    file = session.get(File, file_id)
    if file is None or file.owner_id != owner_id:
        # Someone else's file is as absent as one that never existed.
        raise NotFound(f"There is no file {file_id}.")
    return file


def create(
    session: Session,
    storage: Storage,
    jobs: JobQueue,
    *,
    owner_id: uuid.UUID,
    upload: SpooledUpload,
    name: str | None,
    quota_bytes: int,
    folder_id: uuid.UUID | None = None,
    relative_path: str | None = None,
    on_conflict: str = conflicts.REFUSE,
) -> File:
    """Record a spooled upload as a pending file, stage its bytes, then send the job.

    It goes into `folder_id` (the root for None), in the folders `relative_path` names
    under it ("photos/2024/a.jpg": its last part is the name unless `name` is given),
    made as needed: under the owner's lock, so the uploads of one new folder all land in
    the one the first of them made.
    The bytes are staged first, so the transaction that charges the quota and adds the
    row is short: parallel uploads of one owner wait on its counters only for that long.
    Anything refused after staging takes the staged object away again.
    A taken name is refused (409), or with `on_conflict` renamed (`a (1).txt`) or replaced
    (the old file goes in the transaction that adds the new one), under the owner's lock.
    """
    dirs: tuple[str, ...] = ()
    client_name = upload.filename
    if relative_path is not None:
        dirs, client_name = placement.split_relative_path(relative_path)
    name = names.check_name(name) if name is not None else names.from_client_filename(client_name)
    target = placement.Target(folder_id, dirs)
    conflicts.check_new_file(
        session, owner_id, target, name, on_conflict, size=upload.size, quota_bytes=quota_bytes
    )
    session.rollback()  # end the read: the charge below starts a transaction of its own
    file = File(
        id=uuid.uuid4(),
        owner_id=owner_id,
        name=name,
        status=FileStatus.PENDING,
        size=upload.size,
        sha256=upload.sha256,
        crc32=upload.crc32,
        content_type=names.content_type_for(name, upload.content_type),
        attempts=0,
        request_id=REQUEST_ID.get(),  # a job the sweep sends again carries it too
    )
    try:
        storage.put_file(file.staged_key, upload.path, file.content_type)
    except Exception as exc:
        raise StorageUnavailable(f"The upload could not be stored: {STORAGE_DOWN}") from exc
    try:
        folders.lock_owner(session, owner_id)
        file.folder_id = placement.ensure(session, owner_id, target)
        replaced: list[deletions.Pending] = []
        if on_conflict == conflicts.RENAME:
            file.name = name = conflicts.pick_name(session, owner_id, target, name)
        elif on_conflict == conflicts.REPLACE:
            replaced = displace(session, owner_id, file.folder_id, name)
        folders.refuse_clash(session, owner_id, file.folder_id, name)
        quota.charge_file(session, quota_bytes, owner_id, file.size)
        session.add(file)
        session.flush()
        session.commit()
    except IntegrityError:
        session.rollback()
        storage.delete(file.staged_key)
        raise Conflict(f"You already have a file named {name!r}.") from None
    except BaseException:
        session.rollback()
        storage.delete(file.staged_key)  # no object without its row
        raise
    # The job first (the worker gets it sooner): carry_out's rollback expires `file`, and
    # reading its id after that costs a SELECT.
    jobs.send_compression(session, file.id, size=file.size)
    deletions.carry_out(session, storage, replaced)
    return file


def displace(
    session: Session, owner_id: uuid.UUID, folder_id: uuid.UUID | None, name: str
) -> list[deletions.Pending]:
    """Delete the owner's file named `name` in the folder, if any, in the caller's
    transaction (which holds `lock_owner` and adds the file replacing it): the name is
    never free and never held twice. What to `deletions.carry_out` after the commit."""
    file = session.scalar(
        select(File).where(
            File.owner_id == owner_id,
            folders.in_folder(File.folder_id, folder_id),
            File.name == name,
        )
    )
    return [] if file is None else _drop(session, file)


def _drop(session: Session, file: File) -> list[deletions.Pending]:
    """Delete `file`'s row and record its objects for removal, in the caller's transaction."""
    keys = deletions.file_keys(
        file.owner_id, file.id, file.status, file.attempts, file.archive_object
    )
    # Not the ORM's delete, which checks the version it read: a worker claiming the file
    # meanwhile (a new version) must not turn this into a 500. The row goes whatever its
    # state, and that worker, its lease gone, removes what it wrote.
    deleted = session.execute(
        sql_delete(File)
        .where(File.id == file.id, File.owner_id == file.owner_id)
        .execution_options(synchronize_session=False)
    )
    if rowcount(deleted) != 1:
        raise NotFound(f"There is no file {file.id}.")
    quota.discharge_file(session, file.owner_id, file.size)
    session.expunge(file)
    return deletions.schedule(session, keys)


def encode_cursor(sort: str, file: Listed) -> str:
    """The cursor of the page after `file`, in the `sort` order."""
    return cursors.encode(sort, getattr(file, SORTS[sort][0].key), file.id)


def _decode_cursor(sort: str, cursor: str) -> tuple[object, uuid.UUID]:
    return cursors.decode(sort, cursor, dt.datetime if sort.endswith("created_at") else str)


def list_files(
    session: Session,
    owner_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
    sort: str = "-created_at",
    token: tokens.Claims | None = None,
    folder: str | None = None,
    used: users.Used | None = None,
) -> Page:
    """One page of the owner's files, in a stable keyset order, and how many match in all.

    All of them, in every folder; or, given `folder` (a folder's id, or "root"), that
    folder's alone: NotFound for a folder that is not the owner's.

    Given the request's `token` (the owner's), the same statement also tells whether its
    session still holds (`users.SESSION_HOLDS`), so the check costs the request no trip of
    its own: Unauthorized, as `users.session_owner` says, when it ended; `used` hears
    of a session whose last use is due to be written, as there.
    """
    params: dict[str, object] = {"owner_id": owner_id, "limit": limit + 1}
    if token is not None:
        params.update(users.session_holds_params(token))
    scope = None if folder is None else "root" if folder == "root" else "folder"
    if scope is not None:
        if token is not None:
            users.session_owner(session, token, used)  # an ended session is told so first
        if scope == "folder":
            params["folder_id"] = uuid.UUID(str(folder))
            folders.check_owned(session, owner_id, params["folder_id"])  # type: ignore[arg-type]
    if cursor:
        try:
            params["after"], params["after_id"] = _decode_cursor(sort, cursor)
        except InvalidInput:
            if token is not None:  # an ended session is told so first, as everywhere
                users.session_owner(session, token)
            raise
    checked = None if token is None else "session" if token.session_id else "token"
    page, counter = _page_statements(
        sort, FileStatus(status) if status else None, bool(cursor), checked, scope
    )
    # Rows of the table, not ORM objects: a page is only read, and SQLAlchemy Core reads it
    # at half the cost.
    connection = session.connection()
    rows = connection.execute(page, params).all()
    # An empty page has no row to carry the total: ask the counter itself (no row: no owner).
    found = rows[0] if rows else connection.execute(counter, params).one_or_none()
    total, holds = (found.total, found.holds) if found is not None else (0, False)
    if token is not None and token.session_id is not None:
        last_used = found.last_used if found is not None else None
        holds = holds and last_used is not None
        if holds:
            users.note_use(token, last_used, used)
    if token is not None and not holds:
        users.session_owner(session, token)  # raises, saying why
        raise Unauthorized("This session has ended; log in again.")
    next_cursor = encode_cursor(sort, rows[limit - 1]) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor, total=int(total or 0))


@functools.cache
def _page_statements(
    sort: str,
    status: FileStatus | None,
    after: bool,
    checked: str | None,
    scope: str | None = None,
):
    """(a page, the total) as statements, built once per shape of listing.

    Each order walks an index from the cursor on, whatever the depth: the keyset condition
    is a row-value comparison, `(created_at, id) < (:after, :after_id)`, which PostgreSQL
    takes as an index bound (an `a < v OR (a = v AND id < x)` is a filter applied to every
    row the walk passes). Names repeat across folders, so the id breaks their ties too.
    The total is the owner's counter, read in the same statement, not a count; so is
    whether the token holds when `checked` (else a constant true), and with "session"
    (a token with a session), when its session was last used (NULL: it ended).
    Building (and hashing, for SQLAlchemy's cache) a statement costs more than running it:
    the parameters (`owner_id`, `after`, `after_id`, `limit`) are bound at execution.
    Within one folder (`scope` "root", or "folder" with `folder_id` bound) the total is a
    count of the folder's files instead: it grows with the folder, not the account.
    """
    column, descending = SORTS[sort]
    where = [File.owner_id == bindparam("owner_id", type_=File.owner_id.type)]
    if status is not None:
        where.append(File.status == status)
    if scope == "root":
        where.append(File.folder_id.is_(None))
    elif scope == "folder":
        where.append(File.folder_id == bindparam("folder_id", type_=File.folder_id.type))
    scoped = list(where)
    keys = (column, File.id)
    if after:
        value = bindparam("after", type_=column.type)
        row = tuple_(*keys)
        bound = tuple_(value, bindparam("after_id", type_=File.id.type))
        where.append(row < bound if descending else row > bound)
    owner = User.id == bindparam("owner_id", type_=User.id.type)
    total: Any = _total_counter(status)
    if scope is not None:
        total = select(func.count()).select_from(File).where(*scoped).scalar_subquery()
    holds = (users.SESSION_HOLDS if checked else true()).label("holds")
    checks: list[Any] = [holds]
    if checked == "session":
        checks.append(users.SESSION_LAST_USED.label("last_used"))
    counter = select(total.label("total"), *checks).where(owner)
    page = (
        select(*LISTED, select(total).where(owner).scalar_subquery().label("total"), *checks)
        .where(*where)
        .order_by(*(key.desc() if descending else key.asc() for key in keys))
        .limit(bindparam("limit", type_=Integer))
    )
    return page, counter


def _total_counter(status: FileStatus | None):
    """The owner's counter of files in `status`, or the sum of them all.

    The per-status counters are kept by triggers (no write path can miss them), so the
    sum is used even though `User.file_count` says the same.
    """
    if status is None:
        return User.files_pending + User.files_processing + User.files_ready + User.files_failed
    return STATUS_COUNTERS[status]


def count_by_status(session: Session) -> dict[str, int]:
    """How many files there are in each status, across all owners (for metrics).

    A sum of the owners' counters: one row per account, however many files they hold.
    """
    row = session.execute(
        select(*(func.coalesce(func.sum(c), 0) for c in STATUS_COUNTERS.values()))
    ).one()
    return {status.value: int(n) for status, n in zip(STATUS_COUNTERS, row, strict=True)}


def get(session: Session, owner_id: uuid.UUID, file_id: uuid.UUID) -> File:
    """One of the owner's files."""
    return _owned(session, owner_id, file_id)


RENAME_ATTEMPTS = 3
_KEEP: Any = object()


def rename(
    session: Session,
    owner_id: uuid.UUID,
    file_id: uuid.UUID,
    new_name: str | None = None,
    *,
    folder_id: uuid.UUID | None = _KEEP,
    if_match: str | None = None,
) -> File:
    """Give a file a new name, move it to `folder_id` (None: the root), or both.

    PreconditionFailed if `if_match` is not its current ETag; Conflict when a file, a
    folder or an upload on its way holds the name where the file ends up. A move changes
    the row alone: the archive stays where it is.
    """
    if new_name is not None:
        new_name = names.check_name(new_name)
    for attempt in range(RENAME_ATTEMPTS):
        session.rollback()  # end any read: the lock starts the transaction
        folders.lock_owner(session, owner_id)
        file = _owned(session, owner_id, file_id)
        folders.check_if_match(etag(file), if_match, "file")
        name = file.name if new_name is None else new_name
        folder = file.folder_id if folder_id is _KEEP else folder_id
        if name == file.name and folder == file.folder_id:
            session.commit()
            return file
        if folder != file.folder_id:
            folders.check_owned(session, owner_id, folder)
        kind = folders.name_clash(session, owner_id, folder, name, but_file=file.id)
        if kind is not None:
            raise Conflict(folders.clash_message(kind, name))
        if placement.upload_named(session, owner_id, placement.Target(folder), name) is not None:
            raise Conflict(placement.upload_clash_message(name))
        file.name, file.folder_id = name, folder
        try:
            session.commit()
            return file
        except IntegrityError:
            session.rollback()
            raise Conflict(f"You already have a file named {name!r}.") from None
        except StaleDataError:
            # The worker moved the file on (a new version) since it was read. With If-Match
            # the precondition no longer holds; without, read it again and rename that.
            session.rollback()
            if if_match is not None or attempt == RENAME_ATTEMPTS - 1:
                raise PreconditionFailed(
                    "The file changed while it was being renamed; retry."
                ) from None
    raise AssertionError("unreachable")


def delete(session: Session, storage: Storage, owner_id: uuid.UUID, file_id: uuid.UUID) -> None:
    """Remove a file's row, then every object stored for it.

    The row goes with a record of its objects (`deletions`), in one commit; the objects
    after it. A delete that does not commit leaves the file as it was, archive and all;
    one that dies after its commit leaves the record, and the worker's sweep finishes it.
    """
    pending = _drop(session, _owned(session, owner_id, file_id))
    session.commit()
    deletions.carry_out(session, storage, pending)


def download(
    session: Session,
    storage: Storage,
    owner_id: uuid.UUID,
    file_id: uuid.UUID,
    *,
    original: bool = False,
) -> Download:
    """The file's ZIP (or its original bytes, out of the ZIP) once it is ready."""
    return download_of(storage, _owned(session, owner_id, file_id), original=original)


def ensure_ready(file: File) -> None:
    """NotReady (409; `Retry-After` while it is processed) unless the file is ready."""
    if file.status != FileStatus.READY:
        detail = (
            f"The file failed to process: {file.error}"
            if file.status == FileStatus.FAILED
            else f"The file is {file.status.value}; its archive is not ready yet."
        )
        headers = (
            {} if file.status == FileStatus.FAILED else {"Retry-After": str(RETRY_AFTER_SECONDS)}
        )
        raise NotReady(detail, headers=headers)


def archive_reader(
    storage: Storage, file: File, *, original: bool, entry_at: EntryAt | None = None
) -> ArchiveReader:
    """The reader of a ready file's stored archive (`entry_at`: where its entry lies, when
    known; `original`: its seek index loaded, for reading the original)."""
    return ArchiveReader(
        storage,
        file.archive_key,
        entry_size=file.size,
        entry_crc32=file.crc32,
        archive_size=file.compressed_size,
        # Read now, in the request's session: the bytes are read after it has ended.
        seek_index=file.seek_index if original else None,
        # The archive the job recorded, by its generation where storage keeps them: every
        # read of one download names it, so no response mixes two versions of the object.
        generation=file.archive_generation,
        entry_at=entry_at,
    )


def download_of(storage: Storage, file: File, *, original: bool = False) -> Download:
    """`download` of a file already found (by its owner, or through a share link).

    Everything about the archive's bytes is `app.archive.reader`'s: the original is read
    from the nearest seek point, a renamed file's ZIP has its headers rewritten.
    """
    ensure_ready(file)
    name = names.archive_name(file.name)  # the file's name, unless it predates the rules
    archive = archive_reader(storage, file, original=original)
    if original:
        return Download(
            read=archive.read_original,
            size=file.size,
            content_type=file.content_type,
            filename=name,
            etag=f'"{file.sha256}"',
        )
    view = archive.zip_as(name)
    renamed = archive.header.entry_name != name
    # Renamed since it was compressed: the entry takes the file's name on the way out, and
    # the ZIP's ETag names it, as its bytes differ.
    name_tag = hashlib.blake2b(name.encode(), digest_size=6).hexdigest() if renamed else None
    return Download(
        read=view.read,
        size=view.size,
        content_type="application/zip",
        filename=f"{name}.zip",
        etag=f'"{file.sha256}.zip.{name_tag}"' if name_tag else f'"{file.sha256}.zip"',
        stored=None if renamed else (file.archive_key, file.archive_generation),
    )
