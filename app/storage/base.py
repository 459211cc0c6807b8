"""The storage interface every backend implements. Keys look like `<user_id>/<name>`."""

from __future__ import annotations

import abc
import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from app.storage.direct import DirectSessions

CHUNK_SIZE = 1024 * 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class ObjectMissing(KeyError):
    """The key names no object."""


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing shows it."""

    key: str
    size: int
    updated: dt.datetime  # when it was last written (timezone-aware)


class Busy(Exception):
    """Another writer holds the object (see `Storage.upload_chunk`)."""


class ObjectExists(Exception):
    """A create-only write found its key taken (see `Storage.writer`)."""


class BackendUnavailable(Exception):
    """The backend did not answer in time, or answered that it cannot now (503, 429).

    Raised once the backend's own retries are spent: the caller may try again later (a job
    with backoff; a request answers 503 with `Retry-After`).
    """


class UploadChunk(Protocol):
    """One request's bytes on their way into a resumable upload: see `Storage.upload_chunk`."""

    key: str  # the object written to
    is_part: bool  # an object of its own, to be recorded and concatenated at the end

    def writelines(self, pieces: Sequence[bytes], /) -> None: ...

    def keep(self) -> None:
        """Store what was written, on stable storage where the object is appended to in
        place (before anyone is told of the new offset)."""

    def discard(self) -> None:
        """Keep nothing of this chunk (cut an appended object back to where it started)."""


def check_key(key: str) -> str:
    """Keys are built by the services; anything else (`..`, absolute paths) is a bug."""
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class _Discarded(Exception):
    """Why a part's writer is left unstored when nobody raised."""


class _Part:
    """A chunk stored as an object of its own (see `Storage.upload_chunk`)."""

    is_part = True

    def __init__(self, storage: Storage, key: str):
        self.key = key
        self._open = ExitStack()
        self._sink = self._open.enter_context(
            storage.writer(key, "application/octet-stream", durable=False)
        )

    def writelines(self, pieces: Sequence[bytes], /) -> None:
        self._sink.writelines(pieces)

    def keep(self) -> None:
        self._open.close()

    def discard(self, exc: BaseException | None = None) -> None:
        error = exc or _Discarded()
        self._open.__exit__(type(error), error, error.__traceback__)

    def __enter__(self) -> _Part:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.discard(exc)  # not kept: nothing is stored


class Storage(abc.ABC):
    """Streams bytes in and out by key. Writes become visible whole or not at all."""

    @abc.abstractmethod
    def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the local file at `path` under `key`, consuming the file."""

    @abc.abstractmethod
    def writer(
        self, key: str, content_type: str, *, durable: bool = True, create_only: bool = False
    ) -> AbstractContextManager[BinaryIO]:
        """A binary sink; the object appears only if the block exits cleanly.

        `durable=False` lets a backend skip forcing the bytes to disk (fsync) for objects
        that are checked later anyway, such as the parts of a resumable upload.
        `create_only=True`: if an object already exists under `key` (even one that appeared
        while this one was written), nothing is replaced and ObjectExists is raised.
        """

    @abc.abstractmethod
    def open(self, key: str, *, generation: int | None = None) -> BinaryIO:
        """A seekable binary reader; raises ObjectMissing.

        `generation` (see `generation()`): read that version of the object, or raise
        ObjectMissing if it is no longer the one stored; a backend without generations
        ignores it.
        """

    def generation(self, key: str) -> int | None:
        """The version of the object now under `key`, where the backend keeps versions.

        None where it does not (the local backend: an object there never changes once
        written under a key, see `writer(create_only=True)`). Raises ObjectMissing.
        """
        self.size(key)
        return None

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """The object's size in bytes; raises ObjectMissing."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing one is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix`."""

    def scan(self, prefix: str) -> Iterator[StoredObject]:
        """Every object under `prefix`, in lexicographic order of keys, as it goes.

        Streams: memory does not grow with the number of objects (what reconciling a
        bucket of millions against the database relies on). Both backends have it.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot list objects in key order")

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under `prefix` (which ends with `/`), and the folder itself
        where the backend has folders."""
        for key in list(self.list(prefix)):
            self.delete(key)

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise if the backend cannot be reached."""

    def concat(
        self, keys: Sequence[str], dest_key: str, content_type: str, *, scratch: str
    ) -> None:
        """Store the objects at `keys`, in order, as one object at `dest_key`.

        The sources stay (the caller deletes them once the result is committed); a missing
        one raises ObjectMissing and no destination appears. Anything made on the way
        (GCS's intermediate composes) is named under the prefix `scratch`, which the caller
        removes with the sources: a process that dies mid-way leaves nothing elsewhere.
        This fallback streams through the process in chunks; backends override it with
        something cheaper.
        """
        with self.writer(dest_key, content_type) as sink:
            for key in keys:
                for chunk in self.iter_chunks(key):
                    sink.write(chunk)

    def upload_chunk(
        self, folder: str, offset: int, confirm: Callable[[], None], *, earlier: str = ""
    ) -> AbstractContextManager[UploadChunk]:
        """The next bytes, from `offset`, of a resumable upload whose objects live in `folder`.

        Here, as on GCS: a part object of its own, `<folder><offset>-<random>`, written
        without fsync (the upload is checked against its size and CRC-32 later) and stored
        by `keep`; the caller records it, checks the offset as it does, and `concat`s the
        recorded parts at the end. `confirm` is not called.

        A backend that can append in place safely across processes and nodes overrides
        this (see LocalStorage): every chunk extends the one object `<folder>data` under an
        exclusive hold (Busy at once if another writer holds it), `confirm()` runs under
        the hold (it raises if `offset` is not the caller's recorded end), and what lies
        past `offset` (bytes a crashed writer never recorded) is cut off first. An upload
        begun in the folder `earlier` (ending with `/`) goes on there. Bytes appended stay
        when the block exits, unless discarded.
        """
        return _Part(self, f"{folder}{offset:015d}-{uuid.uuid4().hex[:12]}")

    def signed_url(
        self,
        key: str,
        *,
        generation: int | None,
        disposition: str,
        content_type: str,
        seconds: int,
    ) -> str | None:
        """A URL that lets anyone download the object at `key` (that `generation` of it)
        for `seconds`, answered with these `Content-Disposition` and `Content-Type`; None
        where the backend cannot sign (the local disk, or GCS without a signing key)."""
        return None

    def direct_sessions(self) -> DirectSessions | None:
        """Sessions clients write to directly (app.storage.direct), where the backend has
        them; None here: every byte comes through the service."""
        return None

    def discard_partial(self, key: str) -> None:
        """Remove what a killed writer of `key` left behind; only when no writer can be alive.

        Nothing here by default: a backend whose unfinished writes leave nothing behind
        (GCS: an unfinished upload session is invisible and expires) needs no more.
        """
        return

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectMissing:
            return False
        return True

    def iter_chunks(
        self,
        key: str,
        start: int = 0,
        length: int | None = None,
        *,
        generation: int | None = None,
    ) -> Iterator[bytes]:
        """The object's bytes from `start`, `length` of them (all by default), in chunks.

        `generation`: as for `open`, so that no two chunks come from different versions.
        """
        with self.open(key, generation=generation) as reader:
            reader.seek(start)
            remaining = length
            while remaining is None or remaining > 0:
                want = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
                chunk = reader.read(want)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
