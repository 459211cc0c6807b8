"""Handlers for /users/me/tokens: the caller's personal API tokens (make, list, revoke)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.http.responses import NO_CONTENT, json_body
from app.http.streaming import Exchange, Reply
from app.models import ApiToken
from app.services import api_tokens


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def token_json(token: ApiToken) -> dict:
    """What a token's owner sees of it: everything but its secret."""
    return {
        "id": str(token.id),
        "name": token.name,
        "scopes": token.scopes.split(),
        "created_at": token.created_at.isoformat(),
        "expires_at": _iso(token.expires_at),
        "last_used_at": _iso(token.last_used_at),
    }


def _instant(raw: str | None) -> dt.datetime | None:
    if raw is None:
        return None
    try:
        return dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"expires_at {raw!r} is not a date and time.") from None


async def create(request: Exchange) -> None:
    """Make an API token for a script or CI; its secret is shown this once."""
    await request.reply(await request.lookup(_create, request, await request.json()))


def _create(session: Session, request: Exchange, body: dict) -> Reply:
    token, secret = api_tokens.create(
        session,
        request.owner(),
        name=body["name"],
        scopes=body["scopes"],
        expires_in_days=body.get("expires_in_days"),
        expires_at=_instant(body.get("expires_at")),
    )
    return json_body(
        {**token_json(token), "token": secret},
        201,
        Location=f"/api/v1/users/me/tokens/{token.id}",
        **{"Cache-Control": "no-store"},  # a credential: no cache keeps it
    )


async def list_tokens(request: Exchange) -> None:
    """Your API tokens (no secret in them)."""
    await request.reply(await request.read(_list, request))


def _list(session: Session, request: Exchange) -> Reply:
    found = api_tokens.list_tokens(session, request.owner())
    return json_body({"items": [token_json(t) for t in found]})


async def revoke(request: Exchange) -> None:
    """Revoke an API token (at once, on every API process)."""
    await request.lookup(
        lambda session: api_tokens.revoke(session, request.owner(), request.uuid("token_id"))
    )
    await request.reply(NO_CONTENT)
