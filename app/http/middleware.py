"""ASGI middleware of the HTTP edge: JSON body limits, a path guard, the security headers
every response carries, and CORS for browsers."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

from connexion import AsyncApp
from connexion.middleware import MiddlewarePosition
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import NotFound, TooLarge
from app.services.sizes import iec

FORM = "application/x-www-form-urlencoded"
CORS_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "Upload-Length",
    "Upload-Offset",
    "Upload-Metadata",
    "Upload-Checksum",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Tus-Resumable",
    "X-HTTP-Method-Override",
    "X-Request-ID",
    "If-Match",
    "If-None-Match",
    "If-Range",
    "Range",
]
CORS_EXPOSE_HEADERS = [
    "Location",
    "ETag",
    "Content-Range",
    "Content-Disposition",
    "Accept-Ranges",
    "Retry-After",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Expires",
    "Tus-Version",
    "Tus-Resumable",
    "Tus-Max-Size",
    "Tus-Extension",
    "Tus-Checksum-Algorithm",
]


class HttpMiddleware:
    """ASGI middleware for HTTP requests: `http` takes each one; anything else (lifespan)
    passes through."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


def rewriting_start(send: Send, rewrite: Callable[[MutableHeaders], None]) -> Send:
    """`send`, with `rewrite` given the headers of the response's start to change."""

    async def send_(message: Message) -> None:
        if message["type"] == "http.response.start":
            rewrite(MutableHeaders(scope=message))
        await send(message)

    return send_


def add_cors(app: AsyncApp, origins: tuple[str, ...]) -> None:
    """Let pages from `origins` call the API, tus and downloads included."""
    # Outermost, so preflights are answered before anything else and error responses
    # carry the CORS headers too (a browser hides a response without them).
    app.add_middleware(
        CORSMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        allow_origins=list(origins),
        allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=CORS_EXPOSE_HEADERS,
        max_age=86400,
    )


class JsonBodyLimit(HttpMiddleware):
    """413 for JSON bodies over the limit, before Connexion's validator buffers them.

    A JSON body sent without Content-Length (chunked) is read here, up to the limit, and
    handed on with its length: Connexion's validator takes a body with no Content-Length
    for a missing one ("RequestBody is required").
    """

    def __init__(self, app: ASGIApp, limit: int):
        super().__init__(app)
        self.limit = limit

    def _too_large(self) -> TooLarge:
        return TooLarge(f"A JSON or form body may be at most {iec(self.limit)}.", limit="body")

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        # Media types are case-insensitive: `Application/JSON` is parsed whole all the same.
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        # A urlencoded form (the share page's password form) is parsed whole in memory too.
        if "json" in content_type or content_type == FORM:
            declared = headers.get("content-length")
            if declared is None and "chunked" in headers.get("transfer-encoding", ""):
                scope, receive = await self._buffered(scope, receive)
            elif declared is not None and declared.isdigit() and int(declared) > self.limit:
                raise self._too_large()
            else:
                receive = self._counting(receive)
        await self.app(scope, receive, send)

    async def _buffered(self, scope: Scope, receive: Receive) -> tuple[Scope, Receive]:
        pieces: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            pieces.append(message.get("body", b""))
            size += len(pieces[-1])
            if size > self.limit:
                raise self._too_large()
            if not message.get("more_body", False):
                break
        body = b"".join(pieces)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"transfer-encoding"]
        headers.append((b"content-length", str(len(body)).encode()))
        replayed = False

        async def receive_() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return {**scope, "headers": headers}, receive_

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def receive_() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise self._too_large()
            return message

        return receive_


class PathGuard(HttpMiddleware):
    """404 for a path holding control characters, before routing sees it.

    Connexion's router does not match such a path (`/files/abc%0A`) and passes it on
    unrouted, to be routed again behind it outside any operation: a 500.
    """

    _CONTROL = re.compile(r"[\x00-\x1f\x7f]")

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._CONTROL.search(scope["path"]):
            raise NotFound("No resource has this path.")
        await self.app(scope, receive, send)


# Every answer's security headers, applied in one place (`ResponseHeaders`). A handler that
# serves a page of its own sets its own policy, which stands: the share page
# (app.handlers.share_page.PAGE_CSP) and downloads (a sandbox: the bytes are a stranger's).
#
# JSON, problems, metrics: nothing to load, nothing to frame.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The web app (`/` and `/app/`): no inline script or style, no other origin: a file name
# that smuggles markup has nothing to run, and the app cannot send its data elsewhere.
# `blob:` images: the list's thumbnails, fetched with the token (an <img src> cannot send
# it) and shown from memory (app/webapp/thumbnail.js); they are the server's own re-encoded
# WebP, and a blob: URL is this origin's only.
WEBAPP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# Swagger UI's page (Connexion's template): its scripts and styles from here, plus the one
# inline script (its configuration) and style block the page holds, allowed by their
# hashes (`{scripts}`, `{styles}`); its icons are `data:` images; "Try it out" calls us.
SWAGGER_UI_CSP = (
    "default-src 'none'; script-src 'self'{scripts}; style-src 'self'{styles}; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
SWAGGER_UI_PREFIX = "/api/v1/ui/"
# The largest Swagger UI page whose inline blocks are hashed (Connexion's is 1.5 KB).
_MAX_UI_PAGE = 64 * 1024
_INLINE = re.compile(rb"<(script|style)>(.*?)</\1>", re.DOTALL)


def _is_webapp(path: str) -> bool:
    return path == "/" or path.startswith("/app/")


def swagger_ui_csp(page: bytes) -> str:
    """The policy for a Swagger UI page: its inline script and style allowed by hash."""
    hashes: dict[bytes, list[str]] = {b"script": [], b"style": []}
    for tag, content in _INLINE.findall(page):
        digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
        hashes[tag].append(f" 'sha256-{digest}'")
    return SWAGGER_UI_CSP.format(
        scripts="".join(hashes[b"script"]), styles="".join(hashes[b"style"])
    )


class ResponseHeaders(HttpMiddleware):
    """What every response carries: the security headers above, and no shared caching of
    private answers.

    `nosniff`, `X-Frame-Options: DENY` (for browsers older than `frame-ancestors`),
    `Referrer-Policy: no-referrer` and a `Content-Security-Policy` chosen by path, unless
    the handler chose one. A response to a request with credentials is the caller's own:
    unless the handler said otherwise, it is `Cache-Control: private` (a browser may keep
    it and revalidate by ETag; a proxy or CDN must not).
    """

    def __init__(self, app: ASGIApp, uploads_to: Callable[[], str] = lambda: ""):
        super().__init__(app)
        # The origin the web app may send upload bytes to besides this one: the storage's,
        # when it takes direct uploads (app.storage.direct); "" when none.
        self.uploads_to = uploads_to

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        credentials = any(name == b"authorization" for name, _ in scope["headers"])
        path = scope["path"]
        csp = API_CSP
        if _is_webapp(path):
            elsewhere = self.uploads_to()
            csp = WEBAPP_CSP.replace("connect-src 'self'", f"connect-src 'self' {elsewhere}")
            csp = csp if elsewhere else WEBAPP_CSP
        held: list[Message] = []  # a Swagger UI page, until its body is whole

        async def send_(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if credentials and "cache-control" not in headers:
                    headers["Cache-Control"] = "private"
                if (
                    path.startswith(SWAGGER_UI_PREFIX)
                    and headers.get("content-type", "").startswith("text/html")
                    and int(headers.get("content-length") or _MAX_UI_PAGE + 1) <= _MAX_UI_PAGE
                ):
                    held.append(message)
                    return
                headers.setdefault("Content-Security-Policy", csp)
            elif held:
                held.append(message)
                if message.get("more_body", False):
                    return
                start, *bodies = held
                page = b"".join(m.get("body", b"") for m in bodies)
                MutableHeaders(scope=start)["Content-Security-Policy"] = swagger_ui_csp(page)
                held.clear()
                await send(start)
                for body in bodies:
                    await send(body)
                return
            await send(message)

        await self.app(scope, receive, send_)


class PublicLinks(HttpMiddleware):
    """What every answer under `/s/` (share links, app.handlers.shares) carries: CORS for any
    origin without credentials, so a page anywhere can fetch a shared file, and
    `Referrer-Policy: no-referrer`, so a link's page never leaks its URL onward.

    Outermost, before the API's own CORS (which allows only the configured origins): it
    answers the preflights of these paths itself.
    """

    PREFIX = "/s/"
    ALLOW_HEADERS = "Range, If-Range, If-None-Match, Authorization, X-Share-Password, Content-Type"
    EXPOSE_HEADERS = (
        "ETag, Content-Range, Content-Disposition, Content-Length, Accept-Ranges, Retry-After"
    )

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not scope["path"].startswith(self.PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            preflight = {
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "GET, HEAD, POST, OPTIONS",
                "Access-Control-Allow-Headers": self.ALLOW_HEADERS,
                "Access-Control-Max-Age": "86400",
                "Referrer-Policy": "no-referrer",
                "Content-Length": "0",
            }
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in preflight.items()],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        await self.app(scope, receive, rewriting_start(send, self._public))

    def _public(self, out: MutableHeaders) -> None:
        out["Access-Control-Allow-Origin"] = "*"
        out["Access-Control-Expose-Headers"] = self.EXPOSE_HEADERS
        out.setdefault("Referrer-Policy", "no-referrer")
        if "vary" in out:
            # "*" answers the same to every origin; the page still varies by Accept.
            kept = [v.strip() for v in out["vary"].split(",") if v.strip().lower() != "origin"]
            del out["vary"]
            if kept:
                out["Vary"] = ", ".join(kept)
