"""The share page: what a browser sees at a link's URL (HTML, chosen by `Accept`). No script
at all; every value is escaped by the template engine."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import jinja2

from app.errors import AppError, Gone, NotFound, NotReady, TooManyRequests, Unauthorized
from app.http.links import PUBLIC_HEADERS, downloads_left, headers_for
from app.http.streaming import Reply
from app.models import File, FileStatus, Share
from app.services import previews, selections, sizes
from app.services.files import Download

# Nothing but our own stylesheet, previews and players load; the form posts only to us;
# no page may frame it.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; media-src 'self'; "
    "form-action 'self'; "
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

    name: str  # what the download is saved as (`report.pdf`, or `report.pdf.zip`)
    size: int
    download_size: int | None
    serves: str
    status: str
    expires_at: str | None
    downloads_left: int | None
    preview: bool = False
    player: str = ""  # `audio` or `video` when the page plays it in place
    file_name: str = ""  # the file's own name, which the page shows

    @property
    def status_text(self) -> str:
        return _STATUS_TEXT.get(self.status, self.status)


@dataclass(frozen=True)
class LinkFacts:
    """What a password link's page says before the password: the link's own facts (when it
    ends), never what it holds."""

    kind: str
    expires_at: str | None
    downloads_left: int | None


_FAMILIES = {"image", "audio", "video", "text"}
_ARCHIVES = {
    "application/zip", "application/gzip", "application/x-tar", "application/x-7z-compressed"
}  # fmt: skip


def family(content_type: str) -> str:
    """`image`, `audio`, `video`, `text`, `pdf`, `archive` or `other`: a file's icon."""
    major = content_type.split("/")[0]
    if major in _FAMILIES:
        return major
    if content_type == "application/pdf":
        return "pdf"
    return "archive" if content_type in _ARCHIVES else "other"


@dataclass(frozen=True)
class SharedRow:
    """One row of a folder or selection link's page: a folder, or a file."""

    path: str
    name: str
    folder: bool
    file_id: str = ""
    size: int = 0
    content_type: str = ""
    status: str = ""
    preview: bool = False  # a thumbnail to show (app.services.previews)
    plays: bool = False  # audio or video the page plays in place

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def family(self) -> str:
        """What kind of file it is, for its icon (a CSS class)."""
        return family(self.content_type)

    @property
    def player(self) -> str:
        """The element that plays it: `audio` or `video` ("" when it does not play)."""
        return self.content_type.split("/")[0] if self.plays and self.ready else ""

    @property
    def status_text(self) -> str:
        return _STATUS_TEXT.get(self.status, self.status)


@dataclass(frozen=True)
class SharedSet:
    """What the page shows of a folder or selection link."""

    name: str
    kind: str
    rows: list[SharedRow]
    file_count: int
    total_size: int
    ready_count: int
    pending_count: int
    archive_size: int
    expires_at: str | None
    downloads_left: int | None


def when(value: dt.datetime | None) -> str | None:
    """A moment as the page says it (UTC)."""
    if value is None:
        return None
    value = value.astimezone(dt.UTC)
    return f"{value.day} {value:%b %Y, %H:%M} UTC"


def size(count: int | None) -> str:
    """A byte count for people, in the units the whole service writes (app.services.sizes)."""
    return "unknown" if count is None else sizes.iec(count)


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
    shared: SharedSet | None = None,
    share_kind: str = "",
    link: LinkFacts | None = None,
    refresh: str = "",
) -> Reply:
    """The page for one state of a link: `ready`, `locked`, `not_ready`, `started` (a
    download begun after the password: `refresh` is its URL) or `gone`.

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
            shared=shared,
            share_kind=share_kind,
            link=link,
            refresh=refresh,
        )
    )
    body = html.encode()
    return (
        body,
        status,
        {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Length": str(len(body)),
            **(headers or {}),
            **PAGE_HEADERS,
        },
    )


_GONE_PAGE = {
    "expired": ("This link has expired", "Ask the person who sent it to you for a new one."),
    "revoked": ("This link was turned off", "Its owner revoked it; ask them for a new one."),
    "exhausted": (
        "This link has been used up",
        "It has given all the downloads it allowed; ask its owner for a new one.",
    ),
}


def shared_file(share: Share, file: File, *, preview: bool = False) -> SharedFile:
    plays = previews.plays_inline(share, file.content_type) and file.status == FileStatus.READY
    return SharedFile(
        name=file.name if share.serves == "original" else f"{file.name}.zip",
        file_name=file.name,
        size=file.size,
        download_size=file.compressed_size,
        serves=share.serves,
        status=file.status.value,
        expires_at=when(share.expires_at),
        downloads_left=downloads_left(share),
        preview=preview,
        player=file.content_type.split("/")[0] if plays else "",
    )


def link_facts(share: Share) -> LinkFacts:
    return LinkFacts(share.kind, when(share.expires_at), downloads_left(share))


def started_page(
    share: Share,
    *,
    download_url: str,
    file: SharedFile | None = None,
    shared: SharedSet | None = None,
) -> Reply:
    """The page after the right password: what the link holds (its card) and "Download
    started", the download itself begun by the page's refresh to `download_url` (a grant:
    a page without script starts it so, and offers it as a link too)."""
    left = downloads_left(share)
    if left is not None:  # the card says what is left once this download is counted
        left = max(0, left - 1)
        if file is not None:
            file = dataclasses.replace(file, downloads_left=left)
        if shared is not None:
            shared = dataclasses.replace(shared, downloads_left=left)
    title = file.file_name if file is not None else shared.name if shared is not None else ""
    return render(
        200,
        state="started",
        title=title,
        root="../",
        file=file,
        shared=shared,
        message="Download started.",
        tone="ok",
        # The page names the grant: no cache may keep it.
        headers={**headers_for(share), "Cache-Control": "private, no-store"},
        refresh=download_url,
    )


def shared_set(
    share: Share, found: selections.Listing, download: Download, with_preview: set[uuid.UUID]
) -> SharedSet:
    rows = [SharedRow(p.path, p.path.rsplit("/", 1)[-1], folder=True) for p in found.folders] + [
        SharedRow(
            e.path,
            e.file.name,
            folder=False,
            file_id=str(e.file.id),
            size=e.file.size,
            content_type=e.file.content_type,
            status=e.file.status.value,
            preview=e.file.id in with_preview,
            plays=previews.plays_inline(share, e.file.content_type),
        )
        for e in found.entries
    ]
    return SharedSet(
        name=found.name,
        kind=share.kind,
        rows=sorted(rows, key=lambda row: row.path),
        file_count=len(found.entries),
        total_size=sum(e.file.size for e in found.entries),
        ready_count=len(found.ready),
        pending_count=len(found.entries) - len(found.ready),
        archive_size=download.size,
        expires_at=when(share.expires_at),
        downloads_left=downloads_left(share),
    )


def listing_page(shown: SharedSet, *, token: str, headers: Mapping[str, str]) -> Reply:
    """The page of a folder or selection link: its files, each with its download, and
    Download all."""
    return render(200, state="listing", title=shown.name, root="", token=token, shared=shown,
                  headers=headers)  # fmt: skip


def page_for_error(
    exc: AppError,
    *,
    root: str,
    token: str,
    share: Share | None = None,
    file: File | None = None,
    password_given: bool = False,
) -> Reply:
    """The page that says why a link refused (instead of a problem+json); `token` as
    `page_token` gives it."""
    headers = {k: v for k, v in exc.headers.items() if k != "WWW-Authenticate"}
    if share is not None:
        headers.update(headers_for(share))
    else:
        headers.update(PUBLIC_HEADERS)
    if isinstance(exc, Gone):
        title, message = _GONE_PAGE[str(exc.extra.get("reason"))]
        return render(
            410,
            state="gone",
            title=title,
            root=root,
            message=message,
            tone="error",
            headers=headers,
        )
    if isinstance(exc, NotFound):
        return render(
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
        return render(
            401,
            state="locked",
            title="A password is needed",
            root=root,
            token=token,
            message=wrong,
            tone="error",
            password_form=True,
            headers={**headers, **FORM_CHALLENGE},
            share_kind=share.kind if share is not None else "",
            link=link_facts(share) if share is not None else None,
        )
    if isinstance(exc, TooManyRequests):
        retry = exc.headers.get("Retry-After", "60")
        # The throttle's own sentence says whose guesses it was (this address's, or a
        # campaign's against the link); the page words the wait for people.
        why = exc.detail.partition(";")[0]
        return render(
            429,
            state="locked",
            title="Too many password attempts",
            root=root,
            token=token,
            message=f"{why}. Try again in {_wait(retry)}.",
            tone="error",
            password_form=True,
            headers=headers,
            share_kind=share.kind if share is not None else "",
            link=link_facts(share) if share is not None else None,
        )
    if isinstance(exc, NotReady) and share is not None and file is not None:
        if "Retry-After" in exc.headers:
            title, message = (
                "Not ready yet",
                "The file is still being prepared. Try again in a minute.",
            )
        else:  # it failed: no point in waiting
            title, message = "Cannot be downloaded", "The file could not be prepared."
        return render(
            409,
            state="not_ready",
            title=title,
            root=root,
            token=token,
            file=shared_file(share, file),
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
