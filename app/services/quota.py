"""The quota: what each owner stores and reserves, and the room a new file must find under
it by either upload path (its name must be free too: app.services.folders).

Usage is kept as counters on the owner's row (`file_count`, `bytes_stored`,
`bytes_reserved`), changed by the same transaction that adds or removes a file or an
upload. A new file or upload is charged with one conditional UPDATE (`... WHERE stored +
reserved + size <= quota`): concurrent uploads of one owner queue on that row, and each
sees the bytes of those before it, so usage never passes the quota, on PostgreSQL and on
SQLite alike. Reading usage costs one row, however many files there are.

The quota is the account's own (`users.quota_bytes`, set by an administrator) or, where it
has none, the server's: every function here takes the server's as `quota_bytes` and the
SQL reads the account's effective one (`effective`), in the same statement.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import cast

from sqlalchemy import BigInteger, Table, Update, bindparam, func, select, update
from sqlalchemy.orm import Session

from app.db import rowcount
from app.errors import TooLarge
from app.models import File, FileStatus, Upload, User
from app.services import sizes


@dataclass(frozen=True)
class Usage:
    file_count: int
    bytes_stored: int
    bytes_reserved: int = 0  # the lengths of unfinished resumable uploads


@dataclass(frozen=True)
class Drift:
    """An owner whose counters did not match the rows: (what they said, what the rows say).

    `counted_by_status` and `actual_by_status` are the files in each status, in
    `FileStatus` order (the counters the triggers on `files` keep).
    """

    owner_id: uuid.UUID
    counted: Usage
    actual: Usage
    counted_by_status: tuple[int, ...] = ()
    actual_by_status: tuple[int, ...] = ()


STATUS_COUNTERS = (User.files_pending, User.files_processing, User.files_ready, User.files_failed)


def effective(default_bytes: int):
    """The owner's quota as SQL: its own, else the server's `default_bytes`."""
    return func.coalesce(User.quota_bytes, default_bytes)


def usage(session: Session, owner_id: uuid.UUID) -> Usage:
    """The owner's files, the bytes they take (originals) and the bytes reserved."""
    row = session.execute(
        select(User.file_count, User.bytes_stored, User.bytes_reserved).where(User.id == owner_id)
    ).one()
    return Usage(*(int(value) for value in row))


def _over_quota(current: Usage, quota_bytes: int, size: int) -> TooLarge:
    used = current.bytes_stored + current.bytes_reserved
    return TooLarge(more_than_left(size, max(quota_bytes - used, 0)), limit="quota")


def more_than_left(size: int, left: int) -> str:
    """ "50 MiB is more than the 20 MiB you have left." (in bytes too where the units
    would round the two sizes alike)."""
    asked, room = sizes.iec(size), sizes.iec(left)
    if asked == room:
        asked, room = f"{asked} ({size:,} bytes)", f"{room} ({left:,} bytes)"
    return f"{asked} is more than the {room} you have left."


def check_room(quota_bytes: int, used: int, size: int) -> None:
    """Refuse early a file whose size would break the owner's quota (`quota_bytes`, the
    effective one), given the bytes they have `used` (stored and reserved), as an upload's
    first look read them (app.services.placement.survey). That look takes no lock: the
    charge (`charge_file`, `reserve`) is what holds."""
    if used + size > quota_bytes:
        raise TooLarge(more_than_left(size, max(quota_bytes - used, 0)), limit="quota")


def _refusal(session: Session, quota_bytes: int, owner_id: uuid.UUID, size: int) -> TooLarge:
    quota = session.scalar(select(effective(quota_bytes)).where(User.id == owner_id))
    return _over_quota(usage(session, owner_id), int(quota or 0), size)


def _change(
    session: Session,
    owner_id: uuid.UUID,
    deltas: dict[str, int],
    *,
    within: tuple[int, int] | None = None,
) -> bool:
    """Add `deltas` to the owner's counters; with `within=(size, quota)`, only if `size`
    more bytes fit the quota (the account's own, else `quota`). False when they do not."""
    parameters: dict[str, object] = {"owner_id": owner_id}
    parameters.update({f"add_{name}": delta for name, delta in deltas.items()})
    if within is not None:
        parameters["size"], parameters["quota"] = within
    changed = session.execute(_changing(tuple(sorted(deltas)), within is not None), parameters)
    return rowcount(changed) == 1


_USERS_TABLE = cast(Table, User.__table__)  # Core: not the ORM's bulk UPDATE
_USERS = _USERS_TABLE.c


@functools.lru_cache(maxsize=16)
def _changing(names: tuple[str, ...], within: bool) -> Update:
    """The UPDATE of `_change` for these counters, built once (every upload runs two):
    parameters owner_id, add_<counter>…, and with `within`, size and quota (the server's;
    `effective`: the account's own first)."""
    where = [_USERS.id == bindparam("owner_id", type_=_USERS.id.type)]
    if within:
        room = _USERS.bytes_stored + _USERS.bytes_reserved + bindparam("size", type_=BigInteger)
        quota = func.coalesce(_USERS.quota_bytes, bindparam("quota", type_=BigInteger))
        where.append(room <= quota)
    values = {name: _USERS[name] + bindparam(f"add_{name}", type_=BigInteger) for name in names}
    # Bookkeeping: keep `updated_at` (its column default would bump it) unchanged.
    return update(_USERS_TABLE).where(*where).values(**values, updated_at=_USERS.updated_at)


def charge_file(session: Session, quota_bytes: int, owner_id: uuid.UUID, size: int) -> None:
    """Count a new file of `size` bytes, in the caller's transaction; 413 if it does not fit."""
    deltas = {"file_count": 1, "bytes_stored": size}
    if not _change(session, owner_id, deltas, within=(size, quota_bytes)):
        raise _refusal(session, quota_bytes, owner_id, size)


def reserve(session: Session, quota_bytes: int, owner_id: uuid.UUID, length: int) -> None:
    """Hold `length` bytes for an unfinished upload, in the caller's transaction; 413 if not."""
    if not _change(session, owner_id, {"bytes_reserved": length}, within=(length, quota_bytes)):
        raise _refusal(session, quota_bytes, owner_id, length)


def reservation_filled(session: Session, owner_id: uuid.UUID, length: int) -> None:
    """An upload became a file: its reserved bytes are stored bytes now."""
    _change(session, owner_id, {"file_count": 1, "bytes_stored": length, "bytes_reserved": -length})


def release(session: Session, owner_id: uuid.UUID, length: int) -> None:
    """An unfinished upload went (cancelled or expired): its bytes are free again."""
    _change(session, owner_id, {"bytes_reserved": -length})


def discharge_file(session: Session, owner_id: uuid.UUID, size: int) -> None:
    """A file was deleted: it no longer counts."""
    _change(session, owner_id, {"file_count": -1, "bytes_stored": -size})


def files_removed(
    session: Session, owner_id: uuid.UUID, count: int, size: int, *, released: int = 0
) -> None:
    """`count` files of `size` bytes in all were deleted, and `released` reserved bytes
    freed, in one statement (a folder delete)."""
    if count or size or released:
        deltas = {"file_count": -count, "bytes_stored": -size, "bytes_reserved": -released}
        _change(session, owner_id, deltas)


def _actual_counts(session: Session, owner_id: uuid.UUID | None = None):
    """Per owner: (id, the counters, then what the rows say), in one statement.

    One snapshot for both sides: a file and the counters it moves commit together, so a
    write under way shows on neither side and is no drift.
    """
    files = select(
        File.owner_id,
        func.count(File.id).label("n"),
        func.coalesce(func.sum(File.size), 0).label("size"),
        *(
            func.count(File.id).filter(File.status == status).label(status.value)
            for status in FileStatus
        ),
    ).group_by(File.owner_id)
    uploads = select(
        Upload.owner_id, func.coalesce(func.sum(Upload.length), 0).label("length")
    ).where(Upload.completed_at.is_(None))
    users = select(User.id)
    if owner_id is not None:
        files = files.where(File.owner_id == owner_id)
        uploads = uploads.where(Upload.owner_id == owner_id)
        users = users.where(User.id == owner_id)
    f = files.subquery()
    u = uploads.group_by(Upload.owner_id).subquery()
    return session.execute(
        users.add_columns(
            User.file_count,
            User.bytes_stored,
            User.bytes_reserved,
            *STATUS_COUNTERS,
            func.coalesce(f.c.n, 0),
            func.coalesce(f.c.size, 0),
            func.coalesce(u.c.length, 0),
            *(func.coalesce(f.c[status.value], 0) for status in FileStatus),
        )
        .outerjoin(f, f.c.owner_id == User.id)
        .outerjoin(u, u.c.owner_id == User.id)
    ).all()


def _drift(row) -> Drift | None:
    owner_id, *values = row
    values = [int(v) for v in values]
    counted, counted_by_status = Usage(*values[:3]), tuple(values[3:7])
    actual, actual_by_status = Usage(*values[7:10]), tuple(values[10:14])
    if counted == actual and counted_by_status == actual_by_status:
        return None
    return Drift(owner_id, counted, actual, counted_by_status, actual_by_status)


def recount(session: Session, *, repair: bool) -> list[Drift]:
    """Every owner whose counters differ from their rows; with `repair`, set them right.

    A repair locks the owner's row, then counts again: uploads, deletes and the worker's
    status changes of that owner wait for it (their counters move on that row), so one
    landing meanwhile is counted once, by the repair or after it.
    """
    drifts = [d for d in map(_drift, _actual_counts(session)) if d is not None]
    session.rollback()
    if not repair:
        return drifts
    repaired = []
    for drift in drifts:
        session.execute(select(User.id).where(User.id == drift.owner_id).with_for_update())
        [row] = _actual_counts(session, drift.owner_id)
        now = _drift(row)
        if now is not None:
            actual = now.actual
            session.execute(
                update(User)
                .where(User.id == drift.owner_id)
                .values(
                    file_count=actual.file_count,
                    bytes_stored=actual.bytes_stored,
                    bytes_reserved=actual.bytes_reserved,
                    **{
                        c.key: n for c, n in zip(STATUS_COUNTERS, now.actual_by_status, strict=True)
                    },
                    updated_at=User.updated_at,
                )
            )
            repaired.append(now)
        session.commit()
    return repaired
