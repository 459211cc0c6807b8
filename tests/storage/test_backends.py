"""Both storage backends behave alike: streamed, atomic writes and per-key reads.

`storage` is the test app's, once per backend; keys live under folders of random ids, so
no user rows are needed.
"""

import io
import uuid

import pytest

from app.storage import ObjectExists, ObjectMissing
from app.storage.base import check_key
from tests.helpers import runtime


@pytest.fixture
def key() -> str:
    return f"{uuid.uuid4()}/probe-object"


def test_writer_publishes_on_clean_exit(storage, key):
    with storage.writer(key, "application/octet-stream") as sink:
        for _ in range(5):
            sink.write(b"x" * 300_000)
    assert storage.size(key) == 1_500_000
    assert b"".join(storage.iter_chunks(key)) == b"x" * 1_500_000
    storage.delete(key)


def test_writer_publishes_nothing_when_the_block_fails(storage, key):
    with pytest.raises(RuntimeError), storage.writer(key, "text/plain") as sink:
        sink.write(b"half of it")
        raise RuntimeError("producer died")
    assert not storage.exists(key)
    assert list(storage.list(key.split("/")[0] + "/")) == []


def test_put_file_consumes_the_local_file(storage, key, tmp_path):
    source = tmp_path / "spooled"
    source.write_bytes(b"spooled bytes")
    storage.put_file(key, source, "text/plain")
    assert not source.exists()
    assert storage.size(key) == len(b"spooled bytes")
    storage.delete(key)


def test_reads_are_seekable_and_ranged(storage, key):
    with storage.writer(key, "application/octet-stream") as sink:
        sink.write(bytes(range(256)) * 10)
    with storage.open(key) as reader:
        reader.seek(250)
        assert reader.read(10) == bytes([250, 251, 252, 253, 254, 255, 0, 1, 2, 3])
    assert b"".join(storage.iter_chunks(key, start=10, length=5)) == bytes([10, 11, 12, 13, 14])
    storage.delete(key)


def test_missing_objects(storage, key):
    with pytest.raises(ObjectMissing):
        storage.open(key)
    with pytest.raises(ObjectMissing):
        storage.size(key)
    assert not storage.exists(key)
    storage.delete(key)  # deleting what is not there is not an error


def test_list_is_per_prefix(storage):
    alice, bob = uuid.uuid4(), uuid.uuid4()
    for owner in (alice, bob):
        with storage.writer(f"{owner}/listed", "text/plain") as sink:
            sink.write(io.BytesIO(b"a").read())
    assert list(storage.list(f"{alice}/")) == [f"{alice}/listed"]
    for owner in (alice, bob):
        storage.delete(f"{owner}/listed")


@pytest.mark.parametrize("bad", ["../etc/passwd", "/abs", "a/../b", "a//b", "", "a/.hidden/x"])
def test_keys_cannot_escape_the_root(bad):
    with pytest.raises(ValueError, match="invalid storage key"):
        check_key(bad)


def test_create_only_never_replaces_what_is_there(local_app, key):
    storage = runtime(local_app).storage
    with storage.writer(key, "application/zip", create_only=True) as sink:
        sink.write(b"first archive")
    with (
        pytest.raises(ObjectExists),
        storage.writer(key, "application/zip", create_only=True) as sink,
    ):
        sink.write(b"a second, different archive")
    assert b"".join(storage.iter_chunks(key)) == b"first archive"
    # Nothing half-written is left beside it either.
    assert list(storage.list(key.split("/")[0] + "/")) == [key]
    storage.delete(key)


def test_of_two_create_only_writers_the_first_to_finish_wins_whole(local_app, key):
    storage = runtime(local_app).storage
    with (
        pytest.raises(ObjectExists),
        storage.writer(key, "application/zip", create_only=True) as slow,
    ):
        slow.write(b"S" * 200_000)
        with storage.writer(key, "application/zip", create_only=True) as fast:
            fast.write(b"F" * 100_000)
        slow.write(b"S" * 200_000)
    assert b"".join(storage.iter_chunks(key)) == b"F" * 100_000
    assert list(storage.list(key.split("/")[0] + "/")) == [key]
    storage.delete(key)


def test_create_only_on_gcs_sends_the_precondition(proxied_storage, fault_proxy, key):
    """GCS refuses the second writer itself (the emulator ignores preconditions)."""
    with proxied_storage.writer(key, "application/zip", create_only=True) as sink:
        sink.write(b"an archive")
    (started,) = fault_proxy.requests("POST", r"uploadType=resumable")
    assert started.param("ifGenerationMatch") == "0"
    proxied_storage.delete(key)
