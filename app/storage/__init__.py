"""Object storage behind one small interface: a local directory, or Google Cloud Storage."""

from __future__ import annotations

from app.settings import Settings
from app.storage.base import BackendUnavailable, Busy, ObjectExists, ObjectMissing, Storage


def make_storage(settings: Settings) -> Storage:
    """The backend the settings choose."""
    if settings.storage_backend == "gcs":
        from app.storage.gcs import GCSStorage

        return GCSStorage(
            settings.gcs_bucket,
            project=settings.gcs_project or None,
            deadline=settings.gcs_deadline_seconds,
            timeout=settings.gcs_timeout_seconds,
            signing_key=settings.gcs_signing_key if settings.signed_downloads else None,
        )
    from app.storage.local import LocalStorage

    return LocalStorage(settings.storage_root)


__all__ = [
    "BackendUnavailable",
    "Busy",
    "ObjectExists",
    "ObjectMissing",
    "Storage",
    "make_storage",
]
