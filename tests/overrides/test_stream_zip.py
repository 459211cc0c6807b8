"""stream-zip, overridden: it takes its CRC-32 from ISA-L, and its ZIPs are still right."""

from __future__ import annotations

import datetime as dt
import io
import os
import zipfile
import zlib

import stream_zip as stream_zip_module
from isal import isal_zlib
from stream_zip import NO_COMPRESSION_32, ZIP_32

from app.archive import writer
from app.overrides.stream_zip import stream_zip

MODIFIED = dt.datetime(2024, 5, 17, 12, 30, 10)


def test_stream_zip_takes_isals_crc32_and_zlibs_compressor():
    assert stream_zip_module.zlib.crc32 is isal_zlib.crc32
    assert stream_zip_module.zlib.compressobj is zlib.compressobj
    assert writer.stream_zip is stream_zip  # the archive writer's is the one overridden


def test_its_archives_carry_the_right_crcs():
    data = os.urandom(300_000) + b"log line\n" * 50_000
    members = [
        ("deflated.bin", MODIFIED, 0o644, ZIP_32, [data[:100_000], data[100_000:]]),
        ("stored.bin", MODIFIED, 0o644, NO_COMPRESSION_32(len(data), zlib.crc32(data)), [data]),
    ]
    archive = b"".join(stream_zip(members))
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.testzip() is None  # every entry's bytes match its CRC-32
        assert [info.CRC for info in zf.infolist()] == [zlib.crc32(data)] * 2
        assert zf.read("deflated.bin") == data
