"""What a new file must pass to be let in, by either upload path: the quota and a free name.

Both the multipart upload (`files.create`) and a resumable upload (`resumable_uploads`)
admit files through here, so the rules and the usage they count are the same for both.
"""

from __future__ import annotations

import mimetypes
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import Conflict, TooLarge
from app.models import File, Upload
from app.services import names

GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}


@dataclass(frozen=True)
class Usage:
    file_count: int
    bytes_stored: int
    bytes_reserved: int = 0  # the lengths of unfinished resumable uploads


def _unfinished_uploads(owner_id: uuid.UUID):
    return (
        Upload.owner_id == owner_id,
        Upload.completed_at.is_(None),
        Upload.expires_at > utcnow(),
    )


def usage(session: Session, owner_id: uuid.UUID) -> Usage:
    """How many files the owner has, the bytes they take (originals) and those reserved."""
    count, total = session.execute(
        select(func.count(File.id), func.coalesce(func.sum(File.size), 0)).where(
            File.owner_id == owner_id
        )
    ).one()
    reserved = session.scalar(
        select(func.coalesce(func.sum(Upload.length), 0)).where(*_unfinished_uploads(owner_id))
    )
    return Usage(file_count=int(count), bytes_stored=int(total), bytes_reserved=int(reserved or 0))


def name_taken(session: Session, owner_id: uuid.UUID, name: str) -> bool:
    """A file has the name, or an unfinished resumable upload will become one with it."""
    if (
        session.scalar(select(File.id).where(File.owner_id == owner_id, File.name == name))
        is not None
    ):
        return True
    return (
        session.scalar(select(Upload.id).where(*_unfinished_uploads(owner_id), Upload.name == name))
        is not None
    )


def check_new_file(
    session: Session, quota_bytes: int, owner_id: uuid.UUID, name: str, size: int
) -> None:
    """Refuse a new file whose name is taken or whose size would break the owner's quota."""
    current = usage(session, owner_id)
    # Unfinished resumable uploads hold their whole length: no quota race by many uploads.
    used = current.bytes_stored + current.bytes_reserved
    if used + size > quota_bytes:
        raise TooLarge(
            f"This upload of {size} bytes would exceed your storage quota "
            f"({used} of {quota_bytes} bytes used or reserved).",
            limit="quota",
        )
    if name_taken(session, owner_id, name):
        raise Conflict(f"You already have a file (or an upload) named {name!r}.")


def free_name(session: Session, owner_id: uuid.UUID, name: str) -> str:
    """`name`, or `name (2).ext`… if a file took it while an upload was under way."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, dot, ext = name, "", ""
    candidate, n = name, 1
    while (
        session.scalar(select(File.id).where(File.owner_id == owner_id, File.name == candidate))
        is not None
    ):
        n += 1
        suffix = f" ({n}){dot}{ext}"
        candidate = stem[: names.MAX_NAME - len(suffix)] + suffix
    return candidate


def content_type_for(name: str, declared: str | None) -> str:
    """The client's type unless it is missing or generic; then a guess from the name."""
    declared = (declared or "").split(";", 1)[0].strip().lower()
    if declared not in GENERIC_TYPES:
        return declared
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
