"""Handlers for the caller's sessions: a kept browser's refresh, "Your sessions", and
ending them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.errors import Unauthorized
from app.http import session_cookie
from app.http.responses import NO_CONTENT, json_body
from app.http.streaming import Exchange, Reply
from app.models import SignedInSession
from app.services import sessions


async def refresh(request: Exchange) -> None:
    """Trade the refresh cookie of a kept session for a new access token and the next cookie."""
    token = session_cookie.refresh_token(request)
    if token is None:
        raise Unauthorized("You are not signed in on this browser; log in.")
    started = await request.lookup(
        sessions.refresh,
        request.runtime.settings,
        token,
        user_agent=request.headers.get("user-agent", ""),
        address=request.address,
    )
    await request.reply(session_cookie.token_reply(started, request.runtime.settings))


async def list_sessions(request: Exchange) -> None:
    """Your sessions that still hold, newest first: device, where from, created, last used."""
    await request.reply(await request.read(_list, request))


def _list(session: Session, request: Exchange) -> Reply:
    query = request.query
    page = sessions.list_sessions(
        session,
        request.account(),
        limit=int(query.get("limit", 50)),
        cursor=query.get("cursor"),
    )
    current = request.token().session_id
    items = [_session_json(row, row.id == current) for row in page.items]
    return json_body({"items": items, "next_cursor": page.next_cursor})


def _session_json(row: SignedInSession, current: bool) -> dict:
    return {
        "id": str(row.id),
        "device": row.device,
        "kind": row.kind,
        "address": row.address,
        "created_at": row.created_at.isoformat(),
        "last_used_at": row.last_used_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "current": current,
    }


async def end(request: Exchange) -> None:
    """End one of your sessions at once (this one too, if you name it: a log-out)."""
    ending = request.uuid("session_id")
    await request.lookup(lambda session: sessions.end_session(session, request.account(), ending))
    if ending == request.token().session_id:  # this browser's: its cookie goes too
        await request.reply((None, 204, {"Set-Cookie": session_cookie.cleared()}))
    else:
        await request.reply(NO_CONTENT)


async def end_others(request: Exchange) -> None:
    """Sign out everywhere else: end every session of yours but this one."""
    ended = await request.lookup(
        lambda session: sessions.end_other_sessions(
            session, request.account(), request.token().session_id
        )
    )
    await request.reply(json_body({"ended": ended}))
