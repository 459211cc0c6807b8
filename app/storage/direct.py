"""What a backend that lets clients write to it directly can do (GCS resumable sessions).

A capability, as tusd's stores declare theirs: `Storage.direct_sessions()` answers None
where the backend cannot (the local disk), and the services ask instead of branching on
the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ObjectFacts:
    """What the backend measured of a stored object: its size and checksums (base64 of the
    big-endian CRC32C and of the MD5 digest, as GCS reports them; None if not kept)."""

    size: int
    crc32c: str | None
    md5: str | None


class DirectSessions(Protocol):
    """Resumable sessions a client writes to without passing through this service."""

    @property
    def origin(self) -> str:
        """Where session URLs point (`scheme://host[:port]`): what a page must reach."""

    def open_session(self, key: str, *, size: int, content_type: str, origin: str | None) -> str:
        """A session URL for an object at `key` of exactly `size` bytes, usable from a
        browser page at `origin` (CORS); the URL alone lets its holder write the object."""

    def cancel_session(self, url: str) -> None:
        """End the session at `url` (what it stored so far goes); gone already is fine."""

    def facts(self, key: str) -> ObjectFacts | None:
        """Size and checksums of the object at `key`; None while no object is there (a
        session not finished)."""
