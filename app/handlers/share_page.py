"""The share page: what a browser sees at a link's URL (HTML, chosen by `Accept`), and its
stylesheet. No script at all; every value is escaped by the template engine."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files

import flask
import jinja2

# Nothing but our own stylesheet loads; the form posts only to us; no page may frame it.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Vary": "Accept",
}
# What a 401 page asks for: the page's form, not the browser's own Basic prompt (which a
# `Basic` challenge would open over the page).
FORM_CHALLENGE = {"WWW-Authenticate": 'Form realm="share link"'}
_STATUS_TEXT = {
    "ready": "Ready to download",
    "pending": "Waiting to be prepared",
    "processing": "Being prepared",
    "failed": "Could not be prepared",
}


@dataclass(frozen=True)
class SharedFile:
    """What the page shows of a shared file."""

    name: str
    size: int
    download_size: int | None
    serves: str
    status: str
    expires_at: str | None
    downloads_left: int | None

    @property
    def status_text(self) -> str:
        return _STATUS_TEXT.get(self.status, self.status)


def when(value: dt.datetime | None) -> str | None:
    """A moment as the page says it (UTC)."""
    if value is None:
        return None
    value = value.astimezone(dt.UTC)
    return f"{value.day} {value:%b %Y, %H:%M} UTC"


def size(count: int | None) -> str:
    """A byte count for people (1000-based, as file managers show it)."""
    if count is None:
        return "unknown"
    if count < 1000:
        return f"{count} bytes" if count != 1 else "1 byte"
    value = float(count)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("app", "templates"),
        autoescape=True,  # every value, file names first, is text on the page
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["size"] = size
    return environment


def render(
    status: int,
    *,
    state: str,
    title: str,
    root: str,
    token: str = "",
    file: SharedFile | None = None,
    message: str = "",
    tone: str = "",
    password_form: bool = False,
    headers: Mapping[str, str] | None = None,
) -> flask.Response:
    """The page for one state of a link: `ready`, `locked`, `not_ready` or `gone`.

    `root` is the way from the page's URL to `/s/` (`""` at `/s/{token}`, `"../"` at
    `/s/{token}/grants`): relative, so the page works behind a proxy that adds a prefix.
    """
    html = (
        _environment()
        .get_template("share.html")
        .render(
            state=state,
            title=title,
            root=root,
            token=token,
            file=file,
            message=message,
            tone=tone,
            password_form=password_form,
        )
    )
    response = flask.Response(html, status=status, content_type="text/html; charset=utf-8")
    response.headers.update({**(headers or {}), **PAGE_HEADERS})
    return response


@functools.cache
def _stylesheet() -> bytes:
    return files("app").joinpath("templates", "share.css").read_bytes()


def stylesheet():
    """The share page's stylesheet."""
    response = flask.Response(_stylesheet(), content_type="text/css; charset=utf-8")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
