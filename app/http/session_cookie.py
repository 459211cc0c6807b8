"""The refresh cookie of a kept session, and the answer that hands out an access token.

The cookie is `HttpOnly` (no script reads it), `Secure`, `SameSite=Strict` (no other
site's page makes the browser send it) and scoped to `/api/v1/users/session`: the browser
sends it to the refresh operation only, never with the API's other requests. Browsers
count `http://127.0.0.1` and `http://localhost` as secure for cookies (potentially
trustworthy origins), so `instashare-server dev` keeps its sessions without TLS; any
other plain-HTTP origin gets the cookie refused by the browser (and "Keep me signed in"
lasts one access token), as it should.
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.requests import cookie_parser

from app.http.responses import json_body
from app.http.streaming import Exchange, Reply
from app.models import User
from app.services.sessions import Started, start_session
from app.settings import Settings

NAME = "instashare_refresh"
PATH = "/api/v1/users/session"
_ATTRIBUTES = f"Path={PATH}; HttpOnly; Secure; SameSite=Strict"


def start(session: Session, request: Exchange, user: User, *, remember: bool) -> Started:
    """A new session for `user`, who just proved who they are through `request` (a log-in,
    a single sign-on, a password reset link): its device and address come from the request,
    and its `last_seen_at` is moved after the answer (app.http.streaming.Seen)."""
    request.seen = str(user.id)
    return start_session(
        session,
        request.runtime.settings,
        user,
        user_agent=request.headers.get("user-agent", ""),
        address=request.address,
        remember=remember,
    )


def refresh_token(request: Exchange) -> str | None:
    """The refresh token the request's cookie carries, if any."""
    return cookie_parser(request.headers.get("cookie", "")).get(NAME) or None


def set_cookie(token: str, max_age: int) -> str:
    """The `Set-Cookie` value that keeps `token` for `max_age` seconds."""
    return f"{NAME}={token}; Max-Age={max_age}; {_ATTRIBUTES}"


def cleared() -> str:
    """The `Set-Cookie` value that removes the refresh cookie."""
    return f"{NAME}=; Max-Age=0; {_ATTRIBUTES}"


def token_reply(started: Started, settings: Settings) -> Reply:
    """The access token as JSON, and for a kept session the refresh token in its cookie."""
    headers = {"Cache-Control": "no-store"}  # a credential: no cache keeps it
    if started.refresh_token is not None:
        headers["Set-Cookie"] = set_cookie(started.refresh_token, settings.session_days * 86400)
    body = {"access_token": started.access_token, "token_type": "Bearer",
            "expires_in": started.expires_in}  # fmt: skip
    return json_body(body, 200, **headers)
