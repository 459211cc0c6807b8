"""Deflate on every core: a compressor for stream-zip that works as pigz does.

The dial's two settings (`Deflater`, `DEFLATERS`) and `ParallelDeflate`, which cuts the
input into blocks deflated on a pool of threads and joins their outputs into one ordinary
deflate stream; every SPAN of input it starts a block unprimed, a point of the seek index
(`app.archive.seek_index`). `app.archive.writer` chooses it for a file above its
PARALLEL_THRESHOLD.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType

from isal import isal_zlib
from zlib_ng import zlib_ng

from app.archive import seek_index
from app.archive.seek_index import Recorder, SeekIndex

BLOCK_SIZE = 1024 * 1024
WINDOW = 32 * 1024  # deflate's window: how far back a block may refer


@dataclass(frozen=True)
class Deflater:
    """One setting of the compression dial: a deflate library and its level."""

    library: ModuleType  # isal_zlib or zlib_ng: zlib's API, and both let go of the GIL
    level: int

    def compressobj(self, zdict: bytes = b""):
        """A raw deflate compressor, primed with `zdict` (the bytes just before) if given."""
        if zdict:
            return self.library.compressobj(self.level, self.library.DEFLATED, -15, zdict=zdict)
        return self.library.compressobj(self.level, self.library.DEFLATED, -15)


# The names are INSTASHARE_COMPRESSION's values (app.settings lists the same ones).
DEFLATERS = {"fast": Deflater(isal_zlib, 2), "small": Deflater(zlib_ng, 5)}


def usable_cores() -> int:
    """How many cores this process may run on (its CPU affinity, which a container sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _deflate_block(
    deflater: Deflater, block: bytes | memoryview, window: bytes, last: bool
) -> tuple[bytes, int]:
    """One block as raw deflate, and its CRC-32 (runs on a pool thread)."""
    compressor = deflater.compressobj(window)
    # A sync flush ends the block on a byte boundary without marking the stream final,
    # so the next block's output can follow it; the last block finishes the stream.
    library = deflater.library
    mode = library.Z_FINISH if last else library.Z_SYNC_FLUSH
    return compressor.compress(block) + compressor.flush(mode), isal_zlib.crc32(block)


class ParallelDeflate:
    """A compressor for stream-zip that deflates on several threads, as pigz does.

    Input is cut into BLOCK_SIZE blocks, each deflated on its own by a pool thread, primed
    with the 32 KiB that precede it (so the ratio barely moves) and ended with a sync
    flush; only the last block is finished. The outputs, in order, are one valid deflate
    stream: the ZIP stays a standard one. Each thread also takes its block's CRC-32, and
    they are combined in order (`crc32`), so the calling thread computes none. At most
    two blocks per thread are in flight: memory stays bounded whatever the file's size.
    Every SPAN of input (every fourth block) a block starts unprimed: after the previous
    block's sync flush, nothing there refers back, so a reader can inflate from it
    (`index()`, the seek index of app.archive.seek_index).

    Threads, not processes: ISA-L and zlib-ng let go of the GIL while they deflate (as
    hashlib does for the SHA-256 beside them), so the blocks need no copying to another
    process. What pays or not is the calling thread, which no other can relieve: it reads,
    hands blocks over and writes the output. A block goes over as a view of the chunk read
    (no copy), and stream-zip's CRC-32 is ISA-L's (above): that thread's part is ~0.4 ms
    per MiB, against ~1.5 (`fast`) or ~6.3 (`small`) of deflate, and two idle cores run a
    128 MiB log at ~1.7x (`fast`) and ~1.9x (`small`) the speed of one (bench/compress.py).
    """

    def __init__(self, deflater: Deflater, threads: int) -> None:
        self._deflater = deflater
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="deflate")
        self._in_flight = 2 * threads
        self._pending: deque[tuple[Future[tuple[bytes, int]], int, bool]] = deque()
        # Input not yet in a block, as views of the bytes given: a block cut from one piece
        # (the reader's chunks are block-sized) is a view of it, not a copy.
        self._input: deque[memoryview] = deque()
        self._held = 0
        self._window = b""
        self._blocks = 0
        self._blocks_per_point = max(1, seek_index.SPAN // BLOCK_SIZE)
        self._recorder = Recorder()
        self.crc32 = 0
        self.size = 0
        self.compressed = 0

    def __enter__(self) -> ParallelDeflate:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def compress(self, data: bytes) -> bytes:
        """What deflated output is ready after taking `data` (perhaps nothing yet)."""
        if data:
            self._input.append(memoryview(bytes(data)))  # bytes: never changed under a view
            self._held += len(data)
        out = []
        # A full block waits until more input shows it is not the last one.
        while self._held > BLOCK_SIZE:
            block = self._take(BLOCK_SIZE)
            if len(self._pending) >= self._in_flight:
                out.append(self._collect(oldest=True))  # bounded memory: wait for it
            self._submit(block, last=False)
        out.append(self._collect())
        return b"".join(out)

    def flush(self) -> bytes:
        """The rest of the stream: the last block, finished, after every other."""
        self._submit(self._take(self._held), last=True)
        return self._collect(every=True)

    def _take(self, length: int) -> bytes | memoryview:
        """The next `length` bytes of input: a view when one piece holds them, else a copy."""
        self._held -= length
        first = self._input[0] if self._input else memoryview(b"")
        if len(first) >= length:
            if len(first) > length:
                self._input[0] = first[length:]
            elif self._input:
                self._input.popleft()
            return first[:length]
        parts = []
        while length:
            piece = self._input.popleft()
            if len(piece) > length:
                self._input.appendleft(piece[length:])
                piece = piece[:length]
            parts.append(piece)
            length -= len(piece)
        return b"".join(parts)

    def index(self) -> SeekIndex:
        """The points a reader may inflate from; once flushed."""
        return self._recorder.finish(self.size, self.compressed)

    def _submit(self, block: bytes | memoryview, *, last: bool) -> None:
        point = self._blocks > 0 and self._blocks % self._blocks_per_point == 0
        if point:
            self._window = b""  # nothing from here on may refer to what came before
        future = self._pool.submit(_deflate_block, self._deflater, block, self._window, last)
        self._pending.append((future, len(block), point))
        self._blocks += 1
        self._window = (
            bytes(block[-WINDOW:])
            if len(block) >= WINDOW
            else (self._window + bytes(block))[-WINDOW:]
        )

    def _collect(self, *, oldest: bool = False, every: bool = False) -> bytes:
        """The outputs of the finished blocks at the head of the queue, in order; with
        `oldest`, waiting for the first one; with `every`, for them all."""
        out = []
        while self._pending and (every or oldest or self._pending[0][0].done()):
            future, length, point = self._pending.popleft()
            deflated, crc = future.result()
            if point:
                self._recorder.add(self.size, self.compressed)
            self.crc32 = zlib_ng.crc32_combine(self.crc32, crc, length)
            self.size += length
            self.compressed += len(deflated)
            out.append(deflated)
            oldest = False
        return b"".join(out)
