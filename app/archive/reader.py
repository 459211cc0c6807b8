"""The one reader of stored archives: the ZIP under the file's current name, and any range
of the original out of it, each reading from storage only the bytes it needs.

- A STORED entry's original is a slice of the archive: its data starts right after the
  local header, so a range is one ranged read.
- A DEFLATED entry is inflated from the last point of its seek index at or before the
  range (`app.archive.seek_index`), reading compressed bytes only up to the first point
  at or after the range's end: the last KiB of a 64 MiB log reads about one span's
  worth (~1 MiB) instead of the whole archive. Without an index yet (an archive from
  before them, until the indexing job has run), it is inflated from its start.
- The ZIP after a rename: new local header, the stored bytes between it and the central
  directory as they are, and the directory and end records rewritten (`layout`).

Every read is a generator: nothing touches storage until it is iterated, and memory
stays within a chunk or two (inflation hands out at most CHUNK_SIZE at a time, however
well the data compressed). What goes wrong with the stored bytes raises ArchiveMismatch
rather than answer with other bytes.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import cast

from isal import isal_zlib

from app.archive.layout import (
    DEFLATED,
    HEAD_READ,
    STORED,
    TAIL_READ,
    ArchiveMismatch,
    LocalHeader,
    directory_offset,
    renamed_tail,
)
from app.archive.seek_index import Point, SeekIndex, Segment
from app.storage import Storage
from app.storage.base import CHUNK_SIZE

Read = Callable[[int, int | None], Iterator[bytes]]
# Spans a download of several has inflating at once, besides the one it is sending.
AHEAD = 2
_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()
# What ISA-L raises on a corrupt stream (its stub does not declare it an exception).
INFLATE_ERROR = cast(type[Exception], isal_zlib.error)  # (start, length or None for the rest)


@dataclass(frozen=True)
class View:
    """Bytes to serve: how many, and how to read `length` of them (or all) from `start`."""

    size: int
    read: Read


@dataclass(frozen=True)
class EntryAt:
    """Where a stored archive's entry lies, when its row recorded it: its compression
    method, where its data starts and how long that is (no header need be read)."""

    method: int
    data_offset: int
    compressed_size: int


class ArchiveReader:
    """One file's stored archive: `key`, its length (None: ask storage), its entry's size
    and CRC-32 (None: unchecked), the entry's seek index (None when it has none), the
    archive's generation, which every read names (None: whatever is stored now), and
    where its entry lies (None: its local header says, one small read)."""

    def __init__(
        self,
        storage: Storage,
        key: str,
        *,
        entry_size: int,
        entry_crc32: int | None = None,
        archive_size: int | None = None,
        seek_index: bytes | None = None,
        generation: int | None = None,
        entry_at: EntryAt | None = None,
    ) -> None:
        self._entry_at = entry_at
        self._storage = storage
        self._generation = generation
        self._key = key
        self._entry_size = entry_size
        self._entry_crc32 = entry_crc32
        self._archive_size = archive_size
        self._seek_index = seek_index

    def _read(self, start: int, length: int | None) -> Iterator[bytes]:
        return self._storage.iter_chunks(self._key, start, length, generation=self._generation)

    def _bytes(self, start: int, length: int) -> bytes:
        return b"".join(self._read(start, length))

    @cached_property
    def header(self) -> LocalHeader:
        """The entry's local header (one small read)."""
        return LocalHeader.parse(self._bytes(0, HEAD_READ))

    @property
    def method(self) -> int:
        return self._entry_at.method if self._entry_at is not None else self.header.method

    @property
    def data_offset(self) -> int:
        """Where the entry's (compressed) data starts."""
        if self._entry_at is not None:
            return self._entry_at.data_offset
        return self.header.data_offset

    def read_stored(self, start: int, length: int | None) -> Iterator[bytes]:
        """The entry's data as stored (deflated or not), `length` bytes (or the rest) from
        `start`: what a multi-file archive copies (app.archive.bundle)."""
        return self._read(self.data_offset + start, length)

    @cached_property
    def archive_size(self) -> int:
        return self._storage.size(self._key) if self._archive_size is None else self._archive_size

    @cached_property
    def index(self) -> SeekIndex | None:
        return None if self._seek_index is None else SeekIndex.from_bytes(self._seek_index)

    # --- the ZIP -----------------------------------------------------------------------

    def zip_as(self, name: str) -> View:
        """The archive with its entry named `name`: as stored, or with its headers rewritten."""
        if self.header.entry_name == name:
            return View(self.archive_size, self._read)
        size = self.archive_size
        tail_start = max(0, size - TAIL_READ)
        tail = self._bytes(tail_start, size - tail_start)
        body_end = directory_offset(tail, size)
        if body_end < tail_start:  # more than a one-entry directory: read it all
            tail, tail_start = self._bytes(body_end, size - body_end), body_end
        new = name.encode("utf-8")
        spliced = _Spliced(
            head=self.header.renamed(new),
            body_start=self.header.data_offset,
            body_end=body_end,
            tail=renamed_tail(tail[body_end - tail_start :], new, len(new) - len(self.header.name)),
            read=self._read,
        )
        return View(spliced.size, spliced.read_range)

    # --- the original ------------------------------------------------------------------

    def original(self) -> View:
        """The entry's bytes, any range of them read from storage as little as it can."""
        return View(self._entry_size, self.read_original)

    def read_original(self, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """`length` bytes (all by default) of the original from `start`, in chunks.

        Read whole, the original's CRC-32 is checked before its last chunk goes out (as
        `zipfile` does): damaged stored bytes cut the download short instead of
        completing it with other bytes. A part of it has nothing to check against.
        """
        end = self._entry_size if length is None else min(self._entry_size, start + length)
        if start >= end:
            return
        chunks = self._original(start, end)
        if start == 0 and end == self._entry_size and self._entry_crc32 is not None:
            chunks = _checked(chunks, self._entry_crc32)
        yield from chunks

    def _original(self, start: int, end: int) -> Iterator[bytes]:
        method = self.method
        if method == STORED:
            yield from self.read_stored(start, end - start)
            return
        if method != DEFLATED:
            raise ArchiveMismatch(f"the archive's entry uses compression method {method}")
        index = self.index
        if index is None:
            compressed = self.read_stored(0, None)
            yield from inflate(compressed, Point(0, 0), skip=start, want=end - start)
            return
        segments = index.segments(start, end)
        if len(segments) == 1:
            yield from self._segment(segments[0])
        else:
            yield from self._segments_ahead(segments)

    def _segment(self, segment: Segment) -> Iterator[bytes]:
        point = segment.point
        first = self.data_offset + point.into
        length = segment.stop - point.into
        likely = min(length, segment.likely_compressed())
        # What the range most likely needs first; the rest of the span only if it does not
        # suffice (a generator: nothing is asked of storage unless it is reached).
        compressed = itertools.chain(
            self._read(first, likely),
            self._read(first + likely, length - likely) if likely < length else (),
        )
        yield from inflate(
            compressed, point, skip=segment.start - point.out, want=segment.end - segment.start
        )

    def _inflated(self, segment: Segment) -> list[bytes]:
        return list(self._segment(segment))

    def _segments_ahead(self, segments: list[Segment]) -> Iterator[bytes]:
        """Several spans: each read and inflated whole on a pool thread, AHEAD of them
        at once, handed out in order. ISA-L lets go of the GIL while it inflates, so a
        long original goes out at the speed of more than one core (and, on GCS, the next
        span's GET overlaps this one's inflation). At most AHEAD + 1 spans' output (12 MiB)
        is held per download."""
        pool = _inflaters()
        upcoming = iter(segments)
        pending: deque[Future[list[bytes]]] = deque()
        try:
            for segment in itertools.islice(upcoming, AHEAD):
                pending.append(pool.submit(self._inflated, segment))
            while pending:
                pieces = pending.popleft().result()
                following = next(upcoming, None)
                if following is not None:
                    pending.append(pool.submit(self._inflated, following))
                yield from pieces
        finally:
            for future in pending:
                future.cancel()  # a download cut short: no more spans for it


def _inflaters() -> ThreadPoolExecutor:
    """The process's pool of inflating threads, one per core (made after a fork)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(_cores(), thread_name_prefix="inflate"))
        return _POOL[1]


def _cores() -> int:
    try:
        return max(2, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(2, os.cpu_count() or 1)


def inflate(compressed: Iterable[bytes], point: Point, *, skip: int, want: int) -> Iterator[bytes]:
    """`want` bytes of the original after the first `skip` that inflating `compressed`
    (the stream from `point`) gives, in pieces of at most CHUNK_SIZE.

    ISA-L inflates ~1.8x as fast as zlib here and lets go of the GIL while it does.
    """
    inflater = (
        isal_zlib.decompressobj(-15, zdict=point.window)
        if point.window
        else isal_zlib.decompressobj(-15)
    )
    for chunk in compressed:
        data = chunk
        while True:
            try:
                out = inflater.decompress(data, CHUNK_SIZE)
            except INFLATE_ERROR as exc:
                raise ArchiveMismatch(f"the archive's entry does not inflate: {exc}") from None
            data = inflater.unconsumed_tail
            made = len(out)
            if skip:
                if made <= skip:
                    skip -= made
                    out = b""
                else:
                    out, skip = out[skip:], 0
            if len(out) >= want:
                yield out[:want]
                return
            if out:
                want -= len(out)
                yield out
            # Output may stay pending after the input is used up (a long match cut off at
            # CHUNK_SIZE): ask again until none comes.
            if inflater.eof or (not made and not data):
                break
        if inflater.eof:
            break
    raise ArchiveMismatch(f"the archive's entry ended {want} bytes early")


def _checked(chunks: Iterator[bytes], crc32: int) -> Iterator[bytes]:
    """`chunks`, the last held back until the CRC-32 of them all is `crc32`."""
    crc, held = 0, None
    for chunk in chunks:
        if held is not None:
            yield held
        crc = isal_zlib.crc32(chunk, crc)
        held = chunk
    if crc != crc32:
        raise ArchiveMismatch(f"the archive's entry has CRC {crc:08x}, expected {crc32:08x}")
    if held is not None:
        yield held


@dataclass(frozen=True)
class _Spliced:
    """A stored archive read with new headers: `head`, the stored bytes [body_start,
    body_end) (the entry's data and data descriptor, as they are), then `tail`."""

    head: bytes
    body_start: int
    body_end: int
    tail: bytes
    read: Read

    @property
    def size(self) -> int:
        return len(self.head) + self.body_end - self.body_start + len(self.tail)

    def read_range(self, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        end = self.size if length is None else min(self.size, start + length)
        body_at = len(self.head)
        tail_at = body_at + self.body_end - self.body_start
        if start < body_at:
            yield self.head[start : min(end, body_at)]
        if start < tail_at and end > body_at:
            first = max(start, body_at)
            yield from self.read(self.body_start + first - body_at, min(end, tail_at) - first)
        if end > tail_at:
            yield self.tail[max(start, tail_at) - tail_at : end - tail_at]
