"""Invitations: how a person registers while sign-up is by invitation.

An administrator makes one (an expiry, and optionally the one address that may use it);
its token is shown once and only its SHA-256 is kept. Using it is one conditional UPDATE
in the registration's transaction: two registrations with one invitation queue on its
row, and the second finds it used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import Forbidden, InvalidInput, NotFound
from app.models import Invitation, User
from app.services import audit

DEFAULT_DAYS = 7
MAX_DAYS = 90


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Made:
    """A new invitation and its token (shown once): what a mailer needs to send it."""

    invitation: Invitation
    token: str

    def link(self, base_url: str) -> str:
        """Where the invited person registers (the web app's invite form)."""
        return f"{base_url.rstrip('/')}/#/invite/{self.token}"


def create(
    session: Session,
    actor: User,
    *,
    email: str | None = None,
    days: int = DEFAULT_DAYS,
    address: str | None = None,
) -> Made:
    """Make an invitation (committed, with its audit entry); its token comes back once."""
    from app.services.users import normalize_email

    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"An invitation lasts 1 to {MAX_DAYS} days.")
    if email is not None:
        email = normalize_email(email)
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        id=uuid.uuid4(),
        token_hash=_hash(token),
        email=email,
        created_by=actor.id,
        created_at=utcnow(),
        expires_at=utcnow() + dt.timedelta(days=days),
    )
    session.add(invitation)
    audit.record(
        session,
        actor,
        "invitation.create",
        audit.Target("invitation", str(invitation.id), email),
        address=address,
        details={"days": days, "email": email},
    )
    session.commit()
    # One for an address is mailed to it by the handler, once this is committed
    # (app.services.mail.send_invitation).
    return Made(invitation, token)


def state(invitation: Invitation, now: dt.datetime | None = None) -> str:
    """`pending`, `used`, `revoked` or `expired`."""
    if invitation.used_at is not None:
        return "used"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= (now or utcnow()):
        return "expired"
    return "pending"


@dataclass(frozen=True)
class Page:
    items: list[Invitation]
    next_cursor: str | None


def page(session: Session, *, limit: int, cursor: str | None = None) -> Page:
    """Invitations newest first, a page at a time (the cursor: the last one's id)."""
    query = (
        select(Invitation)
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        try:
            last = session.get(Invitation, uuid.UUID(cursor))
        except ValueError:
            last = None
        if last is None:
            raise InvalidInput("The cursor is not valid for this listing; start again without it.")
        query = query.where(
            (Invitation.created_at < last.created_at)
            | ((Invitation.created_at == last.created_at) & (Invitation.id < last.id))
        )
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, str(rows[-1].id) if more else None)


def revoke(session: Session, actor: User, invitation_id: uuid.UUID, *, address: str | None) -> None:
    """End an invitation that was not used yet (a used one stays as it is: Conflict-free)."""
    invitation = session.get(Invitation, invitation_id)
    if invitation is None:
        raise NotFound(f"There is no invitation {invitation_id}.")
    if invitation.revoked_at is None and invitation.used_at is None:
        invitation.revoked_at = utcnow()
        audit.record(
            session,
            actor,
            "invitation.revoke",
            audit.Target("invitation", str(invitation.id), invitation.email),
            address=address,
        )
    session.commit()


_REFUSED = {
    "used": "This invitation has been used already; ask for a new one.",
    "revoked": "This invitation was revoked; ask for a new one.",
    "expired": "This invitation has expired; ask for a new one.",
}


def claim(session: Session, token: str, email: str) -> Invitation:
    """Use the invitation of `token` for `email`, in the caller's transaction; Forbidden
    (saying why) when it cannot be. Of two claims at once, the second waits for the
    first's transaction and then finds the invitation used (or free again, if it rolled
    back)."""
    now = utcnow()
    claimed = session.execute(
        update(Invitation)
        .where(
            Invitation.token_hash == _hash(token),
            Invitation.used_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
            (Invitation.email.is_(None)) | (func.lower(Invitation.email) == email.lower()),
        )
        .values(used_at=now)
        .returning(Invitation.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    found = session.scalar(select(Invitation).where(Invitation.token_hash == _hash(token)))
    if found is None:
        raise Forbidden("This invitation link is not valid; check that it was copied whole.")
    if claimed is None:
        why = state(found, now)
        if why == "pending":
            raise Forbidden("This invitation is for another e-mail address.")
        raise Forbidden(_REFUSED[why])
    return found


def used_by(session: Session, invitation: Invitation, user: User, *, address: str | None) -> None:
    """Record who registered with it (the account exists by now), with its audit entry."""
    invitation.used_by = user.id
    audit.record(
        session,
        user,
        "invitation.use",
        audit.Target("invitation", str(invitation.id), invitation.email),
        address=address,
    )
