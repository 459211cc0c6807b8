"""Handlers for /uploads: resumable uploads over tus 1.0 (see app.services.resumable_uploads)."""

from __future__ import annotations

import uuid
from email.utils import format_datetime

from sqlalchemy.orm import Session

from app.errors import RequestTimeout
from app.http import tus
from app.http.representations import upload_json
from app.http.responses import empty, json_body
from app.http.streaming import Disconnected, Exchange, Reply
from app.services import part_stream, resumable_uploads
from app.services.resumable_uploads import Chunk, Context, Limits, PartWriter, Progress

NO_STORE = {"Cache-Control": "no-store"}


def _progress_headers(progress: Progress) -> dict[str, str]:
    headers = {"Upload-Offset": str(progress.offset)}
    if progress.file is None:
        headers["Upload-Expires"] = format_datetime(progress.expires_at, usegmt=True)
    return headers


async def options(request: Exchange) -> None:
    """What this tus server supports (tus 1.0 discovery; also a CORS preflight)."""
    await request.reply(
        empty(
            204,
            {
                "Tus-Version": tus.VERSION,
                "Tus-Extension": ",".join(tus.EXTENSIONS),
                "Tus-Max-Size": str(request.runtime.settings.max_upload_bytes),
                "Tus-Checksum-Algorithm": ",".join(part_stream.CHECKSUMS),
            },
        )
    )


async def list_uploads(request: Exchange) -> None:
    """Your unfinished resumable uploads, newest first."""
    await request.reply(await request.read(_unfinished, request))


def _unfinished(session: Session, request: Exchange) -> Reply:
    limit = int(request.query.get("limit", "100"))
    uploads, total = resumable_uploads.unfinished(session, request.owner(), limit=limit)
    return json_body(
        {"items": [upload_json(upload) for upload in uploads], "total": total}, 200, **NO_STORE
    )


async def create(request: Exchange) -> None:
    """Start a resumable upload (tus creation), optionally with its first bytes.

    The first bytes stream on the event loop (see app.http.streaming), like a PATCH's.
    """
    headers = request.headers
    with_body = request.has_body()
    if with_body:
        tus.check_content_type(headers.get("Content-Type"))
    length = int(headers["Upload-Length"])
    metadata = tus.parse_metadata(headers.get("Upload-Metadata"))
    first = tus.parse_chunk(headers, 0, request.content_length)
    progress, part = await request.run_checks_alone(
        _begin_create, request, length=length, metadata=metadata, first=first if with_body else None
    )
    if part is not None:
        progress = await _receive_part(request, part)
    await request.respond(
        201, {"Location": f"/api/v1/uploads/{progress.id}", **_progress_headers(progress)}
    )


def _context(request: Exchange) -> Context:
    rt = request.runtime
    return Context(request.session, rt.storage, rt.jobs, Limits.of(rt.settings))


def _begin_create(request: Exchange, **kwargs):
    return resumable_uploads.begin_create(_context(request), request.owner(), **kwargs)


async def _receive_part(request: Exchange, part: PartWriter) -> Progress:
    """The body into `part`; a body that goes idle keeps what arrived (408 says where)."""
    try:
        await request.write_body(part.write)
    except Disconnected:
        await request.run(part.finish)
        raise
    except RequestTimeout as exc:
        # tus keeps a body cut short as far as it got (unless it had a checksum).
        progress = await request.run(part.finish)
        exc.headers["Upload-Offset"] = str(progress.offset)
        raise
    except BaseException as exc:
        await request.run(part.abort, exc)
        raise
    return await request.run(part.finish)


async def head(request: Exchange) -> None:
    """How far a resumable upload got."""
    progress = await request.read(_progress, request)
    await request.reply(
        empty(
            200,
            {**_progress_headers(progress), "Upload-Length": str(progress.length), **NO_STORE},
        )
    )


def _progress(session: Session, request: Exchange) -> Progress:
    return resumable_uploads.get(session, request.owner(), request.uuid("upload_id"))


async def patch(request: Exchange) -> None:
    """Append bytes at `Upload-Offset` (tus core); the body streams on the event loop."""
    headers = request.headers
    tus.check_content_type(headers.get("Content-Type"))
    part = await request.run_checks_alone(
        _begin_append,
        request,
        uuid.UUID(request.path_params["upload_id"]),
        tus.parse_chunk(headers, int(headers["Upload-Offset"]), request.content_length),
    )
    progress = await _receive_part(request, part)
    await request.respond(204, _progress_headers(progress))


def _begin_append(request: Exchange, upload_id: uuid.UUID, chunk: Chunk) -> PartWriter:
    return resumable_uploads.begin_append(_context(request), request.owner(), upload_id, chunk)


async def terminate(request: Exchange) -> None:
    """Cancel a resumable upload and remove its bytes (tus termination)."""
    await request.lookup(_terminate, request)
    await request.reply(empty(204, {}))


def _terminate(session: Session, request: Exchange) -> None:
    resumable_uploads.terminate(
        session, request.runtime.storage, request.owner(), request.uuid("upload_id")
    )
