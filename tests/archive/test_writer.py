"""write_archive and verify_archive against a real LocalStorage in a temp dir (no worker)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest

from app.archive import deflate, writer
from app.archive.writer import (
    ArchiveMismatch,
    looks_compressed,
    sample_shrinks,
    verify_archive,
    write_archive,
)
from app.storage import ObjectMissing
from app.storage.base import CHUNK_SIZE
from app.storage.local import LocalStorage

MODIFIED = dt.datetime(2024, 5, 17, 12, 30, 10, tzinfo=dt.UTC)
SOURCE = "user/uploads/file"
ARCHIVE = "user/file.zip"


def text_log(size: int) -> bytes:
    lines = (
        b"2024-05-17T12:%02d:%02d INFO req=%08x GET /api/v1/files/%d 200 %dms\n"
        % (i // 60 % 60, i % 60, i * 2654435761 % 2**32, i % 977, i % 313)
        for i in range(size // 40 + 1)
    )
    return b"".join(lines)[:size]


@pytest.fixture
def store(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


def stage(store: LocalStorage, data: bytes, key: str = SOURCE) -> None:
    with store.writer(key, "application/octet-stream") as sink:
        sink.write(data)


def archive(store: LocalStorage, data: bytes, name: str = "notes.txt", **overrides):
    """Stage `data` and write its archive; the ArchiveResult."""
    stage(store, data)
    args = dict(
        source_key=SOURCE,
        archive_key=ARCHIVE,
        entry_name=name,
        size=len(data),
        crc32=zlib.crc32(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type="application/octet-stream",
        modified_at=MODIFIED,
    )
    args.update(overrides)
    return write_archive(store, **args)


def unzip_test(path: Path) -> str:
    done = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No errors detected" in done.stdout, done.stdout
    return done.stdout


def every_file(store: LocalStorage) -> set[str]:
    """Everything on disk under the root, temp (dot) files included."""
    return {str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file()}


def only_entry(store: LocalStorage) -> zipfile.ZipInfo:
    with zipfile.ZipFile(store.root / ARCHIVE) as zf:
        (info,) = zf.infolist()
        return info


def test_text_is_deflated_and_round_trips(store):
    data = text_log(3 * 1024 * 1024 + 17)  # several read chunks, not a multiple of one
    result = archive(store, data, "access.log")
    assert result.method == "deflate"
    assert result.size == len(data)
    assert result.crc32 == zlib.crc32(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.compressed_size == store.size(ARCHIVE)
    assert result.compressed_size < len(data) / 3
    info = only_entry(store)
    assert info.filename == "access.log"
    assert info.compress_type == zipfile.ZIP_DEFLATED
    assert info.date_time == (2024, 5, 17, 12, 30, 10)
    with zipfile.ZipFile(store.root / ARCHIVE) as zf:
        assert zf.read("access.log") == data
    unzip_test(store.root / ARCHIVE)
    assert every_file(store) == {SOURCE, ARCHIVE}  # the source stays: processing drops it


def test_random_bytes_are_stored_with_tiny_overhead(store):
    data = os.urandom(2 * 1024 * 1024)
    result = archive(store, data, "noise.bin")
    assert result.method == "stored"
    info = only_entry(store)
    assert info.compress_type == zipfile.ZIP_STORED
    assert info.compress_size == info.file_size == len(data)
    assert result.compressed_size - len(data) < 200  # headers and directory only
    with zipfile.ZipFile(store.root / ARCHIVE) as zf:
        assert zf.read("noise.bin") == data
    unzip_test(store.root / ARCHIVE)


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("photo.JPG", "application/octet-stream"), ("photo", "image/jpeg"), ("a.tar.gz", "")],
)
def test_known_compressed_formats_are_stored_without_sampling(store, name, content_type):
    data = text_log(300_000)  # would deflate well; the name or type decides
    result = archive(store, data, name, content_type=content_type)
    assert result.method == "stored"
    assert only_entry(store).compress_type == zipfile.ZIP_STORED
    unzip_test(store.root / ARCHIVE)


def test_empty_file(store):
    result = archive(store, b"", "empty.txt")
    assert result.size == 0
    info = only_entry(store)
    assert (info.filename, info.file_size, info.CRC) == ("empty.txt", 0, 0)
    unzip_test(store.root / ARCHIVE)


def test_empty_source_must_still_be_empty(store):
    stage(store, b"surprise")
    with pytest.raises(ArchiveMismatch, match="it has 8 bytes, expected 0"):
        write_archive(
            store,
            source_key=SOURCE,
            archive_key=ARCHIVE,
            entry_name="empty.txt",
            size=0,
            crc32=0,
            content_type="text/plain",
            modified_at=MODIFIED,
        )
    assert every_file(store) == {SOURCE}
    store.delete(SOURCE)
    with pytest.raises(ObjectMissing):
        archive(store, b"", "empty.txt", source_key="user/uploads/gone")


# The compression dial and the parallel path


@pytest.fixture
def small_blocks(monkeypatch):
    """The parallel path for any file over 64 KiB, in 64 KiB blocks: many blocks, little data."""
    monkeypatch.setattr(writer, "PARALLEL_THRESHOLD", 64 * 1024)
    monkeypatch.setattr(deflate, "BLOCK_SIZE", 64 * 1024)


def _round_trips(store: LocalStorage, data: bytes, name: str) -> zipfile.ZipInfo:
    info = only_entry(store)
    assert info.compress_type == zipfile.ZIP_DEFLATED
    assert (info.file_size, info.CRC) == (len(data), zlib.crc32(data))
    with zipfile.ZipFile(store.root / ARCHIVE) as zf:
        assert zf.read(name) == data
    unzip_test(store.root / ARCHIVE)
    return info


@pytest.mark.parametrize("setting", ["fast", "small"])
def test_each_compression_setting_round_trips(store, setting):
    data = text_log(2 * 1024 * 1024 + 5)
    result = archive(store, data, "access.log", compression=setting)
    assert result.method == "deflate"
    assert (result.size, result.crc32) == (len(data), zlib.crc32(data))
    _round_trips(store, data, "access.log")


def test_small_makes_smaller_archives_than_fast(tmp_path):
    data = text_log(2 * 1024 * 1024)
    sizes = {
        setting: archive(LocalStorage(tmp_path / setting), data, compression=setting)
        for setting in ("fast", "small")
    }
    assert sizes["small"].compressed_size < sizes["fast"].compressed_size


@pytest.mark.parametrize("setting", ["fast", "small"])
@pytest.mark.parametrize(
    "size",
    [
        3 * 1024 * 1024 + 17,  # the last block is short
        2 * 1024 * 1024,  # a whole number of blocks, and of read chunks
        64 * 1024 + 1,  # just over the threshold: two blocks, the last of one byte
    ],
)
def test_the_parallel_path_makes_a_standard_zip(store, small_blocks, setting, size):
    data = text_log(size)
    result = archive(store, data, "big.log", compression=setting, threads=2)
    assert result.method == "deflate"
    assert (result.size, result.crc32) == (len(data), zlib.crc32(data))
    info = _round_trips(store, data, "big.log")
    assert info.compress_size < len(data) / 3


def test_the_parallel_path_costs_almost_nothing_in_size(tmp_path, small_blocks):
    # Each block is primed with the 32 KiB before it, so cutting it up barely shows.
    data = text_log(3 * 1024 * 1024)
    one = archive(LocalStorage(tmp_path / "one"), data, threads=1, compression="small")
    two = archive(LocalStorage(tmp_path / "two"), data, threads=2, compression="small")
    assert one.compressed_size < two.compressed_size < one.compressed_size * 1.01


def test_the_parallel_path_still_catches_changed_bytes(store, small_blocks):
    # The CRC of what was read comes from the blocks' CRCs, combined.
    data = text_log(1_500_000)
    with pytest.raises(ArchiveMismatch, match="staged upload changed"):
        archive(store, data, "log.txt", crc32=zlib.crc32(data) ^ 1, threads=2)
    assert every_file(store) == {SOURCE}


def test_unicode_entry_name(store):
    archive(store, b"hola\n" * 100, "informe año 2024 ✓.txt")
    assert only_entry(store).filename == "informe año 2024 ✓.txt"
    unzip_test(store.root / ARCHIVE)


def test_heartbeat_runs_once_per_chunk(store):
    beats = []
    data = text_log(5 * 1024 * 1024 // 2)
    archive(store, data, heartbeat=lambda: beats.append(1))
    assert len(beats) == -(-len(data) // CHUNK_SIZE)


def _has_zip64_extra(extra: bytes) -> bool:
    while len(extra) >= 4:
        header_id = int.from_bytes(extra[:2], "little")
        length = int.from_bytes(extra[2:4], "little")
        if header_id == 0x0001:
            return True
        extra = extra[4 + length :]
    return False


@pytest.mark.parametrize(("name", "method"), [("big.log", "deflate"), ("big.jpg", "stored")])
@pytest.mark.parametrize("limit", [None, 1000])
def test_zip64_is_chosen_above_the_zip32_limit(store, monkeypatch, name, method, limit):
    if limit is not None:
        monkeypatch.setattr(writer, "ZIP32_LIMIT", limit)
    data = text_log(200_000)
    result = archive(store, data, name)
    assert result.method == method
    info = only_entry(store)
    zip64 = limit is not None
    assert _has_zip64_extra(info.extra) is zip64
    assert (info.extract_version >= 45) is zip64
    with zipfile.ZipFile(store.root / ARCHIVE) as zf:
        assert zf.read(name) == data
    unzip_test(store.root / ARCHIVE)


def test_zip32_limit_leaves_room_for_deflate_growth():
    # Deflate may grow input that slipped past sampling; a ZIP32 entry must still fit.
    worst_growth = 1.001
    assert writer.ZIP32_LIMIT * worst_growth < 2**32 - 1


@pytest.mark.parametrize("name", ["log.txt", "noise.bin"])
def test_staged_bytes_with_wrong_crc_leave_no_archive(store, name):
    data = text_log(1_500_000) if name == "log.txt" else os.urandom(1_500_000)
    with pytest.raises(ArchiveMismatch, match="staged upload changed"):
        archive(store, data, name, crc32=zlib.crc32(data) ^ 1)
    assert every_file(store) == {SOURCE}  # no archive, and no temp file either


@pytest.mark.parametrize("name", ["log.txt", "noise.bin"])
def test_staged_bytes_of_another_size_leave_no_archive(store, name):
    data = text_log(700_000) if name == "log.txt" else os.urandom(700_000)
    stage(store, data[:-1])
    with pytest.raises(ArchiveMismatch):
        write_archive(
            store,
            source_key=SOURCE,
            archive_key=ARCHIVE,
            entry_name=name,
            size=len(data),
            crc32=zlib.crc32(data),
            content_type="application/octet-stream",
            modified_at=MODIFIED,
        )
    assert every_file(store) == {SOURCE}


def test_staged_bytes_with_wrong_sha256_leave_no_archive(store):
    data = text_log(400_000)
    with pytest.raises(ArchiveMismatch):
        archive(store, data, sha256=hashlib.sha256(b"something else").hexdigest())
    assert every_file(store) == {SOURCE}


def test_unknown_sha256_is_computed(store):
    data = text_log(100_000)
    assert archive(store, data, sha256=None).sha256 == hashlib.sha256(data).hexdigest()


def test_missing_source_raises_object_missing(store):
    with pytest.raises(ObjectMissing):
        write_archive(
            store,
            source_key=SOURCE,
            archive_key=ARCHIVE,
            entry_name="x.txt",
            size=1,
            crc32=0,
            content_type="text/plain",
            modified_at=MODIFIED,
        )
    assert every_file(store) == set()


def _verify(store, data: bytes, name: str = "notes.txt", length: int | None = None) -> None:
    verify_archive(
        store,
        ARCHIVE,
        name,
        size=len(data),
        crc32=zlib.crc32(data),
        length=store.size(ARCHIVE) if length is None else length,
    )


def _replace_archive(store: LocalStorage, payload: bytes) -> None:
    with store.writer(ARCHIVE, "application/zip") as sink:
        sink.write(payload)


def test_verify_accepts_what_write_archive_wrote(store):
    data = text_log(100_000)
    archive(store, data)
    _verify(store, data)


def test_verify_catches_a_flipped_crc_in_the_directory(store):
    data = text_log(100_000)
    archive(store, data)
    raw = bytearray((store.root / ARCHIVE).read_bytes())
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 16] ^= 0xFF  # the entry's CRC-32 in the central directory
    _replace_archive(store, bytes(raw))
    with pytest.raises(ArchiveMismatch, match="CRC"):
        _verify(store, data)


def test_verify_catches_another_entry(store):
    data = text_log(100_000)
    archive(store, data)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("notes.txt", data[:-1] + b"!")
    _replace_archive(store, buffer.getvalue())
    with pytest.raises(ArchiveMismatch, match=r"expected 'notes\.txt'"):
        _verify(store, data)
    with pytest.raises(ArchiveMismatch):
        _verify(store, data, name="other.txt")


def test_verify_catches_extra_entries(store):
    data = b"abc"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("notes.txt", data)
        zf.writestr("evil.sh", b"rm -rf /")
    _replace_archive(store, buffer.getvalue())
    with pytest.raises(ArchiveMismatch, match="2 entries"):
        _verify(store, data)


def test_verify_catches_truncation_and_garbage(store):
    data = text_log(100_000)
    archive(store, data)
    full = (store.root / ARCHIVE).read_bytes()
    with pytest.raises(ArchiveMismatch, match="stored archive is"):
        _verify(store, data, length=len(full) + 1)
    _replace_archive(store, full[: len(full) // 2])
    with pytest.raises(ArchiveMismatch, match="not a ZIP"):
        _verify(store, data)


def test_looks_compressed():
    assert looks_compressed("image/jpeg", "x")
    assert looks_compressed("IMAGE/PNG", "x")
    assert looks_compressed("video/mp4", "clip")
    assert looks_compressed("audio/ogg", "song")
    assert looks_compressed("application/octet-stream", "backup.tar.gz")
    assert looks_compressed("", "Holiday.JPEG")
    assert looks_compressed("text/plain", "slides.pptx")
    assert not looks_compressed("text/plain", "notes.txt")
    assert not looks_compressed("application/octet-stream", "jpg")  # a name, not an extension
    assert not looks_compressed("application/octet-stream", "archive.zip.txt")
    assert not looks_compressed("image/svg+xml", "logo.svg")


def test_sample_shrinks():
    assert sample_shrinks(b"")
    assert sample_shrinks(text_log(writer.SAMPLE_BYTES))
    assert sample_shrinks(b"\0" * 1000)
    assert not sample_shrinks(os.urandom(writer.SAMPLE_BYTES))
    # Mostly random with a little text still does not pay for deflating.
    assert not sample_shrinks(os.urandom(240_000) + text_log(6_000))


def test_choose_method_rewinds_the_reader():
    data = os.urandom(writer.SAMPLE_BYTES * 2)
    reader = io.BytesIO(data)
    assert writer.choose_method(reader, "application/octet-stream", "x.bin") == "stored"
    assert reader.tell() == 0
    reader = io.BytesIO(text_log(writer.SAMPLE_BYTES) + os.urandom(1024 * 1024))
    # Only the sample is looked at: a text head decides for the whole file.
    assert writer.choose_method(reader, "text/plain", "x.log") == "deflate"
    assert reader.tell() == 0
