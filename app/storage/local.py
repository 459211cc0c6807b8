"""A directory as object storage: the embedded default, or a mount several nodes share."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
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
    def writer(self, key: str, content_type: str) -> Iterator[BinaryIO]:
        target = self._path(key)
        temp = self._temp_beside(target)
        try:
            with open(temp, "wb") as sink:
                yield sink
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

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"{self.root} is not writable")
