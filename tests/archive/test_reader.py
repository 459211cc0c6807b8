"""Reading a file back out of its stored archive: what a download reads from storage, and
that every range is the original's.

The storage is real (a LocalStorage in a temp dir, or GCS through the emulator), wrapped
in `CountingStorage`, which adds up the bytes the backend hands back. The big files go
through the compression job and `files.download_of`, as a download does.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import uuid
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stream_zip import NO_COMPRESSION_32, NO_COMPRESSION_64, ZIP_32, ZIP_64, stream_zip

from app.archive import ArchiveMismatch, deflate, seek_index, writer
from app.archive.reader import ArchiveReader
from app.archive.seek_index import SeekIndex
from app.services import compress_job, files, leases
from app.storage.local import LocalStorage
from tests.archive.counting import CountingStorage, counted_backend
from tests.factories import FileFactory
from tests.services.lease_rows import LEASE, fresh

MIB = 1024 * 1024
KIB = 1024


def text_log(size: int) -> bytes:
    """A server log: varied lines that deflate to about a fifth."""
    lines = (
        b"2024-05-17T12:%02d:%02d.%03dZ INFO req=%08x GET /api/v1/files/%d -> %d in %d ms\n"
        % (i // 60 % 60, i % 60, i % 1000, i * 2654435761 % 2**32, i % 9973, 200 + i % 7, i % 311)
        for i in range(size // 60 + 1)
    )
    return b"".join(lines)[:size]


BIG = 64 * MIB
_big: list[bytes] = []


def big_log() -> bytes:
    if not _big:
        _big.append(text_log(BIG))
    return _big[0]


@pytest.fixture(params=["local", "gcs"])
def counted(request, tmp_path) -> CountingStorage:
    """A real backend, counted: a directory, or the GCS emulator's bucket."""
    return counted_backend(request, tmp_path)


@pytest.fixture(params=[1, 2], ids=["one-core", "two-cores"])
def cores(request, monkeypatch) -> int:
    """Compress on one core (a full flush every 4 MiB) or two (the parallel deflate)."""
    monkeypatch.setattr(writer, "usable_cores", lambda: request.param)
    return request.param


def compressed_file(session, storage, data: bytes, name: str, content_type: str):
    """A ready file made by the compression job from `data`; its row."""
    file = FileFactory(size=len(data), crc32=zlib.crc32(data), name=name, content_type=content_type)
    with storage.writer(file.staged_key, content_type) as sink:
        for at in range(0, len(data), 8 * MIB):
            sink.write(data[at : at + 8 * MIB])
    job = leases.claim(session, file.id, LEASE)
    assert compress_job.compress(session, storage, job, lease_seconds=LEASE)
    return fresh(session, file)


def read_original(storage: CountingStorage, file, start: int, length: int) -> tuple[bytes, int]:
    """`length` bytes of the original from `start`, as a download reads them; and how many
    bytes storage returned for them."""
    storage.reset()
    download = files.download_of(storage, file, original=True)
    got = b"".join(download.chunks_from(start, length))
    return got, storage.bytes_read


def test_any_kib_of_a_big_original_reads_at_most_one_span(session, factories, counted, cores):
    data = big_log()
    file = compressed_file(session, counted, data, "big.log", "text/plain")
    assert file.compression == "deflate"
    read = {}
    for where, start in (("first", 0), ("middle", BIG // 2 + 12345), ("last", BIG - KIB)):
        got, read[where] = read_original(counted, file, start, KIB)
        assert got == data[start : start + KIB], where
    # One span (4 MiB of the original, ~1 MiB deflated) at most, wherever the range is:
    # before, the last KiB read the whole archive (15 MB here, 167 MB for 512 MiB); and a
    # range near a point reads little more than what inflates to it.
    assert read["last"] < 2 * MIB, read
    assert read["middle"] < 2 * MIB, read
    assert read["first"] < 128 * KIB, read


def test_a_download_in_k_ranges_reads_the_archive_about_once(session, factories, counted):
    data = big_log()
    file = compressed_file(session, counted, data, "big.log", "text/plain")
    k, total, parts = 8, 0, []
    for n in range(k):
        start, end = n * BIG // k, (n + 1) * BIG // k
        got, read = read_original(counted, file, start, end - start)
        parts.append(got)
        total += read
    assert b"".join(parts) == data
    # Each range reads its own spans, and at most one more: not everything before it too
    # (a download manager's 8 ranges read the archive 4.5 times over before).
    assert total <= file.compressed_size + k * 2 * MIB, (total, file.compressed_size)


def test_a_range_of_a_stored_original_reads_just_that_range(session, factories, counted):
    data = os.urandom(12 * MIB)
    file = compressed_file(session, counted, data, "clip.mp4", "video/mp4")
    assert file.compression == "stored"
    for start in (0, 6 * MIB + 7, len(data) - KIB):
        got, read = read_original(counted, file, start, KIB)
        assert got == data[start : start + KIB]
        # The range, and the local header: its data offset is all a read needs.
        assert read <= KIB + 4 * KIB, read


# --- every range is the original's -----------------------------------------------------


def _archive(storage: LocalStorage, key: str, data: bytes, *, name: str, threads: int, **kw):
    with storage.writer(f"{key}.up", "application/octet-stream") as sink:
        sink.write(data)
    return writer.write_archive(
        storage,
        source_key=f"{key}.up",
        archive_key=key,
        entry_name=name,
        size=len(data),
        crc32=zlib.crc32(data),
        modified_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
        threads=threads,
        **kw,
    )


@pytest.fixture(scope="module")
def small_spans(tmp_path_factory):
    """Archives of a 3 MiB log with a point every 64 KiB (one core, and the parallel path
    in 16 KiB blocks), and of random bytes (stored): (storage, {kind: (key, data, index)})."""
    storage = LocalStorage(tmp_path_factory.mktemp("spans"))
    data = text_log(3 * MIB + 4321)
    noise = os.urandom(MIB + 77)
    made = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(seek_index, "SPAN", 64 * KIB)
        patch.setattr(deflate, "BLOCK_SIZE", 16 * KIB)
        patch.setattr(writer, "PARALLEL_THRESHOLD", 64 * KIB)
        for kind, payload, threads, content_type in (
            ("one-core", data, 1, "text/plain"),
            ("parallel", data, 2, "text/plain"),
            ("stored", noise, 2, "application/octet-stream"),
            ("zip64", data, 2, "text/plain"),
            ("stored64", noise, 2, "application/octet-stream"),
        ):
            # ZIP64 as a file over 4 GB is written: its local header has a ZIP64 extra field.
            patch.setattr(writer, "ZIP32_LIMIT", 1 if kind.endswith("64") else 4_000_000_000)
            result = _archive(
                storage, f"u/{kind}.zip", payload, name=f"{kind}.txt", threads=threads,
                content_type=content_type,
            )  # fmt: skip
            made[kind] = (f"u/{kind}.zip", payload, result)
    return storage, made


def test_points_are_where_the_index_says(small_spans):
    storage, made = small_spans
    for kind in ("one-core", "parallel"):
        key, data, result = made[kind]
        index = SeekIndex.from_bytes(result.seek_index)
        assert [p.out for p in index.points] == list(range(0, len(data), 64 * KIB)), kind
        assert index.size == len(data)
        assert made["stored"][2].seek_index is None
        # Each point inflates on its own, with no dictionary: up to the next one it gives
        # exactly the original's bytes there.
        raw = b"".join(storage.iter_chunks(key))
        start = ArchiveReader(storage, key, entry_size=len(data)).header.data_offset
        for point, after in zip(index.points, index.points[1:], strict=False):
            inflater = zlib.decompressobj(-15)
            piece = inflater.decompress(raw[start + point.into : start + after.into])
            assert piece == data[point.out : after.out], (kind, point.out)


@pytest.mark.parametrize("kind", ["one-core", "parallel", "stored", "zip64", "stored64"])
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.integers(min_value=0, max_value=4 * MIB), length=st.integers(1, 400 * KIB) | st.none()
)
def test_every_range_of_the_original_is_the_original(small_spans, kind, start, length):
    storage, made = small_spans
    key, data, result = made[kind]
    reader = ArchiveReader(
        storage, key, entry_size=len(data), archive_size=result.compressed_size,
        seek_index=result.seek_index,
    )  # fmt: skip
    got = b"".join(reader.read_original(start, length))
    expected = data[start:] if length is None else data[start : start + length]
    assert got == expected
    assert all(len(chunk) <= MIB for chunk in reader.read_original(start, length))


def test_without_an_index_ranges_are_still_right(small_spans):
    storage, made = small_spans
    key, data, result = made["parallel"]
    reader = ArchiveReader(storage, key, entry_size=len(data), archive_size=result.compressed_size)
    for start, length in ((0, 10), (len(data) - 5, 5), (MIB + 3, 2 * MIB)):
        assert b"".join(reader.read_original(start, length)) == data[start : start + length]


@pytest.mark.parametrize("kind", ["one-core", "stored"])
def test_a_damaged_archive_cuts_the_download_short(tmp_path, small_spans, kind):
    source, made = small_spans
    key, data, result = made[kind]
    storage = LocalStorage(tmp_path)
    raw = bytearray(b"".join(source.iter_chunks(key)))
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(b ^ 0x20 for b in raw[middle : middle + 64])
    with storage.writer(key, "application/zip") as sink:
        sink.write(raw)
    reader = ArchiveReader(
        storage, key, entry_size=len(data), entry_crc32=zlib.crc32(data),
        archive_size=len(raw), seek_index=result.seek_index,
    )  # fmt: skip
    sent = []
    with pytest.raises(ArchiveMismatch):
        for chunk in reader.read_original():
            sent.append(chunk)
    # Whatever went out before the damage was found, the whole original never did.
    assert sum(map(len, sent)) < len(data)


# --- archives with points are still standard ZIPs ------------------------------------------


def unzip_test(path: Path) -> None:
    done = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No errors detected" in done.stdout, done.stdout


@pytest.mark.parametrize("threads", [1, 2])
def test_archives_with_flush_points_pass_unzip_and_cost_little(tmp_path, threads, monkeypatch):
    data = text_log(18 * MIB + 5)  # over the parallel threshold: both paths by `threads`
    storage = LocalStorage(tmp_path / "points")
    result = _archive(
        storage, "u/a.zip", data, name="a.log", threads=threads, content_type="text/plain"
    )
    index = SeekIndex.from_bytes(result.seek_index)
    assert [p.out for p in index.points] == [n * 4 * MIB for n in range(5)]
    unzip_test(storage.root / "u/a.zip")
    with zipfile.ZipFile(storage.root / "u/a.zip") as archive:
        assert archive.read("a.log") == data
    # The same without points (as archives were written before): a full flush every 4 MiB
    # costs well under 1 % in size.
    monkeypatch.setattr(seek_index, "SPAN", 1 << 40)
    plain = _archive(
        LocalStorage(tmp_path / "plain"), "u/a.zip", data, name="a.log", threads=threads,
        content_type="text/plain",
    )  # fmt: skip
    assert len(SeekIndex.from_bytes(plain.seek_index).points) == 1
    assert result.compressed_size < plain.compressed_size * 1.01


# --- the ZIP under the file's current name ---------------------------------------------------

RENAME_DATA = b"".join(b"entry line %d\n" % i for i in range(3000))


@pytest.mark.parametrize(
    "method",
    [ZIP_32, ZIP_64, NO_COMPRESSION_32(len(RENAME_DATA), zlib.crc32(RENAME_DATA)),
     NO_COMPRESSION_64(len(RENAME_DATA), zlib.crc32(RENAME_DATA))],
    ids=["zip32", "zip64", "stored32", "stored64"],
)  # fmt: skip
@pytest.mark.parametrize("new_name", ["b.txt", "a much longer name than before.txt", "é 📄.txt"])
def test_an_archive_reads_whole_under_a_new_entry_name(tmp_path, method, new_name):
    storage = CountingStorage(LocalStorage(tmp_path))
    member = ("old-name.txt", dt.datetime(2026, 1, 2, 3, 4, 5), 0o644, method, [RENAME_DATA])
    with storage.writer("u/a.zip", "application/zip") as sink:
        for block in stream_zip([member]):
            sink.write(block)
    reader = ArchiveReader(storage, "u/a.zip", entry_size=len(RENAME_DATA))
    same = reader.zip_as("old-name.txt")
    assert b"".join(same.read(0, None)) == (tmp_path / "u/a.zip").read_bytes()
    storage.reset()
    renamed = ArchiveReader(storage, "u/a.zip", entry_size=len(RENAME_DATA)).zip_as(new_name)
    assert storage.bytes_read < 8 * KIB  # the local header and the directory, no more
    whole = b"".join(renamed.read(0, None))
    assert len(whole) == renamed.size
    with zipfile.ZipFile(io.BytesIO(whole)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [new_name]
        assert archive.read(new_name) == RENAME_DATA
    for start, length in ((0, 7), (3, 90), (renamed.size - 30, None), (40, renamed.size)):
        expected = whole[start:] if length is None else whole[start : start + length]
        assert b"".join(renamed.read(start, length)) == expected


def test_a_renamed_file_downloads_its_zip_and_original_under_the_new_name(
    session, factories, tmp_path
):
    storage = CountingStorage(LocalStorage(tmp_path))
    data = text_log(300 * KIB)
    file = compressed_file(
        session, storage, data, f"before-{uuid.uuid4().hex[:6]}.log", "text/plain"
    )
    file.name = "after.log"
    session.commit()
    download = files.download_of(storage, file)
    with zipfile.ZipFile(io.BytesIO(b"".join(download.chunks))) as archive:
        assert archive.namelist() == ["after.log"]
        assert archive.read("after.log") == data
    assert download.filename == "after.log.zip"
    original = files.download_of(storage, file, original=True)
    assert (original.filename, b"".join(original.chunks)) == ("after.log", data)
