"""stream-zip, taking the CRC-32 of what it deflates from ISA-L.

stream-zip takes the CRC-32 of every chunk it deflates, with the standard library's zlib
(its module global `zlib`), on the thread that runs it: a tenth of what `fast` costs in
all, and in the parallel path (`ParallelDeflate`) a third of what that one thread
(which nothing else can relieve) does. It is given ISA-L's CRC-32 instead (the same
polynomial, six times the speed); the rest of what it takes from `zlib` is zlib's own.
Guarded in app.overrides (`check_versions`).
"""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import stream_zip as stream_zip_module
from isal import isal_zlib
from stream_zip import stream_zip

__all__ = ["stream_zip"]

stream_zip_module.zlib = SimpleNamespace(  # type: ignore[assignment]
    crc32=isal_zlib.crc32, compressobj=zlib.compressobj, MAX_WBITS=zlib.MAX_WBITS
)
