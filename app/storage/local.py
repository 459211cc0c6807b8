"""A directory as object storage: the embedded default, or a mount several nodes share."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from app.storage.base import ObjectMissing, Storage, check_key


class LocalStorage(Storage):
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _temp_beside(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Dot-prefixed temp names never match a key, so `list` cannot see half-written objects.
        return path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        target = self._path(key)
        temp = self._temp_beside(target)
        try:
            # Same filesystem: a rename, no copy. Another one (a shared mount): a streamed copy.
            os.replace(path, temp)
        except OSError:
            shutil.copyfile(path, temp)
            os.unlink(path)
        os.replace(temp, target)

    @contextlib.contextmanager
    def writer(self, key: str, content_type: str, *, durable: bool = True) -> Iterator[BinaryIO]:
        target = self._path(key)
        temp = self._temp_beside(target)
        try:
            with open(temp, "wb") as sink:
                yield sink
                if durable:
                    sink.flush()
                    os.fsync(sink.fileno())
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def list(self, prefix: str) -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if not name.startswith("."):
                    yield str((Path(dirpath) / name).relative_to(self.root))

    def concat(self, keys: Sequence[str], dest_key: str, content_type: str) -> None:
        sources = [self._path(key) for key in keys]
        target = self._path(dest_key)
        temp = self._temp_beside(target)
        if len(sources) == 1:
            # One part (a tus client that sent everything in one PATCH): a second name for
            # the same bytes, no copy; the source stays until the caller deletes it.
            try:
                os.link(sources[0], temp)
            except FileNotFoundError:
                raise ObjectMissing(keys[0]) from None
            except OSError:
                pass  # no hard links here: copy below
            else:
                os.replace(temp, target)
                return
        try:
            with open(temp, "wb") as sink:
                for key, source in zip(keys, sources, strict=True):
                    try:
                        reader = open(source, "rb")  # noqa: SIM115 - closed just below
                    except FileNotFoundError:
                        raise ObjectMissing(key) from None
                    with reader:
                        _copy_to_end(reader, sink)
            # No fsync, as for put_file: the result is a staged upload that the worker checks
            # against the size and CRC-32 in the database before anything depends on it.
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"{self.root} is not writable")


def _copy_to_end(reader: BinaryIO, sink: BinaryIO) -> None:
    """Append all of `reader` to `sink`, in the kernel when it can (no bytes through Python)."""
    sink.flush()
    size = os.fstat(reader.fileno()).st_size
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(reader.fileno(), sink.fileno(), size - copied)
            if n == 0:
                break
            copied += n
    except OSError:
        # Not supported here (another filesystem, an old kernel): copy through a buffer.
        reader.seek(copied)
        sink.seek(0, os.SEEK_END)
        shutil.copyfileobj(reader, sink, 1024 * 1024)
