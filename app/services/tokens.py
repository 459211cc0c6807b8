"""Signed, expiring access tokens (JWT, HS256).

Besides its subject and lifetime a token carries its own id (`jti`, what logout revokes),
the account's token generation when it was issued (`gen`, what a password change
moves on) and the session it belongs to (`sid`, a row of `sessions` that logout or "Your
sessions" ends). Whether each still holds is the database's to say: `app.http.security`.
A token without `sid` (issued before sessions were kept) is checked without one.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
import uuid
from dataclasses import dataclass

import jwt

from app.errors import Unauthorized
from app.services import base64url
from app.settings import Settings

ALGORITHM = "HS256"


@dataclass(frozen=True)
class Claims:
    """What a valid token says: whose it is, its id, its generation and when it expires."""

    user_id: uuid.UUID
    jti: str
    generation: int
    expires_at: dt.datetime
    # An API token's (app.services.api_tokens): its id and the scopes it holds. None for a
    # session's token, whose reach is the account's.
    api_token_id: uuid.UUID | None = None
    scopes: frozenset[str] | None = None
    session_id: uuid.UUID | None = None


def issue(
    settings: Settings,
    user_id: uuid.UUID,
    generation: int = 0,
    session_id: uuid.UUID | None = None,
) -> tuple[str, int]:
    """A token for `user_id` in its account's token `generation` (and session), and its
    lifetime in seconds."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + settings.token_ttl_seconds,
        "jti": uuid.uuid4().hex,
        "gen": generation,
    }
    if session_id is not None:
        claims["sid"] = session_id.hex
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM), settings.token_ttl_seconds


def verify(settings: Settings, token: str) -> Claims:
    """The claims of a valid token; Unauthorized for expired, forged or malformed ones."""
    claims = _verified(settings.secret_key, token)
    if claims.expires_at.timestamp() <= time.time():
        raise Unauthorized("The access token has expired; log in again.")
    return claims


# Checking a token's signature and encoding costs more than anything else a small request
# does by itself, and a client sends the same token request after request: the claims of
# valid tokens are remembered (so many, the least recently used dropped first), and their
# expiry checked again at every use. What only the database knows (logout, a password
# change) is asked every time all the same.
@functools.lru_cache(maxsize=4096)
def _verified(secret_key: str, token: str) -> Claims:
    try:
        # One spelling per token, as for every token this service hands out: PyJWT's own
        # decoding would drop stray characters and ignore a last character's unused bits.
        for segment in token.split("."):
            base64url.decode(segment)
        claims = jwt.decode(
            token,
            secret_key,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp", "iat"]},
        )
        jti, generation = claims.get("jti"), claims.get("gen", 0)  # tokens before `gen`: 0
        if not isinstance(jti, str) or not 0 < len(jti) <= 64:
            raise ValueError("no token id")
        if type(generation) is not int or generation < 0:
            raise ValueError("no generation")
        sid = claims.get("sid")
        if sid is not None and (not isinstance(sid, str) or len(sid) != 32):
            raise ValueError("no session")
        return Claims(
            user_id=uuid.UUID(claims["sub"]),
            jti=jti,
            generation=generation,
            expires_at=dt.datetime.fromtimestamp(claims["exp"], dt.UTC),
            session_id=uuid.UUID(hex=sid) if sid is not None else None,
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The access token has expired; log in again.") from None
    except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError, OSError):
        raise Unauthorized("The access token is not valid.") from None
