"""Handlers for /folders and /entries: make, read, rename, move and delete folders, and
list what a folder holds (see app.services.folders and app.services.entries)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.orm import Session

from app.http.representations import file_json, folder_json
from app.http.responses import JSON, NO_CONTENT, json_body
from app.http.streaming import Exchange, Reply
from app.models import Folder
from app.services import entries, folder_paths, folders, shares

# The spec's defaults for GET /entries.
LIST_DEFAULTS = {"limit": "20", "sort": "name"}


def _ancestors(found: list[folders.Ancestor]) -> list[dict]:
    return [{"id": str(a.id), "name": a.name} for a in found]


def _optional_id(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value is not None else None


def _folder_reply(folder: Folder, status: int = 200, **headers: str) -> Reply:
    return json_body(folder_json(folder), status, ETag=folders.etag(folder), **headers)


async def create(request: Exchange) -> None:
    """Make a folder."""
    body = await request.json()
    await request.reply(await request.lookup(_create, request, body))


def _create(session: Session, request: Exchange, body: dict) -> Reply:
    folder = folders.create(
        session, request.owner(), body["name"], _optional_id(body.get("parent_id"))
    )
    return _folder_reply(folder, 201, Location=f"/api/v1/folders/{folder.id}")


async def make_path(request: Exchange) -> None:
    """Make the folders of a path, each one missing (as `mkdir -p` does)."""
    body = await request.json()
    await request.reply(await request.lookup(_make_path, request, body))


def _make_path(session: Session, request: Exchange, body: dict) -> Reply:
    folder, made = folder_paths.make_path(
        session, request.owner(), _optional_id(body.get("parent_id")), body["path"]
    )
    return _folder_reply(folder, 201 if made else 200, Location=f"/api/v1/folders/{folder.id}")


async def get_folder(request: Exchange) -> None:
    """One folder, with its ancestors (the breadcrumb)."""
    await request.reply(await request.read(_get_folder, request))


def _get_folder(session: Session, request: Exchange) -> Reply:
    detail = folders.get(session, request.owner(), request.uuid("folder_id"))
    body = {**folder_json(detail.folder), "ancestors": _ancestors(detail.ancestors)}
    return json_body(body, ETag=folders.etag(detail.folder))


async def update(request: Exchange) -> None:
    """Rename a folder, or move it into another."""
    body = await request.json()
    await request.reply(await request.lookup(_update, request, body))


def _update(session: Session, request: Exchange, body: dict) -> Reply:
    changes: dict[str, Any] = {"name": body.get("name")}
    if "parent_id" in body:
        changes["parent_id"] = _optional_id(body["parent_id"])
    folder = folders.update(
        session,
        request.owner(),
        request.uuid("folder_id"),
        if_match=request.headers.get("If-Match"),
        **changes,
    )
    return _folder_reply(folder)


async def delete(request: Exchange) -> None:
    """Delete a folder and everything in it."""
    await request.lookup(_delete, request)
    await request.reply(NO_CONTENT)


def _delete(session: Session, request: Exchange) -> None:
    rt = request.runtime
    folders.delete(session, rt.storage, rt.jobs, request.owner(), request.uuid("folder_id"))


async def list_entries(request: Exchange) -> None:
    """A folder's subfolders and files, a page at a time."""
    body = await request.read(_list_entries, request)
    await request.respond(200, JSON, body)


def _list_entries(session: Session, request: Exchange) -> bytes:
    query = request.query
    folder = query.get("folder_id")
    page = entries.list_entries(
        session,
        request.owner(),
        None if folder in (None, "root") else uuid.UUID(folder),
        limit=int(query.get("limit", LIST_DEFAULTS["limit"])),
        cursor=query.get("cursor"),
        sort=query.get("sort", LIST_DEFAULTS["sort"]),
        name=query.get("name"),
    )
    shared = shares.shared_ids(session, [f.id for f in page.files], [f.id for f in page.folders])
    items = [{"kind": "folder", **folder_json(f), "shared": f.id in shared} for f in page.folders]
    items += [{"kind": "file", **file_json(f), "shared": f.id in shared} for f in page.files]
    body = {
        "folder": folder_json(page.folder) if page.folder is not None else None,
        "ancestors": _ancestors(page.ancestors),
        "items": items,
        "total": page.total,
        "next_cursor": page.next_cursor,
    }
    return json.dumps(body, separators=(",", ":")).encode()
