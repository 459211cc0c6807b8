"""Handlers for share links: the owner's (/api/v1/files/{id}/shares, /api/v1/shares) and the
public ones anyone with a link may call (/s/{token}, /s/{token}/content)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import uuid

import flask
from sqlalchemy.orm import Session

from app.errors import TooManyRequests, Unauthorized
from app.handlers.files import send_download
from app.http import ranges
from app.http.request import db, runtime
from app.http.responses import json_body
from app.http.security import owner
from app.http.streaming import Exchange
from app.models import File, Share
from app.runtime import Runtime
from app.services import files, shares

PASSWORD_HEADER = "X-Share-Password"  # noqa: S105 - a header name, not a password
# Anyone may hold the link, so its page must not leak it onward, nor its answers be kept by a
# shared cache (a revoked link must stop at once). A password link's answers are not kept at all.
PUBLIC_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "private, no-cache"}
PROTECTED_HEADERS = {**PUBLIC_HEADERS, "Cache-Control": "private, no-store"}
# What a 401 asks for: a browser prompts once for the password (any user name) and sends it
# again with every request under the link.
CHALLENGE = {"WWW-Authenticate": 'Basic realm="share link", charset="UTF-8"'}


def _public_base(rt: Runtime) -> str:
    return rt.settings.public_url.rstrip("/") or flask.request.host_url.rstrip("/")


def share_json(share: Share, base_url: str, secret: str) -> dict:
    """The owner's view of a link."""
    return {
        "id": str(share.id),
        "file_id": str(share.file_id),
        "url": f"{base_url}/s/{shares.token(secret, share.id)}",
        "serves": share.serves,
        "has_password": share.password_hash is not None,
        "max_downloads": share.max_downloads,
        "downloads": share.downloads,
        "last_downloaded_at": _iso(share.last_downloaded_at),
        "expires_at": _iso(share.expires_at),
        "revoked_at": _iso(share.revoked_at),
        "created_at": share.created_at.isoformat(),
        "state": shares.why_gone(share) or "active",
    }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


# --- the owner's routes ---------------------------------------------------------------------


def create(user: str, file_id: str, body: dict):
    """Make a link to one of your files."""
    rt = runtime()
    share = shares.create(
        db(),
        owner(user),
        uuid.UUID(file_id),
        expires_in_days=body.get("expires_in_days"),
        never_expires=body.get("never_expires", False),
        password=body.get("password"),
        max_downloads=body.get("max_downloads"),
        serves=body.get("serves", "zip"),
        max_days=rt.settings.share_max_days,
        allow_never=rt.settings.share_allow_never,
    )
    shown = share_json(share, _public_base(rt), rt.settings.secret_key)
    return json_body(shown, 201, Location=f"/api/v1/shares/{share.id}")


def _page(page: shares.Page):
    rt = runtime()
    base, secret = _public_base(rt), rt.settings.secret_key
    return json_body(
        {
            "items": [share_json(s, base, secret) for s in page.items],
            "next_cursor": page.next_cursor,
            "total": page.total,
        }
    )


def list_for_file(user: str, file_id: str, limit: int = 20, cursor: str | None = None):
    """The links of one of your files, newest first."""
    return _page(
        shares.list_shares(
            db(), owner(user), file_id=uuid.UUID(file_id), limit=limit, cursor=cursor
        )
    )


def list_all(user: str, limit: int = 20, cursor: str | None = None):
    """All your links, newest first."""
    return _page(shares.list_shares(db(), owner(user), limit=limit, cursor=cursor))


def revoke(user: str, share_id: str):
    """End a link at once."""
    shares.revoke(db(), owner(user), uuid.UUID(share_id))
    return None, 204


# --- the public routes ----------------------------------------------------------------------


def presented_password(headers) -> str | None:
    """The password from `X-Share-Password`, or from `Authorization: Basic` (any user)."""
    value = headers.get(PASSWORD_HEADER)
    if value is not None:
        return value
    scheme, _, credentials = (headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2]


def unlock(rt: Runtime, share: Share, password: str | None, address: str) -> None:
    """Let the request through a password link, or refuse it: 401, or 429 after too many
    wrong guesses from this address for this link (other links and accounts unaffected)."""
    if share.password_hash is None:
        return
    # The login throttle's counters, keyed by this link: a stranger guessing one link's
    # password is slowed down on that link only, never on the owner's account or links.
    key = f"share:{share.id}"
    try:
        rt.throttle.check(key, address)
    except TooManyRequests as exc:
        raise TooManyRequests(
            "Too many wrong passwords for this link from your address; try again later.",
            headers={**exc.headers, **PROTECTED_HEADERS},
        ) from None
    try:
        shares.check_password(share, password)
    except Unauthorized as exc:
        if password is not None:
            rt.throttle.failed(key, address)
        exc.headers.update({**CHALLENGE, **PROTECTED_HEADERS})
        raise
    rt.throttle.succeeded(key, address)


def _headers_for(share: Share) -> dict[str, str]:
    return dict(PROTECTED_HEADERS if share.password_hash is not None else PUBLIC_HEADERS)


def metadata(token: str):
    """What a link shares: the file's name, size and status (with the password, if it has one)."""
    rt = runtime()
    share, file = shares.resolve(db(), rt.settings.secret_key, token)
    unlock(rt, share, presented_password(flask.request.headers), _address(flask.request))
    name = file.name if share.serves == "original" else f"{file.name}.zip"
    body = {
        "name": name,
        "file_name": file.name,
        "size": file.size,
        "status": file.status.value,
        "serves": share.serves,
        "has_password": share.password_hash is not None,
        "expires_at": _iso(share.expires_at),
        "downloads_left": (
            None if share.max_downloads is None else share.max_downloads - share.downloads
        ),
    }
    return json_body(body, 200, **_headers_for(share))


def _address(request) -> str:
    return request.remote_addr or "unknown"


async def content(request: Exchange) -> None:
    """Download what the link shares (Range, ETag, If-Range supported)."""
    await _content(request, with_body=True)


async def content_head(request: Exchange) -> None:
    """The link's download headers without its bytes."""
    await _content(request, with_body=False)


def _find(session: Session, rt: Runtime, token: str) -> tuple[Share, File]:
    # An exhausted link still answers a resume of one of its counted downloads.
    share, file = shares.resolve(session, rt.settings.secret_key, token, exhausted_ok=True)
    session.expunge_all()
    return share, file


async def _content(request: Exchange, *, with_body: bool) -> None:
    rt = request.runtime
    share, file = await request.lookup(_find, rt, request.path_params["token"])
    client = request.scope.get("client")
    address = client[0] if client else "unknown"
    await request.run(unlock, rt, share, presented_password(request.headers), address)
    result = files.download_of(rt.storage, file, original=share.serves == "original")
    etag = await counted_etag(request, share, result, with_body=with_body)
    await send_download(
        request,
        dataclasses.replace(result, etag=etag),
        with_body=with_body,
        extra_headers=_headers_for(share),
    )


async def counted_etag(
    request: Exchange, share: Share, result: files.Download, *, with_body: bool
) -> str:
    """Count the download this request makes, if it makes one; the ETag to answer with.

    One download is a GET that sends the file from its first byte. A range request that
    starts further on, presenting in `If-Range` the ETag of a counted download of this link
    (a resume), is not counted again. On a link with a limit every other GET counts (a
    range from the middle without that ETag is a new download), and each counted download
    gets an ETag of its own to resume with. HEAD and 304 answers never count.
    """
    secret = request.runtime.settings.secret_key
    headers = request.headers
    limited = share.max_downloads is not None
    ticket = (
        shares.presented_ticket(
            secret, share, result.etag, headers.get("If-Range"), headers.get("If-None-Match")
        )
        if limited
        else None
    )
    etag = ticket or result.etag
    plan = ranges.answer(
        result.size,
        etag,
        range_header=headers.get("Range"),
        if_range=headers.get("If-Range"),
        if_none_match=headers.get("If-None-Match"),
    )
    resumes = ticket is not None and (plan.status == 304 or plan.start > 0)
    if shares.why_gone(share) == "exhausted" and not resumes:
        raise shares.gone("exhausted")
    if not with_body or plan.status == 304 or resumes:
        return etag
    if not limited and plan.start > 0:
        return etag  # a resume of an unlimited link: nothing to keep exact
    number = await request.lookup(shares.count_download, share.id)
    return shares.resume_ticket(secret, share, number, result.etag) if limited else etag
