"""Handlers for /uploads: resumable uploads over tus 1.0 (see app.services.resumable_uploads)."""

from __future__ import annotations

import uuid
from email.utils import format_datetime

import flask

from app.http import tus
from app.http.request import db, runtime
from app.http.responses import empty
from app.http.security import owner
from app.services import resumable_uploads
from app.services.resumable_uploads import Progress

NO_STORE = {"Cache-Control": "no-store"}


def _progress_headers(progress: Progress) -> dict[str, str]:
    headers = {"Upload-Offset": str(progress.offset)}
    if progress.file is None:
        headers["Upload-Expires"] = format_datetime(progress.expires_at, usegmt=True)
    return headers


def _has_body(request: flask.Request) -> bool:
    return (
        bool(request.content_length)
        or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    )


def options():
    """What this tus server supports (tus 1.0 discovery; also a CORS preflight)."""
    return empty(
        204,
        {
            "Tus-Version": tus.VERSION,
            "Tus-Extension": ",".join(tus.EXTENSIONS),
            "Tus-Max-Size": str(runtime().settings.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(resumable_uploads.CHECKSUMS),
        },
    )


def create(user: str):
    """Start a resumable upload (tus creation), optionally with its first bytes."""
    request = flask.request
    with_body = _has_body(request)
    if with_body:
        tus.check_content_type(request.headers.get("Content-Type"))
    rt = runtime()
    progress = resumable_uploads.create(
        db(),
        rt.storage,
        rt.jobs,
        owner_id=owner(user),
        length=int(request.headers["Upload-Length"]),
        metadata=tus.parse_metadata(request.headers.get("Upload-Metadata")),
        max_file_bytes=rt.settings.max_upload_bytes,
        quota_bytes=rt.settings.quota_bytes,
        expiry_seconds=rt.settings.upload_expiry_seconds,
        body=request.environ["wsgi.input"] if with_body else None,
        content_length=request.content_length,
        checksum=tus.parse_checksum(request.headers.get("Upload-Checksum")),
    )
    return empty(201, {"Location": f"/api/v1/uploads/{progress.id}", **_progress_headers(progress)})


def head(user: str, upload_id: str):
    """How far a resumable upload got."""
    progress = resumable_uploads.get(db(), owner(user), uuid.UUID(upload_id))
    return empty(
        200, {**_progress_headers(progress), "Upload-Length": str(progress.length), **NO_STORE}
    )


def patch(user: str, upload_id: str):
    """Append bytes at `Upload-Offset` (tus core)."""
    request = flask.request
    tus.check_content_type(request.headers.get("Content-Type"))
    rt = runtime()
    progress = resumable_uploads.append(
        db(),
        rt.storage,
        rt.jobs,
        owner_id=owner(user),
        upload_id=uuid.UUID(upload_id),
        offset=int(request.headers["Upload-Offset"]),
        body=request.environ["wsgi.input"],
        content_length=request.content_length,
        checksum=tus.parse_checksum(request.headers.get("Upload-Checksum")),
        expiry_seconds=rt.settings.upload_expiry_seconds,
    )
    return empty(204, _progress_headers(progress))


def terminate(user: str, upload_id: str):
    """Cancel a resumable upload and remove its bytes (tus termination)."""
    resumable_uploads.terminate(db(), runtime().storage, owner(user), uuid.UUID(upload_id))
    return empty(204, {})
