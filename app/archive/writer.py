"""Writing one stored file as a one-entry ZIP archive, storage to storage, and verifying it.

Deflate has a dial (`INSTASHARE_COMPRESSION`, `app.archive.deflate.DEFLATERS`): `fast` is
ISA-L (`isal`) level 2, about 9x the speed of `zip -6` at ~1.13x its size on server logs;
`small` is zlib-ng level 5, no larger than `zip -6` at over twice its speed. Input that
would not shrink is STORED. A file above PARALLEL_THRESHOLD is deflated on every core this
process may use, in blocks, as pigz does (`app.archive.deflate.ParallelDeflate`). Nothing
is held whole in memory or on local disk: `stream-zip` pulls the original in chunks and its
output is written straight to the archive's storage writer. Every 4 MiB of the original,
the deflate stream leaves a point that a reader can inflate from without what came before
(a full flush, or an unprimed block in the parallel path); the points are the seek index
(`app.archive.seek_index`) returned with the result, which the job commits with `ready`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

from isal import isal_zlib
from stream_zip import (
    NO_COMPRESSION_32,
    NO_COMPRESSION_64,
    ZIP_32,
    ZIP_64,
    CRC32IntegrityError,
    UncompressedSizeIntegrityError,
)

from app.archive import seek_index
from app.archive.deflate import DEFLATERS, ParallelDeflate, usable_cores
from app.archive.layout import HEAD_READ, ArchiveMismatch, LocalHeader
from app.archive.seek_index import IndexedDeflate
from app.overrides.stream_zip import stream_zip
from app.storage import Storage
from app.storage.base import CHUNK_SIZE

__all__ = ["ArchiveMismatch", "ArchiveResult", "verify_archive", "write_archive"]

SAMPLE_BYTES = 256 * 1024
# Store, don't deflate, when a sample deflates to more than this fraction of its size.
STORE_RATIO = 0.95
# Deflate output may exceed its input slightly; above this a ZIP32 entry could overflow.
ZIP32_LIMIT = 4_000_000_000
ZIP_CHUNK = 1024 * 1024
# Files above this are deflated in blocks on several threads (app.archive.deflate); below
# it, the threads would hardly start before the file is done.
PARALLEL_THRESHOLD = 16 * 1024 * 1024

ALREADY_COMPRESSED_TYPES = {
    "application/zip",
    "application/gzip",
    "application/x-gzip",
    "application/x-bzip2",
    "application/x-xz",
    "application/x-7z-compressed",
    "application/vnd.rar",
    "application/x-rar-compressed",
    "application/zstd",
    "application/x-zstd",
    "application/java-archive",
    "application/epub+zip",
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/heic",
}
ALREADY_COMPRESSED_PREFIXES = ("video/", "audio/")
ALREADY_COMPRESSED_EXTENSIONS = {
    "zip", "gz", "tgz", "bz2", "xz", "7z", "rar", "zst", "jpg", "jpeg", "png", "gif", "webp",
    "avif", "heic", "mp4", "m4v", "mov", "mkv", "webm", "avi", "mp3", "m4a", "aac", "ogg",
    "opus", "flac", "docx", "xlsx", "pptx", "jar", "apk", "epub",
}  # fmt: skip


@dataclass(frozen=True)
class ArchiveResult:
    method: str  # "deflate" or "stored"
    compressed_size: int
    crc32: int
    size: int
    sha256: str  # of the original bytes, as read while compressing
    seek_index: bytes | None = None  # a deflated entry's points (app.archive.seek_index)
    # Where the entry's data starts in the archive, and how many bytes it is: what a
    # multi-file archive copies (app.archive.bundle), known without reading a header.
    entry_offset: int | None = None
    entry_compressed_size: int | None = None


def looks_compressed(content_type: str, name: str) -> bool:
    """Known compressed formats, by media type or extension."""
    content_type = content_type.lower()
    if content_type in ALREADY_COMPRESSED_TYPES or content_type.startswith(
        ALREADY_COMPRESSED_PREFIXES
    ):
        return True
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return ext in ALREADY_COMPRESSED_EXTENSIONS


def sample_shrinks(sample: bytes) -> bool:
    """Whether a sample deflates below STORE_RATIO of its size (cheap, ISA-L level 1)."""
    if not sample:
        return True
    compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)
    deflated = len(compressor.compress(sample)) + len(compressor.flush())
    return deflated < len(sample) * STORE_RATIO


def choose_method(reader: BinaryIO, content_type: str, name: str) -> str:
    """ "stored" for input that will not compress, "deflate" otherwise; rewinds the reader."""
    if looks_compressed(content_type, name):
        return "stored"
    sample = reader.read(SAMPLE_BYTES)
    reader.seek(0)
    return "deflate" if sample_shrinks(sample) else "stored"


class _Digest:
    """Size, CRC-32 and SHA-256 of the bytes read from the original.

    SHA-256 costs about a third of what deflate does here; hashlib and ISA-L both let go
    of the GIL, so the hash runs on a thread of its own beside the compression, a chunk
    or two behind it (never more: memory stays bounded).
    """

    IN_FLIGHT = 2

    def __init__(self, *, crc32: bool = True) -> None:
        self.size = 0
        self.crc32 = 0
        self._take_crc32 = crc32  # False: the parallel deflate takes it, on its threads
        self._sha256 = hashlib.sha256()

    def chunks(self, reader: BinaryIO, heartbeat: Callable[[], None]) -> Iterator[bytes]:
        pending: deque[Future[None]] = deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hasher:
            try:
                while chunk := reader.read(CHUNK_SIZE):
                    if self._take_crc32:
                        # ISA-L's CRC-32 is several times faster than zlib's (same polynomial).
                        self.crc32 = isal_zlib.crc32(chunk, self.crc32)
                    if len(pending) == self.IN_FLIGHT:
                        pending.popleft().result()
                    # One worker thread: the updates run in the order they are sent.
                    pending.append(hasher.submit(self._sha256.update, chunk))
                    self.size += len(chunk)
                    heartbeat()
                    yield chunk
                while pending:
                    pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()

    @property
    def sha256(self) -> str:
        """The hex digest; only once `chunks` was read to its end."""
        return self._sha256.hexdigest()

    def mismatch(self, size: int, crc32: int) -> str:
        return (
            f"the staged upload changed: read {self.size} bytes with CRC {self.crc32:08x}, "
            f"expected {size} bytes with CRC {crc32:08x}"
        )


def _open_source(storage: Storage, key: str, size: int) -> BinaryIO:
    if size == 0:
        # Nothing to read, and a ranged read of an empty object is an error on some servers
        # (416, or a malformed Content-Range from the GCS emulator): check it is still empty.
        stored = storage.size(key)
        if stored != 0:
            raise ArchiveMismatch(f"the staged upload changed: it has {stored} bytes, expected 0")
        return io.BytesIO()
    return storage.open(key)


def write_archive(
    storage: Storage,
    *,
    source_key: str,
    archive_key: str,
    entry_name: str,
    size: int,
    crc32: int,
    content_type: str,
    modified_at: dt.datetime,
    sha256: str | None = None,
    heartbeat: Callable[[], None] = lambda: None,
    compression: str = "fast",
    threads: int | None = None,
) -> ArchiveResult:
    """Write `source_key` as a one-entry ZIP to `archive_key`, then verify what was stored.

    `size`, `crc32` and (when known) `sha256` are what the upload measured; the bytes read
    must match them, and the stored archive's entry must match the bytes read, or
    ArchiveMismatch is raised and the archive is removed. `compression` is a DEFLATERS
    name; `threads` how many threads may deflate a file above PARALLEL_THRESHOLD (default:
    one per core this process may use).
    """
    deflater = DEFLATERS[compression]
    threads = usable_cores() if threads is None else threads
    written = 0
    head = bytearray()  # the archive's first bytes: its local header, parsed below
    with contextlib.ExitStack() as stack:
        reader = stack.enter_context(_open_source(storage, source_key, size))
        method_name = choose_method(reader, content_type, entry_name)
        parallel = (
            stack.enter_context(ParallelDeflate(deflater, threads))
            if method_name == "deflate" and threads > 1 and size > PARALLEL_THRESHOLD
            else None
        )
        # One thread: a full flush every SPAN, for the seek index (app.archive.seek_index).
        indexed = (
            IndexedDeflate(deflater.compressobj(), deflater.library, seek_index.SPAN)
            if method_name == "deflate" and parallel is None
            else None
        )
        digest = _Digest(crc32=parallel is None)
        if method_name == "stored":
            # STORED entries carry their size and CRC up front: the upload measured both.
            method = (
                NO_COMPRESSION_64(size, crc32)
                if size > ZIP32_LIMIT
                else NO_COMPRESSION_32(size, crc32)
            )
        else:
            method = ZIP_64 if size > ZIP32_LIMIT else ZIP_32
        member = (
            entry_name,
            modified_at.replace(tzinfo=None),
            0o644,
            method,
            digest.chunks(reader, heartbeat),
        )
        # stream-zip asks for a zlib compressor; both of ours have the same two methods.
        compressor: Any = parallel if parallel is not None else indexed
        get_compressobj: Callable[[], Any] = lambda: compressor  # noqa: E731
        # Create-only: nothing replaces an archive once written (each attempt has its key).
        with storage.writer(archive_key, "application/zip", create_only=True) as sink:
            # Raising inside the writer means the archive is never published.
            try:
                for block in stream_zip(
                    [member], chunk_size=ZIP_CHUNK, get_compressobj=get_compressobj
                ):
                    sink.write(block)
                    written += len(block)
                    if len(head) < HEAD_READ:
                        head += block[: HEAD_READ - len(head)]
            except (CRC32IntegrityError, UncompressedSizeIntegrityError):
                # A STORED entry declared the upload's size and CRC up front, and stream_zip
                # found that the bytes it read differ.
                raise ArchiveMismatch(digest.mismatch(size, crc32)) from None
            if parallel is not None:
                digest.crc32 = parallel.crc32  # combined from the blocks' CRCs
            read_sha256 = digest.sha256
            if (digest.size, digest.crc32) != (size, crc32) or sha256 not in (None, read_sha256):
                raise ArchiveMismatch(digest.mismatch(size, crc32))
    index = compressor.index() if compressor is not None else None
    try:
        entry_compressed_size = verify_archive(
            storage,
            archive_key,
            entry_name,
            size=size,
            crc32=crc32,
            length=written,
            compressed=None if index is None else index.compressed,
        )
        entry_offset = LocalHeader.parse(bytes(head)).data_offset
        if entry_offset + entry_compressed_size > written:
            raise ArchiveMismatch(
                f"stored entry's data ({entry_compressed_size} bytes from {entry_offset}) "
                f"runs past the archive's end ({written} bytes)"
            )
    except ArchiveMismatch:
        storage.delete(archive_key)
        raise
    return ArchiveResult(
        method=method_name,
        compressed_size=written,
        crc32=crc32,
        size=size,
        sha256=read_sha256,
        seek_index=None if index is None else index.to_bytes(),
        entry_offset=entry_offset,
        entry_compressed_size=entry_compressed_size,
    )


def verify_archive(
    storage: Storage,
    archive_key: str,
    entry_name: str,
    *,
    size: int,
    crc32: int,
    length: int,
    compressed: int | None = None,
) -> int:
    """Check the stored archive's length and its one entry's name, CRC and size (and,
    given `compressed`, the length of its data, which the seek index ends at); the length
    of its data."""
    stored_length = storage.size(archive_key)
    if stored_length != length:
        raise ArchiveMismatch(f"stored archive is {stored_length} bytes, wrote {length}")
    with storage.open(archive_key) as raw:
        try:
            entries = zipfile.ZipFile(raw).infolist()
        except zipfile.BadZipFile as exc:
            raise ArchiveMismatch(f"stored archive is not a ZIP: {exc}") from None
    if len(entries) != 1:
        raise ArchiveMismatch(f"stored archive has {len(entries)} entries, expected 1")
    entry = entries[0]
    if (entry.filename, entry.file_size, entry.CRC) != (entry_name, size, crc32):
        raise ArchiveMismatch(
            f"stored entry is {entry.filename!r} ({entry.file_size} bytes, CRC {entry.CRC:08x}); "
            f"expected {entry_name!r} ({size} bytes, CRC {crc32:08x})"
        )
    if compressed is not None and entry.compress_size != compressed:
        raise ArchiveMismatch(
            f"stored entry has {entry.compress_size} bytes of data; its index says {compressed}"
        )
    return entry.compress_size
