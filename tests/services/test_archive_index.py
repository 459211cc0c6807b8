"""Seek indexes for archives written before there were any (app.services.archive_index).

The old archives are made as main made them: the same compression job with no flush
points (a span larger than any file) and no index on the row. Real LocalStorage and the
GCS emulator, counted (tests/archive/counting.py); the run's database, rolled back.
"""

from __future__ import annotations

import os
import zlib

import pytest
from sqlalchemy import update

from app.archive import ArchiveMismatch, seek_index, writer
from app.archive.seek_index import SeekIndex
from app.models import File
from app.services import archive_index, files
from tests.archive.counting import CountingStorage, counted_backend
from tests.archive.test_reader import (
    BIG,
    KIB,
    MIB,
    big_log,
    compressed_file,
    read_original,
)
from tests.services.lease_rows import fresh


@pytest.fixture(params=["local", "gcs"])
def counted(request, tmp_path) -> CountingStorage:
    """A real backend, counted: a directory, or the GCS emulator's bucket."""
    return counted_backend(request, tmp_path)


@pytest.fixture(params=[1, 2], ids=["one-core", "two-cores"])
def old_archive(request, monkeypatch, session, factories, counted):
    """A ready 64 MiB log whose archive has no points and whose row has no index."""
    with monkeypatch.context() as patch:
        patch.setattr(writer, "usable_cores", lambda: request.param)
        patch.setattr(seek_index, "SPAN", 1 << 50)
        file = compressed_file(session, counted, big_log(), "old.log", "text/plain")
    session.execute(update(File).where(File.id == file.id).values(seek_index=None))
    session.commit()
    return fresh(session, file)


def test_an_old_archive_is_indexed_in_one_pass_and_its_ranges_are_cheap_after(
    session,
    counted,
    old_archive,
):
    data = big_log()
    assert old_archive.id in archive_index.unindexed(session)
    _, before = read_original(counted, old_archive, BIG - KIB, KIB)
    assert before > 10 * MIB  # inflated from the start: the whole archive

    counted.reset()
    assert archive_index.index_archive(session, counted, old_archive.id)
    # One pass: the entry's data once, and its header.
    assert counted.bytes_read <= old_archive.compressed_size + 64 * KIB
    file = fresh(session, old_archive)
    assert file.id not in archive_index.unindexed(session)
    index = SeekIndex.from_bytes(file.seek_index)
    assert len(index.points) > 5
    assert file.version == old_archive.version  # no change anyone sees: the ETag stays

    for start in (0, 5 * MIB + 11, BIG // 2, BIG - 3 * MIB, BIG - KIB):
        got, read = read_original(counted, file, start, KIB)
        assert got == data[start : start + KIB], start
        assert read < 4 * MIB, (start, read)
    assert b"".join(files.download_of(counted, file, original=True).chunks) == data
    # Done once: a second job finds nothing to do.
    assert not archive_index.index_archive(session, counted, file.id)


def test_an_archive_that_does_not_match_its_row_gets_no_index(session, counted, old_archive):
    session.execute(
        update(File).where(File.id == old_archive.id).values(crc32=old_archive.crc32 ^ 1)
    )
    session.commit()
    with pytest.raises(ArchiveMismatch, match="CRC"):
        archive_index.index_archive(session, counted, old_archive.id)
    assert fresh(session, old_archive).seek_index is None


def test_stored_and_new_archives_are_not_indexed_again(session, factories, tmp_path):
    from app.storage.local import LocalStorage

    storage = CountingStorage(LocalStorage(tmp_path))
    noise = compressed_file(
        session, storage, os.urandom(300 * KIB), "noise.bin", "application/octet-stream"
    )
    text = compressed_file(session, storage, b"some text\n" * 50_000, "new.txt", "text/plain")
    assert noise.compression == "stored" and noise.seek_index is None
    assert text.compression == "deflate" and text.seek_index is not None
    pending = archive_index.unindexed(session)
    assert noise.id not in pending and text.id not in pending
    assert not archive_index.index_archive(session, storage, noise.id)
    assert (
        zlib.crc32(b"".join(files.download_of(storage, noise, original=True).chunks)) == noise.crc32
    )
