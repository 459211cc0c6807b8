"""Handlers for the web app: its page at `/` and its static files under `/app/`.

Their security headers (a strict `Content-Security-Policy`) are the HTTP edge's
(app.http.middleware.WEBAPP_CSP)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from werkzeug.security import safe_join
from werkzeug.utils import send_file

from app.errors import NotFound
from app.http.streaming import Exchange, Reply

# Shipped in the package (pyproject's package-data), so an installed wheel serves it too.
WEBAPP_DIR = Path(__file__).resolve().parent.parent / "webapp"
# Only what the app is made of: anything else there (a licence, a manifest) is not served.
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}


async def index(request: Exchange) -> None:
    """The web app."""
    await request.reply(await request.run(_send, request, WEBAPP_DIR / "index.html"))


async def asset(request: Exchange) -> None:
    """One of the app's files (scripts, styles, images)."""
    path = request.path_params["path"]
    if path.startswith("/"):
        # `/app//x`: a path with an empty segment names nothing here, like any unknown path
        # (and is no redirect to `/x`, which could leave the site).
        raise NotFound("No resource has this path.")
    found = safe_join(str(WEBAPP_DIR), path)
    if found is None or Path(found).suffix not in CONTENT_TYPES or not Path(found).is_file():
        raise NotFound("The web app has no such file.")
    await request.reply(await request.run(_send, request, Path(found)))


def _send(request: Exchange, path: Path) -> Reply:
    """The file, with werkzeug's conditional answers (ETag, Last-Modified, Range)."""
    stat = path.stat()
    environ = {"REQUEST_METHOD": request.method}
    for name in ("range", "if-range", "if-none-match", "if-modified-since"):
        if name in request.headers:
            environ["HTTP_" + name.upper().replace("-", "_")] = request.headers[name]
    response = send_file(
        path,
        environ,
        mimetype=CONTENT_TYPES[path.suffix],
        etag=_digest(str(path), stat.st_mtime_ns, stat.st_size),
        conditional=True,
    )
    # No build step, so no hashed file names: a browser keeps the files but asks each
    # time whether they changed (a 304 when not), and never runs a stale script.
    response.headers["Cache-Control"] = "no-cache"
    # The server dates every response; werkzeug's conditional answer adds a second Date.
    response.headers.pop("Date", None)
    # As a WSGI server would take it: a 304 loses its body and the headers of one.
    app_iter, status, headers = response.get_wsgi_response(environ)
    with response:
        body = b"".join(app_iter)
    return body, int(status.split()[0]), dict(headers)


@functools.lru_cache(maxsize=256)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    """A content hash as the ETag: the same on every server that ships the same file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()[:32]
