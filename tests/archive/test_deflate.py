"""ParallelDeflate: blocks deflated on several threads make one ordinary deflate stream."""

from __future__ import annotations

import zlib

import pytest

from app.archive import deflate
from app.archive.deflate import DEFLATERS, ParallelDeflate
from tests.archive.test_writer import text_log


def test_parallel_deflate_is_one_deflate_stream_and_bounded(monkeypatch):
    monkeypatch.setattr(deflate, "BLOCK_SIZE", 4096)
    data = text_log(200_000)
    out, most_in_flight = [], 0
    with ParallelDeflate(DEFLATERS["small"], threads=3) as parallel:
        for at in range(0, len(data), 10_000):
            out.append(parallel.compress(data[at : at + 10_000]))
            most_in_flight = max(most_in_flight, len(parallel._pending))
        out.append(parallel.flush())
    assert most_in_flight <= 2 * 3
    inflate = zlib.decompressobj(-15)
    assert inflate.decompress(b"".join(out)) == data
    assert inflate.eof  # finished once, at the end
    assert (parallel.size, parallel.crc32) == (len(data), zlib.crc32(data))


@pytest.mark.parametrize(
    "pieces",
    [
        [4096] * 5,  # block-sized, as the reader's chunks are: each block is one of them
        [10_000, 1, 0, 8192, 3, 3 * 4096 + 7],  # blocks cut across pieces, and within them
        [4095, 4097, 4096 * 2],  # a block that ends one byte into the next piece
    ],
)
def test_parallel_deflate_takes_pieces_of_any_size(monkeypatch, pieces):
    monkeypatch.setattr(deflate, "BLOCK_SIZE", 4096)
    data = text_log(sum(pieces))
    out, at = [], 0
    with ParallelDeflate(DEFLATERS["fast"], threads=2) as parallel:
        for n, length in enumerate(pieces):
            piece = data[at : at + length]
            out.append(parallel.compress(bytearray(piece) if n % 2 else piece))
            at += length
        out.append(parallel.flush())
    assert zlib.decompress(b"".join(out), -15) == data
    assert (parallel.size, parallel.crc32) == (len(data), zlib.crc32(data))


def test_parallel_deflate_of_nothing_is_an_empty_stream():
    with ParallelDeflate(DEFLATERS["fast"], threads=2) as parallel:
        stream = parallel.compress(b"") + parallel.flush()
    assert zlib.decompress(stream, -15) == b""
    assert (parallel.size, parallel.crc32) == (0, 0)
