"""Signed, expiring access tokens (JWT, HS256)."""

from __future__ import annotations

import time
import uuid

import jwt

from app.errors import Unauthorized
from app.settings import Settings

ALGORITHM = "HS256"


def issue(settings: Settings, user_id: uuid.UUID) -> tuple[str, int]:
    """A token for `user_id` and its lifetime in seconds."""
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + settings.token_ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM), settings.token_ttl_seconds


def verify(settings: Settings, token: str) -> uuid.UUID:
    """The user id a valid token names; Unauthorized for expired, forged or malformed ones."""
    try:
        claims = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp", "iat"]},
        )
        return uuid.UUID(claims["sub"])
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The access token has expired; log in again.") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise Unauthorized("The access token is not valid.") from None
