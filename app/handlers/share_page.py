"""The share page's stylesheet (the page itself is the HTTP edge's: app.http.share_page)."""

from __future__ import annotations

import functools
from importlib.resources import files

from app.http.streaming import Exchange


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
