"""Handlers for the web app: its page at `/` and its static files under `/app/`.

Their security headers (a strict `Content-Security-Policy`) are the HTTP edge's
(app.http.middleware.WEBAPP_CSP)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import flask
from werkzeug.security import safe_join

from app.errors import NotFound

# Shipped in the package (pyproject's package-data), so an installed wheel serves it too.
WEBAPP_DIR = Path(__file__).resolve().parent.parent / "webapp"
# Only what the app is made of: anything else there (a licence, a manifest) is not served.
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}


def index():
    """The web app."""
    return _send(WEBAPP_DIR / "index.html")


def asset(path: str):
    """One of the app's files (scripts, styles, images)."""
    found = safe_join(str(WEBAPP_DIR), path)
    if found is None or Path(found).suffix not in CONTENT_TYPES or not Path(found).is_file():
        raise NotFound("The web app has no such file.")
    return _send(Path(found))


def _send(path: Path) -> flask.Response:
    stat = path.stat()
    response = flask.send_file(
        path,
        mimetype=CONTENT_TYPES[path.suffix],
        etag=_digest(str(path), stat.st_mtime_ns, stat.st_size),
        conditional=True,
    )
    # No build step, so no hashed file names: a browser keeps the files but asks each
    # time whether they changed (a 304 when not), and never runs a stale script.
    response.headers["Cache-Control"] = "no-cache"
    # The server dates every response; werkzeug's conditional answer adds a second Date.
    response.headers.pop("Date", None)
    return response


@functools.lru_cache(maxsize=256)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    """A content hash as the ETag: the same on every server that ships the same file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()[:32]
