"""Handlers for /users/sso: single sign-on through an OpenID provider (app.services.sso)."""

from __future__ import annotations

from sqlalchemy.orm import Session
from werkzeug.http import dump_cookie, parse_cookie

from app.errors import AppError, NotFound
from app.http import session_cookie
from app.http.links import public_base
from app.http.responses import json_body
from app.http.streaming import Exchange
from app.services import sessions, sso

CALLBACK = "/api/v1/users/sso/callback"
# The sign-in's state rides in this cookie too: only the browser that began a sign-in can
# finish it (a callback URL someone else's browser got from the provider does nothing).
# Lax, not Strict: the provider's redirect back is a navigation from another site.
STATE_COOKIE = "instashare_sso_state"
COOKIE_PATH = "/api/v1/users/sso"
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _state_cookie(request: Exchange, value: str, max_age: int) -> str:
    return dump_cookie(
        STATE_COOKIE,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=public_base(request).startswith("https://"),
        httponly=True,
        samesite="Lax",
    )


async def provider(request: Exchange) -> None:
    """Whether single sign-on is on here, and the provider's name for the log-in button."""
    settings = request.runtime.settings
    body = {"enabled": settings.sso_enabled, "label": settings.oidc_label}
    await request.reply(json_body(body, 200, **{"Cache-Control": "no-cache"}))


async def start(request: Exchange) -> None:
    """Begin a sign-in: off to the provider, which sends the browser back to the callback."""
    rt = request.runtime
    if not rt.settings.sso_enabled:
        raise NotFound("Single sign-on is not set up on this server.")
    try:
        made = await request.run(sso.begin, rt.settings, rt.once, public_base(request) + CALLBACK)
    except AppError as exc:  # the provider is down: the web app says so
        await _to_webapp(request, exc)
        return
    headers = {
        **NO_STORE,
        "Location": made.url,
        "Set-Cookie": _state_cookie(request, made.state, sso.STATE_TTL_SECONDS),
    }
    await request.reply((None, 302, headers))


async def callback(request: Exchange) -> None:
    """Where the provider sends the browser back: on to the web app with a one-time code."""
    rt = request.runtime
    if not rt.settings.sso_enabled:
        raise NotFound("Single sign-on is not set up on this server.")
    cookies = parse_cookie(request.headers.get("cookie", ""))
    outcome: object
    try:
        claims = await request.run(
            sso.verify_return,
            rt.settings,
            rt.once,
            state=request.query.get("state", ""),
            browser_state=cookies.get(STATE_COOKIE, ""),
            code=request.query.get("code", ""),
            error=request.query.get("error", ""),
            iss=request.query.get("iss", ""),
        )
        outcome = await request.lookup(sso.sign_in, rt.settings, claims)
    except AppError as exc:
        outcome = exc
    await _to_webapp(request, outcome)


async def _to_webapp(request: Exchange, outcome: object) -> None:
    """Send the browser to the web app, which collects the outcome with its one-time code."""
    code = await request.run(sso.hand_over, request.runtime.once, outcome)
    headers = {
        **NO_STORE,
        "Location": f"{public_base(request)}/#/sso/{code}",
        "Set-Cookie": _state_cookie(request, "", 0),  # spent, whatever came of it
    }
    await request.reply((None, 303, headers))


async def exchange(request: Exchange) -> None:
    """Trade a sign-in's one-time code for an access token (the same answer as a log-in)."""
    body = await request.json()
    started = await request.lookup(_exchange, request, body)
    # "Keep me signed in" (`remember`) sets its refresh cookie as a log-in's does.
    await request.reply(session_cookie.token_reply(started, request.runtime.settings))


def _exchange(session: Session, request: Exchange, body: dict) -> sessions.Started:
    rt = request.runtime
    user = sso.collect(session, rt.once, body["code"])
    return session_cookie.start(session, request, user, remember=bool(body.get("remember")))
