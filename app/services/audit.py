"""The audit log: every administrative action, written in the transaction that makes it.

An entry names who acted (their id and their address at the time: the entry outlives the
account), what they did, to what, and from which client address. `details` holds what
changed, never a secret (no password, no token, no hash of one).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import AuditEvent, User

# Every action the log records (GET /admin/audit filters by them).
ACTIONS = (
    "user.role",
    "user.quota",
    "user.disable",
    "user.enable",
    "user.delete",
    "invitation.create",
    "invitation.revoke",
    "invitation.use",
    "admin.create",
)


@dataclass(frozen=True)
class Target:
    kind: str  # "user", "invitation"
    id: str
    label: str | None = None


def record(
    session: Session,
    actor: User | None,
    action: str,
    target: Target | None,
    *,
    address: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add one entry to the caller's transaction (it commits with the action, or not at all)."""
    assert action in ACTIONS, action
    session.add(
        AuditEvent(
            actor_id=actor.id if actor is not None else None,
            actor_email=actor.email if actor is not None else None,
            action=action,
            target_kind=target.kind if target else None,
            target_id=target.id if target else None,
            target_label=target.label if target else None,
            address=address,
            details=details or {},
        )
    )


@dataclass(frozen=True)
class Page:
    items: list[AuditEvent]
    next_cursor: str | None


def page(
    session: Session,
    *,
    limit: int,
    cursor: str | None = None,
    action: str | None = None,
    actor: uuid.UUID | None = None,
) -> Page:
    """Entries newest first, a page at a time (the cursor is the last entry's id), of one
    action or one actor's (their account id) if asked: each walks an index."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if cursor:
        if not cursor.isdigit() or len(cursor) > 19:
            raise InvalidInput("The cursor is not valid for this listing; start again without it.")
        query = query.where(AuditEvent.id < int(cursor))
    if action:
        query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(AuditEvent.actor_id == actor)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, str(rows[-1].id) if more else None)
