"""Appending in place (local storage): one writer at a time, nothing unrecorded survives."""

import uuid

import pytest

from app.storage import Busy, ObjectMissing
from app.storage.local import LocalStorage


@pytest.fixture
def local(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "objects")


@pytest.fixture
def key() -> str:
    return f"{uuid.uuid4()}/uploads/probe.parts/data"


def ok() -> None:
    """A `confirm` that finds the offset right."""


def read(storage, key) -> bytes:
    return b"".join(storage.iter_chunks(key))


def test_an_uploads_chunks_extend_its_one_object(local, key):
    folder = key.removesuffix("data")
    for offset, data in ((0, b"abc"), (3, b"def"), (6, b"g")):
        with local.upload_chunk(folder, offset, ok) as chunk:
            assert (chunk.key, chunk.is_part) == (key, False)
            chunk.writelines([data])
            chunk.keep()
    assert read(local, key) == b"abcdefg"


def test_an_upload_begun_in_an_earlier_folder_goes_on_there(local, key):
    earlier = key.removesuffix("data")
    with local.upload_chunk(earlier, 0, ok) as chunk:
        chunk.writelines([b"abc"])
    folder = f"tmp/{earlier}"
    with local.upload_chunk(folder, 3, ok, earlier=earlier) as chunk:
        chunk.writelines([b"def"])
    assert read(local, key) == b"abcdef"
    assert not local.exists(f"{folder}data")


def test_pieces_land_in_order_whatever_their_number_and_sizes(local, key):
    # More pieces than one writev takes (IOV_MAX is 1024 on Linux), some empty, some large.
    pieces = [bytes([i % 251]) * (i % 7) for i in range(2500)] + [b"x" * (3 << 20), b""]
    with local.appender(key, 0, ok) as sink:
        sink.writelines(pieces)
        sink.write(b"!")
    assert read(local, key) == b"".join(pieces) + b"!"


def test_a_second_writer_is_busy_at_once(local, key):
    with local.appender(key, 0, ok) as sink:
        sink.write(b"first")
        with pytest.raises(Busy), local.appender(key, 0, ok):
            pytest.fail("two writers held the object")
    assert read(local, key) == b"first"


def test_bytes_past_the_offset_are_cut_off_before_writing(local, key):
    with local.appender(key, 0, ok) as sink:
        sink.write(b"recorded-never-recorded")
    with local.appender(key, len(b"recorded"), ok) as sink:
        sink.write(b"+more")
    assert read(local, key) == b"recorded+more"


def test_a_failed_confirm_changes_nothing(local, key):
    with local.appender(key, 0, ok) as sink:
        sink.write(b"kept")

    def stale() -> None:
        raise RuntimeError("the offset moved")

    with pytest.raises(RuntimeError), local.appender(key, 2, stale):
        pytest.fail("wrote after a failed confirm")
    assert read(local, key) == b"kept"


def test_a_failed_confirm_on_a_new_object_leaves_nothing(local, key):
    def gone() -> None:
        raise LookupError("the upload was terminated")

    with pytest.raises(LookupError), local.appender(key, 0, gone):
        pass
    assert not local.exists(key)


def test_discard_cuts_back_to_the_offset_or_removes_a_new_object(local, key):
    with local.appender(key, 0, ok) as sink:
        sink.write(b"bad chunk")
        sink.discard()
    assert not local.exists(key)
    with local.appender(key, 0, ok) as sink:
        sink.write(b"good")
    with local.appender(key, 4, ok) as sink:
        sink.write(b" bad chunk")
        sink.discard()
    assert read(local, key) == b"good"


def test_an_object_shorter_than_the_offset_is_missing(local, key):
    with local.appender(key, 0, ok) as sink:
        sink.write(b"abc")
    with pytest.raises(ObjectMissing), local.appender(key, 10, ok):
        pass
    assert read(local, key) == b"abc"


def test_discard_partial_removes_only_a_killed_writers_temp_files(local, key):
    target = local._path(key)
    target.parent.mkdir(parents=True)
    left = local._temp_beside(target)
    left.write_bytes(b"half an archive")
    other = local._temp_beside(target.with_name("other"))
    other.write_bytes(b"someone else's")
    local.discard_partial(key)
    assert not left.exists()
    assert other.exists()
