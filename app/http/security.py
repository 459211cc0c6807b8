"""The spec's bearer scheme, and the caller's account for handlers.

Connexion runs `bearer_info` on the event loop, outside any app context: it only checks
the token's signature and expiry (CPU only). The account it names is looked up once per
request, on first use, by `owner`.
"""

from __future__ import annotations

import uuid

import flask
from sqlalchemy.orm import Session

from app.http.request import db
from app.services import tokens, users
from app.settings import Settings

_settings: Settings | None = None


def configure(settings: Settings) -> None:
    """Called by create_app: Connexion's security handlers run outside any app context."""
    global _settings
    _settings = settings


def bearer_info(token: str) -> dict[str, str]:
    """Token info for a valid token; raises Unauthorized (401) for anything else."""
    assert _settings is not None, "create_app() configures security first"
    return {"sub": str(tokens.verify(_settings, token))}


def owner(user: str) -> uuid.UUID:
    """The id of the caller's account; 401 when the token outlived it. Once per request."""
    if "owner" not in flask.g:
        flask.g.owner = owner_in(db(), user)
    return flask.g.owner


def owner_in(session: Session, user: str) -> uuid.UUID:
    """`owner` for a request served outside Flask (app.http.streaming), in `session`."""
    return users.get(session, uuid.UUID(user)).id
