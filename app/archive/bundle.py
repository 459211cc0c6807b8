"""One ZIP of many files, assembled from the entries the worker already compressed.

Each file's stored archive holds its entry deflated (or stored), with the CRC-32 and both
sizes known. The ZIP of a set of files is those entries' data, copied as they are (by
ranged reads from storage), between headers written here: a local header before each, a
central directory and end records after them all. Nothing is compressed again, and the
whole archive's size and every byte of it are known before the first is sent, so it can be
served with `Content-Length`, `Range` and `If-Range` like any stored object, and the same
members in the same order always give the same bytes.

Headers carry the sizes (no data descriptors). ZIP64 records are written when the archive
needs them (4 GiB or more, or 65,535 entries or more), for every entry alike. Headers are
made when they are read: an archive of 100,000 entries holds two integers per entry, never
its directory, in memory.
"""

from __future__ import annotations

import bisect
import datetime as dt
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

from app.archive.layout import (
    CENTRAL,
    DEFLATED,
    END,
    END_SIGNATURE,
    LOCAL,
    LOCAL_SIGNATURE,
    NO_VALUE,
    STORED,
    UTF8,
    ZIP64_END,
    ZIP64_LOCATOR,
)

CENTRAL_SIGNATURE, ZIP64_END_SIGNATURE, ZIP64_LOCATOR_SIGNATURE = 0x02014B50, 0x06064B50, 0x07064B50
ZIP64_EXTRA = struct.Struct("<HHQQ")  # id 1: sizes (local header)
ZIP64_CENTRAL_EXTRA = struct.Struct("<HHQQQ")  # id 1: sizes and the local header's offset
NO_COUNT = 0xFFFF
# Made by: UNIX (3), version 4.5; needed: 2.0, or 4.5 with ZIP64.
MADE_BY = (3 << 8) | 45
FILE_MODE, FOLDER_MODE = 0o100644 << 16, (0o040755 << 16) | 0x10

# `read(start, length)`: the entry's compressed bytes from `start` (0 is the first).
ReadData = Callable[[int, int], Iterator[bytes]]


@dataclass(frozen=True)
class Member:
    """One entry: its path in the archive (folders end with `/` and have no data), how its
    data is compressed, its CRC-32 and sizes, when it was made, and how to read its data."""

    path: str
    method: int
    crc32: int
    size: int
    compressed_size: int
    modified: dt.datetime
    read: ReadData | None = None

    @property
    def is_folder(self) -> bool:
        return self.path.endswith("/")


def folder(path: str, modified: dt.datetime) -> Member:
    """An entry for a folder (kept even when it holds nothing)."""
    return Member(path.rstrip("/") + "/", STORED, 0, 0, 0, modified)


def _dos_time(moment: dt.datetime) -> tuple[int, int]:
    """(time, date) as ZIP stores them: local fields, two-second steps, 1980 to 2107."""
    moment = min(max(moment, dt.datetime(1980, 1, 1, tzinfo=moment.tzinfo)),
                 dt.datetime(2107, 12, 31, 23, 59, 58, tzinfo=moment.tzinfo))  # fmt: skip
    time = (moment.hour << 11) | (moment.minute << 5) | (moment.second // 2)
    date = ((moment.year - 1980) << 9) | (moment.month << 5) | moment.day
    return time, date


class Bundle:
    """The ZIP of `members`, in their order: its size, and any range of its bytes."""

    def __init__(self, members: Sequence[Member]):
        for member in members:
            if member.method not in (STORED, DEFLATED):
                raise ValueError(f"{member.path}: compression method {member.method}")
            if member.compressed_size and member.read is None:
                raise ValueError(f"{member.path}: {member.compressed_size} bytes, no reader")
        self.members = members
        self._names = [m.path.encode("utf-8") for m in members]
        data_end = sum(
            LOCAL.size + len(name) + ZIP64_EXTRA.size + m.compressed_size
            for m, name in zip(members, self._names, strict=True)
        )
        self.zip64 = (
            len(members) >= NO_COUNT
            or data_end >= NO_VALUE
            or any(m.size >= NO_VALUE for m in members)
        )
        # Where each local header starts, and (last) where the directory does.
        self._local: list[int] = [0]
        for member, name in zip(members, self._names, strict=True):
            self._local.append(self._local[-1] + self._local_size(name) + member.compressed_size)
        self._central: list[int] = [self._local[-1]]
        for name in self._names:
            self._central.append(self._central[-1] + self._central_size(name))

    def _local_size(self, name: bytes) -> int:
        return LOCAL.size + len(name) + (ZIP64_EXTRA.size if self.zip64 else 0)

    def _central_size(self, name: bytes) -> int:
        return CENTRAL.size + len(name) + (ZIP64_CENTRAL_EXTRA.size if self.zip64 else 0)

    @cached_property
    def _end(self) -> bytes:
        """The end records, after the directory."""
        count = len(self.members)
        start, size = self._central[0], self._central[-1] - self._central[0]
        if not self.zip64:
            return END.pack(END_SIGNATURE, 0, 0, count, count, size, start, 0)
        record_at = self._central[-1]
        return b"".join((
            ZIP64_END.pack(ZIP64_END_SIGNATURE, ZIP64_END.size - 12, MADE_BY, 45, 0, 0,
                           count, count, size, start),
            ZIP64_LOCATOR.pack(ZIP64_LOCATOR_SIGNATURE, 0, record_at, 1),
            END.pack(END_SIGNATURE, 0, 0, NO_COUNT, NO_COUNT, NO_VALUE, NO_VALUE, 0),
        ))  # fmt: skip

    @property
    def size(self) -> int:
        return self._central[-1] + len(self._end)

    def _fields(self, member: Member) -> tuple[int, int, int, int, int, int]:
        """(version needed, flags, method, time, date, crc) of both headers."""
        time, date = _dos_time(member.modified)
        return (45 if self.zip64 else 20, UTF8, member.method, time, date, member.crc32)

    def local_header(self, index: int) -> bytes:
        member, name = self.members[index], self._names[index]
        needed, flags, method, time, date, crc = self._fields(member)
        if not self.zip64:
            return LOCAL.pack(LOCAL_SIGNATURE, needed, flags, method, time, date, crc,
                              member.compressed_size, member.size, len(name), 0) + name  # fmt: skip
        extra = ZIP64_EXTRA.pack(1, 16, member.size, member.compressed_size)
        return LOCAL.pack(LOCAL_SIGNATURE, needed, flags, method, time, date, crc,
                          NO_VALUE, NO_VALUE, len(name), len(extra)) + name + extra  # fmt: skip

    def central_header(self, index: int) -> bytes:
        member, name = self.members[index], self._names[index]
        needed, flags, method, time, date, crc = self._fields(member)
        mode = FOLDER_MODE if member.is_folder else FILE_MODE
        if not self.zip64:
            return CENTRAL.pack(CENTRAL_SIGNATURE, MADE_BY, needed, flags, method, time, date,
                                crc, member.compressed_size, member.size, len(name), 0, 0, 0,
                                0, mode, self._local[index]) + name  # fmt: skip
        extra = ZIP64_CENTRAL_EXTRA.pack(
            1, 24, member.size, member.compressed_size, self._local[index]
        )
        return CENTRAL.pack(CENTRAL_SIGNATURE, MADE_BY, needed, flags, method, time, date, crc,
                            NO_VALUE, NO_VALUE, len(name), len(extra), 0, 0, 0, mode,
                            NO_VALUE) + name + extra  # fmt: skip

    def read_range(self, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The archive's bytes from `start`, `length` of them (or to the end)."""
        end = self.size if length is None else min(self.size, start + length)
        at = start
        # The entries: each one's local header, then its data as stored.
        index = bisect.bisect_right(self._local, at) - 1
        while at < end and index < len(self.members):
            header_at = self._local[index]
            data_at = header_at + self._local_size(self._names[index])
            if at < data_at:  # the header is made only when some of it is read
                yield self.local_header(index)[at - header_at : min(end, data_at) - header_at]
                at = min(end, data_at)
            data_end = self._local[index + 1]
            read = self.members[index].read
            if at < min(end, data_end) and read is not None:
                stop = min(end, data_end)
                yield from read(at - data_at, stop - at)
                at = stop
            index += 1
        # The directory, one entry's header after another, then the end records.
        index = max(0, bisect.bisect_right(self._central, at) - 1)
        while at < end and index < len(self.members):
            header_at = self._central[index]
            header = self.central_header(index)
            yield header[at - header_at : min(end, header_at + len(header)) - header_at]
            at = min(end, header_at + len(header))
            index += 1
        if at < end:
            tail_at = self._central[-1]
            yield self._end[at - tail_at : end - tail_at]
