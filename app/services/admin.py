"""What administrators do to accounts: list and search them, change a role, a quota or
whether an account may be used, delete one with all it owns, and the server's totals.

Every change is written to the audit log (app.services.audit) in its own transaction. An
administrator never demotes, disables or deletes themselves: the one acting stays an
administrator, so a server always keeps one.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, bindparam, func, select, tuple_, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.db import utcnow
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.models import TEMP_PREFIX, Share, Upload, User
from app.queue.jobs import JobQueue
from app.services import audit, cursors, deletions, passwords, quota, shares, users
from app.settings import Settings

ROLES = ("user", "admin")
NOT_ADMIN = "Only an administrator may do this."
# The keyset orders of the users' listing, each walking an index (models.User, 0018).
SORTS: dict[str, tuple[Any, bool]] = {
    "created_at": (User.created_at, False),
    "-created_at": (User.created_at, True),
    "email": (func.lower(User.email), False),
    "-email": (func.lower(User.email), True),
    "bytes_stored": (User.bytes_stored, False),
    "-bytes_stored": (User.bytes_stored, True),
}
_KEEP: Any = object()


def require_admin(user: User) -> User:
    """`user`, if an administrator (Forbidden otherwise)."""
    if not user.is_admin:
        raise Forbidden(NOT_ADMIN)
    return user


def _target(user: User) -> audit.Target:
    return audit.Target("user", str(user.id), user.email)


# --- the listing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    items: list[Row]
    next_cursor: str | None
    total: int


def _active_links():
    """How many of the row's account's links still work (by ix_shares_owner_id_created_at)."""
    return (
        select(func.count())
        .select_from(Share)
        .where(Share.owner_id == User.id, *shares.working(bindparam("now")))
        .correlate(User)
        .scalar_subquery()
        .label("active_links")
    )


def _listed(default_quota: int) -> tuple:
    return (
        User.id,
        User.email,
        User.role,
        User.created_at,
        User.last_seen_at,
        User.disabled_at,
        User.file_count,
        User.bytes_stored,
        User.quota_bytes,
        quota.effective(default_quota).label("effective_quota"),
        _active_links(),
    )


def list_users(
    session: Session,
    default_quota: int,
    *,
    limit: int,
    cursor: str | None = None,
    sort: str = "-created_at",
    search: str | None = None,
) -> Page:
    """One page of accounts in a keyset order, those whose address holds `search` (any
    case) if given, and how many match in all."""
    params: dict[str, object] = {"limit": limit + 1, "now": utcnow()}
    if search:
        escaped = search.lower().replace("/", "//").replace("%", "/%").replace("_", "/_")
        params["search"] = f"%{escaped}%"
    if cursor:
        params["after"], params["after_id"] = _decode_cursor(sort, cursor)
    page, counter = _statements(sort, bool(search), bool(cursor), default_quota)
    rows = session.execute(page, params).all()
    total = rows[0].total if rows else session.scalar(counter, params)
    next_cursor = _encode_cursor(sort, rows[limit - 1]) if len(rows) > limit else None
    return Page(list(rows[:limit]), next_cursor, int(total or 0))


@functools.cache
def _statements(sort: str, searched: bool, after: bool, default_quota: int):
    """(a page, the total), built once per shape (as app.services.files does): the cursor
    is a row-value bound the planner walks the order's index from; the search, a LIKE on
    lower(email), is what the trigram index of migration 0018 answers on PostgreSQL."""
    column, descending = SORTS[sort]
    where: list[ColumnElement[bool]] = []
    if searched:
        where.append(func.lower(User.email).like(bindparam("search"), escape="/"))
    matching = list(where)
    if after:
        bound = tuple_(bindparam("after"), bindparam("after_id", type_=User.id.type))
        row = tuple_(column, User.id)
        where.append(row < bound if descending else row > bound)
    counter = select(func.count()).select_from(User).where(*matching)
    order = (column.desc(), User.id.desc()) if descending else (column.asc(), User.id.asc())
    page = (
        select(*_listed(default_quota), counter.scalar_subquery().label("total"))
        .where(*where)
        .order_by(*order)
        .limit(bindparam("limit", type_=Integer))
    )
    return page, counter


def _cursor_value(sort: str, row: Row) -> object:
    if sort.endswith("created_at"):
        return row.created_at.isoformat()
    if sort.endswith("email"):
        return row.email.lower()
    return int(row.bytes_stored)


def _encode_cursor(sort: str, row: Row) -> str:
    return cursors.encode(sort, _cursor_value(sort, row), row.id)


def _decode_cursor(sort: str, cursor: str) -> tuple[object, uuid.UUID]:
    kind = dt.datetime if sort.endswith("created_at") else str if sort.endswith("email") else int
    return cursors.decode(sort, cursor, kind)


def get_user(session: Session, default_quota: int, user_id: uuid.UUID) -> Row:
    """One account as the listing shows it; NotFound if there is none."""
    row = session.execute(
        select(*_listed(default_quota)).where(User.id == user_id), {"now": utcnow()}
    ).one_or_none()
    if row is None:
        raise NotFound(f"There is no user {user_id}.")
    return row


# --- changes ---------------------------------------------------------------------------


def _locked(session: Session, user_id: uuid.UUID) -> User:
    user = session.scalar(select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise NotFound(f"There is no user {user_id}.")
    return user


def update_user(
    session: Session,
    actor: User,
    user_id: uuid.UUID,
    *,
    role: str | None = None,
    quota_bytes: int | None = _KEEP,
    disabled: bool | None = None,
    address: str | None = None,
) -> None:
    """Change an account's role, its own quota (None: the server's again) or whether it
    is disabled, in one transaction with an audit entry per change.

    Disabling ends at once, on every API process, every session of the account (its
    token generation moves on, which every request checks), every download grant made
    from them, and every link of its (they answer as revoked until it is enabled again).
    """
    require_admin(actor)
    if actor.id == user_id and (role == "user" or disabled):
        raise Forbidden("You cannot demote or disable your own account; another administrator can.")
    session.rollback()  # end any read: the lock starts the transaction
    user = _locked(session, user_id)
    target = _target(user)
    if role is not None and role != user.role:
        audit.record(
            session, actor, "user.role", target, address=address,
            details={"from": user.role, "to": role},
        )  # fmt: skip
        user.role = role
    if quota_bytes is not _KEEP and quota_bytes != user.quota_bytes:
        audit.record(
            session, actor, "user.quota", target, address=address,
            details={"from": user.quota_bytes, "to": quota_bytes},
        )  # fmt: skip
        user.quota_bytes = quota_bytes
    if disabled is True and user.disabled_at is None:
        audit.record(session, actor, "user.disable", target, address=address)
        user.disabled_at = utcnow()
        user.token_generation = user.token_generation + 1
    elif disabled is False and user.disabled_at is not None:
        audit.record(session, actor, "user.enable", target, address=address)
        user.disabled_at = None
    session.commit()


def delete_user(
    session: Session, jobs: JobQueue, actor: User, user_id: uuid.UUID, *, address: str | None
) -> None:
    """Delete an account and everything it owns: the rows at once (one transaction, the
    audit entry with them), its objects by the worker (recorded in pending_deletions in
    that transaction, the job sent after the commit)."""
    require_admin(actor)
    if actor.id == user_id:
        raise Forbidden("You cannot delete your own account here; another administrator can.")
    session.rollback()
    user = _locked(session, user_id)
    audit.record(
        session, actor, "user.delete", _target(user), address=address,
        details={"files": int(user.file_count), "bytes_stored": int(user.bytes_stored)},
    )  # fmt: skip
    # Everything of theirs lives under these two prefixes (models: archives, staged and
    # legacy uploads in their folder; parts and staged uploads under the temporary one).
    deletions.record(session, [f"{user.id}/", f"{TEMP_PREFIX}{user.id}/"])
    session.execute(sql_delete(User).where(User.id == user.id))  # the rest cascades
    session.expunge(user)
    session.commit()
    jobs.send_deletions()


# --- totals ----------------------------------------------------------------------------


def totals(session: Session) -> dict[str, int]:
    """The server's accounts, files, bytes, working links and unfinished uploads."""
    people = session.execute(
        select(
            func.count(),
            func.count().filter(User.role == "admin"),
            func.count().filter(User.disabled_at.is_not(None)),
            func.coalesce(func.sum(User.file_count), 0),
            func.coalesce(func.sum(User.bytes_stored), 0),
            func.coalesce(func.sum(User.bytes_reserved), 0),
        ).select_from(User)
    ).one()
    links = session.scalar(select(func.count()).select_from(Share).where(*shares.working()))
    uploads = session.scalar(
        select(func.count()).select_from(Upload).where(Upload.completed_at.is_(None))
    )
    names = ("users", "admins", "disabled", "files", "bytes_stored", "bytes_reserved")
    return {
        **{name: int(value) for name, value in zip(names, people, strict=True)},
        "links": int(links or 0),
        "uploads": int(uploads or 0),
    }


# --- the first administrator -----------------------------------------------------------


class NoPassword(InvalidInput):
    """`ensure_admin` of an address with no account, and no password to make one."""


def ensure_admin(
    session: Session,
    settings: Settings,
    email: str,
    password: str | None,
    *,
    address: str = "command line",
) -> tuple[User, str]:
    """Make `email` an administrator: a new account with `password`, or an existing one
    promoted (its password unchanged). What happened: `created`, `promoted` or `unchanged`.
    Safe to run again (a container's every start)."""
    email = users.normalize_email(email)
    user = users.find_by_email(session, email)
    if user is not None:
        if user.is_admin:
            return user, "unchanged"
        session.execute(update(User).where(User.id == user.id).values(role="admin"))
        outcome = "promoted"
    else:
        if not password:
            raise NoPassword(f"There is no account {email}: a password is needed to create it.")
        if not users.MIN_PASSWORD <= len(password) <= users.MAX_PASSWORD:
            raise InvalidInput(
                f"The password must be {users.MIN_PASSWORD} to {users.MAX_PASSWORD} characters."
            )
        user = User(
            id=uuid.uuid4(),
            email=email,
            role="admin",
            password_hash=passwords.for_settings(settings).hash(password),
        )
        session.add(user)
        outcome = "created"
    audit.record(
        session, None, "admin.create", _target(user), address=address, details={"how": outcome}
    )
    try:
        session.commit()
    except Exception:
        session.rollback()
        raise Conflict(f"{email} was registered meanwhile; run the command again.") from None
    return user, outcome
