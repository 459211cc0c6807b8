"""The JSON of a file and of a folder, as every handler that answers with one writes it."""

from __future__ import annotations

from typing import Any

from app.services import files


def file_json(file: files.Listed) -> dict:
    """The public representation of a file."""
    return {
        "id": str(file.id),
        "name": file.name,
        "folder_id": str(file.folder_id) if file.folder_id is not None else None,
        "status": file.status.value,
        "size": file.size,
        "compressed_size": file.compressed_size,
        "content_type": file.content_type,
        "sha256": file.sha256,
        "error": file.error,
        "created_at": file.created_at.isoformat(),
        "updated_at": file.updated_at.isoformat(),
        "processed_at": file.processed_at.isoformat() if file.processed_at else None,
        "has_preview": bool(file.has_preview),
    }


def folder_json(folder: Any) -> dict:
    """The public representation of a folder (a Folder, or a row of its listed columns)."""
    return {
        "id": str(folder.id),
        "name": folder.name,
        "parent_id": str(folder.parent_id) if folder.parent_id is not None else None,
        "created_at": folder.created_at.isoformat(),
        "updated_at": folder.updated_at.isoformat(),
    }


def upload_json(upload: Any) -> dict:
    """The public representation of an unfinished resumable upload."""
    return {
        "id": str(upload.id),
        "url": f"/api/v1/uploads/{upload.id}",
        "name": upload.name,
        "folder_id": str(upload.folder_id) if upload.folder_id is not None else None,
        "relative_dir": upload.relative_dir,
        "length": upload.length,
        "offset": upload.offset,
        "created_at": upload.created_at.isoformat(),
        "expires_at": upload.expires_at.isoformat(),
    }
