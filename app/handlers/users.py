"""Handlers for /users: register, log in and out, the caller's profile and password."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.http import attempts, session_cookie
from app.http.links import public_base
from app.http.responses import json_body
from app.http.streaming import Exchange, Reply
from app.models import User
from app.services import mail, password_resets, sessions, shares, users
from app.services.throttle import Attempt
from app.settings import Settings


def _user_json(user: User) -> dict:
    return {
        "id": str(user.id),
        "email": user.email,
        "created_at": user.created_at.isoformat(),
        "role": user.role or "user",
    }


async def register(request: Exchange) -> None:
    """Create an account (as the sign-up mode allows)."""
    body = await request.json()
    settings = request.runtime.settings
    await request.reply(await request.lookup(_register, settings, body, request.address))


def _register(session: Session, settings: Settings, body: dict, address: str) -> Reply:
    user = users.register(
        session,
        settings,
        body["email"],
        body["password"],
        invitation=body.get("invitation"),
        address=address,
    )
    return json_body(_user_json(user), 201, Location="/api/v1/users/me")


async def signup(request: Exchange) -> None:
    """Who may register on this server."""
    await request.reply(json_body({"mode": request.runtime.settings.signup}))


async def login(request: Exchange) -> None:
    """Exchange an e-mail and password for an access token (and with `remember`, a
    refresh cookie that keeps the browser signed in)."""
    body = await request.json()
    started = await request.lookup(
        _login,
        request,
        body,
        attempt=attempts.current(),  # counted, and its turn waited for, before this thread
    )
    await request.reply(session_cookie.token_reply(started, request.runtime.settings))


def _login(
    session: Session, request: Exchange, body: dict, attempt: Attempt | None
) -> sessions.Started:
    rt = request.runtime
    user = users.authenticate(
        session,
        rt.settings,
        rt.throttle,
        email=body["email"],
        password=body["password"],
        address=request.address,
        attempt=attempt,
    )
    # Its `last_seen_at` is moved after the answer: on SQLite a write of the account's row
    # before it waited behind the worker's, and the login with it.
    return session_cookie.start(session, request, user, remember=bool(body.get("remember")))


async def logout(request: Exchange) -> None:
    """End the session of the token this request presents (and forget its refresh cookie)."""
    await request.lookup(_logout, request)
    await request.reply((None, 204, {"Set-Cookie": session_cookie.cleared()}))


def _logout(session: Session, request: Exchange) -> None:
    request.account()  # a token whose session already ended gets 401
    users.logout(session, request.token())


async def change_password(request: Exchange) -> None:
    """Change your password; every earlier session ends, and a token for a new one comes back."""
    body = await request.json()
    token, expires_in = await request.lookup(
        _change_password, request, body["current_password"], body["new_password"]
    )
    started = sessions.Started(token, expires_in, None)
    await request.reply(session_cookie.token_reply(started, request.runtime.settings))


def _change_password(
    session: Session, request: Exchange, current: str, new: str
) -> tuple[str, int]:
    rt = request.runtime
    return users.change_password(
        session,
        rt.settings,
        rt.throttle,
        request.account(),
        current=current,
        new=new,
        address=request.address,
        token=request.token(),
    )


async def request_password_reset(request: Exchange) -> None:
    """Ask for a link by e-mail to set a new password; the same answer for any address."""
    body = await request.json()
    rt = request.runtime
    message = await request.lookup(
        password_resets.request,
        rt.settings,
        rt.throttle.store,
        email=body["email"],
        address=request.address,
        base_url=public_base(request),
    )
    await request.reply(
        json_body({"detail": password_resets.answer(body["email"], rt.settings)}, 202)
    )
    # Queued once the answer has gone: its time says nothing of whether there was a mail.
    if message is not None:
        await request.run(mail.send, rt.jobs, message)


async def reset_password(request: Exchange) -> None:
    """Set a new password with a reset link's token; every session ends, a new one begins."""
    body = await request.json()
    started = await request.lookup(_reset_password, request, body)
    await request.reply(session_cookie.token_reply(started, request.runtime.settings))


def _reset_password(session: Session, request: Exchange, body: dict) -> sessions.Started:
    settings = request.runtime.settings
    user = password_resets.confirm(
        session,
        settings,
        request.runtime.throttle,
        token=body["token"],
        new_password=body["new_password"],
        address=request.address,
    )
    return session_cookie.start(session, request, user, remember=False)


async def me(request: Exchange) -> None:
    """Your profile, storage usage and how many of your share links still work."""
    await request.reply(await request.read(_me, request))


def _me(session: Session, request: Exchange) -> Reply:
    caller = request.account()  # its usage counters come with it
    return json_body(
        {
            **_user_json(caller),
            "active_shares": shares.active_count(session, caller.id),
            "usage": {
                "file_count": caller.file_count,
                "bytes_stored": caller.bytes_stored,
                "bytes_reserved": caller.bytes_reserved,
                "quota_bytes": caller.quota_bytes
                if caller.quota_bytes is not None
                else request.runtime.settings.quota_bytes,
            },
            # What a form needs to stop a bad value before it is sent.
            "limits": {"share_max_days": request.runtime.settings.share_max_days},
        }
    )
