"""Handlers for /api/v1/admin: accounts, invitations, totals and the audit log.

Each one first checks that the caller is an administrator (`admin.require_admin`, 403
otherwise), in the same trip to the database as its work.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.orm import Session

from app import mail as mail_transports
from app.http.links import public_base
from app.http.responses import NO_CONTENT, json_body
from app.http.streaming import Exchange, Reply
from app.models import AuditEvent, Invitation, User
from app.services import admin, audit, invitations, mail

# The spec's defaults (admin.yaml).
LIMIT, SORT = 20, "-created_at"


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _account_json(row: Any) -> dict:
    return {
        "id": str(row.id),
        "email": row.email,
        "role": row.role,
        "state": "disabled" if row.disabled_at is not None else "active",
        "disabled_at": _iso(row.disabled_at),
        "created_at": row.created_at.isoformat(),
        "last_seen_at": _iso(row.last_seen_at),
        "file_count": int(row.file_count),
        "bytes_stored": int(row.bytes_stored),
        "quota_bytes": row.quota_bytes,
        "effective_quota_bytes": int(row.effective_quota),
        "active_links": int(row.active_links),
    }


def _invitation_json(invitation: Invitation) -> dict:
    return {
        "id": str(invitation.id),
        "email": invitation.email,
        "state": invitations.state(invitation),
        "created_at": invitation.created_at.isoformat(),
        "expires_at": invitation.expires_at.isoformat(),
        "used_at": _iso(invitation.used_at),
    }


def _event_json(event: AuditEvent) -> dict:
    target = None
    if event.target_kind is not None:
        target = {"kind": event.target_kind, "id": event.target_id, "label": event.target_label}
    return {
        "id": str(event.id),
        "at": event.at.isoformat(),
        "actor_id": str(event.actor_id) if event.actor_id else None,
        "actor_email": event.actor_email,
        "action": event.action,
        "target": target,
        "address": event.address,
        "details": event.details,
    }


def _admin(request: Exchange) -> User:
    return admin.require_admin(request.account())


# --- accounts -------------------------------------------------------------------------


async def list_users(request: Exchange) -> None:
    """Accounts, a page at a time, searched by address."""
    await request.reply(await request.read(_list_users, request))


def _list_users(session: Session, request: Exchange) -> Reply:
    _admin(request)
    query = request.query
    page = admin.list_users(
        session,
        request.runtime.settings.quota_bytes,
        limit=int(query.get("limit", LIMIT)),
        cursor=query.get("cursor"),
        sort=query.get("sort", SORT),
        search=query.get("q"),
    )
    items = [_account_json(row) for row in page.items]
    return json_body({"items": items, "next_cursor": page.next_cursor, "total": page.total})


async def get_user(request: Exchange) -> None:
    """One account."""
    await request.reply(await request.read(_get_user, request))


def _get_user(session: Session, request: Exchange) -> Reply:
    _admin(request)
    quota = request.runtime.settings.quota_bytes
    return json_body(_account_json(admin.get_user(session, quota, request.uuid("user_id"))))


async def update_user(request: Exchange) -> None:
    """Change an account's role, quota, or whether it is disabled."""
    body = await request.json()
    await request.reply(await request.lookup(_update_user, request, body))


def _update_user(session: Session, request: Exchange, body: dict) -> Reply:
    actor = _admin(request)
    user_id = request.uuid("user_id")
    changes: dict[str, Any] = {k: body[k] for k in ("role", "disabled") if k in body}
    if "quota_bytes" in body:
        changes["quota_bytes"] = body["quota_bytes"]
    admin.update_user(session, actor, user_id, address=request.address, **changes)
    quota = request.runtime.settings.quota_bytes
    return json_body(_account_json(admin.get_user(session, quota, user_id)))


async def delete_user(request: Exchange) -> None:
    """Delete an account and everything it owns."""
    await request.lookup(_delete_user, request)
    await request.reply(NO_CONTENT)


def _delete_user(session: Session, request: Exchange) -> None:
    actor = _admin(request)
    admin.delete_user(
        session, request.runtime.jobs, actor, request.uuid("user_id"), address=request.address
    )


async def totals(request: Exchange) -> None:
    """The server's accounts, files, bytes, links and uploads in progress."""
    await request.reply(await request.read(_totals, request))


def _totals(session: Session, request: Exchange) -> Reply:
    _admin(request)
    return json_body(admin.totals(session))


# --- invitations ----------------------------------------------------------------------


async def list_invitations(request: Exchange) -> None:
    """Invitations, newest first."""
    await request.reply(await request.read(_list_invitations, request))


def _list_invitations(session: Session, request: Exchange) -> Reply:
    _admin(request)
    query = request.query
    page = invitations.page(
        session, limit=int(query.get("limit", LIMIT)), cursor=query.get("cursor")
    )
    items = [_invitation_json(i) for i in page.items]
    return json_body({"items": items, "next_cursor": page.next_cursor})


async def create_invitation(request: Exchange) -> None:
    """Make an invitation link (shown once); one for an address is mailed to it as well."""
    body = await request.json() or {}
    reply, invitation = await request.lookup(_create_invitation, request, body)
    await request.reply(reply)
    if invitation is not None:  # queued after the commit, and after the answer
        await request.run(mail.send_invitation, request.runtime.jobs, *invitation)


def _create_invitation(
    session: Session, request: Exchange, body: dict
) -> tuple[Reply, tuple[str, str, str, dt.datetime] | None]:
    inviter = _admin(request)
    made = invitations.create(
        session,
        inviter,
        email=body.get("email"),
        days=body.get("expires_in_days", invitations.DEFAULT_DAYS),
        address=request.address,
    )
    link = made.link(public_base(request))
    reply: Reply = json_body(
        {**_invitation_json(made.invitation), "token": made.token, "link": link},
        201,
        **{"Cache-Control": "no-store"},  # the token is shown this once
    )
    to = made.invitation.email
    if not (to and mail_transports.configured(request.runtime.settings)):
        return reply, None
    return reply, (to, link, inviter.email, made.invitation.expires_at)


async def revoke_invitation(request: Exchange) -> None:
    """Revoke an invitation not used yet."""
    await request.lookup(_revoke_invitation, request)
    await request.reply(NO_CONTENT)


def _revoke_invitation(session: Session, request: Exchange) -> None:
    invitations.revoke(
        session, _admin(request), request.uuid("invitation_id"), address=request.address
    )


# --- the audit log --------------------------------------------------------------------


async def audit_log(request: Exchange) -> None:
    """The audit log, newest first."""
    await request.reply(await request.read(_audit_log, request))


def _audit_log(session: Session, request: Exchange) -> Reply:
    _admin(request)
    query = request.query
    actor = query.get("actor")
    page = audit.page(
        session,
        limit=int(query.get("limit", LIMIT)),
        cursor=query.get("cursor"),
        action=query.get("action"),
        actor=uuid.UUID(actor) if actor else None,
    )
    items = [_event_json(e) for e in page.items]
    return json_body({"items": items, "next_cursor": page.next_cursor})
