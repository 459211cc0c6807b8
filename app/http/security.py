"""The spec's bearer scheme, and the caller's account for handlers.

Connexion runs `bearer_info` on the event loop, outside any app context: it only checks
the token's signature and expiry (CPU only). The account it names is looked up once per
request, on first use, by `owner` (or `account`), and the same query tells whether the
token's session has ended (logout, password change): `users.session_account`, or for
the many requests that need only the account's id, the lighter `users.session_owner`.
The files page, the most frequent request, asks it inside its own statement instead
(`files.list_files` with the presented token).

`bearer_info` runs in the request's own task, so the token's claims it keeps in a context
variable are seen by everything after it: the Flask handler's thread (a2wsgi copies the
context) and the streaming operations' worker threads alike.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar

import flask
from sqlalchemy.orm import Session

from app.errors import Unauthorized
from app.http.request import db
from app.models import User
from app.overrides.connexion import signature_kept
from app.services import tokens, users
from app.settings import Settings

_settings: Settings | None = None
_presented: ContextVar[tokens.Claims | None] = ContextVar("presented_token", default=None)


def configure(settings: Settings) -> None:
    """Called by create_app: Connexion's security handlers run outside any app context."""
    global _settings
    _settings = settings


# Connexion asks which keywords this takes on every request (app.overrides.connexion).
@signature_kept
def bearer_info(token: str) -> dict[str, str]:
    """Token info for a valid token; raises Unauthorized (401) for anything else."""
    assert _settings is not None, "create_app() configures security first"
    claims = tokens.verify(_settings, token)
    _presented.set(claims)
    return {"sub": str(claims.user_id)}


def presented_token(user: str) -> tokens.Claims:
    """The claims of the token this request presented (for `user`, as Connexion says)."""
    claims = _presented.get()
    if claims is None or str(claims.user_id) != user:
        raise Unauthorized("The access token is not valid.")
    return claims


def account(user: str) -> User:
    """The caller's account; 401 when its token's session ended. Once per request."""
    if "account" not in flask.g:
        flask.g.account = account_in(db(), user)
    return flask.g.account


def owner(user: str) -> uuid.UUID:
    """The id of the caller's account; 401 when the token outlived it. Once per request."""
    if "owner" not in flask.g:
        loaded = flask.g.get("account")
        flask.g.owner = loaded.id if loaded is not None else owner_in(db(), user)
    return flask.g.owner


def account_in(session: Session, user: str) -> User:
    """`account` for a request served outside Flask (app.http.streaming), in `session`."""
    return users.session_account(session, presented_token(user))


def owner_in(session: Session, user: str) -> uuid.UUID:
    """`owner` for a request served outside Flask (app.http.streaming), in `session`."""
    return users.session_owner(session, presented_token(user))
