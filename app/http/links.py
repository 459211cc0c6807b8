"""What a link's public routes share at the HTTP edge: its response headers, the password a
request presents and the check of it, counting its refusals, and handing out grants."""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Iterator, Mapping

from starlette.datastructures import Headers
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from app import observability
from app.errors import Gone, NotReady, TooManyRequests, Unauthorized
from app.http import attempts
from app.http.responses import json_body
from app.http.streaming import Exchange, Reply
from app.models import Share
from app.runtime import Runtime
from app.services import grants, passwords, shares
from app.services.throttle import Subject

PASSWORD_HEADER = "X-Share-Password"  # noqa: S105 - a header name, not a password
# Anyone may hold the link, so its page must not leak it onward, nor its answers be kept by a
# shared cache (a revoked link must stop at once). A password link's answers are not kept at all.
PUBLIC_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "private, no-cache"}
PROTECTED_HEADERS = {**PUBLIC_HEADERS, "Cache-Control": "private, no-store"}
# What a 401 asks for: a browser prompts once for the password (any user name) and sends it
# again with every request under the link.
CHALLENGE = {"WWW-Authenticate": 'Basic realm="share link", charset="UTF-8"'}


def public_base(request: Exchange) -> str:
    """Where links and grants are reached: the configured public URL, else this request's host."""
    return request.runtime.settings.public_url.rstrip("/") or request.host_url.rstrip("/")


def headers_for(share: Share) -> dict[str, str]:
    """The cache and referrer headers of every answer about `share`."""
    return dict(PROTECTED_HEADERS if share.password_hash is not None else PUBLIC_HEADERS)


def downloads_left(share: Share) -> int | None:
    return None if share.max_downloads is None else share.max_downloads - share.downloads


def prefers_html(headers: Headers) -> bool:
    """Whether the client (a browser) would rather have the page than JSON."""
    accept = parse_accept_header(headers.get("Accept"), MIMEAccept)
    return accept.best_match(["application/json", "text/html"]) == "text/html"


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
    hashes = passwords.for_settings(rt.settings)
    try:
        if password is None:  # 401 asking for it; nothing to count
            shares.check_password(share, password, hashes)
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
            shares.check_password(share, password, hashes)
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


def grant_created(
    request: Exchange,
    grant: grants.Grant,
    headers: Mapping[str, str] | None = None,
    fields: Mapping[str, object] | None = None,
) -> Reply:
    """The 201 that hands out a grant: its URL (at the links' public base), its expiry and
    any other `fields`."""
    secret = request.runtime.settings.secret_key
    url = f"{public_base(request)}/api/v1/downloads/{grants.encode(secret, grant)}"
    body = {"url": url, "expires_at": grants.expires_at(grant).isoformat(), **(fields or {})}
    # The URL opens the file to whoever holds it: no cache keeps it.
    return json_body(body, 201, **{**(headers or {}), "Location": url, "Cache-Control": "no-store"})


def body_fields(body: dict | None) -> dict:
    """An optional body's fields ({} when there is none)."""
    return body if isinstance(body, dict) else {}
