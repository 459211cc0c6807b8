"""Handlers for /users: register, log in and out, the caller's profile and password."""

from __future__ import annotations

import flask

from app.http import attempts
from app.http.request import db, runtime
from app.http.responses import json_body
from app.http.security import account, presented_token
from app.models import User
from app.services import shares, users


def _user_json(user: User) -> dict:
    return {"id": str(user.id), "email": user.email, "created_at": user.created_at.isoformat()}


def register(body: dict):
    """Create an account."""
    user = users.register(db(), body["email"], body["password"])
    return json_body(_user_json(user), 201, Location="/api/v1/users/me")


def login(body: dict):
    """Exchange an e-mail and password for an access token."""
    rt = runtime()
    token, expires_in = users.login(
        db(),
        rt.settings,
        rt.throttle,
        email=body["email"],
        password=body["password"],
        address=flask.request.remote_addr or "unknown",
        attempt=attempts.current(),  # counted, and its turn waited for, before this thread
    )
    return _token_response(token, expires_in)


def _token_response(token: str, expires_in: int):
    return json_body(
        {"access_token": token, "token_type": "Bearer", "expires_in": expires_in},
        200,
        **{"Cache-Control": "no-store"},  # a credential: no cache keeps it
    )


def logout(user: str):
    """End the session of the token this request presents."""
    account(user)  # a token whose session already ended gets 401
    users.logout(db(), presented_token(user))
    return None, 204


def change_password(user: str, body: dict):
    """Change your password; every earlier session ends, and a token for a new one comes back."""
    rt = runtime()
    token, expires_in = users.change_password(
        db(),
        rt.settings,
        rt.throttle,
        account(user),
        current=body["current_password"],
        new=body["new_password"],
        address=flask.request.remote_addr or "unknown",
    )
    return _token_response(token, expires_in)


def me(user: str):
    """Your profile, storage usage and how many of your share links still work."""
    caller = account(user)  # its usage counters come with it
    return json_body(
        {
            **_user_json(caller),
            "active_shares": shares.active_count(db(), caller.id),
            "usage": {
                "file_count": caller.file_count,
                "bytes_stored": caller.bytes_stored,
                "bytes_reserved": caller.bytes_reserved,
                "quota_bytes": runtime().settings.quota_bytes,
            },
        }
    )
