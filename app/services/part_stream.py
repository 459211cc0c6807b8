"""What a tus request's body is checked against as it passes: its declared checksum, its
size within the upload's length, and its CRC-32 (app.services.resumable_uploads)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from isal import isal_zlib

from app.errors import ChecksumMismatch, TooLarge

CHECKSUMS: dict[str, Callable[[], hashlib._Hash]] = {
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "md5": lambda: hashlib.md5(usedforsecurity=False),
    "sha256": hashlib.sha256,
}


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes


@dataclass(frozen=True)
class Chunk:
    """What a request says of the bytes it brings: where they go, how many, their digest."""

    offset: int = 0
    content_length: int | None = None  # None: the client did not say (chunked)
    checksum: Checksum | None = None


class NothingToKeep(Exception):
    """An empty body, or one cut short that cannot be verified against its checksum."""


class PartStream:
    """Measures a body as it passes: its size, CRC-32 and the requested checksum."""

    def __init__(self, limit: int, chunk: Chunk):
        self.limit = limit
        self.checksum, self.content_length = chunk.checksum, chunk.content_length
        self.size = 0
        self.crc32 = 0
        self._hash = CHECKSUMS[chunk.checksum.algorithm]() if chunk.checksum else None

    def feed(self, chunk: bytes) -> None:
        if self.size + len(chunk) > self.limit:
            raise TooLarge(
                f"The body runs past the upload's length ({self.limit} bytes remained).",
                limit="file",
            )
        self.size += len(chunk)
        self.crc32 = isal_zlib.crc32(chunk, self.crc32)
        if self._hash is not None:
            self._hash.update(chunk)

    @property
    def digest(self) -> bytes:
        return self._hash.digest() if self._hash is not None else b""

    def check(self, offset: int) -> None:
        """Raise unless what was copied is to be kept: not empty, whole, its checksum right."""
        cut_short = self.content_length is not None and self.size < self.content_length
        if self.size == 0 or (cut_short and self.checksum is not None):
            raise NothingToKeep
        if self.checksum is not None and self.digest != self.checksum.digest:
            raise ChecksumMismatch(
                f"The chunk's {self.checksum.algorithm} does not match Upload-Checksum; it "
                f"was discarded and the offset stays {offset}."
            )
