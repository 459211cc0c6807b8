"""Handlers for /upload_files and /files: upload, list, get, rename, delete and download."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterator, Mapping

import flask
from sqlalchemy.orm import Session

from app.db import without_transaction
from app.errors import InvalidInput
from app.http import ranges
from app.http.multipart import FORM_KEY, UPLOAD_KEY
from app.http.request import db, runtime
from app.http.responses import JSON, content_disposition, json_body
from app.http.security import owner, owner_in, presented_token
from app.http.streaming import Allowance, Exchange
from app.models import File
from app.services import files

DOWNLOAD_CSP = "default-src 'none'; sandbox"


def file_json(file: files.Listed) -> dict:
    """The public representation of a file."""
    return {
        "id": str(file.id),
        "name": file.name,
        "status": file.status.value,
        "size": file.size,
        "compressed_size": file.compressed_size,
        "content_type": file.content_type,
        "sha256": file.sha256,
        "error": file.error,
        "created_at": file.created_at.isoformat(),
        "updated_at": file.updated_at.isoformat(),
        "processed_at": file.processed_at.isoformat() if file.processed_at else None,
    }


def _file_response(file: File, status: int = 200, **headers: str):
    return json_body(file_json(file), status, ETag=files.etag(file), **headers)


def upload_multipart(user: str):
    """Upload a file as a multipart form; it is compressed in the background."""
    scope = flask.request.environ["asgi.scope"]
    spooled = scope["extensions"].get(UPLOAD_KEY)
    form = scope["extensions"].get(FORM_KEY, {})
    if spooled is None:
        raise InvalidInput("The form has no 'file' part.")
    try:
        rt = runtime()
        file = files.create(
            db(),
            rt.storage,
            rt.jobs,
            owner_id=owner(user),
            upload=spooled,
            name=form.get("name"),
            quota_bytes=rt.settings.quota_bytes,
        )
    finally:
        spooled.discard()
    return _file_response(file, 202, Location=f"/api/v1/files/{file.id}")


# The spec's defaults for GET /files (tests/handlers/test_files.py holds them to it).
LIST_DEFAULTS = {"limit": "20", "sort": "-created_at"}


async def list_files(request: Exchange) -> None:
    """Your files, a page at a time.

    The most frequent request of all, so it skips Flask as the streaming operations do
    (app.http.streaming): Connexion has routed, authenticated and validated it by now,
    and what is left is one trip to a worker thread for its one query (two for an empty
    page).
    """
    query = request.query
    listing = functools.partial(
        files.list_files,
        limit=int(query.get("limit", LIST_DEFAULTS["limit"])),
        cursor=query.get("cursor"),
        status=query.get("status"),
        sort=query.get("sort", LIST_DEFAULTS["sort"]),
    )
    body = await request.run(_page_body, request, listing)
    await request.respond(200, JSON, body)


def _page_body(request: Exchange, listing: Callable[..., files.Page]) -> bytes:
    token = presented_token(request.user)
    with request.runtime.sessions() as session:
        without_transaction(session)
        # The page's statement checks the token's session too (no trip of its own for it).
        page = listing(session, token.user_id, token=token)
        items = [file_json(f) for f in page.items]
    body = {"items": items, "next_cursor": page.next_cursor, "total": page.total}
    return json.dumps(body, separators=(",", ":")).encode()


def get_file(user: str, file_id: str):
    """One file."""
    return _file_response(files.get(db(), owner(user), uuid.UUID(file_id)))


def rename(user: str, file_id: str, body: dict):
    """Rename a file."""
    file = files.rename(
        db(),
        owner(user),
        uuid.UUID(file_id),
        body["name"],
        if_match=flask.request.headers.get("If-Match"),
    )
    return _file_response(file)


def delete(user: str, file_id: str):
    """Delete a file and its stored objects."""
    files.delete(db(), runtime().storage, owner(user), uuid.UUID(file_id))
    return None, 204


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
    owner_id = owner_in(session, request.user)
    return files.download(session, request.runtime.storage, owner_id, file_id, original=original)


async def send_download(
    request: Exchange,
    result: files.Download,
    *,
    with_body: bool,
    extra_headers: Mapping[str, str] | None = None,
    allowance: Allowance | None = None,
) -> int:
    """Answer with `result`'s bytes: ranges, conditional requests, HEAD; how many bytes of
    the body were sent (fewer than asked when the client went away, or `allowance` refused
    to let more go: see `Exchange.send_chunks`)."""
    headers = request.headers
    plan = ranges.answer(
        result.size,
        result.etag,
        range_header=headers.get("Range"),
        if_range=headers.get("If-Range"),
        if_none_match=headers.get("If-None-Match"),
    )
    response_headers = {
        **plan.headers,
        "Content-Disposition": content_disposition(result.filename),
        # The bytes are whatever the uploader sent: never a page of ours that runs.
        "Content-Security-Policy": DOWNLOAD_CSP,
        **(extra_headers or {}),
    }
    if plan.status != 304:
        response_headers["Content-Type"] = result.content_type
    if not with_body or plan.status == 304:
        await request.respond(plan.status, response_headers)
        return 0
    chunks = result.chunks_from(plan.start, plan.length)
    # The first chunk before the status line: storage that does not answer is then a 503
    # with Retry-After (see app.http.problems), not a 200 that ends short.
    first = await request.run(next, chunks, b"")
    await request.respond(plan.status, response_headers, more=True)
    return await request.send_chunks(_beginning_with(first, chunks), allowance)


def _beginning_with(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest
