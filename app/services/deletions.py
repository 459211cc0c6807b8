"""Removing objects after the rows they belonged to: commit a tombstone, delete, sweep.

A row goes (a file deleted, an upload finished, cancelled or expired) in a transaction that
also records its objects in `pending_deletions`. Only after that commit are the objects
removed, and then their record. A process that dies in between, or a storage error, leaves
the record, and the worker's sweep (`sweep`) removes the objects later. So no row ever
points at objects already gone (a delete that does not commit leaves the file whole), and
no object outlives its row for longer than a sweep.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from app.db import utcnow, without_transaction
from app.models import FileStatus, PendingDeletion, archive_key_for, legacy_staged_key, staged_key
from app.storage import Storage

log = logging.getLogger(__name__)

# The sweep leaves a record this young alone: the request that wrote it is usually
# removing its objects at that moment.
SWEEP_AFTER_SECONDS = 60


class Pending(NamedTuple):
    """A deletion record: its id and the key (or prefix) it records."""

    id: uuid.UUID
    key: str


def schedule(session: Session, keys: Iterable[str]) -> list[Pending]:
    """Record `keys` (a key ending in `/` is a prefix) for removal, in the caller's
    transaction; the records to hand to `carry_out` once it has committed."""
    now = utcnow()
    rows = [PendingDeletion(id=uuid.uuid4(), key=key, created_at=now) for key in keys]
    session.add_all(rows)
    return [Pending(row.id, row.key) for row in rows]


def record(session: Session, keys: list[str]) -> None:
    """`schedule` for many keys at once, for the worker to carry out (no ids kept)."""
    if keys:
        now = utcnow()
        session.execute(
            insert(PendingDeletion),
            [{"id": uuid.uuid4(), "key": key, "created_at": now} for key in keys],
        )


def file_keys(
    owner_id: uuid.UUID,
    file_id: uuid.UUID,
    status: FileStatus,
    attempts: int,
    archive_object: str | None,
) -> list[str]:
    """Every object a file may have: its archive and staged upload and, until it is ready,
    its legacy staged key and each attempt's archive (a killed attempt's too)."""
    keys = [archive_object or archive_key_for(owner_id, file_id, 1), staged_key(owner_id, file_id)]
    if status != FileStatus.READY:
        keys.append(legacy_staged_key(owner_id, file_id))  # staged before `tmp/`
        keys += [archive_key_for(owner_id, file_id, n) for n in range(1, attempts + 1)]
    return list(dict.fromkeys(keys))


def _remove(storage: Storage, key: str) -> None:
    if key.endswith("/"):
        storage.delete_prefix(key)
    else:
        storage.delete(key)
        # A writer killed mid-write left its temporary object (the local backend's): the
        # row is gone, so no live writer can still want it (one that is alive fails to
        # finish its write, finds its lease gone and stops).
        storage.discard_partial(key)


def carry_out(session: Session, storage: Storage, pending: list[Pending]) -> int:
    """After the commit: remove the objects `pending` records, then the records.

    Never raises, for a storage or a database error alike (the caller's change is
    committed by now): what is not finished now is the sweep's. How many records were
    carried out. The records are not read again: the caller wrote them (or the sweep
    read them), and removing an object twice is harmless. Their removal is one statement
    standing alone (no BEGIN, no COMMIT round trip).
    """
    if not pending:
        return 0
    done: list[uuid.UUID] = []
    try:
        # In key order: a file's archive (`<owner>/…`) before anything under `tmp/`; the
        # first failure leaves the rest to the sweep (storage is failing: no use trying on).
        for row in sorted(pending, key=lambda row: row.key):
            _remove(storage, row.key)
            done.append(row.id)
    except Exception as exc:
        log.warning("objects left for the deletion sweep: %s", exc)
    if not done:
        return 0
    try:
        session.rollback()  # nothing should be open; if something is, it ends here
        without_transaction(session)
        session.execute(delete(PendingDeletion).where(PendingDeletion.id.in_(done)))
        session.commit()
    except Exception as exc:
        # The objects are gone; only their records stay, and the sweep finds nothing left
        # to remove for them. The change the caller committed stands: never an error now.
        session.rollback()
        log.warning("deletion records left for the sweep: %s", exc)
        return 0
    return len(done)


def sweep(
    session: Session,
    storage: Storage,
    *,
    limit: int = 500,
    after_seconds: float = SWEEP_AFTER_SECONDS,
) -> int:
    """Remove the objects of deletions a crash or a storage error left half-done.

    Takes the oldest records (older than `after_seconds`) first; how many it finished.
    """
    before = utcnow() - dt.timedelta(seconds=after_seconds)
    rows = [
        Pending(*row)
        for row in session.execute(
            select(PendingDeletion.id, PendingDeletion.key)
            .where(PendingDeletion.created_at <= before)
            .order_by(PendingDeletion.created_at)
            .limit(limit)
        )
    ]
    session.rollback()
    finished = 0
    for start in range(0, len(rows), 50):
        batch = rows[start : start + 50]
        done = carry_out(session, storage, batch)
        finished += done
        if done < len(batch):
            break  # storage is failing: the next sweep tries again
    return finished


def drain(session: Session, storage: Storage, *, limit: int = 500) -> int:
    """Remove every recorded object, the youngest records too, until none is left (or
    storage fails: the periodic sweep goes on from there). How many it finished."""
    finished = 0
    while True:
        done = sweep(session, storage, limit=limit, after_seconds=0)
        finished += done
        if done < limit:
            return finished
