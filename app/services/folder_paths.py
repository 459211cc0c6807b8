"""A path's folders made at once, as `mkdir -p` makes them (POST /folder-paths): for a
dropped folder's empty subfolders, which no file's relative path names."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import Folder
from app.services import folders, placement


def make_path(
    session: Session, owner_id: uuid.UUID, parent_id: uuid.UUID | None, path: str
) -> tuple[Folder, bool]:
    """The folder at `path` ("trip/day 3/empty") under `parent_id` (the root for None),
    making each one missing as an upload's relative path does (race-free with uploads into
    the same folders: under the owner's lock); whether the last one was made now."""
    parts = placement.path_parts(path, "The path names no folder.")
    if len(parts) > folders.MAX_PATH_DEPTH:
        raise InvalidInput(f"A path may name at most {folders.MAX_PATH_DEPTH} folders.")
    target = placement.Target(parent_id, placement.folder_names(parts))
    session.rollback()  # end any read: the lock starts the transaction
    folders.lock_owner(session, owner_id)
    made = placement.existing(session, owner_id, target) is False
    found = placement.ensure(session, owner_id, target)
    session.commit()
    assert found is not None
    return folders.owned(session, owner_id, found), made
