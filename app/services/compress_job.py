"""The compression job itself: a claimed file's upload becomes its verified ZIP archive.

The lease (`app.services.leases`) says who may do this; this module does it, renewing the
lease as it reads, and leaves nothing behind when the file is deleted meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from app.archive.writer import ArchiveResult, write_archive
from app.models import archive_key_for
from app.services import deletions, leases, names, previews
from app.services.previews import Preview
from app.storage import BackendUnavailable, ObjectMissing, Storage

log = logging.getLogger(__name__)


def compress(
    session: Session,
    storage: Storage,
    job: leases.Claim,
    *,
    lease_seconds: int,
    compression: str = "fast",
    on_progress: Callable[[], None] = lambda: None,
) -> bool:
    """Compress a claimed file, verify it, mark it ready and drop the staged upload.

    `compression` is the setting of the dial (`INSTASHARE_COMPRESSION`). Returns False
    (and leaves no objects behind) when the file was deleted meanwhile.
    """
    renew_every = max(lease_seconds / 3, 1)
    last_renewal = time.monotonic()

    def heartbeat() -> None:
        nonlocal last_renewal
        on_progress()
        if time.monotonic() - last_renewal >= renew_every:
            if not leases.renew(session, job, lease_seconds):
                raise leases.LeaseLost(str(job.file_id))
            last_renewal = time.monotonic()

    # Earlier attempts' keys: a killed writer's leftovers (a local temp file) go.
    for attempt in range(1, job.attempts):
        storage.discard_partial(archive_key_for(job.owner_id, job.file_id, attempt))
    staged = [job.staged_key, job.legacy_staged_key] if job.legacy_staged_key else [job.staged_key]
    source = job.staged_key
    try:
        try:
            result = _write(storage, job, source, heartbeat, compression)
        except ObjectMissing:
            # Staged by a version before the temporary prefix: read it where it is.
            if not job.legacy_staged_key or not storage.exists(job.legacy_staged_key):
                raise
            source = job.legacy_staged_key
            result = _write(storage, job, source, heartbeat, compression)
        generation = storage.generation(job.archive_key)
        preview = _preview(storage, job, source)
    except Exception:
        # A file deleted meanwhile shows up as whatever broke first (a lost lease, its
        # staged bytes gone from under the reader): that is no failure, just nothing to do.
        session.rollback()
        if not leases.exists(session, job.file_id):
            _remove(session, storage, [job.archive_key, *staged])
            return False
        # The archive of this attempt is this attempt's alone: a retry writes its own.
        _discard(storage, job.archive_key)
        if not leases.renew(session, job, lease_seconds):
            # Whatever broke (the successor removing what we wrote, say), the file is
            # another job's now: our lease ran out while we worked.
            raise leases.LeaseLost(str(job.file_id)) from None
        raise
    if not leases.complete(session, job, result, generation=generation, preview=preview):
        if not leases.exists(session, job.file_id):
            # Deleted while we worked: the archive we just wrote must not outlive its row.
            _remove(session, storage, [job.archive_key, *staged])
            return False
        # Taken over by a later attempt (our lease ran out): its archive is the file's, and
        # ours, under a key nothing records, goes.
        _discard(storage, job.archive_key)
        raise leases.LeaseLost(str(job.file_id))
    storage.delete(source)
    # What earlier attempts finished writing before they lost the lease and died.
    for attempt in range(1, job.attempts):
        _discard(storage, archive_key_for(job.owner_id, job.file_id, attempt))
    return True


def _remove(session: Session, storage: Storage, keys: list[str]) -> None:
    """What this job wrote for a file deleted meanwhile: recorded first, so that a worker
    dying before it is removed leaves it to the deletion sweep, then removed."""
    pending = deletions.schedule(session, keys)
    session.commit()
    deletions.carry_out(session, storage, pending)


def _write(
    storage: Storage,
    job: leases.Claim,
    source_key: str,
    heartbeat: Callable[[], None],
    compression: str,
) -> ArchiveResult:
    return write_archive(
        storage,
        source_key=source_key,
        archive_key=job.archive_key,
        entry_name=names.archive_name(job.name),  # NFC, even for a row named before
        size=job.size,
        crc32=job.crc32,
        sha256=job.sha256,
        content_type=job.content_type,
        modified_at=job.created_at,
        heartbeat=heartbeat,
        compression=compression,
    )


def _preview(storage: Storage, job: leases.Claim, source_key: str) -> Preview | None:
    """The upload's thumbnail, if it is an image we make them of. A preview is a nicety:
    whatever goes wrong making it (storage included), the file becomes ready without one."""
    if not previews.wanted(job.content_type, job.size):
        return None
    try:
        return previews.make(storage, source_key, job.content_type, job.size)
    except Exception:
        log.warning("no preview of %s: making it failed", job.file_id, exc_info=True)
        return None


def _discard(storage: Storage, key: str) -> None:
    """Remove an archive no row records (if storage is down, it stays for reconciliation)."""
    try:
        storage.delete(key)
    except BackendUnavailable:
        log.warning("could not remove the unrecorded archive %s", key)
