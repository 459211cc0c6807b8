"""The share page's stylesheet (the page itself is the HTTP edge's: app.http.share_page), and a
link's QR code."""

from __future__ import annotations

import functools
from importlib.resources import files

from app.http import qr
from app.http.links import PUBLIC_HEADERS, public_base
from app.http.streaming import Exchange
from app.services import shares


@functools.cache
def _stylesheet() -> bytes:
    return files("app").joinpath("templates", "share.css").read_bytes()


async def stylesheet(request: Exchange) -> None:
    """The share page's stylesheet."""
    body = _stylesheet()
    headers = {
        "Content-Type": "text/css; charset=utf-8",
        "Content-Length": str(len(body)),
        "Cache-Control": "public, max-age=3600",
    }
    await request.reply((body, 200, headers))


async def qr_code(request: Exchange) -> None:
    """The QR code of a link's URL, as SVG."""
    rt = request.runtime
    token = request.path_params["token"]
    # The token's own check (its HMAC) and nothing more: the picture says only what its
    # holder has already, so it reads no row, and tells nothing of the link's state.
    shares.share_id_of(rt.settings.secret_key, token)
    body = qr.svg(f"{public_base(request)}/s/{token}")
    headers = {
        "Content-Type": "image/svg+xml",
        "Content-Length": str(len(body)),
        "Content-Security-Policy": "default-src 'none'; sandbox",
        **PUBLIC_HEADERS,
        "Cache-Control": "private, max-age=86400",
    }
    await request.reply((body, 200, headers))
