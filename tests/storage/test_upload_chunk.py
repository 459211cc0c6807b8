"""An upload's chunks, as each backend keeps them: kept, discarded, or left by a failure.

`storage` is the test app's, once per backend: local appends every chunk to one object in
place; GCS (the default of the interface) stores each as a part object of its own.
"""

import uuid

import pytest

from app.storage.local import LocalStorage


@pytest.fixture
def folder() -> str:
    return f"{uuid.uuid4()}/uploads/probe.parts/"


def ok() -> None:
    """A `confirm` that finds the offset right."""


def stored(storage, folder) -> dict[str, bytes]:
    return {key: b"".join(storage.iter_chunks(key)) for key in storage.list(folder)}


def test_kept_chunks_are_one_object_or_a_part_each(storage, folder):
    keys = []
    for offset, data in ((0, b"abc"), (3, b"de")):
        with storage.upload_chunk(folder, offset, ok) as chunk:
            chunk.writelines([data[:1], data[1:]])
            chunk.keep()
            keys.append(chunk.key)
    assert all(key.startswith(folder) for key in keys)
    if isinstance(storage, LocalStorage):
        assert stored(storage, folder) == {f"{folder}data": b"abcde"}
    else:
        assert stored(storage, folder) == dict(zip(keys, (b"abc", b"de"), strict=True))
        assert sorted(keys) == keys  # in offset order, as `concat` wants them
    storage.delete_prefix(folder)


@pytest.mark.parametrize("ending", ["discarded", "failed"])
def test_a_chunk_not_kept_leaves_nothing(storage, folder, ending):
    with pytest.raises(RuntimeError), storage.upload_chunk(folder, 0, ok) as chunk:
        chunk.writelines([b"half"])
        if ending == "discarded":
            chunk.discard()
        raise RuntimeError("the body went wrong")
    if isinstance(storage, LocalStorage) and ending == "failed":
        # In place, bytes not discarded stay until the next append cuts them back.
        assert stored(storage, folder) == {f"{folder}data": b"half"}
        storage.delete_prefix(folder)
    else:
        assert stored(storage, folder) == {}
