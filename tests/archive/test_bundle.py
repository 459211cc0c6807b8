"""A ZIP of many files assembled from their stored archives: every tool reads it, any
range of it is the same bytes, and the same members always give the same archive."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import random
import subprocess
import zipfile
import zlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from stream_zip import NO_COMPRESSION_32, ZIP_32, stream_zip

from app.archive.bundle import Bundle, Member, folder
from app.archive.layout import DEFLATED, STORED
from app.storage.local import LocalStorage

MADE = dt.datetime(2026, 12, 7, 10, 30, 4, tzinfo=dt.UTC)


def stored_archive(storage: LocalStorage, key: str, data: bytes, method) -> None:
    """A one-entry archive as the worker writes them (stream-zip; deflated with a data
    descriptor, or stored)."""
    chunks = stream_zip([(key.rsplit("/", 1)[-1], MADE, 0o600, method, (data,))])
    with storage.writer(key, "application/zip") as sink:
        for chunk in chunks:
            sink.write(chunk)


def member(storage: LocalStorage, key: str, path: str) -> Member:
    """The entry of the stored archive at `key`, under `path` in the bundle."""
    with storage.open(key) as stored, zipfile.ZipFile(stored) as archive:
        (entry,) = archive.infolist()
        stored.seek(entry.header_offset + 26)
        name_length, extra_length = (
            int.from_bytes(stored.read(2), "little"),
            int.from_bytes(stored.read(2), "little"),
        )
    data_at = entry.header_offset + 30 + name_length + extra_length

    def read(start: int, length: int):
        return storage.iter_chunks(key, data_at + start, length)

    return Member(path, entry.compress_type, entry.CRC, entry.file_size, entry.compress_size,
                  MADE, read)  # fmt: skip


def log_text(size: int) -> bytes:
    return b"".join(b"%08d GET /files/%d 200\n" % (i, i % 977) for i in range(size // 24 + 1))[
        :size
    ]


def a_set(tmp_path: Path) -> tuple[Bundle, dict[str, bytes]]:
    """Three files in folders (deflated, stored, empty) and an empty folder."""
    storage = LocalStorage(tmp_path / "storage")
    contents = {
        "release/notes.log": log_text(300_000),
        "release/bin/tool": random.Random(7).randbytes(70_000),  # does not deflate
        "release/EMPTY": b"",
    }
    methods = {"release/notes.log": ZIP_32, "release/bin/tool": NO_COMPRESSION_32,
               "release/EMPTY": ZIP_32}  # fmt: skip
    members = []
    for number, (path, data) in enumerate(contents.items()):
        key = f"owner/{number}.zip"
        stored_archive(storage, key, data, methods[path])
        members.append(member(storage, key, path))
    members.append(folder("release/later", MADE))
    return Bundle(members), contents


def whole(bundle: Bundle) -> bytes:
    return b"".join(bundle.read_range())


def test_every_file_comes_out_whole_with_its_folders(tmp_path):
    bundle, contents = a_set(tmp_path)
    data = whole(bundle)
    assert len(data) == bundle.size
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None  # every CRC-32 checked
        assert archive.namelist() == [*contents, "release/later/"]
        for path, original in contents.items():
            assert archive.read(path) == original
        methods = {info.filename: info.compress_type for info in archive.infolist()}
        assert methods["release/notes.log"] == DEFLATED  # copied, not compressed again
        assert methods["release/bin/tool"] == STORED
        assert archive.getinfo("release/later/").is_dir()
        assert archive.getinfo("release/notes.log").date_time == (2026, 12, 7, 10, 30, 4)
    (tmp_path / "all.zip").write_bytes(data)
    tested = subprocess.run(["unzip", "-t", str(tmp_path / "all.zip")], capture_output=True,
                            text=True)  # fmt: skip
    assert tested.returncode == 0, tested.stdout
    assert "No errors detected" in tested.stdout


def test_the_same_members_give_the_same_bytes(tmp_path):
    first, _ = a_set(tmp_path / "a")
    second, _ = a_set(tmp_path / "b")
    assert whole(first) == whole(second)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400_000), max_size=6))
def test_any_ranges_read_in_turn_are_the_archive(tmp_path_factory, cuts):
    # Cut anywhere (inside a header, the data, the directory, the end records): the pieces,
    # read in turn, are the whole archive.
    bundle, _ = a_set(tmp_path_factory.mktemp("ranges"))
    expected = whole(bundle)
    points = sorted({0, bundle.size, *(min(cut, bundle.size) for cut in cuts)})
    pieces = [
        b"".join(bundle.read_range(start, end - start)) for start, end in itertools.pairwise(points)
    ]
    assert b"".join(pieces) == expected
    assert [len(piece) for piece in pieces] == [b - a for a, b in itertools.pairwise(points)]


def test_65535_entries_or_more_take_zip64_records(tmp_path):
    data = b"one line\n"
    crc = zlib.crc32(data)

    def read(start: int, length: int):
        yield data[start : start + length]

    members = [
        Member(f"many/{n:05d}.txt", STORED, crc, len(data), len(data), MADE, read)
        for n in range(65_535)
    ]
    bundle = Bundle(members)
    assert bundle.zip64
    (tmp_path / "many.zip").write_bytes(whole(bundle))
    with zipfile.ZipFile(tmp_path / "many.zip") as archive:
        infos = archive.infolist()
        assert len(infos) == 65_535
        assert archive.read(infos[-1]) == data
    tested = subprocess.run(["unzip", "-tq", str(tmp_path / "many.zip")], capture_output=True,
                            text=True)  # fmt: skip
    assert tested.returncode == 0, tested.stdout[-500:]
