"""Previews: a small WebP thumbnail of an image, made by the worker, served from the database.

Only decoders for common photo and web formats are used (Pillow restricted to them, whatever
the file claims to be), and the result is re-encoded: nothing the uploader wrote is served
inline, no metadata carried over (EXIF orientation is applied, then dropped). A thumbnail is
about 5 to 30 KB and lives in `file_previews`, beside its file's row: it goes with the row
(a file's, a folder's or an account's delete), so it can never be an orphan object.

Memory is bounded: the source is spooled to a temporary file (never held), sources over
`MAX_SOURCE_BYTES` get no preview, and an image is decoded only when its pixels fit
`MAX_PIXELS` (a JPEG is first scaled down by its decoder, so large photos still get one).
A file that does not decode gets no preview and is otherwise untouched.
"""

from __future__ import annotations

import io
import logging
import tempfile
import uuid
import warnings
from dataclasses import dataclass
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Forbidden, NotFound
from app.models import File, FilePreview, Share
from app.services import files, selections
from app.storage import Storage

log = logging.getLogger(__name__)


class DecompressionBomb(Exception):
    """More pixels than Pillow's own limit: refused before decoding."""


EDGE = 320  # the longer side of a thumbnail, in pixels
MEDIA_TYPE = "image/webp"
# What a file's type must be for the worker to try, and the decoders it may use.
SOURCE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp"})
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP")
MAX_SOURCE_BYTES = 64 * 1024 * 1024
# Decoded at most (after a JPEG's reduction): 16 M pixels is 64 MiB as RGBA.
MAX_PIXELS = 16_000_000
MAX_PREVIEW_BYTES = 256 * 1024  # more than any 320 px WebP at this quality takes
# What a share page plays in place (the original bytes, with Range): common audio and
# video that browsers play themselves. Anything else is downloaded, never shown inline.
PLAYABLE = frozenset(
    {
        "audio/mpeg", "audio/ogg", "audio/wav", "audio/x-wav", "audio/flac", "audio/mp4",
        "audio/aac", "audio/webm", "video/mp4", "video/webm", "video/ogg",
    }
)  # fmt: skip
NO_PREVIEW = "This file has no preview: only images get one, once they are ready."


@dataclass(frozen=True)
class Preview:
    data: bytes
    width: int
    height: int
    media_type: str = MEDIA_TYPE

    def columns(self) -> dict:
        """Its `file_previews` row's values, but the file's id."""
        return {
            "media_type": self.media_type,
            "width": self.width,
            "height": self.height,
            "data": self.data,
        }


def find(session: Session, owner_id: uuid.UUID, file_id: uuid.UUID) -> FilePreview:
    """The preview of one of the owner's files; NotFound without one (or without the file)."""
    preview = session.scalar(
        select(FilePreview)
        .join(File, File.id == FilePreview.file_id)
        .where(File.id == file_id, File.owner_id == owner_id)
    )
    if preview is None:
        raise NotFound(NO_PREVIEW)
    return preview


def of_shared(session: Session, share: Share, file_id: uuid.UUID) -> FilePreview:
    """The preview of a file a link holds (the link already let through); NotFound for any
    other file, or without one."""
    file = selections.member(session, share, file_id, original=False)
    preview = session.get(FilePreview, file.id)
    if preview is None:
        raise NotFound(NO_PREVIEW)
    return preview


def with_previews(session: Session, file_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these files have a preview (one query; for a listing)."""
    if not file_ids:
        return set()
    found = session.scalars(select(FilePreview.file_id).where(FilePreview.file_id.in_(file_ids)))
    return set(found)


def plays_inline(share: Share, content_type: str) -> bool:
    """Whether a share page plays a file of this type in place: a playable type, on a link
    with neither a password (the page's player cannot present one) nor a download limit
    (a player's many range requests are no download, and must not spend one)."""
    return content_type in PLAYABLE and share.password_hash is None and share.max_downloads is None


def playable(session: Session, share: Share, file_id: uuid.UUID) -> File:
    """A file of the link that plays in place (see `plays_inline`), ready; Forbidden on a
    link with a download limit, NotFound for a file it does not hold or that does not play."""
    if share.max_downloads is not None:
        raise Forbidden(
            "This link counts its downloads, so its files do not play in the page: "
            "download them instead."
        )
    file = selections.member(session, share, file_id, original=True)
    if file.content_type not in PLAYABLE:
        raise NotFound("This file does not play in a page: download it instead.")
    files.ensure_ready(file)
    return file


def wanted(content_type: str, size: int) -> bool:
    """Whether the worker tries a preview of a file of this type and size."""
    return content_type in SOURCE_TYPES and 0 < size <= MAX_SOURCE_BYTES


def make(storage: Storage, key: str, content_type: str, size: int) -> Preview | None:
    """The thumbnail of the object at `key`, or None (not an image we make previews of, too
    large, or not decodable)."""
    if not wanted(content_type, size):
        return None
    with tempfile.TemporaryFile() as spool:
        for chunk in storage.iter_chunks(key):
            spool.write(chunk)
        spool.seek(0)
        try:
            return _thumbnail(spool)
        except (OSError, ValueError, SyntaxError, DecompressionBomb) as exc:
            log.info("no preview of %s: %s", key, exc)
            return None


def _thumbnail(source: IO[bytes]) -> Preview | None:
    from PIL import Image, ImageOps  # the worker's alone: the API never loads Pillow

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            opened = Image.open(source, formats=FORMATS)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise DecompressionBomb(str(exc)) from None
        with opened as image:
            image.draft("RGB", (EDGE, EDGE))  # JPEG: decode at 1/2 to 1/8 of its size
            if image.width * image.height > MAX_PIXELS:
                return None
            image.load()
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail((EDGE, EDGE), Image.Resampling.LANCZOS)
            alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
            mode = "RGBA" if alpha else "RGB"
            out = io.BytesIO()
            upright.convert(mode).save(out, "WEBP", quality=75, method=4)
    data = out.getvalue()
    if len(data) > MAX_PREVIEW_BYTES:
        return None
    return Preview(data, upright.width, upright.height)
