"""Handlers for /direct-uploads: bytes straight to the bucket (see app.services.direct_uploads)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from app.http.representations import file_json
from app.http.responses import NO_CONTENT, json_body
from app.http.streaming import Exchange, Reply
from app.services import direct_uploads, files
from app.services.direct_uploads import CHUNK_BYTES, Declaration
from app.services.resumable_uploads import Context, Limits

NO_STORE = {"Cache-Control": "no-store"}


def _context(request: Exchange) -> Context:
    rt = request.runtime
    return Context(request.session, rt.storage, rt.jobs, Limits.of(rt.settings))


def _offered(request: Exchange) -> bool:
    rt = request.runtime
    return rt.settings.direct_uploads and rt.storage.direct_sessions() is not None


async def offer(request: Exchange) -> None:
    """Whether direct uploads are offered, and how to send one."""
    await request.read(_caller, request)  # 401 once the token's session has ended
    await request.reply(
        json_body(
            {
                "enabled": _offered(request),
                "chunk_bytes": CHUNK_BYTES,
                "max_size": request.runtime.settings.max_upload_bytes,
            }
        )
    )


def _caller(session: Session, request: Exchange) -> uuid.UUID:
    return request.owner()


async def start(request: Exchange) -> None:
    """Start a direct upload."""
    body = await request.json()
    await request.reply(await request.lookup(_start, request, body))


def _start(session: Session, request: Exchange, body: dict) -> Reply:
    owner = request.owner()  # first: 401 once the token's session has ended
    ctx = _context(request)
    sessions = direct_uploads.sessions_of(ctx, _offered(request))
    declared = Declaration(
        name=body["name"],
        size=body["size"],
        folder_id=body.get("folder_id"),
        relative_path=body.get("relative_path"),
        content_type=body.get("content_type"),
        on_conflict=body.get("on_conflict"),
        crc32c=body.get("crc32c"),
        md5=body.get("md5"),
    )
    started = direct_uploads.start(
        ctx, sessions, owner, declared, origin=request.headers.get("origin")
    )
    upload = started.upload
    url = f"/api/v1/direct-uploads/{upload.id}"
    return json_body(
        {
            "id": str(upload.id),
            "url": url,
            "name": upload.name,
            "length": upload.length,
            "session_url": started.session_url,
            "chunk_bytes": CHUNK_BYTES,
            "expires_at": upload.expires_at.isoformat(),
        },
        201,
        Location=url,
        **NO_STORE,
    )


async def complete(request: Exchange) -> None:
    """Finish a direct upload once its session has every byte."""
    body = await request.json()
    await request.reply(await request.lookup(_complete, request, int(body["crc32"], 16)))


def _complete(session: Session, request: Exchange, crc32: int) -> Reply:
    owner = request.owner()  # first: 401 once the token's session has ended
    ctx = _context(request)
    sessions = direct_uploads.sessions_of(ctx, _offered(request))
    made, now = direct_uploads.complete(ctx, sessions, owner, request.uuid("upload_id"), crc32)
    file = files.get(session, owner, made.id)
    headers = {"ETag": files.etag(file)}
    if now:
        headers["Location"] = f"/api/v1/files/{file.id}"
    return json_body(file_json(file), 201 if now else 200, **headers)


async def cancel(request: Exchange) -> None:
    """Cancel a direct upload."""
    body = await request.json() or {}
    await request.lookup(_cancel, request, request.uuid("upload_id"), body.get("session_url"))
    await request.reply(NO_CONTENT)


def _cancel(session: Session, request: Exchange, upload_id: uuid.UUID, url: str | None) -> None:
    owner = request.owner()  # first: 401 once the token's session has ended
    ctx = _context(request)
    sessions = direct_uploads.sessions_of(ctx, _offered(request))
    direct_uploads.cancel(ctx, sessions, owner, upload_id, url)
