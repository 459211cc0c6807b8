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
            signing_account=settings.gcs_signing_account if settings.signed_downloads else None,
        )
    from app.storage.local import LocalStorage

    return LocalStorage(settings.storage_root)


def download_signer(settings: Settings) -> str:
    """Which signer signs download URLs, in words for `instashare-server check`."""
    if settings.storage_backend != "gcs" or not settings.signed_downloads:
        return "none (downloads stream through the API)"
    if settings.gcs_signing_key:
        return f"key file {settings.gcs_signing_key}"
    if settings.gcs_signing_account:
        return f"IAM signBlob as {settings.gcs_signing_account} (runtime credentials)"
    return "none (downloads stream through the API)"


__all__ = [
    "BackendUnavailable",
    "Busy",
    "ObjectExists",
    "ObjectMissing",
    "Storage",
    "download_signer",
    "make_storage",
]
