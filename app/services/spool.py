"""An upload body that has been streamed to a local spool file, with its digests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SpooledUpload:
    """The bytes of one uploaded file, on local disk, measured as they streamed in."""

    path: Path
    filename: str | None = None
    content_type: str | None = None
    size: int = 0
    crc32: int = 0
    _sha256: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)

    @classmethod
    def create(cls, spool_dir: Path) -> tuple[SpooledUpload, int]:
        """A new empty spool file and its descriptor."""
        spool_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=spool_dir, prefix="upload-")
        return cls(path=Path(name)), fd

    def update(self, chunk: bytes | memoryview) -> None:
        self.size += len(chunk)
        self.crc32 = zlib.crc32(chunk, self.crc32)
        self._sha256.update(chunk)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def discard(self) -> None:
        """Remove the spool file if it is still there (after a failure, or once consumed)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
