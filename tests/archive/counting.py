"""A real storage backend, counted: every byte it hands back to a reader is added up."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, BinaryIO

from app.storage import Storage
from app.storage.local import LocalStorage
from tests.helpers import GCS_BUCKET


class _CountedReader(io.RawIOBase):
    def __init__(self, inner: BinaryIO, counter: CountingStorage) -> None:
        self._inner = inner
        self._counter = counter

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        self._counter.bytes_read += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def close(self) -> None:
        self._inner.close()
        super().close()


class CountingStorage(Storage):
    """Wraps a backend (local, or GCS through the emulator) and counts the bytes read."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.bytes_read = 0

    def reset(self) -> None:
        self.bytes_read = 0

    def iter_chunks(self, key: str, start: int = 0, length: int | None = None, **options):
        def counted() -> Iterator[bytes]:
            for chunk in self.inner.iter_chunks(key, start, length, **options):
                self.bytes_read += len(chunk)
                yield chunk

        return counted()

    def open(self, key: str, *, generation: int | None = None) -> BinaryIO:
        inner = self.inner.open(key, generation=generation)
        return io.BufferedReader(_CountedReader(inner, self), 64 * 1024)  # type: ignore[return-value]

    def put_file(self, key, path, content_type):
        return self.inner.put_file(key, path, content_type)

    def writer(self, key, content_type, *, durable=True, create_only=False):
        return self.inner.writer(key, content_type, durable=durable, create_only=create_only)

    def generation(self, key):
        return self.inner.generation(key)

    def size(self, key):
        return self.inner.size(key)

    def delete(self, key):
        return self.inner.delete(key)

    def list(self, prefix):
        return self.inner.list(prefix)

    def ping(self):
        return self.inner.ping()

    def discard_partial(self, key):
        return self.inner.discard_partial(key)


def counted_backend(request, tmp_path) -> CountingStorage:
    """For a fixture parametrized "local" / "gcs": a directory, or the emulator's bucket."""
    if request.param == "gcs":
        request.getfixturevalue("gcs_emulator")
        from app.storage.gcs import GCSStorage

        return CountingStorage(GCSStorage(GCS_BUCKET))
    return CountingStorage(LocalStorage(tmp_path / "store"))
