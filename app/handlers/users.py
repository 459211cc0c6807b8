"""Handlers for /users: register, login and the caller's profile."""

from __future__ import annotations

import uuid

import flask

from app.http.request import db, runtime
from app.http.responses import json_body
from app.models import User
from app.services import users


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
    )
    return json_body(
        {"access_token": token, "token_type": "Bearer", "expires_in": expires_in},
        200,
        **{"Cache-Control": "no-store"},  # a credential: no cache keeps it
    )


def me(user: str):
    """Your profile and storage usage."""
    account = users.get(db(), uuid.UUID(user))  # its usage counters come with it
    return json_body(
        {
            **_user_json(account),
            "usage": {
                "file_count": account.file_count,
                "bytes_stored": account.bytes_stored,
                "bytes_reserved": account.bytes_reserved,
                "quota_bytes": runtime().settings.quota_bytes,
            },
        }
    )
