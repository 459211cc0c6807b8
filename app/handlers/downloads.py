"""Handlers for download grants: the owner asks for one (/api/v1/files/{id}/download-grants
for a file, /api/v1/download-grants for a ZIP of files and folders; a link's are asked at
/s/{token}/grants), and anyone holding it downloads with no header
(/api/v1/downloads/{grant}), through the same download code as every other."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.http.downloads import send_download, send_shared
from app.http.links import body_fields, grant_created, refusals_counted
from app.http.streaming import Exchange, Reply
from app.models import File, Share
from app.services import files, grants, selections
from app.storage import Storage

# The URL is a credential for one file: the page it is followed from must not pass it on,
# and no cache may keep what it answers.
GRANT_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}


async def create(request: Exchange) -> None:
    """A short-lived URL that downloads one of your files with no header (for a browser)."""
    original = body_fields(await request.json()).get("format", "zip") == "original"
    await request.reply(await request.lookup(_create, request, original))


def _create(session: Session, request: Exchange, original: bool) -> Reply:
    request.owner()  # 401 once the token's session has ended
    made = grants.for_file(
        session,
        request.token(),
        request.uuid("file_id"),
        original=original,
        lifetime=request.runtime.settings.download_grant_seconds,
    )
    return grant_created(request, made)


async def create_for_selection(request: Exchange) -> None:
    """A short-lived URL that downloads some of your files and folders as one ZIP."""
    await request.reply(await request.lookup(_create_for_selection, request, await request.json()))


def _create_for_selection(session: Session, request: Exchange, body: dict) -> Reply:
    request.owner()  # 401 once the token's session has ended
    made, found = grants.for_selection(
        session,
        request.token(),
        selections.parse_items(body.get("items"), most=grants.MAX_ITEMS, what="A ZIP"),
        original=body.get("format", "zip") == "original",
        lifetime=request.runtime.settings.download_grant_seconds,
    )
    ready = len(found.ready)
    summary = {
        "name": f"{found.name}.zip",
        "ready_count": ready,
        "pending_count": len(found.entries) - ready,
    }
    return grant_created(request, made, fields=summary)


async def download(request: Exchange) -> None:
    """Download the file a grant opens (Range, ETag, If-Range supported)."""
    await _download(request, with_body=True)


async def download_head(request: Exchange) -> None:
    """The grant's download headers without its bytes."""
    await _download(request, with_body=False)


async def _download(request: Exchange, *, with_body: bool) -> None:
    rt = request.runtime
    # Checked when the request starts: a download under way outlives the grant's expiry.
    grant = grants.decode(rt.settings.secret_key, request.path_params["grant"])
    if grant.kind == "share":
        with refusals_counted():
            share, file = await request.lookup(_find_share, grant)
        await send_shared(request, share, file, with_body=with_body, extra_headers=GRANT_HEADERS)
        return
    if grant.kind == "selection":
        result = await request.lookup(_find_selection, rt.storage, grant)
    else:
        result = await request.lookup(_find_file, rt.storage, grant)
    await send_download(request, result, with_body=with_body, extra_headers=GRANT_HEADERS)


def _find_share(session: Session, grant: grants.Grant) -> tuple[Share, File | None]:
    share, file = grants.share_of(session, grant)
    session.expunge_all()
    return share, file


def _find_selection(session: Session, storage: Storage, grant: grants.Grant) -> files.Download:
    owner_id = grants.owner_of(session, grant)
    items = [selections.Item(kind, item_id) for kind, item_id in grant.items]
    return selections.of_owner(session, storage, owner_id, items, original=grant.original)


def _find_file(session: Session, storage: Storage, grant: grants.Grant) -> files.Download:
    return files.download_of(storage, grants.file_of(session, grant), original=grant.original)
