"""Where a new file goes: the folder its upload names (a base folder and a relative path
under it), what holds its name there, and the folders made when it lands.

An upload's early checks and its placement each cost one statement (`survey`, `place`):
the relative path's folders are a chain of outer joins from the owner's row, built once
per shape. Folders themselves (making, moving, deleting, the owner's lock) are
app.services.folders'.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, literal, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import Conflict, InvalidInput, NotFound
from app.models import File, Folder, Upload, User
from app.services import names
from app.services.folders import MAX_PATH_DEPTH, add_folder, in_folder, named_in


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
        blocked.append(named_in(File, _OWNER, parent, name).label(f"blocked_{i}"))
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
            named_in(Folder, _OWNER, parent, _NAME).label("folder_clash"),
            named_in(File, _OWNER, parent, _NAME).label("file_clash"),
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
            found = add_folder(session, owner_id, current, name).id
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
