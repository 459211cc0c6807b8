"""Handlers for /upload_files and /files: upload, list, get, rename, delete and download."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.http.downloads import send_download
from app.http.multipart import FORM_KEY, UPLOAD_KEY
from app.http.representations import file_json
from app.http.responses import JSON, NO_CONTENT, json_body
from app.http.streaming import Exchange, Reply
from app.models import File
from app.services import files

DOWNLOAD_CSP = "default-src 'none'; sandbox"


def _file_response(file: File, status: int = 200, **headers: str) -> Reply:
    return json_body(file_json(file), status, ETag=files.etag(file), **headers)


async def upload_multipart(request: Exchange) -> None:
    """Upload a file as a multipart form; it is compressed in the background."""
    extensions = request.scope["extensions"]
    spooled = extensions.get(UPLOAD_KEY)
    form = extensions.get(FORM_KEY, {})
    if spooled is None:
        raise InvalidInput("The form has no 'file' part.")
    try:
        reply = await request.lookup(_create, request, spooled, form)
    finally:
        await request.run(spooled.discard)
    await request.reply(reply)


def _create(session: Session, request: Exchange, spooled, form: dict[str, str]) -> Reply:
    rt = request.runtime
    folder_id = form.get("folder_id")
    file = files.create(
        session,
        rt.storage,
        rt.jobs,
        owner_id=request.owner(),
        upload=spooled,
        name=form.get("name"),
        quota_bytes=rt.settings.quota_bytes,
        folder_id=uuid.UUID(folder_id) if folder_id else None,
        relative_path=form.get("relative_path"),
        on_conflict=form.get("on_conflict") or "refuse",
    )
    return _file_response(file, 202, Location=f"/api/v1/files/{file.id}")


# The spec's defaults for GET /files (tests/handlers/test_files.py holds them to it).
LIST_DEFAULTS = {"limit": "20", "sort": "-created_at"}


async def list_files(request: Exchange) -> None:
    """Your files, a page at a time.

    The most frequent request of all: one trip to a worker thread for its one query (two
    for an empty page), which checks the token's session too.
    """
    query = request.query
    listing = functools.partial(
        files.list_files,
        limit=int(query.get("limit", LIST_DEFAULTS["limit"])),
        cursor=query.get("cursor"),
        status=query.get("status"),
        sort=query.get("sort", LIST_DEFAULTS["sort"]),
        folder=query.get("folder_id"),
    )
    body = await request.read(_page_body, request, listing)
    await request.respond(200, JSON, body)


def _page_body(session: Session, request: Exchange, listing: Callable[..., files.Page]) -> bytes:
    token = request.token()
    # The page's statement checks the token's session too (no trip of its own for it).
    page = listing(session, token.user_id, token=token, used=request.used)
    items = [file_json(f) for f in page.items]
    body = {"items": items, "next_cursor": page.next_cursor, "total": page.total}
    return json.dumps(body, separators=(",", ":")).encode()


async def get_file(request: Exchange) -> None:
    """One file."""
    await request.reply(await request.read(_get_file, request))


def _get_file(session: Session, request: Exchange) -> Reply:
    return _file_response(files.get(session, request.owner(), request.uuid("file_id")))


async def rename(request: Exchange) -> None:
    """Rename a file, or move it to another folder."""
    body = await request.json()
    await request.reply(await request.lookup(_rename, request, body))


def _rename(session: Session, request: Exchange, body: dict) -> Reply:
    move = {}
    if "folder_id" in body:
        folder = body["folder_id"]
        move["folder_id"] = uuid.UUID(folder) if folder is not None else None
    file = files.rename(
        session,
        request.owner(),
        request.uuid("file_id"),
        body.get("name"),
        if_match=request.headers.get("If-Match"),
        **move,
    )
    return _file_response(file)


async def delete(request: Exchange) -> None:
    """Delete a file and its stored objects."""
    await request.lookup(_delete, request)
    await request.reply(NO_CONTENT)


def _delete(session: Session, request: Exchange) -> None:
    files.delete(session, request.runtime.storage, request.owner(), request.uuid("file_id"))


async def download(request: Exchange) -> None:
    """Download the ZIP, or with `format=original` the original bytes (Range supported).

    Served on the event loop (see app.http.streaming): a client that reads slowly, or not
    at all, holds no thread.
    """
    await _download(request, with_body=True)


async def download_head(request: Exchange) -> None:
    """The download's headers (size, ETag, ranges) without its bytes."""
    await _download(request, with_body=False)


async def _download(request: Exchange, *, with_body: bool) -> None:
    result = await request.lookup(
        _find_download,
        request,
        uuid.UUID(request.path_params["file_id"]),
        original=request.query.get("format", "zip") == "original",
    )
    await send_download(request, result, with_body=with_body)


def _find_download(
    session: Session, request: Exchange, file_id: uuid.UUID, *, original: bool
) -> files.Download:
    return files.download(
        session, request.runtime.storage, request.owner(), file_id, original=original
    )
