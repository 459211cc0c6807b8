"""The seek index of a deflated entry: points its data can be inflated from, and the end.

A deflate stream can only be read from its start, unless it was left a way in. Archives
written now have one every SPAN (4 MiB) of the original: a full flush there (a byte
boundary, and nothing after it refers back across it), so inflating from that point
needs neither a dictionary nor a bit offset. The cost is a fresh 32 KiB window every
4 MiB: on a server log (bench/compress.py's) +0.06 % in size (bench/ranges.py prints it).
The parallel deflate already cuts its input into 1 MiB blocks, each primed with the
32 KiB before it; every fourth block is left unprimed instead (`ParallelDeflate`).

Archives written before have no such points: one pass (`app.archive.zran`) finds deflate
block boundaries that fall on a byte boundary, as zlib's `zran.c` finds block
boundaries, and keeps for each point the 32 KiB of the original before it (the window a
later block may refer to).

The index lives in the file's row (`files.seek_index`), committed with the `ready` that
publishes the archive, so no reader sees one without the other: compact (zlib over
columns of offsets, no window for a flush point), 20 bytes per 4 MiB of original
before the zlib — a 100 GiB file's index is 500 KiB raw, ~125 KiB stored. An old
archive's points, which carry windows, are spaced to at most ZRAN_MAX_POINTS (256)
per file, so its index stays within a few MiB.
"""

from __future__ import annotations

import array
import bisect
import struct
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SPAN = 4 * 1024 * 1024
WINDOW = 32 * 1024
ZRAN_MAX_POINTS = 256
FORMAT = 1
# Then, for the points, in columns: original offsets and compressed offsets (uint64 each),
# window lengths (uint32), and the windows themselves; all of it through zlib.
_HEAD = struct.Struct("<BQQI")  # format, original size, compressed data length, points


@dataclass(frozen=True)
class Point:
    """A place the stream can be inflated from.

    `out`: its offset in the original; `into`: where its compressed data starts (from
    the entry's data start), a deflate block's first byte; `window`: the original bytes
    just before `out` that what follows may refer to (empty after a full flush).
    """

    out: int
    into: int
    window: bytes = b""


@dataclass(frozen=True)
class Segment:
    """Original bytes [start, end) within one span: inflated from `point`, reading the
    compressed data up to `stop` at most."""

    point: Point
    stop: int
    start: int
    end: int
    span_end: int  # where the span ends in the original (the next point, or the size)

    def likely_compressed(self) -> int:
        """How many compressed bytes from the point inflate to `end`, by the span's ratio,
        with a margin: a small range near the point need not read the whole span."""
        ratio = (self.stop - self.point.into) / max(1, self.span_end - self.point.out)
        return int((self.end - self.point.out) * ratio * 1.25) + 64 * 1024


class SeekIndex:
    """The points of one entry, in order (the first at 0), its size and compressed length.

    Held as columns (`array`s of the points' offsets), as it is stored: a range request
    loads it, and a 100 GiB file's 25,600 points load in well under a millisecond, where
    building an object per point took hundreds.
    """

    def __init__(
        self,
        outs: array.array,
        intos: array.array,
        windows: list[bytes],
        *,
        size: int,
        compressed: int,
    ) -> None:
        self.outs = outs
        self.intos = intos
        self.windows = windows  # b"" each, after full flushes; 32 KiB each for old archives
        self.size = size
        self.compressed = compressed

    @classmethod
    def from_points(cls, points: Sequence[Point], *, size: int, compressed: int) -> SeekIndex:
        return cls(
            array.array("Q", (p.out for p in points)),
            array.array("Q", (p.into for p in points)),
            [p.window for p in points],
            size=size,
            compressed=compressed,
        )

    @property
    def points(self) -> tuple[Point, ...]:
        return tuple(self.point(at) for at in range(len(self.outs)))

    def point(self, at: int) -> Point:
        return Point(self.outs[at], self.intos[at], self.windows[at])

    def segments(self, start: int, end: int) -> list[Segment]:
        """Original bytes [start, end), cut at the points: for each piece, the point to
        inflate from and the compressed offset where the next one starts."""
        count = len(self.outs)
        at = bisect.bisect_right(self.outs, start) - 1
        pieces = []
        while at < count and self.outs[at] < end:
            after = at + 1 < count
            next_out = self.outs[at + 1] if after else self.size
            stop = self.intos[at + 1] if after else self.compressed
            point = self.point(at)
            pieces.append(Segment(point, stop, max(start, point.out), min(end, next_out), next_out))
            at += 1
        return pieces

    def to_bytes(self) -> bytes:
        lengths = array.array("I", (len(window) for window in self.windows))
        columns = [self.outs, self.intos, lengths]
        if sys.byteorder == "big":  # stored little-endian
            columns = [array.array(c.typecode, c) for c in columns]
            for column in columns:
                column.byteswap()
        head = _HEAD.pack(FORMAT, self.size, self.compressed, len(self.outs))
        body = b"".join(column.tobytes() for column in columns)
        return zlib.compress(head + body + b"".join(self.windows), 6)

    @classmethod
    def from_bytes(cls, stored: bytes) -> SeekIndex:
        raw = memoryview(zlib.decompress(stored))
        version, size, compressed, count = _HEAD.unpack_from(raw)
        if version != FORMAT:
            raise ValueError(f"seek index format {version} is not {FORMAT}")
        at = _HEAD.size
        columns = []
        for typecode in ("Q", "Q", "I"):
            column = array.array(typecode)
            column.frombytes(raw[at : at + count * column.itemsize])
            if sys.byteorder == "big":
                column.byteswap()
            columns.append(column)
            at += count * column.itemsize
        outs, intos, lengths = columns
        if not any(lengths):
            windows = [b""] * count
        else:
            windows = []
            for length in lengths:
                windows.append(bytes(raw[at : at + length]))
                at += length
        return cls(outs, intos, windows, size=size, compressed=compressed)


class Recorder:
    """Collects points as a compressor reports them, and the stream's end."""

    def __init__(self) -> None:
        self.points: list[Point] = [Point(0, 0)]

    def add(self, out: int, into: int) -> None:
        if out > self.points[-1].out:
            self.points.append(Point(out, into))

    def finish(self, size: int, compressed: int) -> SeekIndex:
        # A point at the very end (the size a multiple of SPAN) has nothing after it.
        points = [p for p in self.points if p.out < size or p.out == 0]
        return SeekIndex.from_points(points, size=size, compressed=compressed)


class IndexedDeflate:
    """A raw deflate compressor (zlib's interface) with a full flush every SPAN bytes of
    input; `index()` once flushed."""

    def __init__(self, compressor: Any, library: Any, span: int = SPAN) -> None:
        self._compressor = compressor
        self._full_flush = library.Z_FULL_FLUSH
        self._span = span
        self._since_point = 0
        self._in = 0
        self._out = 0
        self._recorder = Recorder()

    def compress(self, data: bytes) -> bytes:
        out = []
        view = memoryview(data)
        while view:
            piece = view[: self._span - self._since_point]
            out.append(self._compressor.compress(piece))
            self._in += len(piece)
            self._since_point += len(piece)
            view = view[len(piece) :]
            if self._since_point == self._span:
                out.append(self._compressor.flush(self._full_flush))
                self._recorder.add(self._in, self._out + sum(len(o) for o in out))
                self._since_point = 0
        joined = b"".join(out)
        self._out += len(joined)
        return joined

    def flush(self) -> bytes:
        tail = self._compressor.flush()
        self._out += len(tail)
        return tail

    def index(self) -> SeekIndex:
        return self._recorder.finish(self._in, self._out)
