"""Handlers for what a page shows in place: an image's thumbnail (the owner's, and a link's
files'), and a link's audio and video played from their original bytes."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from app.http.downloads import send_download
from app.http.links import headers_for, presented_password, refusals_counted, unlock
from app.http.responses import content_disposition
from app.http.streaming import Exchange, Reply
from app.models import FilePreview, Share
from app.services import files, previews, shares

# A preview never changes once made (a file's bytes never do): cached for a day, privately.
PREVIEW_HEADERS = {
    "Cache-Control": "private, max-age=86400",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def _preview_reply(request: Exchange, preview: FilePreview, **headers: str) -> Reply:
    tag = f'"preview-{preview.file_id}"'
    if tag in (request.headers.get("If-None-Match") or ""):
        return b"", 304, {"ETag": tag, **PREVIEW_HEADERS, **headers}
    return (
        preview.data,
        200,
        {"Content-Type": preview.media_type, "ETag": tag, **PREVIEW_HEADERS, **headers},
    )


async def preview(request: Exchange) -> None:
    """The thumbnail of one of the caller's images."""
    await request.reply(await request.read(_preview, request))


def _preview(session: Session, request: Exchange) -> Reply:
    found = previews.find(session, request.owner(), request.uuid("file_id"))
    return _preview_reply(request, found)


def _link(session: Session, request: Exchange) -> Share:
    """The link of the path's token, let through (password and all); refusals counted."""
    rt = request.runtime
    with refusals_counted():
        share, _ = shares.resolve(session, rt.settings.secret_key, request.path_params["token"])
    unlock(rt, share, presented_password(request.headers), request.address)
    return share


def _member_id(request: Exchange, share: Share) -> uuid.UUID:
    """The file the path names: its `file_id`, or a one-file link's own file."""
    if "file_id" in request.path_params:
        return request.uuid("file_id")
    assert share.file_id is not None  # a folder or selection link names its file in the path
    return share.file_id


async def link_preview(request: Exchange) -> None:
    """The thumbnail of the image a one-file link shares."""
    await request.reply(await request.read(_shared_preview, request))


async def link_file_preview(request: Exchange) -> None:
    """The thumbnail of an image a folder or selection link holds."""
    await request.reply(await request.read(_shared_preview, request))


def _shared_preview(session: Session, request: Exchange) -> Reply:
    share = _link(session, request)
    with refusals_counted():
        found = previews.of_shared(session, share, _member_id(request, share))
    return _preview_reply(request, found, **headers_for(share))


async def link_media(request: Exchange) -> None:
    """The audio or video a one-file link shares, played in place (Range; not a download)."""
    await _media(request, with_body=True)


async def link_media_head(request: Exchange) -> None:
    """Its headers without its bytes."""
    await _media(request, with_body=False)


async def link_file_media(request: Exchange) -> None:
    """Audio or video a folder or selection link holds, played in place."""
    await _media(request, with_body=True)


async def link_file_media_head(request: Exchange) -> None:
    """Its headers without its bytes."""
    await _media(request, with_body=False)


async def _media(request: Exchange, *, with_body: bool) -> None:
    result = await request.read(_playable, request)
    await send_download(
        request,
        result,
        with_body=with_body,
        extra_headers={"Content-Disposition": content_disposition(result.filename, "inline")},
    )


def _playable(session: Session, request: Exchange) -> files.Download:
    share = _link(session, request)
    with refusals_counted():
        file = previews.playable(session, share, _member_id(request, share))
        result = files.download_of(request.runtime.storage, file, original=True)
    session.expunge_all()
    return result
