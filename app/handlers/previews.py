"""Handler for /files/{file_id}/preview: an image's thumbnail, made by the worker."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.http.streaming import Exchange, Reply
from app.services import previews

# A preview never changes once made (a file's bytes never do): cached for a day, privately.
HEADERS = {
    "Cache-Control": "private, max-age=86400",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


async def get(request: Exchange) -> None:
    """The thumbnail of one of the caller's images."""
    await request.reply(await request.read(_get, request))


def _get(session: Session, request: Exchange) -> Reply:
    preview = previews.find(session, request.owner(), request.uuid("file_id"))
    tag = f'"preview-{preview.file_id}"'
    if tag in (request.headers.get("If-None-Match") or ""):
        return b"", 304, {"ETag": tag, **HEADERS}
    return preview.data, 200, {"Content-Type": preview.media_type, "ETag": tag, **HEADERS}
