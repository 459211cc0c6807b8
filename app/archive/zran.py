"""A seek index for a deflate stream that was written without one, in one pass (as zlib's
`examples/zran.c` does).

Python's `zlib` cannot stop at a deflate block boundary (`Z_BLOCK`) nor say how many bits
of the last byte it used, so this pass calls the system zlib through ctypes. Only this
one-off pass needs it: reading from a point (`app.archive.reader`) is an ordinary raw
inflate primed with the point's window.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterable

from isal import isal_zlib

from app.archive.layout import ArchiveMismatch
from app.archive.seek_index import SPAN, WINDOW, ZRAN_MAX_POINTS, Point, SeekIndex

Z_OK, Z_STREAM_END, Z_BUF_ERROR, Z_BLOCK = 0, 1, -5, 5
OUT_BUFFER = 256 * 1024


class _ZStream(ctypes.Structure):
    _fields_ = [
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_uint),
        ("total_in", ctypes.c_ulong),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint),
        ("total_out", ctypes.c_ulong),
        ("msg", ctypes.c_char_p),
        ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p),
        ("zfree", ctypes.c_void_p),
        ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int),
        ("adler", ctypes.c_ulong),
        ("reserved", ctypes.c_ulong),
    ]


def _zlib() -> ctypes.CDLL:
    path = ctypes.util.find_library("z")
    if path is None:
        raise RuntimeError("the system zlib (libz) is needed to index old archives")
    lib = ctypes.CDLL(path)
    lib.zlibVersion.restype = ctypes.c_char_p
    lib.inflateInit2_.argtypes = [
        ctypes.POINTER(_ZStream),
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    lib.inflate.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int]
    lib.inflateEnd.argtypes = [ctypes.POINTER(_ZStream)]
    return lib


def spacing(size: int) -> int:
    """How far apart the points of a `size`-byte original are: SPAN, or wider for a file
    so large that its windows would not fit in the row."""
    return max(SPAN, -(-size // ZRAN_MAX_POINTS))


def build(chunks: Iterable[bytes], *, size: int, crc32: int) -> SeekIndex:
    """Inflate the raw deflate stream `chunks` once; its points every `spacing(size)`.

    The original must come out `size` bytes long with CRC-32 `crc32` (what the row says),
    or ArchiveMismatch is raised: an index of the wrong stream is worse than none.
    """
    lib = _zlib()
    stream = _ZStream()
    version = lib.zlibVersion()
    if lib.inflateInit2_(ctypes.byref(stream), -15, version, ctypes.sizeof(_ZStream)) != Z_OK:
        raise RuntimeError("zlib's inflateInit2 failed")
    gap = spacing(size)
    points = [Point(0, 0)]
    window = b""
    crc = 0
    out_buffer = ctypes.create_string_buffer(OUT_BUFFER)
    ended = False
    try:
        for chunk in chunks:
            if ended:
                break
            in_buffer = ctypes.create_string_buffer(chunk, len(chunk))
            stream.next_in = ctypes.cast(in_buffer, ctypes.c_void_p)
            stream.avail_in = len(chunk)
            while not ended:
                stream.next_out = ctypes.cast(out_buffer, ctypes.c_void_p)
                stream.avail_out = OUT_BUFFER
                status = lib.inflate(ctypes.byref(stream), Z_BLOCK)
                if status not in (Z_OK, Z_STREAM_END, Z_BUF_ERROR):
                    message = stream.msg.decode() if stream.msg else f"error {status}"
                    raise ArchiveMismatch(f"the archive's entry does not inflate: {message}")
                made = ctypes.string_at(out_buffer, OUT_BUFFER - stream.avail_out)
                if made:
                    crc = isal_zlib.crc32(made, crc)
                    window = (window + made)[-WINDOW:]
                ended = status == Z_STREAM_END
                # A block boundary on a byte boundary (no bits of the byte before left):
                # Python's zlib can start there, primed with the window. (Mid-byte ones,
                # zran.c's other kind, need inflatePrime, which Python does not offer; a
                # bit shift of the stream instead would misalign later stored blocks.)
                # About one block boundary in eight is one, and every sync flush.
                boundary = stream.data_type & 128 and not stream.data_type & (64 | 7)
                if not ended and boundary and stream.total_out - points[-1].out >= gap:
                    points.append(Point(stream.total_out, stream.total_in, window))
                if status == Z_BUF_ERROR:
                    break  # no progress without more input: the next chunk
        if not ended:
            raise ArchiveMismatch("the archive's entry ends before its deflate stream does")
        if (stream.total_out, crc) != (size, crc32):
            raise ArchiveMismatch(
                f"the archive's entry inflates to {stream.total_out} bytes with CRC "
                f"{crc:08x}; the file is {size} bytes with CRC {crc32:08x}"
            )
        return SeekIndex.from_points(points, size=size, compressed=stream.total_in)
    finally:
        lib.inflateEnd(ctypes.byref(stream))
