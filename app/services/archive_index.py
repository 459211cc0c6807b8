"""Seek indexes for archives written before there were any: one pass each, in the worker.

An archive compressed since `files.seek_index` exists carries its index from the start
(flush points, `app.archive.seek_index`). An older one is read once, inflated, checked
against the row's size and CRC-32, and its points recorded (`app.archive.zran`); until
then a range of its original is inflated from the entry's start, as before.

Nothing in storage changes: the archive's bytes (and the ZIP's ETag) stay as they are,
so no download in progress can notice, and no lease is needed. Two jobs for one file
both compute the same index; the guarded UPDATE keeps the first. A file deleted, or
compressed again, meanwhile is left alone.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.archive import zran
from app.archive.layout import DEFLATED
from app.archive.reader import ArchiveReader
from app.db import rowcount
from app.models import File, FileStatus
from app.storage import Storage


def _lacking_index():
    return (
        File.status == FileStatus.READY,
        File.compression == "deflate",
        File.seek_index.is_(None),
    )


def unindexed(session: Session, *, limit: int | None = None) -> list[uuid.UUID]:
    """Ready files with a deflated archive and no seek index, oldest first."""
    query = select(File.id).where(*_lacking_index()).order_by(File.created_at, File.id)
    return list(session.scalars(query.limit(limit) if limit else query))


def index_archive(session: Session, storage: Storage, file_id: uuid.UUID) -> bool:
    """Make and record the seek index of one file's archive; False when there is nothing
    to do (indexed already, not deflated, not ready, or gone).

    Raises ArchiveMismatch when the archive does not inflate to the file's size and
    CRC-32 (nothing is recorded), ObjectMissing when it is not in storage.
    """
    row = session.execute(
        select(File.owner_id, File.size, File.crc32, File.compressed_size, File.processed_at).where(
            File.id == file_id, *_lacking_index()
        )
    ).one_or_none()
    session.rollback()  # no transaction held open over the pass
    if row is None:
        return False
    key = File(id=file_id, owner_id=row.owner_id).archive_key
    reader = ArchiveReader(storage, key, entry_size=row.size, archive_size=row.compressed_size)
    if reader.header.method != DEFLATED:
        return False
    index = zran.build(
        storage.iter_chunks(key, reader.header.data_offset), size=row.size, crc32=row.crc32
    )
    recorded = session.execute(
        update(File)
        .where(File.id == file_id, File.processed_at == row.processed_at, *_lacking_index())
        # Bookkeeping, not a change anyone sees: the version (ETag) and `updated_at` stay.
        .values(seek_index=index.to_bytes(), updated_at=File.updated_at)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return rowcount(recorded) == 1
