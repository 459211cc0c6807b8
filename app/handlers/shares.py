"""Handlers for share links: the owner's (/api/v1/files/{id}/shares, /api/v1/shares) and the
public ones anyone with a link may call (/s/{token}: JSON or the share page by `Accept`,
/s/{token}/content, /s/{token}/grants)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.errors import AppError, NotFound
from app.http import share_page
from app.http.downloads import send_shared
from app.http.links import (
    downloads_left,
    grant_created,
    headers_for,
    prefers_html,
    presented_password,
    public_base,
    refusals_counted,
    unlock,
)
from app.http.middleware import FORM
from app.http.responses import NO_CONTENT, json_body
from app.http.streaming import Exchange, Reply
from app.models import File, Share
from app.services import files, grants, passwords, previews, selections, shares


def share_json(
    share: Share, base_url: str, secret: str, items: list[selections.Shown] | None = None
) -> dict:
    """The owner's view of a link (`items`: what it shares, as `selections.items_of` says)."""
    return {
        "id": str(share.id),
        "kind": share.kind,
        "file_id": str(share.file_id) if share.file_id is not None else None,
        "items": [{"kind": i.kind, "id": str(i.id), "name": i.name} for i in items or []],
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


async def create(request: Exchange) -> None:
    """Make a link to one of your files."""
    await request.reply(await request.lookup(_create, request, await request.json()))


def _options(request: Exchange, body: dict) -> dict:
    """A new link's options, from the body and the server's settings."""
    settings = request.runtime.settings
    return {
        "expires_in_days": body.get("expires_in_days"),
        "expires_in_hours": body.get("expires_in_hours"),
        "never_expires": body.get("never_expires", False),
        "password": body.get("password"),
        "max_downloads": body.get("max_downloads"),
        "serves": body.get("serves", "zip"),
        "max_days": settings.share_max_days,
        "allow_never": settings.share_allow_never,
        "hashes": passwords.for_settings(settings),
    }


def _create(session: Session, request: Exchange, body: dict) -> Reply:
    share = shares.create(
        session, request.owner(), request.uuid("file_id"), **_options(request, body)
    )
    return _created(session, request, share)


def _created(session: Session, request: Exchange, share: Share) -> Reply:
    items = selections.items_of(session, [share])[share.id]
    shown = share_json(share, public_base(request), request.runtime.settings.secret_key, items)
    return json_body(shown, 201, Location=f"/api/v1/shares/{share.id}")


async def create_link(request: Exchange) -> None:
    """Make a link to a file, a folder, or a selection of your files and folders."""
    await request.reply(await request.lookup(_create_link, request, await request.json()))


def _create_link(session: Session, request: Exchange, body: dict) -> Reply:
    items = selections.parse_items(body.get("items"))
    options = _options(request, {k: v for k, v in body.items() if k != "items"})
    share = selections.create(session, request.owner(), items, **options)
    return _created(session, request, share)


def _page(session: Session, request: Exchange, page: shares.Page) -> Reply:
    base, secret = public_base(request), request.runtime.settings.secret_key
    items = selections.items_of(session, page.items)
    return json_body(
        {
            "items": [share_json(s, base, secret, items[s.id]) for s in page.items],
            "next_cursor": page.next_cursor,
            "total": page.total,
        }
    )


async def list_for_file(request: Exchange) -> None:
    """The links of one of your files, newest first."""
    await request.reply(await request.read(_list, request, file_id=request.uuid("file_id")))


async def list_all(request: Exchange) -> None:
    """All your links, newest first."""
    await request.reply(await request.read(_list, request))


def _list(session: Session, request: Exchange, **where) -> Reply:
    query = request.query
    page = shares.list_shares(
        session,
        request.owner(),
        limit=int(query.get("limit", 20)),
        cursor=query.get("cursor"),
        **where,
    )
    return _page(session, request, page)


async def revoke(request: Exchange) -> None:
    """End a link at once."""
    await request.lookup(
        lambda session: shares.revoke(session, request.owner(), request.uuid("share_id"))
    )
    await request.reply(NO_CONTENT)


# --- the public routes ----------------------------------------------------------------------


async def metadata(request: Exchange) -> None:
    """What a link shares: the file's name, size and status (with the password, if it has one)."""
    if prefers_html(request.headers):
        await page(request)
        return
    await request.reply(await request.read(_metadata, request))


def _resolve(session: Session, request: Exchange, **options: bool) -> tuple[Share, File | None]:
    """The link the path's token names and its file (None: a folder or selection link);
    its refusals counted."""
    with refusals_counted():
        secret = request.runtime.settings.secret_key
        return shares.resolve(session, secret, request.path_params["token"], **options)


def _metadata(session: Session, request: Exchange) -> Reply:
    rt = request.runtime
    try:
        share, file = _resolve(session, request)
        unlock(rt, share, presented_password(request.headers), request.address)
    except AppError as exc:
        exc.headers["Vary"] = "Accept"  # the same URL answers a browser with the page
        raise
    if file is None:
        return _listing_json(session, request, share)
    name = file.name if share.serves == "original" else f"{file.name}.zip"
    body = {
        "name": name,
        "file_name": file.name,
        "size": file.size,
        "status": file.status.value,
        "serves": share.serves,
        "has_password": share.password_hash is not None,
        "expires_at": _iso(share.expires_at),
        "downloads_left": downloads_left(share),
    }
    return json_body(body, 200, Vary="Accept", **headers_for(share))


def _listing_json(session: Session, request: Exchange, share: Share) -> Reply:
    """What a folder or selection link holds, for anyone with it."""
    with refusals_counted():
        found, download = selections.listed(session, request.runtime.storage, share)
    link = f"{public_base(request)}/s/{page_token(request, share)}"
    with_preview = previews.with_previews(session, [entry.file.id for entry in found.entries])
    body = {
        "kind": share.kind,
        "name": found.name,
        "serves": share.serves,
        "has_password": share.password_hash is not None,
        "expires_at": _iso(share.expires_at),
        "downloads_left": downloads_left(share),
        "entries": [
            {
                "path": entry.path,
                "file_id": str(entry.file.id),
                "name": entry.file.name,
                "size": entry.file.size,
                "content_type": entry.file.content_type,
                "status": entry.file.status.value,
                "content_url": f"{link}/files/{entry.file.id}/content",
                "preview_url": (
                    f"{link}/files/{entry.file.id}/preview"
                    if entry.file.id in with_preview
                    else None
                ),
            }
            for entry in found.entries
        ],
        "folders": [place.path for place in found.folders],
        "total_size": sum(entry.file.size for entry in found.entries),
        "ready_count": len(found.ready),
        "pending_count": len(found.entries) - len(found.ready),
        "archive": {
            "url": f"{link}/archive",
            "size": download.size,
            "etag": download.etag,
        },
    }
    return json_body(body, 200, Vary="Accept", **headers_for(share))


def page_token(request: Exchange, share: Share | None) -> str:
    """The token the share page's own URLs are built from: the link's, from its id, never
    the spelling in the request's path."""
    secret = request.runtime.settings.secret_key
    return shares.token(secret, share.id) if share is not None else ""


def _error_page(
    exc: AppError,
    root: str,
    request: Exchange,
    share: Share | None,
    file: File | None,
    password: str | None,
) -> Reply:
    """The share page saying why not (`root`: the way back up to the page's own URL)."""
    return share_page.page_for_error(
        exc,
        root=root,
        token=page_token(request, share),
        share=share,
        file=file,
        password_given=password is not None,
    )


async def page(request: Exchange) -> None:
    """The share page: the file and a download button, a password form, or why not."""
    await request.reply(await request.read(_page_html, request))


def _page_html(session: Session, request: Exchange) -> Reply:
    rt = request.runtime
    share: Share | None = None
    file: File | None = None
    password = presented_password(request.headers)
    try:
        share, file = _resolve(session, request)
        unlock(rt, share, password, request.address)
        with refusals_counted():
            if file is None:
                found, download = selections.listed(session, rt.storage, share)
            else:
                files.ensure_ready(file)
    except AppError as exc:
        return _error_page(exc, "", request, share, file, password)
    # Thumbnails on a page whose images need no password (an <img> cannot present one).
    shown_ids = [e.file.id for e in found.entries] if file is None else [file.id]
    with_preview = set() if share.password_hash else previews.with_previews(session, shown_ids)
    if file is None:
        return share_page.listing_page(
            share_page.shared_set(share, found, download, with_preview),
            token=page_token(request, share),
            headers=headers_for(share),
        )
    shown = share_page.shared_file(share, file, preview=file.id in with_preview)
    return share_page.render(
        200,
        state="ready",
        title=shown.file_name,
        root="",
        token=page_token(request, share),
        file=shown,
        password_form=share.password_hash is not None,
        headers=headers_for(share),
    )


# --- downloads ------------------------------------------------------------------------------


async def content(request: Exchange) -> None:
    """Download what the link shares (Range, ETag, If-Range supported)."""
    await _content(request, with_body=True)


async def content_head(request: Exchange) -> None:
    """The link's download headers without its bytes."""
    await _content(request, with_body=False)


def _find(session: Session, request: Exchange) -> tuple[Share, File | None]:
    # An exhausted link still answers a resume of one of its counted downloads.
    share, file = _resolve(session, request, exhausted_ok=True)
    session.expunge_all()
    return share, file


async def _content(
    request: Exchange, *, with_body: bool, archive: bool = False, member: bool = False
) -> None:
    rt = request.runtime
    share, file = await request.lookup(_find, request)
    await request.run(unlock, rt, share, presented_password(request.headers), request.address)
    if archive and file is not None:
        raise NotFound("This link shares one file: its download is /s/{token}/content.")
    await send_shared(
        request,
        share,
        file,
        with_body=with_body,
        extra_headers=headers_for(share),
        member=request.uuid("file_id") if member else None,
    )


async def archive(request: Exchange) -> None:
    """Download all: the ZIP of every ready file a folder or selection link holds."""
    await _content(request, with_body=True, archive=True)


async def archive_head(request: Exchange) -> None:
    """Download all's headers without its bytes."""
    await _content(request, with_body=False, archive=True)


async def file_content(request: Exchange) -> None:
    """One file the link holds (Range, ETag, If-Range supported)."""
    await _content(request, with_body=True, member=True)


async def file_content_head(request: Exchange) -> None:
    """One file's download headers without its bytes."""
    await _content(request, with_body=False, member=True)


# --- download grants ------------------------------------------------------------------------


async def grant(request: Exchange) -> None:
    """A download grant for what the link shares, once its password (if any) is given.

    A form post (the share page's) is answered `303 See Other` to the grant, so the browser
    downloads at once; a refusal then is the page again, saying why.
    """
    form = request.mimetype == FORM
    password = (await request.form()).get("password") if form else None
    if password is None:
        password = presented_password(request.headers)
    await request.reply(await request.lookup(_grant, request, form, password))


def _grant(session: Session, request: Exchange, form: bool, password: str | None) -> Reply:
    rt = request.runtime
    share: Share | None = None
    file: File | None = None
    try:
        share, file = _resolve(session, request)
        unlock(rt, share, password, request.address)
        with refusals_counted():
            made = grants.for_share(share, file, lifetime=rt.settings.download_grant_seconds)
            listed = selections.listed(session, rt.storage, share) if form and not file else None
    except AppError as exc:
        if not form:
            raise
        return _error_page(exc, "../", request, share, file, password)
    if form:
        # Relative to /s/{token}/grants, as the page's own links are: the browser goes on at
        # the host it came to, not at one the request's Host header named.
        url = f"../../api/v1/downloads/{grants.encode(rt.settings.secret_key, made)}"
        # The page, now that the password was right: what the link holds, and "Download
        # started" while its refresh starts the download (the page has no script).
        if file is not None:
            return share_page.started_page(
                share, download_url=url, file=share_page.shared_file(share, file)
            )
        assert listed is not None
        shown = share_page.shared_set(share, *listed, with_preview=set())
        return share_page.started_page(share, download_url=url, shared=shown)
    return grant_created(request, made, headers_for(share))
