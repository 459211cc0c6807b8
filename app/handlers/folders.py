"""Handlers for /folders and /entries: make, read, rename, move and delete folders, and
list what a folder holds. (Answering 501 until app.services.folders lands.)"""

from __future__ import annotations

from app.errors import AppError
from app.http.streaming import Exchange


class _NotYet(AppError):
    status, title = 501, "Not Implemented"


async def create(request: Exchange) -> None:
    """Make a folder."""
    raise _NotYet("Folders are not available yet.")


async def get_folder(request: Exchange) -> None:
    """One folder, with its ancestors."""
    raise _NotYet("Folders are not available yet.")


async def update(request: Exchange) -> None:
    """Rename or move a folder."""
    raise _NotYet("Folders are not available yet.")


async def delete(request: Exchange) -> None:
    """Delete a folder and everything in it."""
    raise _NotYet("Folders are not available yet.")


async def list_entries(request: Exchange) -> None:
    """A folder's subfolders and files, a page at a time."""
    raise _NotYet("Folders are not available yet.")
