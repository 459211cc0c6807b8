"""A new file whose name is taken where it goes: refused (409, the default), given the next
free name (`name (1).ext`), or put in the old file's place, as the client asks (the multipart
form's `on_conflict`, tus `onConflict`). Where files go and what holds a name is
app.services.folders'.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput
from app.services import names, quota
from app.services.folders import clash_message, name_clash
from app.services.placement import (
    Target,
    existing,
    survey,
    upload_clash_message,
    upload_named,
)

# Refusing (409) stays the default for existing clients.
REFUSE, RENAME, REPLACE = "refuse", "rename", "replace"
ON_CONFLICT = (REFUSE, RENAME, REPLACE)
ASK = "ask"  # `free_name`: what holds the name is not known yet


def conflict_rule(value: str | None, where: str = "The on_conflict field") -> str:
    """The `on_conflict` a client asked for (`refuse` without one); 400 for another word."""
    if value is None or value == "":
        return REFUSE
    if value not in ON_CONFLICT:
        raise InvalidInput(f"{where} must be one of: {', '.join(ON_CONFLICT)}.")
    return value


def numbered(name: str, n: int) -> str:
    """`name (n).ext`: `name` told apart by a number, within the longest name allowed."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, dot, ext = name, "", ""
    suffix = f" ({n}){dot}{ext}"
    return stem[: names.MAX_NAME - len(suffix)] + suffix


def free_name(
    session: Session,
    owner_id: uuid.UUID,
    folder_id: uuid.UUID | None,
    name: str,
    *,
    holder: str | None = ASK,
) -> str:
    """`name`, or `name (1).ext`… if a file or folder of the folder took it meanwhile.
    `holder`: what holds `name` there ("file", "folder" or None), when the caller has just
    looked (`folders.place`)."""
    if holder == ASK:
        holder = name_clash(session, owner_id, folder_id, name)
    candidate, n = name, 0
    while holder is not None:
        n += 1
        candidate = numbered(name, n)
        holder = name_clash(session, owner_id, folder_id, candidate)
    return candidate


def check_new_file(
    session: Session,
    owner_id: uuid.UUID,
    target: Target,
    name: str,
    on_conflict: str = REFUSE,
    *,
    size: int,
    quota_bytes: int,
) -> None:
    """Refuse early a new file of `size` bytes that would break the quota (413), whose
    base folder is not the owner's (404), or whose name is taken where it goes (409): one
    look (`survey`). A read, so it takes no lock: the charge, `ensure` and the unique
    indexes, under `lock_owner`, are what hold. `rename` passes the name (it is chosen
    under the lock: `pick_name`); `replace` passes a file's name, not a folder's or an
    upload's."""
    look = survey(session, owner_id, target, name)
    quota.check_room(quota_bytes if look.quota is None else look.quota, look.used, size)
    if on_conflict == RENAME:
        return
    if look.clash == "folder" or (look.clash == "file" and on_conflict != REPLACE):
        raise Conflict(clash_message(look.clash, name), taken_by=look.clash)
    if look.upload is not None:
        raise Conflict(upload_clash_message(name), taken_by="upload")


def pick_name(session: Session, owner_id: uuid.UUID, target: Target, name: str) -> str:
    """`name`, or the first of `name (1).ext`, `name (2).ext`… that no file, folder or
    unfinished upload holds where a new file goes. The caller holds `lock_owner`, so two
    uploads of one name at once get two names."""
    found = existing(session, owner_id, target)
    folder = None if found is False else found
    assert folder is None or isinstance(folder, uuid.UUID)
    candidate, n = name, 0
    while (
        found is not False and name_clash(session, owner_id, folder, candidate) is not None
    ) or upload_named(session, owner_id, target, candidate) is not None:
        n += 1
        candidate = numbered(name, n)
    return candidate
