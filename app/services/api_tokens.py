"""Personal API tokens: named, scoped, optionally expiring credentials for scripts and CI.

A token is `isk_` and the base64url spelling of 32 random bytes (one spelling only:
app.services.base64url). Only the SHA-256 of those bytes is stored. A password needs a
slow, salted hash (argon2) because people choose few bits and a stolen table could be
guessed through; a 256-bit random secret cannot be guessed however fast the hash, so a
slow one would buy nothing and cost every request tens of milliseconds and megabytes
(a lever for anyone flooding the API with made-up tokens), and a salt would rule out
finding the token by its hash in one indexed lookup.

A token holds scopes (SCOPES); every operation in the specs declares the one it needs
(`x-token-scope`, app.http.security), and `reaches` says whether a token's scopes reach it.
Session tokens (password log-in) are not these: their reach is the account's.

A token belongs to the account's token generation it was made in: a password change
ends it, as it ends every session (a stolen password may have made tokens; GitHub keeps
them, we do not), and so does disabling the account (which moves the generation on too);
a disabled account's tokens are refused with the sentence its sessions get. Revoking one
ends it at once on every process: each request asks the database (`resolve`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import unicodedata
import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import rowcount, utcnow
from app.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from app.models import ApiToken, RevokedToken, User
from app.services import base64url, users
from app.services.tokens import Claims

PREFIX = "isk_"
SECRET_BYTES = 32
SCOPES = ("read", "upload", "share", "full")
# What each scope reaches: the operations declaring which scopes. `share` lists and reads
# what it shares; `full` is everything the account can do (managing tokens included).
REACH = {
    "read": frozenset({"read"}),
    "upload": frozenset({"upload"}),
    "share": frozenset({"share", "read"}),
    "full": frozenset(SCOPES),
}
# What a token of each scope may do, in words (the 403's sentence).
ABLE = {
    "read": "read your files",
    "upload": "upload files",
    "share": "read and share your files",
    "full": "do what your account can",
}
MAX_TOKENS = 50
MAX_NAME = 100
MAX_DAYS = 3650
# last_used_at moves at most this often per token: a request in between writes nothing.
LAST_USED_STEP = dt.timedelta(minutes=1)
# How long what a request's claims carry (a download grant's token id) may outlive it: a
# revoked token's id is remembered (revoked_tokens) this long, so nothing it made lives on.
CLAIMS_HORIZON = dt.timedelta(days=1)
NOT_VALID = "The access token is not valid."
ENDED = (
    "This API token ended when the password was changed or the account was disabled; "
    "make a new one."
)


def check_name(raw: str) -> str:
    """A token's name, trimmed: 1 to MAX_NAME characters, no control characters."""
    name = raw.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidInput(f"A token's name must be 1 to {MAX_NAME} characters.")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        raise InvalidInput("A token's name cannot contain control characters or line breaks.")
    return name


def check_scopes(raw: Iterable[str]) -> str:
    """The scopes asked for, as stored: known ones, each once, in SCOPES' order."""
    asked = set(raw)
    unknown = sorted(asked - set(SCOPES))
    if unknown:
        raise InvalidInput(
            f"{unknown[0]!r} is not a scope; a token's scopes are {', '.join(SCOPES)}."
        )
    if not asked:
        raise InvalidInput(f"Give a token at least one scope: {', '.join(SCOPES)}.")
    return " ".join(s for s in SCOPES if s in asked)


def _expiry(now: dt.datetime, in_days: int | None, at: dt.datetime | None) -> dt.datetime | None:
    if in_days is not None and at is not None:
        raise InvalidInput("Give expires_in_days or expires_at, not both.")
    if in_days is not None:
        if not 1 <= in_days <= MAX_DAYS:
            raise InvalidInput(f"A token may last 1 to {MAX_DAYS} days.")
        return now + dt.timedelta(days=in_days)
    if at is not None:
        if at.tzinfo is None:
            raise InvalidInput("expires_at must say its time zone (as 2027-01-31T00:00:00Z).")
        if at <= now:
            raise InvalidInput("expires_at must be in the future.")
        if at > now + dt.timedelta(days=MAX_DAYS):
            raise InvalidInput(f"A token may last at most {MAX_DAYS} days.")
        return at.astimezone(dt.UTC)
    return None


def create(
    session: Session,
    user_id: uuid.UUID,
    *,
    name: str,
    scopes: Sequence[str],
    expires_in_days: int | None = None,
    expires_at: dt.datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token for the account and its secret text (shown this once, never again).

    Conflict when the account has a token of that name (in any case) or MAX_TOKENS.
    """
    name = check_name(name)
    held = check_scopes(scopes)
    now = utcnow()
    expiry = _expiry(now, expires_in_days, expires_at)
    # The account's row, locked: two creations at once count each other.
    generation = session.scalar(
        select(User.token_generation).where(User.id == user_id).with_for_update()
    )
    if generation is None:
        raise Unauthorized("The account for this token no longer exists.")
    # Tokens a password change ended are of no use to anyone: gone, with their names.
    session.execute(
        delete(ApiToken).where(ApiToken.user_id == user_id, ApiToken.generation != generation)
    )
    mine = select(ApiToken.id).where(ApiToken.user_id == user_id)
    if (session.scalar(select(func.count()).select_from(mine.subquery())) or 0) >= MAX_TOKENS:
        raise Conflict(f"An account may have {MAX_TOKENS} API tokens; revoke one first.")
    taken = mine.where(func.lower(ApiToken.name) == name.lower())
    if session.scalar(taken.exists().select()):
        raise Conflict(f"You already have an API token named {name!r}.")
    secret = secrets.token_bytes(SECRET_BYTES)
    token = ApiToken(
        user_id=user_id,
        name=name,
        secret_hash=hashlib.sha256(secret).digest(),
        scopes=held,
        generation=generation,
        created_at=now,
        expires_at=expiry,
    )
    session.add(token)
    try:
        session.commit()
    except IntegrityError:  # the same name, made at the same moment by another request
        session.rollback()
        raise Conflict(f"You already have an API token named {name!r}.") from None
    return token, PREFIX + base64url.encode(secret)


def list_tokens(session: Session, user_id: uuid.UUID) -> list[ApiToken]:
    """The account's live tokens (at most MAX_TOKENS), newest first; no secret in them."""
    generation = select(User.token_generation).where(User.id == user_id).scalar_subquery()
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.generation == generation)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )


def _forget(session: Session, token_id: uuid.UUID, now: dt.datetime) -> None:
    """Remember the token's id as ended (what it made, a download grant, ends with it)."""
    session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))
    session.add(RevokedToken(jti=jti_of(token_id), expires_at=now + CLAIMS_HORIZON))


def revoke(session: Session, user_id: uuid.UUID, token_id: uuid.UUID) -> None:
    """End one of the account's tokens now; NotFound when it has none of that id."""
    gone = session.execute(
        delete(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id)
    )
    if rowcount(gone) == 0:
        session.rollback()
        raise NotFound("You have no API token with this id.")
    _forget(session, token_id, utcnow())
    try:
        session.commit()
    except IntegrityError:  # revoked twice at the same moment
        session.rollback()


def jti_of(token_id: uuid.UUID) -> str:
    """The token id a token's claims carry (what revoked_tokens and grants name)."""
    return f"api-{token_id.hex}"


def digest_of(text: str) -> bytes:
    """The SHA-256 a token of this text is stored by; Unauthorized if it is none's spelling."""
    try:
        secret = base64url.decode(text.removeprefix(PREFIX), size=SECRET_BYTES)
    except ValueError:
        raise Unauthorized(NOT_VALID) from None
    return hashlib.sha256(secret).digest()


# The one query that turns a presented token into its account: built once, bound per request.
_RESOLVE = (
    select(
        ApiToken.id,
        ApiToken.user_id,
        ApiToken.scopes,
        ApiToken.generation,
        ApiToken.expires_at,
        ApiToken.last_used_at,
        User.token_generation,
        User.disabled_at,
    )
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.secret_hash == bindparam("digest"))
)


def resolve(session: Session, digest: bytes) -> Claims:
    """The claims of the live token stored by `digest`; Unauthorized for an unknown, revoked,
    expired or ended one. Moves its last-used time on, at most once a LAST_USED_STEP."""
    row = session.execute(_RESOLVE, {"digest": digest}).one_or_none()
    if row is None:
        raise Unauthorized(NOT_VALID)
    token_id, user_id, scopes, generation, expires_at, last_used, current, disabled = row
    if disabled is not None:  # a disabled account's tokens stop at once, as its sessions
        raise Unauthorized(users.DISABLED)
    if generation != current:  # a password change (or a disabling) moved it on
        raise Unauthorized(ENDED)
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise Unauthorized("This API token has expired; make a new one.")
    if last_used is None or now - last_used >= LAST_USED_STEP:
        # Guarded again in the statement: of processes that race here, one writes.
        session.execute(
            update(ApiToken)
            .where(
                ApiToken.id == token_id,
                (ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at <= now - LAST_USED_STEP),
            )
            .values(last_used_at=now)
        )
        session.commit()
    horizon = now + CLAIMS_HORIZON
    return Claims(
        user_id=user_id,
        jti=jti_of(token_id),
        generation=generation,
        expires_at=min(expires_at, horizon) if expires_at is not None else horizon,
        api_token_id=token_id,
        scopes=frozenset(scopes.split()),
    )


def reaches(held: frozenset[str], needed: frozenset[str]) -> bool:
    """Whether a token holding the scopes `held` may call an operation that any one of the
    scopes `needed` reaches."""
    return any(needed & REACH.get(scope, frozenset()) for scope in held)


def check_reach(held: frozenset[str], needed: frozenset[str]) -> None:
    """Forbidden, naming the missing scope, unless `held` reaches `needed`."""
    if not reaches(held, needed):
        able = " and ".join(ABLE[s] for s in SCOPES if s in held)
        named = " or ".join(s for s in SCOPES if s in needed)
        raise Forbidden(f"This token may only {able}; this needs the {named} scope.")
