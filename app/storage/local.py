"""A directory as object storage: the embedded default, or a mount several nodes share."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from glob import escape as glob_escape
from pathlib import Path
from typing import BinaryIO

from app.storage.base import Busy, ObjectExists, ObjectMissing, Storage, StoredObject, check_key

# macOS has no fdatasync (fsync does the same and more) and no posix_fadvise.
_fdatasync = getattr(os, "fdatasync", os.fsync)
_FADVISE = hasattr(os, "posix_fadvise")
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)
# The most buffers one writev takes (sysconf says -1 when it will not say: assume 16).
_IOV_MAX = max(16, os.sysconf("SC_IOV_MAX")) if hasattr(os, "sysconf") else 16


class _Append:
    """An append to one file under an exclusive flock(2): an `UploadChunk` in place."""

    is_part = False

    # Start writing back every this many bytes, so that `keep` finds little left to do.
    WRITEBACK_BYTES = 2 * 1024 * 1024
    # Pages this far behind the end are dropped once written back: an append keeps about
    # this much page cache, not the whole body. Writing into pages the kernel just freed is
    # cheap; into page cache this VM has not touched lately it costs a host page fault per
    # page. With the whole body kept until `keep`, four 1 GiB PATCHes at once spent 1.4
    # CPU s/GiB in that copy alone (perf: copy_folio_from_iter_atomic), seven times what one
    # PATCH did; dropped behind, 0.15.
    DROP_BEHIND_BYTES = 32 * 1024 * 1024

    def __init__(self, key: str, path: Path, fd: int, offset: int):
        self.key = key
        self.path = path
        self.fd = fd
        self.offset = offset
        self.end = offset
        self._unflushed_from = offset
        self._kept_from = offset  # pages before this were dropped already (or are left to `keep`)

    def write(self, data: bytes, /) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self._wrote(len(data))
        return len(data)

    def _wrote(self, size: int) -> None:
        self.end += size
        if self.end - self._unflushed_from >= self.WRITEBACK_BYTES and _FADVISE:
            # On dirty pages this starts their writeback (and does not wait for it); the
            # pages behind them whose writeback has ended since the last call are dropped.
            os.posix_fadvise(self.fd, self._kept_from, self.end - self._kept_from, _DONTNEED)
            self._unflushed_from = self.end
            self._kept_from = max(self._kept_from, self.end - self.DROP_BEHIND_BYTES)

    def writelines(self, pieces: Sequence[bytes], /) -> None:
        # os.writev: the pieces as the server received them, in one call, no join.
        pending = [memoryview(piece) for piece in pieces if piece]
        size = sum(len(view) for view in pending)
        while pending:
            written = os.writev(self.fd, pending[:_IOV_MAX])
            while pending and written >= len(pending[0]):
                written -= len(pending.pop(0))
            if written:
                pending[0] = pending[0][written:]
        self._wrote(size)

    def keep(self) -> None:
        _fdatasync(self.fd)
        if _FADVISE:
            # Written back, so these pages can go now: the next PATCH reuses them rather than
            # growing the page cache by the whole upload. (On a VM that returns freed memory
            # to its host, writing into fresh page cache ran at ~400 MiB/s here, into reused
            # at ~1.2 GiB/s; and an upload's bytes are read once, later, by the worker.)
            os.posix_fadvise(self.fd, self.offset, self.end - self.offset, _DONTNEED)

    def discard(self) -> None:
        if self.offset == 0:
            # Still held, so no other writer can be using this name; a later one sees a new
            # inode under it (see `LocalStorage.appender`) rather than this unlinked one.
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        else:
            os.ftruncate(self.fd, self.offset)


class LocalStorage(Storage):
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def discard_partial(self, key: str) -> None:
        target = self._path(key)
        # `_temp_beside` names: a killed process's `writer` never reached its `finally`.
        for temp in target.parent.glob(f".{glob_escape(target.name)}.*.part"):
            temp.unlink(missing_ok=True)

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
    def writer(
        self, key: str, content_type: str, *, durable: bool = True, create_only: bool = False
    ) -> Iterator[BinaryIO]:
        target = self._path(key)
        temp = self._temp_beside(target)
        try:
            with open(temp, "wb") as sink:
                yield sink
                if durable:
                    sink.flush()
                    os.fsync(sink.fileno())
            if create_only:
                # link(2) never replaces: of two writers of one key, exactly one wins, and
                # the object that is there is never half of one and half of the other.
                try:
                    os.link(temp, target)
                except FileExistsError:
                    raise ObjectExists(key) from None
                except OSError:
                    # No hard links on this filesystem: a check, then the rename.
                    if target.exists():
                        raise ObjectExists(key) from None
                    os.replace(temp, target)
            else:
                os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def open(self, key: str, *, generation: int | None = None) -> BinaryIO:
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

    def scan(self, prefix: str) -> Iterator[StoredObject]:
        # A prefix may end inside a name (`a/b` matches `a/bc`): walk from its folder.
        folder, _, _name = prefix.rpartition("/")
        base = self.root / folder if folder else self.root
        for key, stat in _walk_sorted(base, f"{folder}/" if folder else ""):
            if key.startswith(prefix):
                updated = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC)
                yield StoredObject(key, stat.st_size, updated)

    def delete_prefix(self, prefix: str) -> None:
        super().delete_prefix(prefix)
        if prefix.endswith("/"):
            # The folder goes too: nothing writes under an upload's parts once they are
            # being removed (finished, cancelled or expired), so no writer can race this.
            with contextlib.suppress(FileNotFoundError, OSError):
                self._path(prefix.rstrip("/")).rmdir()

    def concat(
        self, keys: Sequence[str], dest_key: str, content_type: str, *, scratch: str
    ) -> None:
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

    def upload_chunk(
        self, folder: str, offset: int, confirm: Callable[[], None], *, earlier: str = ""
    ) -> contextlib.AbstractContextManager[_Append]:
        # In place: flock(2) works across the nodes of an NFSv4 or CephFS mount too. No
        # assembly at the end (the finished upload is this object), so the last PATCH
        # costs what the others do.
        key = f"{folder}data"
        if offset > 0 and earlier and not self.exists(key) and self.exists(f"{earlier}data"):
            key = f"{earlier}data"
        return self.appender(key, offset, confirm)

    @contextlib.contextmanager
    def appender(self, key: str, offset: int, confirm: Callable[[], None]) -> Iterator[_Append]:
        """Exclusive access to append to `key` (created if missing) from byte `offset`; see
        `Storage.upload_chunk` for `confirm`, Busy and what is cut off."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy(key) from None
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current != os.fstat(fd).st_ino:
                # Removed (a discard, a termination) between our open and our lock.
                raise Busy(key)
            try:
                confirm()
            except BaseException:
                if offset == 0 and os.fstat(fd).st_size == 0:
                    path.unlink(missing_ok=True)  # created by the open above: leave nothing
                raise
            if os.fstat(fd).st_size < offset:
                raise ObjectMissing(key)
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
            yield _Append(key, path, fd, offset)
        finally:
            os.close(fd)  # releases the lock

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"{self.root} is not writable")


def _walk_sorted(folder: Path, key_prefix: str) -> Iterator[tuple[str, os.stat_result]]:
    """(key, stat) of every file under `folder`, in lexicographic order of keys.

    A folder's keys all start with `name/`, so siblings are ordered by `name/` for a folder
    and `name` for a file; dot-prefixed names (writes in progress) are skipped.
    """
    try:
        entries = [entry for entry in os.scandir(folder) if not entry.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return
    folders = {entry.name for entry in entries if entry.is_dir(follow_symlinks=False)}
    for entry in sorted(entries, key=lambda e: e.name + "/" if e.name in folders else e.name):
        if entry.name in folders:
            yield from _walk_sorted(Path(entry.path), f"{key_prefix}{entry.name}/")
        else:
            with contextlib.suppress(FileNotFoundError):  # removed since the folder was read
                yield f"{key_prefix}{entry.name}", entry.stat()


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
