"""Handlers for share links: the owner's (/api/v1/files/{id}/shares, /api/v1/shares) and the
public ones anyone with a link may call (/s/{token}: JSON or the share page by `Accept`,
/s/{token}/content, /s/{token}/grants)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator, Mapping

import flask
from sqlalchemy.orm import Session

from app import observability
from app.errors import AppError, Gone, NotFound, NotReady, TooManyRequests, Unauthorized
from app.handlers import share_page
from app.handlers.files import send_download
from app.http import attempts, ranges
from app.http.middleware import FORM
from app.http.request import db, runtime
from app.http.responses import empty, json_body
from app.http.security import owner
from app.http.streaming import Exchange
from app.models import File, Share
from app.runtime import Runtime
from app.services import files, grants, shares
from app.services.throttle import Subject

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
        expires_in_hours=body.get("expires_in_hours"),
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
        # Header values arrive as Latin-1 text; a client that sent UTF-8 bytes (curl, the
        # browser's fetch, httpx all do for non-ASCII) means those bytes' UTF-8 reading.
        try:
            return value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
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
    wrong guesses (see app.services.throttle; other links and accounts unaffected)."""
    if share.password_hash is None:
        return
    try:
        if password is None:
            shares.check_password(share, password)  # 401 asking for it; nothing to count
        # Counted before it is verified, by the throttle's counters keyed by this link: a
        # stranger guessing one link's password is slowed down on that link only.
        attempt = attempts.current() or rt.throttle.begin(
            shares.throttle_key(share.id), address, subject=Subject.LINK, may_wait=False
        )
        try:
            attempt.admit()
        except TooManyRequests:
            observability.share_refused("throttled")
            raise
        try:
            shares.check_password(share, password)
        except Unauthorized:
            attempt.failed()
            observability.share_refused("bad_password")
            raise
        attempt.succeeded()
    except Unauthorized as exc:
        exc.headers.update({**CHALLENGE, **PROTECTED_HEADERS})
        raise
    except TooManyRequests as exc:
        exc.headers.update(PROTECTED_HEADERS)
        raise


@contextlib.contextmanager
def refusals_counted() -> Iterator[None]:
    """Count the link's refusals that pass through, by reason (gone, not ready); wrong
    passwords and throttling are counted where they are decided (`unlock`)."""
    try:
        yield
    except Gone as exc:
        observability.share_refused(str(exc.extra.get("reason")))
        raise
    except NotReady:
        observability.share_refused("not_ready")
        raise


def _headers_for(share: Share) -> dict[str, str]:
    return dict(PROTECTED_HEADERS if share.password_hash is not None else PUBLIC_HEADERS)


def prefers_html(request: flask.Request) -> bool:
    """Whether the client (a browser) would rather have the page than JSON."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def metadata(token: str):
    """What a link shares: the file's name, size and status (with the password, if it has one)."""
    if prefers_html(flask.request):
        return page(token)
    rt = runtime()
    try:
        with refusals_counted():
            share, file = shares.resolve(db(), rt.settings.secret_key, token)
        unlock(rt, share, presented_password(flask.request.headers), _address(flask.request))
    except AppError as exc:
        exc.headers["Vary"] = "Accept"  # the same URL answers a browser with the page
        raise
    name = file.name if share.serves == "original" else f"{file.name}.zip"
    body = {
        "name": name,
        "file_name": file.name,
        "size": file.size,
        "status": file.status.value,
        "serves": share.serves,
        "has_password": share.password_hash is not None,
        "expires_at": _iso(share.expires_at),
        "downloads_left": _downloads_left(share),
    }
    return json_body(body, 200, Vary="Accept", **_headers_for(share))


def _downloads_left(share: Share) -> int | None:
    return None if share.max_downloads is None else share.max_downloads - share.downloads


def _address(request) -> str:
    return request.remote_addr or "unknown"


# --- the share page (HTML) ----------------------------------------------------------------


_GONE_PAGE = {
    "expired": ("This link has expired", "Ask the person who sent it to you for a new one."),
    "revoked": ("This link was turned off", "Its owner revoked it; ask them for a new one."),
    "exhausted": (
        "This link has been used up",
        "It has given all the downloads it allowed; ask its owner for a new one.",
    ),
}


def _shared_file(share: Share, file: File) -> share_page.SharedFile:
    return share_page.SharedFile(
        name=file.name if share.serves == "original" else f"{file.name}.zip",
        size=file.size,
        download_size=file.compressed_size,
        serves=share.serves,
        status=file.status.value,
        expires_at=share_page.when(share.expires_at),
        downloads_left=_downloads_left(share),
    )


def page_token(rt: Runtime, share: Share | None) -> str:
    """The token the share page's own URLs are built from: the link's, from its id, never
    the spelling in the request's path."""
    return shares.token(rt.settings.secret_key, share.id) if share is not None else ""


def page_for_error(
    exc: AppError,
    *,
    root: str,
    token: str,
    share: Share | None = None,
    file: File | None = None,
    password_given: bool = False,
) -> flask.Response:
    """The page that says why a link refused (instead of a problem+json); `token` as
    `page_token` gives it."""
    headers = {k: v for k, v in exc.headers.items() if k != "WWW-Authenticate"}
    if share is not None:
        headers.update(_headers_for(share))
    else:
        headers.update(PUBLIC_HEADERS)
    if isinstance(exc, Gone):
        title, message = _GONE_PAGE[str(exc.extra.get("reason"))]
        return share_page.render(
            410,
            state="gone",
            title=title,
            root=root,
            message=message,
            tone="error",
            headers=headers,
        )
    if isinstance(exc, NotFound):
        return share_page.render(
            404,
            state="gone",
            title="There is no such link",
            root=root,
            message="Check that you copied the whole link, or ask for a new one.",
            tone="error",
            headers=headers,
        )
    locked = share is not None and share.password_hash is not None
    if isinstance(exc, Unauthorized):
        wrong = "That password is not right; try again." if password_given else ""
        return share_page.render(
            401,
            state="locked",
            title="A password is needed",
            root=root,
            token=token,
            message=wrong,
            tone="error",
            password_form=True,
            headers={**headers, **share_page.FORM_CHALLENGE},
        )
    if isinstance(exc, TooManyRequests):
        retry = exc.headers.get("Retry-After", "60")
        # The throttle's own sentence says whose guesses it was (this address's, or a
        # campaign's against the link); the page words the wait for people.
        why = exc.detail.partition(";")[0]
        return share_page.render(
            429,
            state="locked",
            title="Too many password attempts",
            root=root,
            token=token,
            message=f"{why}. Try again in {_wait(retry)}.",
            tone="error",
            password_form=True,
            headers=headers,
        )
    if isinstance(exc, NotReady) and share is not None and file is not None:
        if "Retry-After" in exc.headers:
            title, message = (
                "Not ready yet",
                "The file is still being prepared. Try again in a minute.",
            )
        else:  # it failed: no point in waiting
            title, message = "Cannot be downloaded", "The file could not be prepared."
        return share_page.render(
            409,
            state="not_ready",
            title=title,
            root=root,
            token=token,
            file=_shared_file(share, file),
            message=message,
            password_form=locked,
            headers=headers,
        )
    raise exc


def _wait(retry_after: str) -> str:
    seconds = int(retry_after) if retry_after.isdigit() else 60
    if seconds < 90:
        return f"{seconds} seconds" if seconds != 1 else "1 second"
    return f"{round(seconds / 60)} minutes"


def page(token: str) -> flask.Response:
    """The share page: the file and a download button, a password form, or why not."""
    rt = runtime()
    share: Share | None = None
    file: File | None = None
    password = presented_password(flask.request.headers)
    try:
        with refusals_counted():
            share, file = shares.resolve(db(), rt.settings.secret_key, token)
            unlock(rt, share, password, _address(flask.request))
            files.ensure_ready(file)
    except AppError as exc:
        return page_for_error(
            exc,
            root="",
            token=page_token(rt, share),
            share=share,
            file=file,
            password_given=password is not None,
        )
    shown = _shared_file(share, file)
    return share_page.render(
        200,
        state="ready",
        title=shown.name,
        root="",
        token=page_token(rt, share),
        file=shown,
        password_form=share.password_hash is not None,
        headers=_headers_for(share),
    )


# --- downloads ------------------------------------------------------------------------------


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
    with refusals_counted():
        share, file = await request.lookup(_find, rt, request.path_params["token"])
    client = request.scope.get("client")
    address = client[0] if client else "unknown"
    await request.run(unlock, rt, share, presented_password(request.headers), address)
    await send_shared(request, share, file, with_body=with_body, extra_headers=_headers_for(share))


async def send_shared(
    request: Exchange,
    share: Share,
    file: File,
    *,
    with_body: bool,
    extra_headers: Mapping[str, str],
) -> None:
    """Answer with what `share` serves, counting the download (a link's or a grant's)."""
    with refusals_counted():
        result = files.download_of(
            request.runtime.storage, file, original=share.serves == "original"
        )
        etag, resume = await counted_etag(request, share, result, with_body=with_body)
    sent = 0
    try:
        sent = await send_download(
            request,
            dataclasses.replace(result, etag=etag),
            with_body=with_body,
            extra_headers=extra_headers,
            allowance=resume.reserve if resume is not None else None,
        )
    finally:
        if resume is not None:
            await resume.settle(sent)


class Resume:
    """A resume this request makes: it reserves its bytes from its download's budget a
    `shares.resume_step` ahead of what it sends, and gives back, once it ends, what it
    reserved and did not send (its client went away)."""

    def __init__(self, request: Exchange, share_id: uuid.UUID, number: int, length: int, size: int):
        self.request = request
        self.share_id = share_id
        self.number = number
        self.length = length
        self.size = size
        self.step = shares.resume_step(size)
        self.reserved = 0

    async def reserve(self, upto: int) -> bool:
        """Whether the first `upto` bytes of this answer may be sent (reserving the next
        step when they are not yet)."""
        if upto <= self.reserved:
            return True
        more = min(self.length - self.reserved, max(upto - self.reserved, self.step))
        granted = await self.request.lookup(
            shares.reserve_resume, self.share_id, self.number, more, size=self.size, window=None
        )
        if granted:
            self.reserved += more
        return granted

    async def start(self, window: dt.timedelta) -> bool:
        """Whether the ticket resumes (within `window` of its download's start, with room
        left in its budget for all this answer sends), reserving the first step if so."""
        first = min(self.length, self.step)
        granted = await self.request.lookup(
            shares.reserve_resume,
            self.share_id,
            self.number,
            first,
            size=self.size,
            window=window,
            room=self.length,
        )
        if granted:
            self.reserved = first
        return granted

    async def settle(self, sent: int) -> None:
        if sent < self.reserved:
            await self.request.lookup(
                shares.give_back, self.share_id, self.number, self.reserved - sent
            )
            self.reserved = sent


async def counted_etag(
    request: Exchange, share: Share, result: files.Download, *, with_body: bool
) -> tuple[str, Resume | None]:
    """Count the download this request makes, if it makes one; the ETag to answer with, and
    the resume it makes, if it makes one (its first step reserved).

    One download is a GET that sends the file from its first byte. On a link with a limit,
    each counted download gets an ETag of its own (a ticket); a range request that starts
    further on presenting it in `If-Range` resumes that download and is not counted again,
    for `share_resume_hours` after the download began and for about one more copy of the
    file in all (`Resume`). Every other GET counts: a range from the middle
    without a ticket, or with one that is past its time or spent, is a new download (the
    latter answered in full, 200, under a ticket of its own: its `If-Range` no longer
    matches), or 410 once the limit is reached. On a link without a limit only a GET from
    the first byte counts, and a range from further on never does: nothing is held back
    by the count, and a download manager's parallel pieces are one download, not eight.
    HEAD and 304 answers never count.
    """
    rt = request.runtime
    secret = rt.settings.secret_key
    headers = request.headers
    limited = share.max_downloads is not None
    ticket = (
        shares.presented_ticket(
            secret, share, result.etag, headers.get("If-Range"), headers.get("If-None-Match")
        )
        if limited
        else None
    )
    etag = ticket.tag if ticket is not None else result.etag
    plan = ranges.answer(
        result.size,
        etag,
        range_header=headers.get("Range"),
        if_range=headers.get("If-Range"),
        if_none_match=headers.get("If-None-Match"),
    )
    bodiless = not with_body or plan.status == 304
    if ticket is not None and (plan.status == 304 or plan.start > 0):
        if bodiless:
            return etag, None
        resume = Resume(request, share.id, ticket.number, plan.length, result.size)
        if await resume.start(dt.timedelta(hours=rt.settings.share_resume_hours)):
            return etag, resume
        # Past its time or its bytes: not a resume any more, but a new download.
    if shares.why_gone(share) == "exhausted":
        raise shares.gone("exhausted")
    if bodiless:
        return etag, None
    if not limited and plan.start > 0:
        return etag, None  # a range of a link without a limit: not a new download
    number = await request.lookup(
        shares.count_download,
        share.id,
        resume_window=dt.timedelta(hours=rt.settings.share_resume_hours) if limited else None,
    )
    observability.SHARE_DOWNLOADS.inc()
    return (shares.resume_ticket(secret, share, number, result.etag) if limited else etag), None


# --- download grants ------------------------------------------------------------------------


def grant_created(rt: Runtime, grant: grants.Grant, headers: Mapping[str, str] | None = None):
    """The 201 that hands out a grant: its URL (at the links' public base) and its expiry."""
    url = f"{_public_base(rt)}/api/v1/downloads/{grants.encode(rt.settings.secret_key, grant)}"
    body = {"url": url, "expires_at": grants.expires_at(grant).isoformat()}
    # The URL opens the file to whoever holds it: no cache keeps it.
    return json_body(body, 201, **{**(headers or {}), "Location": url, "Cache-Control": "no-store"})


def body_fields(body: dict | bytes | None) -> dict:
    """An optional body's fields: Connexion hands a request without a body (and so without
    a media type) over as bytes."""
    return body if isinstance(body, dict) else {}


def grant(token: str, body: dict | bytes | None = None):
    """A download grant for what the link shares, once its password (if any) is given.

    A form post (the share page's) is answered `303 See Other` to the grant, so the browser
    downloads at once; a refusal then is the page again, saying why.
    """
    rt = runtime()
    request = flask.request
    form = request.mimetype == FORM
    password = body_fields(body).get("password")
    if password is None:
        password = presented_password(request.headers)
    share: Share | None = None
    file: File | None = None
    try:
        with refusals_counted():
            share, file = shares.resolve(db(), rt.settings.secret_key, token)
            unlock(rt, share, password, _address(request))
            made = grants.for_share(share, file, lifetime=rt.settings.download_grant_seconds)
    except AppError as exc:
        if not form:
            raise
        return page_for_error(
            exc,
            root="../",
            token=page_token(rt, share),
            share=share,
            file=file,
            password_given=password is not None,
        )
    if form:
        # Relative to /s/{token}/grants, as the page's own links are: the browser goes on at
        # the host it came to, not at one the request's Host header named.
        url = f"../../api/v1/downloads/{grants.encode(rt.settings.secret_key, made)}"
        return empty(303, {**_headers_for(share), "Location": url})
    return grant_created(rt, made, _headers_for(share))
