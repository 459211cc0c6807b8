import uuid

import pytest

from app.storage import ObjectMissing


def _put(storage, key: str, data: bytes) -> None:
    with storage.writer(key, "application/octet-stream") as sink:
        sink.write(data)


def _read(storage, key: str) -> bytes:
    return b"".join(storage.iter_chunks(key))


@pytest.fixture
def prefix() -> str:
    return f"{uuid.uuid4()}/concat"


@pytest.mark.parametrize("count", [1, 3, 70])
def test_concat_joins_in_order_and_keeps_the_sources(storage, prefix, count):
    parts = [f"part {i} ".encode() * (i + 1) for i in range(count)]
    keys = [f"{prefix}/p{i:03d}" for i in range(count)]
    for key, data in zip(keys, parts, strict=True):
        _put(storage, key, data)
    storage.concat(keys, f"{prefix}/joined", "text/plain", scratch=f"{prefix}/scratch/")
    assert _read(storage, f"{prefix}/joined") == b"".join(parts)
    # Sources stay for the caller to delete; no intermediate objects are left behind.
    assert sorted(storage.list(prefix)) == sorted([*keys, f"{prefix}/joined"])


def test_concat_of_nothing_is_an_empty_object(storage, prefix):
    storage.concat([], f"{prefix}/empty", "application/octet-stream", scratch=f"{prefix}/s/")
    assert storage.size(f"{prefix}/empty") == 0


def test_concat_with_a_missing_source_creates_nothing(storage, prefix):
    _put(storage, f"{prefix}/a", b"aaa")
    with pytest.raises(ObjectMissing):
        storage.concat(
            [f"{prefix}/a", f"{prefix}/missing"], f"{prefix}/joined", "text/plain", scratch=prefix
        )
    assert not storage.exists(f"{prefix}/joined")
    assert list(storage.list(prefix)) == [f"{prefix}/a"]


def test_a_writer_left_by_an_exception_stores_nothing(storage, prefix):
    with pytest.raises(RuntimeError), storage.writer(f"{prefix}/half", "text/plain") as sink:
        sink.write(b"half of it")
        raise RuntimeError("the client went away")
    import gc

    gc.collect()  # a dropped GCS writer must not finalise itself when collected
    assert not storage.exists(f"{prefix}/half")
