"""Folders: make, read, rename, move and delete them, and place files in them.

A folder is a row with a parent (None: the root); a file names its folder. Renaming or
moving a folder changes its own row alone, whatever it holds: nothing under it is
rewritten, in the database or in storage (archives stay `<owner>/<file id>.zip`).

Every write that puts a name into a folder (a folder made, renamed or moved; a file
uploaded, renamed or moved) first locks the owner's `users` row (`lock_owner`), then
checks and writes. Names are unique within a folder across files and folders together:
each table has its own unique indexes, but none spans both, so the lock is what keeps a
file and a folder from taking one name at once; it also serializes the folder moves that
could otherwise race into a cycle (each checked alone, two moves can swap two folders
into each other), and the uploads that make the same new folder (they find it made).
Uploads of one owner queue on that row already (the quota is charged on it), so it costs
them nothing more. On SQLite, where FOR UPDATE means nothing, a write to the row takes
the database's write lock at the start of the transaction instead.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, func, literal, select, text
from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.db import rowcount, utcnow
from app.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from app.models import File, Folder, Upload, User
from app.queue.jobs import JobQueue
from app.services import deletions, names, quota
from app.storage import Storage

# A relative path of an upload may name at most this many folders.
MAX_PATH_DEPTH = 32
CYCLE = "A folder cannot be moved into itself or into a folder inside it."


@dataclass(frozen=True)
class Ancestor:
    id: uuid.UUID
    name: str


@dataclass(frozen=True)
class Detail:
    folder: Folder
    ancestors: list[Ancestor]


def etag(folder: Folder) -> str:
    return f'"{folder.version}"'


def lock_owner(session: Session, owner_id: uuid.UUID) -> None:
    """Hold the owner's row until the transaction ends: names in their folders are ours.

    On SQLite it must be the first statement of its transaction, so the write lock is
    taken before anything is read (a deferred transaction that read first could not take
    it once another had written): callers that read before end that read first.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(User.id).where(User.id == owner_id).with_for_update())
    else:
        session.execute(
            sql_update(User)
            .where(User.id == owner_id)
            .values(updated_at=User.updated_at)
            .execution_options(synchronize_session=False)
        )


def in_folder(column, folder_id: Any):
    """`column` names the folder `folder_id` (None: the root; or an expression)."""
    return column.is_(None) if folder_id is None else column == folder_id


def owned(session: Session, owner_id: uuid.UUID, folder_id: uuid.UUID) -> Folder:
    """One of the owner's folders; NotFound for any other id."""
    folder = session.get(Folder, folder_id)
    if folder is None or folder.owner_id != owner_id:
        raise NotFound(f"There is no folder {folder_id}.")
    return folder


def check_owned(session: Session, owner_id: uuid.UUID, folder_id: uuid.UUID | None) -> None:
    """NotFound unless `folder_id` is the root (None) or one of the owner's folders."""
    if folder_id is not None:
        found = session.scalar(
            select(Folder.id).where(Folder.id == folder_id, Folder.owner_id == owner_id)
        )
        if found is None:
            raise NotFound(f"There is no folder {folder_id}.")


def name_clash(
    session: Session,
    owner_id: uuid.UUID,
    folder_id: uuid.UUID | None,
    name: str,
    *,
    but_file: uuid.UUID | None = None,
    but_folder: uuid.UUID | None = None,
) -> str | None:
    """What in the folder already has `name` ("file" or "folder"), else None (one look)."""
    folder, file = session.execute(
        select(
            _named(Folder, owner_id, folder_id, name, but_folder),
            _named(File, owner_id, folder_id, name, but_file),
        )
    ).one()
    return "folder" if folder else "file" if file else None


def _named(model, owner_id, parent, name, but: uuid.UUID | None = None):
    """Whether one of the owner's folders (`model` Folder) or files (File) in `parent` (an
    id, None for the root, or an expression: a parameter, the folder a join found) has
    `name`."""
    column = model.parent_id if model is Folder else model.folder_id
    where = [model.owner_id == owner_id, model.name == name, in_folder(column, parent)]
    if but is not None:
        where.append(model.id != but)
    return exists().where(*where)


def clash_message(kind: str, name: str) -> str:
    """The 409's sentence: the name is held, in the folder in question, by a `kind`."""
    if kind == "file":
        return f"You already have a file named {name!r}."
    return f"You already have a folder named {name!r} in that folder."


def refuse_clash(
    session: Session, owner_id: uuid.UUID, folder_id: uuid.UUID | None, name: str, **but
) -> None:
    """Conflict (409) when a file or folder of the folder already has `name`."""
    kind = name_clash(session, owner_id, folder_id, name, **but)
    if kind is not None:
        raise Conflict(clash_message(kind, name))


def ancestors(session: Session, folder_id: uuid.UUID | None) -> list[Ancestor]:
    """The folders `folder_id` is in, the root-most first (not itself): one recursive query."""
    if folder_id is None:
        return []
    chain = (
        select(Folder.parent_id.label("id"), literal(1).label("depth"))
        .where(Folder.id == folder_id)
        .cte("chain", recursive=True)
    )
    step = select(Folder.parent_id, chain.c.depth + 1).join(chain, Folder.id == chain.c.id)
    chain = chain.union_all(step)
    rows = session.execute(
        select(Folder.id, Folder.name)
        .join(chain, Folder.id == chain.c.id)
        .order_by(chain.c.depth.desc())
    ).all()
    return [Ancestor(row.id, row.name) for row in rows]


def get(session: Session, owner_id: uuid.UUID, folder_id: uuid.UUID) -> Detail:
    """A folder and its breadcrumb."""
    folder = owned(session, owner_id, folder_id)
    return Detail(folder, ancestors(session, folder.id))


def _insert(
    session: Session, owner_id: uuid.UUID, parent_id: uuid.UUID | None, name: str
) -> Folder:
    now = utcnow()
    folder = Folder(
        id=uuid.uuid4(),
        owner_id=owner_id,
        parent_id=parent_id,
        name=name,
        created_at=now,
        updated_at=now,
    )
    session.add(folder)
    session.flush()
    return folder


def create(
    session: Session, owner_id: uuid.UUID, name: str, parent_id: uuid.UUID | None = None
) -> Folder:
    """Make a folder in `parent_id` (the root for None)."""
    name = names.check_name(name)
    session.rollback()  # end any read: the lock starts the transaction
    lock_owner(session, owner_id)
    check_owned(session, owner_id, parent_id)
    refuse_clash(session, owner_id, parent_id, name)
    try:
        folder = _insert(session, owner_id, parent_id, name)
        session.commit()
    except IntegrityError:  # the lock makes this unlikely; the indexes make it certain
        session.rollback()
        raise Conflict(clash_message("folder", name)) from None
    return folder


def check_if_match(etag_now: str, if_match: str | None, what: str) -> None:
    """PreconditionFailed (412) unless `if_match` (absent, `*`, or a list) names `etag_now`."""
    if if_match is not None and if_match.strip() != "*":
        offered = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
        if etag_now not in offered:
            raise PreconditionFailed(
                f"The {what} has changed since you read it (ETag mismatch); fetch it and retry."
            )


def _inside(session: Session, folder_id: uuid.UUID, target: uuid.UUID) -> bool:
    """Whether `target` is `folder_id` or a folder inside it (the target's ancestors)."""
    return target == folder_id or any(a.id == folder_id for a in ancestors(session, target))


_KEEP = object()


def update(
    session: Session,
    owner_id: uuid.UUID,
    folder_id: uuid.UUID,
    *,
    name: str | None = None,
    parent_id: uuid.UUID | object | None = _KEEP,
    if_match: str | None = None,
) -> Folder:
    """Rename a folder, move it (`parent_id`; None: the root), or both.

    A move into itself or a folder inside it is refused (409). It costs one row and one
    walk up from the target, whatever the folder holds.
    """
    if name is not None:
        name = names.check_name(name)
    session.rollback()  # end any read: the lock starts the transaction
    lock_owner(session, owner_id)
    folder = owned(session, owner_id, folder_id)
    check_if_match(etag(folder), if_match, "folder")
    new_parent = folder.parent_id if parent_id is _KEEP else parent_id
    assert new_parent is None or isinstance(new_parent, uuid.UUID)
    new_name = folder.name if name is None else name
    if new_parent == folder.parent_id and new_name == folder.name:
        session.commit()
        return folder
    if new_parent != folder.parent_id and new_parent is not None:
        check_owned(session, owner_id, new_parent)
        if _inside(session, folder.id, new_parent):
            raise Conflict(CYCLE)
    refuse_clash(session, owner_id, new_parent, new_name, but_folder=folder.id)
    folder.parent_id, folder.name = new_parent, new_name
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(clash_message("folder", new_name)) from None
    except StaleDataError:
        session.rollback()
        raise PreconditionFailed("The folder changed while it was being changed; retry.") from None
    return folder


# --- where uploads go ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a new file goes: a base folder (None: the root) and folders under it to make."""

    base_id: uuid.UUID | None = None
    dirs: tuple[str, ...] = ()

    @property
    def relative_dir(self) -> str | None:
        return "/".join(self.dirs) if self.dirs else None


def split_relative_path(path: str) -> tuple[tuple[str, ...], str]:
    """("photos", "2024"), "a.jpg" from "photos/2024/a.jpg": each folder under the name
    rules; backslashes separate too (a Windows client's), "" and "." are skipped, ".." refused."""
    parts = path_parts(path, "The relative path names no file.")
    if len(parts) - 1 > MAX_PATH_DEPTH:
        raise InvalidInput(f"A relative path may name at most {MAX_PATH_DEPTH} folders.")
    return folder_names(parts[:-1]), parts[-1]


def path_parts(path: str, empty: str) -> list[str]:
    """A path's names as written (`empty`: the sentence when there is none)."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in {"", "."}]
    if not parts:
        raise InvalidInput(empty)
    if ".." in parts:
        raise InvalidInput("A relative path cannot contain '..'.")
    return parts


def folder_names(parts: list[str]) -> tuple[str, ...]:
    """The names of a path's folders, each under the name rules (in NFC)."""
    dirs = []
    for part in parts:
        try:
            dirs.append(names.check_name(part))
        except InvalidInput as exc:
            raise InvalidInput(f"The folder {part!r} in the relative path: {exc.detail}") from None
    return tuple(dirs)


def target_of(base_id: uuid.UUID | None, relative_dir: str | None) -> Target:
    """The target an upload row recorded."""
    return Target(base_id, tuple(relative_dir.split("/")) if relative_dir else ())


@dataclass(frozen=True)
class Survey:
    """What one look finds where a new file named `name` goes (`survey`)."""

    folder: uuid.UUID | bool | None  # as `existing` says: None the root, False not made yet
    clash: str | None  # what holds the name in that folder ("file", "folder"), if it exists
    upload: uuid.UUID | None  # an unfinished upload bound there under the name
    used: int  # the owner's bytes stored and reserved (app.services.quota)
    quota: int | None  # the account's own quota (None: the server's)


# The shapes of `_levels` statements, built once each: building one (joins, aliases,
# EXISTS) cost more CPU than the database spent running it.
_OWNER = bindparam("owner_id", type_=User.id.type)
_BASE = bindparam("base_id", type_=Folder.id.type)
_NAME = bindparam("name", type_=File.name.type)


@functools.lru_cache(maxsize=64)
def _levels(depth: int, has_base: bool, then: str) -> Select:
    """One statement down `depth` folders from a base (the root unless `has_base`), from
    the owner's row: each folder joined to the one before (an outer join, so a missing one
    is NULL, and so is all below it), with, for each, whether a file holds its name where
    it would go; then, as `then` says, what holds `name` in the last one ("place"), and
    also an unfinished upload so named and bound there, the owner's usage and own quota
    ("survey").
    Its parameters: owner_id, base_id, dir_0…, name, relative_dir, now (`_parameters`)."""
    joined = User.__table__
    level_ids, blocked = [], []
    parent: Any = _BASE if has_base else None  # then the column of the folder joined last
    for i in range(depth):
        level = Folder.__table__.alias(f"level_{i}")
        name = bindparam(f"dir_{i}", type_=Folder.name.type)
        blocked.append(_named(File, _OWNER, parent, name).label(f"blocked_{i}"))
        joined = joined.outerjoin(
            level,
            and_(
                level.c.owner_id == _OWNER,
                level.c.name == name,
                in_folder(level.c.parent_id, parent),
            ),
        )
        level_ids.append(level.c.id.label(f"level_{i}"))
        parent = level.c.id
    base_owned = (
        exists().where(Folder.id == _BASE, Folder.owner_id == _OWNER) if has_base else literal(True)
    )
    columns = []
    if then in ("place", "survey"):
        columns += [
            _named(Folder, _OWNER, parent, _NAME).label("folder_clash"),
            _named(File, _OWNER, parent, _NAME).label("file_clash"),
        ]
    if then == "survey":
        bound_for = Upload.relative_dir
        columns += [
            select(Upload.id)
            .where(
                Upload.owner_id == _OWNER,
                Upload.completed_at.is_(None),
                Upload.expires_at > bindparam("now", type_=Upload.expires_at.type),
                in_folder(Upload.folder_id, _BASE if has_base else None),
                Upload.name == _NAME,
                bound_for.is_(None)
                if depth == 0
                else bound_for == bindparam("relative_dir", type_=Upload.relative_dir.type),
            )
            .limit(1)
            .scalar_subquery()
            .label("upload"),
            (User.bytes_stored + User.bytes_reserved).label("used"),
            User.quota_bytes.label("quota"),
        ]
    return (
        select(base_owned.label("base_owned"), *level_ids, *blocked, *columns)
        .select_from(joined)
        .where(User.id == _OWNER)
    )


def _look(session: Session, owner_id: uuid.UUID, target: Target, then: str, name: str = ""):
    """The row of the `_levels` statement for `target` (and `name`)."""
    parameters = {
        "owner_id": owner_id,
        "base_id": target.base_id,
        "name": name,
        "relative_dir": target.relative_dir,
        "now": utcnow(),
        **{f"dir_{i}": part for i, part in enumerate(target.dirs)},
    }
    statement = _levels(len(target.dirs), target.base_id is not None, then)
    return session.execute(statement, parameters).one()


def _follow(
    session: Session, owner_id: uuid.UUID, target: Target, row, *, make: bool
) -> uuid.UUID | bool | None:
    """The target's folder from a `_levels` row: what is missing made (`make`), or False.
    NotFound for a base that is not the owner's; Conflict when a file holds the name one
    of its folders needs."""
    if not row.base_owned:
        raise NotFound(f"There is no folder {target.base_id}.")
    current = target.base_id
    for i, name in enumerate(target.dirs):
        found = row._mapping[f"level_{i}"]
        if found is None:
            # (Below a missing folder the join is NULL: nothing is found blocked there.)
            if row._mapping[f"blocked_{i}"]:
                raise Conflict(
                    f"A file named {name!r} is where the upload's folder {name!r} would go."
                )
            if not make:
                return False
            found = _insert(session, owner_id, current, name).id
        current = found
    return current


def _walk(
    session: Session, owner_id: uuid.UUID, target: Target, *, make: bool
) -> uuid.UUID | bool | None:
    """Down the target's folders from its base (one statement): the last one's id; what
    is missing made (`make`), or False. NotFound for a base that is not the owner's;
    Conflict when a file holds the name one of them needs."""
    if not target.dirs and target.base_id is None:
        return None
    row = _look(session, owner_id, target, "walk")
    return _follow(session, owner_id, target, row, make=make)


def survey(session: Session, owner_id: uuid.UUID, target: Target, name: str) -> Survey:
    """Where a new file named `name` would go, what holds that name there, and the owner's
    usage, in one statement: an upload's early checks (app.services.conflicts). A read,
    so it takes no lock. NotFound and Conflict as `existing`."""
    row = _look(session, owner_id, target, "survey", name)
    folder = _follow(session, owner_id, target, row, make=False)
    clash = None
    if folder is not False:
        clash = "folder" if row.folder_clash else "file" if row.file_clash else None
    return Survey(folder, clash, row.upload, int(row.used), row.quota)


def existing(session: Session, owner_id: uuid.UUID, target: Target) -> uuid.UUID | bool | None:
    """The folder a target names, if it exists; False when some of it is still to be made.

    A read, for the early checks of an upload: NotFound for a base that is not the owner's,
    Conflict when a file holds the name one of its folders needs.
    """
    return _walk(session, owner_id, target, make=False)


def ensure(session: Session, owner_id: uuid.UUID, target: Target) -> uuid.UUID | None:
    """The target's folder, making what is missing; the caller holds `lock_owner`.

    Under the lock, uploads into one new folder find the one the first of them made. The
    base must exist: NotFound when it was deleted meanwhile.
    """
    try:
        found = _walk(session, owner_id, target, make=True)
    except NotFound:
        raise NotFound("The folder this upload was going to was deleted.") from None
    assert found is not False
    return found  # type: ignore[return-value]


def place(
    session: Session, owner_id: uuid.UUID, target: Target, name: str
) -> tuple[uuid.UUID | None, str | None]:
    """The folder a finished upload's file goes to, made as needed (`ensure`: the caller
    holds `lock_owner`), and what holds `name` there ("file", "folder"), if anything: in
    one statement when its folders are all there already."""
    row = _look(session, owner_id, target, "place", name)
    try:
        found = _follow(session, owner_id, target, row, make=True)
    except NotFound:
        raise NotFound("The folder this upload was going to was deleted.") from None
    assert found is None or isinstance(found, uuid.UUID)
    if any(row._mapping[f"level_{i}"] is None for i in range(len(target.dirs))):
        return found, None  # made just now: nothing in it yet
    return found, "folder" if row.folder_clash else "file" if row.file_clash else None


def upload_target(metadata: dict[str, str | None]) -> tuple[Target, str]:
    """Where a tus upload goes, and its client's file name, from its Upload-Metadata:
    `folderId` (the root without it), `relativePath` (Uppy's and tus-js-client's) and
    `filename` or `name` (else the relative path's last part)."""
    dirs: tuple[str, ...] = ()
    filename = metadata.get("filename") or metadata.get("name")
    relative = metadata.get("relativePath")
    if relative:
        dirs, last = split_relative_path(relative)
        filename = filename or last
    if not filename:
        raise InvalidInput("Upload-Metadata must carry the file's name as `filename`.")
    base = metadata.get("folderId")
    try:
        base_id = uuid.UUID(base) if base else None
    except ValueError:
        raise InvalidInput("The `folderId` of Upload-Metadata is not a folder's id.") from None
    return Target(base_id, dirs), filename


def upload_clash_message(name: str) -> str:
    """The 409's sentence when an unfinished upload bound for the same place holds `name`."""
    return f"An upload named {name!r} is already on its way there; finish or discard it first."


def upload_named(
    session: Session, owner_id: uuid.UUID, target: Target, name: str
) -> uuid.UUID | None:
    """An unfinished upload bound for the same place under the same name, if any."""
    where = [
        Upload.owner_id == owner_id,
        Upload.completed_at.is_(None),
        Upload.expires_at > utcnow(),
        in_folder(Upload.folder_id, target.base_id),
        Upload.name == name,
    ]
    where.append(
        Upload.relative_dir.is_(None)
        if target.relative_dir is None
        else Upload.relative_dir == target.relative_dir
    )
    return session.scalar(select(Upload.id).where(*where).limit(1))


# --- deleting a folder ---------------------------------------------------------------

# A folder delete of at most this many files removes their objects itself, right after
# its commit, as a file delete does; a larger one leaves them to a worker job (the rows
# and the quota go at once either way).
INLINE_FILES = 50
DELETE_ATTEMPTS = 3
DEADLOCK = "40P01"

# Every object a file of the subtree may have (what app.services.deletions.file_keys
# says for one), recorded for removal by one INSERT ... SELECT on PostgreSQL: the
# archive, the staged upload and, for a file not ready, the legacy staged key and each
# attempt's archive but the one already named. Plain scans of the doomed rows, one per
# kind of key: a lateral subquery per file cost twice as much at 100,000 files.
_RECORD_KEYS = """
WITH RECURSIVE subtree(id) AS (
    SELECT id FROM folders WHERE id = :folder_id
    UNION ALL SELECT f.id FROM folders f JOIN subtree s ON f.parent_id = s.id
), doomed AS MATERIALIZED (
    SELECT f.owner_id::text || '/' || f.id::text AS stem, f.archive_object,
           f.status <> 'ready' AS unfinished, f.attempts
    FROM files f WHERE f.folder_id IN (SELECT id FROM subtree)
), keys(key) AS (
    SELECT coalesce(archive_object, stem || '.zip') FROM doomed
    UNION ALL SELECT 'tmp/' || replace(stem, '/', '/uploads/') FROM doomed
    UNION ALL SELECT replace(stem, '/', '/uploads/') FROM doomed WHERE unfinished
    UNION ALL SELECT stem || CASE WHEN n = 1 THEN '' ELSE '.' || n::text END || '.zip'
        FROM doomed CROSS JOIN LATERAL generate_series(1, attempts) AS n
        WHERE unfinished AND stem || CASE WHEN n = 1 THEN '' ELSE '.' || n::text END || '.zip'
            IS DISTINCT FROM coalesce(archive_object, stem || '.zip')
)
INSERT INTO pending_deletions (id, key, created_at)
SELECT gen_random_uuid(), key, :now FROM keys
"""


@dataclass(frozen=True)
class Removed:
    """What a folder delete took (its rows went at once) and what it left to a worker."""

    folders: int
    files: int
    uploads: int
    objects: int  # objects recorded for removal
    pending: list[deletions.Pending]  # the records this request carries out itself (a small delete)


def _subtree(folder_id: uuid.UUID):
    """A recursive CTE of the folder's id and every folder's under it."""
    tree = select(Folder.id).where(Folder.id == folder_id).cte("subtree", recursive=True)
    return tree.union_all(select(Folder.id).join(tree, Folder.parent_id == tree.c.id))


def _record_objects(
    session: Session, folder_id: uuid.UUID, in_tree, files: int
) -> tuple[int, list[deletions.Pending]]:
    """Record the objects of the subtree's files: (how many, the ids to carry out now)."""
    if files > INLINE_FILES and session.get_bind().dialect.name == "postgresql":
        done = session.execute(text(_RECORD_KEYS), {"folder_id": folder_id, "now": utcnow()})
        return rowcount(done), []
    inline = files <= INLINE_FILES
    recorded, ids = 0, list[deletions.Pending]()
    batch: list[str] = []

    def flush() -> None:
        nonlocal recorded
        if inline:
            ids.extend(deletions.schedule(session, batch))
        else:
            deletions.record(session, batch)
        recorded += len(batch)
        batch.clear()

    rows = session.execute(
        select(File.id, File.owner_id, File.status, File.attempts, File.archive_object)
        .where(File.folder_id.in_(in_tree))
        .execution_options(yield_per=1000)
    )
    for row in rows:
        batch.extend(
            deletions.file_keys(row.owner_id, row.id, row.status, row.attempts, row.archive_object)
        )
        if len(batch) >= 2000:
            flush()
    flush()
    return recorded, ids


def _delete_once(session: Session, owner_id: uuid.UUID, folder_id: uuid.UUID) -> Removed:
    session.rollback()  # end any read: the lock starts the transaction
    lock_owner(session, owner_id)
    if session.get_bind().dialect.name == "postgresql":
        # The planner guesses a thousand keys per file and compiles the statements with
        # JIT: ~2 s of compiling for a large folder, for statements that run once.
        session.execute(text("SET LOCAL jit = off"))
    owned(session, owner_id, folder_id)
    in_tree = select(_subtree(folder_id).c.id)
    # Unfinished uploads bound for the subtree go with it: their bytes, their reservation.
    uploads = list(session.scalars(select(Upload).where(Upload.folder_id.in_(in_tree))))
    reserved = sum(u.length for u in uploads if u.completed_at is None)
    upload_keys = [k for u in uploads if u.completed_at is None for k in u.temporary_keys]
    # Counted before they go, under the lock (nothing enters the subtree meanwhile): the
    # DELETEs' row counts are not to be had from every driver (sqlite3's, for a WITH).
    count, size = session.execute(
        select(func.count(File.id), func.coalesce(func.sum(File.size), 0)).where(
            File.folder_id.in_(in_tree)
        )
    ).one()
    count, size = int(count), int(size)
    tree_size = int(session.scalar(select(func.count()).select_from(in_tree.subquery())) or 0)
    objects, pending = _record_objects(session, folder_id, in_tree, count)
    pending += deletions.schedule(session, upload_keys)
    if uploads:
        session.execute(
            sql_delete(Upload)
            .where(Upload.id.in_([u.id for u in uploads]))
            .execution_options(synchronize_session=False)
        )
        for upload in uploads:
            session.expunge(upload)
    # One statement for all the files: the status counters move once (migration 0013).
    session.execute(
        sql_delete(File)
        .where(File.folder_id.in_(in_tree))
        .execution_options(synchronize_session=False)
    )
    session.execute(
        sql_delete(Folder)
        .where(Folder.id.in_(in_tree))
        .execution_options(synchronize_session=False)
    )
    quota.files_removed(session, owner_id, count, size, released=reserved)
    session.commit()
    return Removed(tree_size, count, len(uploads), objects + len(upload_keys), pending)


def delete(
    session: Session, storage: Storage, jobs: JobQueue, owner_id: uuid.UUID, folder_id: uuid.UUID
) -> Removed:
    """Delete a folder and everything under it: the rows in one transaction, at once.

    The files go in one DELETE (the status counters move once per statement, migration
    0013), the usage counters by their sums, unfinished uploads bound for the subtree with
    their reservations freed; their objects are recorded in `pending_deletions` in the same
    transaction, and removed after the commit: here for a small folder, by a worker job
    (`finish_deletions`, sent at once) for a large one. A deadlock with a worker changing a
    file of the folder meanwhile is retried.
    """
    for attempt in range(DELETE_ATTEMPTS):
        try:
            removed = _delete_once(session, owner_id, folder_id)
            break
        except OperationalError as exc:
            session.rollback()
            if getattr(exc.orig, "pgcode", None) != DEADLOCK or attempt == DELETE_ATTEMPTS - 1:
                raise
    if removed.pending:
        deletions.carry_out(session, storage, removed.pending)
    if removed.objects > len(removed.pending):
        jobs.send_deletions()
    return removed
