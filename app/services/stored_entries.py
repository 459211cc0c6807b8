"""Where each ready file's entry lies in its stored archive: what a multi-file archive
copies (app.archive.bundle) without reading any header before its first byte.

The worker records it with `ready` (`files.entry_offset`, `files.entry_compressed_size`,
migration 0015). A file made ready before that has neither: the first archive that needs
it reads its archive's local header and central directory (two small ranged reads, the
same the renamed-ZIP download makes) and records what they say, so each old file costs
those reads once, not at every download. Recording it is bookkeeping: the row's version
(its ETag) and `updated_at` stay.
"""

from __future__ import annotations

import struct

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.archive.layout import (
    CENTRAL,
    DEFLATED,
    HEAD_READ,
    NO_VALUE,
    STORED,
    TAIL_READ,
    ArchiveMismatch,
    LocalHeader,
    directory_offset,
)
from app.archive.reader import EntryAt
from app.models import File
from app.storage import Storage

METHODS = {"deflate": DEFLATED, "stored": STORED}


def recorded(file: File) -> EntryAt | None:
    """Where the file's entry lies, as its row says (None: a row from before)."""
    if file.entry_offset is None or file.entry_compressed_size is None:
        return None
    return EntryAt(
        METHODS.get(file.compression or "", DEFLATED),
        file.entry_offset,
        file.entry_compressed_size,
    )


def locate(session: Session, storage: Storage, file: File) -> EntryAt:
    """Where the file's entry lies: recorded, or read from its archive and recorded now."""
    known = recorded(file)
    if known is not None:
        return known
    found = read_entry(storage, file)
    session.execute(
        update(File)
        .where(File.id == file.id, File.archive_object.is_not_distinct_from(file.archive_object))
        .values(
            entry_offset=found.data_offset,
            entry_compressed_size=found.compressed_size,
            updated_at=File.updated_at,  # bookkeeping: no change anyone sees
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    # As loaded, not as changed: the session must not write the row again (a version).
    set_committed_value(file, "entry_offset", found.data_offset)
    set_committed_value(file, "entry_compressed_size", found.compressed_size)
    return found


def read_entry(storage: Storage, file: File) -> EntryAt:
    """Where the entry of the file's stored archive lies, read from its local header (where
    the data starts) and its central directory (how long the data is)."""

    def read(start: int, length: int) -> bytes:
        chunks = storage.iter_chunks(
            file.archive_key, start, length, generation=file.archive_generation
        )
        return b"".join(chunks)

    size = (
        file.compressed_size if file.compressed_size is not None else storage.size(file.archive_key)
    )
    header = LocalHeader.parse(read(0, min(size, HEAD_READ)))
    tail_start = max(0, size - TAIL_READ)
    tail = read(tail_start, size - tail_start)
    at = directory_offset(tail, size) - tail_start
    if not 0 <= at <= len(tail) - CENTRAL.size:
        raise ArchiveMismatch(f"the archive of {file.id} has a directory this cannot read")
    return EntryAt(header.method, header.data_offset, _compressed_size(tail, at))


def _compressed_size(tail: bytes, at: int) -> int:
    """The compressed size in the central directory header at `at` (ZIP64 when it says so)."""
    fields = CENTRAL.unpack_from(tail, at)
    compressed, size, name_length, extra_length = fields[8], fields[9], fields[10], fields[11]
    if compressed != NO_VALUE:
        return int(compressed)
    extra_at = at + CENTRAL.size + name_length
    extra = tail[extra_at : extra_at + extra_length]
    while len(extra) >= 4:
        tag, length = struct.unpack_from("<HH", extra)
        if tag == 1:  # ZIP64: the original size first when it did not fit either
            offset = 4 + (8 if size == NO_VALUE else 0)
            return int(struct.unpack_from("<Q", extra, offset)[0])
        extra = extra[4 + length :]
    raise ArchiveMismatch("the archive's ZIP64 sizes are missing")
