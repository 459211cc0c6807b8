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

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import exists, func, literal, select, text
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.db import rowcount, utcnow
from app.errors import Conflict, NotFound, PreconditionFailed
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
            named_in(Folder, owner_id, folder_id, name, but_folder),
            named_in(File, owner_id, folder_id, name, but_file),
        )
    ).one()
    return "folder" if folder else "file" if file else None


def named_in(model, owner_id, parent, name, but: uuid.UUID | None = None):
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


def add_folder(
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
        folder = add_folder(session, owner_id, parent_id, name)
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
