"""The spec's bearer scheme, and the caller's account for handlers.

Connexion runs `bearer_info` on the event loop, outside any handler: it only checks the
token's signature and expiry (CPU only), by the rules of the app serving the request
(`runtime_of`). The account it names is looked up once per request, on first use, by
`Exchange.owner` (or `Exchange.account`), and the same query tells whether the token's
session has ended (logout, password change): `users.session_account`, or for the many
requests that need only the account's id, the lighter `users.session_owner`. The files
page, the most frequent request, asks it inside its own statement instead
(`files.list_files` with the presented token).

`bearer_info` runs in the request's own task, so the token's claims it keeps in a context
variable are seen by everything after it, the handler's worker threads included.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar

from connexion.lifecycle import ConnexionRequest
from sqlalchemy.orm import Session
from starlette.types import Scope

from app.errors import Unauthorized
from app.models import User
from app.overrides.connexion import signature_kept
from app.runtime import Runtime
from app.services import tokens, users

# The attribute of the app's Connexion middleware (which every request's scope names as
# its `app`) that holds the Runtime the factory built it with.
RUNTIME = "instashare_runtime"
_presented: ContextVar[tokens.Claims | None] = ContextVar("presented_token", default=None)


def runtime_of(scope: Scope) -> Runtime:
    """The Runtime of the app serving the request of `scope` (see app.web.create_app)."""
    return getattr(scope["app"], RUNTIME)


# Connexion asks which keywords this takes on every request (app.overrides.connexion).
@signature_kept
def bearer_info(token: str, request: ConnexionRequest) -> dict[str, str]:
    """Token info for a valid token; raises Unauthorized (401) for anything else."""
    claims = tokens.verify(runtime_of(request.scope).settings, token)
    _presented.set(claims)
    return {"sub": str(claims.user_id)}


def presented_token(user: str) -> tokens.Claims:
    """The claims of the token this request presented (for `user`, as Connexion says)."""
    claims = _presented.get()
    if claims is None or str(claims.user_id) != user:
        raise Unauthorized("The access token is not valid.")
    return claims


def account_in(session: Session, user: str) -> User:
    """The caller's account, in `session`; 401 when its token's session ended."""
    return users.session_account(session, presented_token(user))


def owner_in(session: Session, user: str) -> uuid.UUID:
    """The id of the caller's account, in `session`; 401 when the token outlived it."""
    return users.session_owner(session, presented_token(user))
