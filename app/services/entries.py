"""A folder's listing (`GET /entries`): its folders, then its files, a page at a time.

Keyset-paginated like `GET /files`: the cursor says which of the two lists the page
after it starts in and after what, so a page deep in a large folder is an index walk
from there (files: the per-folder unique index by name, or (owner_id, folder_id,
created_at, id); folders likewise), never an OFFSET. Names are unique within a folder for
each kind, so the name alone is the key of the name orders.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import false, func, select, tuple_
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import File, Folder
from app.services import folders
from app.services.files import LISTED

SORTS = ("name", "-name", "created_at", "-created_at")
FOLDER_COLUMNS = (Folder.id, Folder.name, Folder.parent_id, Folder.created_at, Folder.updated_at)


@dataclass(frozen=True)
class Entries:
    folder: Folder | None  # None: the root
    ancestors: list[folders.Ancestor]
    folders: Sequence[Any]  # rows of FOLDER_COLUMNS
    files: Sequence[Any]  # rows of app.services.files.LISTED
    next_cursor: str | None
    total: int


def _key(sort: str) -> str:
    return sort.removeprefix("-")


def _encode(sort: str, kind: str, row: Any) -> str:
    value = getattr(row, _key(sort))
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    raw = json.dumps({"s": sort, "k": kind, "v": value, "id": str(row.id)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(sort: str, cursor: str) -> tuple[str, object, uuid.UUID]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["s"] != sort or data["k"] not in {"folder", "file"}:
            raise ValueError("cursor from another listing")
        value = data["v"]
        if _key(sort) == "created_at":
            value = dt.datetime.fromisoformat(value)
            if value.tzinfo is None:
                raise ValueError("naive datetime")
        elif not isinstance(value, str) or "\x00" in value:
            raise ValueError("bad value")
        else:
            value.encode()
        return data["k"], value, uuid.UUID(data["id"])
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, AttributeError):
        raise InvalidInput(
            "The cursor is not valid for this listing; start again without it."
        ) from None


def _page(table, columns, where: list, sort: str, after: tuple | None, limit: int):
    """`limit` rows of `table` matching `where` in `sort` order, after the keyset `after`."""
    descending = sort.startswith("-")
    column = getattr(table, _key(sort))
    keys = (column,) if _key(sort) == "name" else (column, table.id)
    if after is not None:
        bound = tuple_(*after[: len(keys)]) if len(keys) > 1 else after[0]
        row = tuple_(*keys) if len(keys) > 1 else column
        where = [*where, row < bound if descending else row > bound]
    order = [k.desc() if descending else k.asc() for k in keys]
    return select(*columns).where(*where).order_by(*order).limit(limit)


def list_entries(
    session: Session,
    owner_id: uuid.UUID,
    folder_id: uuid.UUID | None,
    *,
    limit: int,
    cursor: str | None = None,
    sort: str = "name",
    name: str | None = None,
) -> Entries:
    """One page of a folder's entries (the root's for None), its breadcrumb and total;
    `name`: only the folder or file of exactly that name (in NFC, as names are kept): one
    probe of the per-folder name index, for a client walking a path."""
    folder = folders.owned(session, owner_id, folder_id) if folder_id is not None else None
    kind, after = "folder", None
    if cursor:
        kind, value, after_id = _decode(sort, cursor)
        after = (value, after_id)
    in_folder = [Folder.owner_id == owner_id, folders.in_folder(Folder.parent_id, folder_id)]
    in_files = [File.owner_id == owner_id, folders.in_folder(File.folder_id, folder_id)]
    if name is not None:
        # No name holds NUL (and PostgreSQL takes no text that does): nothing matches.
        wanted = unicodedata.normalize("NFC", name)
        in_folder.append(Folder.name == wanted if "\0" not in wanted else false())
        in_files.append(File.name == wanted if "\0" not in wanted else false())
    folder_rows: Sequence[Any] = []
    if kind == "folder":
        folder_rows = session.execute(
            _page(Folder, FOLDER_COLUMNS, in_folder, sort, after, limit + 1)
        ).all()
        after = None
    file_rows: Sequence[Any] = []
    room = limit - len(folder_rows)
    if room >= 0:
        file_rows = session.execute(_page(File, LISTED, in_files, sort, after, room + 1)).all()
    next_cursor = None
    if len(folder_rows) > limit:
        folder_rows = folder_rows[:limit]
        next_cursor = _encode(sort, "folder", folder_rows[-1])
    elif len(file_rows) > room:
        file_rows = file_rows[:room]
        next_cursor = (
            _encode(sort, "file", file_rows[-1])
            if file_rows
            else _encode(sort, "folder", folder_rows[-1])
        )
    total = session.execute(
        select(
            select(func.count()).select_from(Folder).where(*in_folder).scalar_subquery(),
            select(func.count()).select_from(File).where(*in_files).scalar_subquery(),
        )
    ).one()
    return Entries(
        folder=folder,
        ancestors=folders.ancestors(session, folder_id),
        folders=folder_rows,
        files=file_rows,
        next_cursor=next_cursor,
        total=int(total[0]) + int(total[1]),
    )
