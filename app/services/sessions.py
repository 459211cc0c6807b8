"""Sessions people keep: one row per signed-in device, and the refresh tokens of kept ones.

Every log-in starts a session (`start_session`), and every access token names it (`sid`):
ending the session (logout, or from "Your sessions" on another device) refuses all its
access tokens from the next request on (the per-request check joins the row:
`app.services.users.session_owner`). A session started with "Keep me signed in" (kind
`kept`) also has a refresh token, which the browser holds in an HttpOnly cookie and trades
at `POST /users/session/refresh` for a new access token and the next refresh token.

A refresh token is the session's id, a counter and a MAC of both under the secret key: the
n-th of its family. Each refresh moves the counter on, so the token it was given is spent.
One that is presented again after that (a stolen copy, used by the thief or by the owner
after the thief) ends the whole session: whoever holds the newer one is refused too. The
previous token is still taken for a few seconds after it was spent and answered with the
current one, not a new one: tabs that open at the same moment refresh with the same
cookie, and all must go on. Deriving the token (rather than storing a hash of a random
one) is what lets the server hand the current one out again without keeping it.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import struct
import uuid
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import delete, or_, select, tuple_, update
from sqlalchemy.orm import Session

from app.db import rowcount, utcnow
from app.errors import InvalidInput, NotFound, Unauthorized
from app.models import SessionKind, SignedInSession, User
from app.services import base64url, tokens, users
from app.settings import Settings

# How long a spent refresh token is still answered (with the current one): tabs that
# refresh at once with the same cookie. Seconds, not minutes: a thief's use within it
# only shares the session, and is caught at the next rotation.
REUSE_GRACE = dt.timedelta(seconds=20)
_COUNTER = struct.Struct(">I")
_MAC_BYTES = 16
REFRESH_BYTES = 16 + _COUNTER.size + _MAC_BYTES
ENDED = "You have been signed out; log in again."


def ended_now() -> dict[str, dt.datetime]:
    """What ending a session writes: when, and that it is over (the sweep's one condition)."""
    now = utcnow()
    return {"ended_at": now, "expires_at": now}


class Started(NamedTuple):
    """What a log-in or a refresh hands out: an access token, its lifetime in seconds, and
    for a kept session the refresh token to set in the cookie (None otherwise), which
    lasts `Settings.session_days`."""

    access_token: str
    expires_in: int
    refresh_token: str | None


def kind_for(user_agent: str, remember: bool) -> SessionKind:
    """What kind of session a log-in starts: kept when asked to, the CLI's when it is."""
    if remember:
        return SessionKind.KEPT
    if user_agent.startswith("instashare-cli/"):
        return SessionKind.CLI
    return SessionKind.PLAIN


# (pattern, name), first match wins: Edge and Opera say Chrome too, Chrome says Safari.
_BROWSERS = (
    (re.compile(r"\bEdg(?:e|A|iOS)?/"), "Edge"),
    (re.compile(r"\bOPR/"), "Opera"),
    (re.compile(r"\b(?:Firefox|FxiOS)/"), "Firefox"),
    (re.compile(r"\b(?:Chrome|Chromium|CriOS|HeadlessChrome)/"), "Chrome"),
    (re.compile(r"\bSafari/"), "Safari"),
    (re.compile(r"^instashare-cli/"), "Instashare CLI"),
    (re.compile(r"^curl/"), "curl"),
    (re.compile(r"^python-httpx/"), "Python httpx"),
    (re.compile(r"^python-requests/"), "Python requests"),
)
_SYSTEMS = (
    (re.compile(r"Android"), "Android"),
    (re.compile(r"iPhone|iPad|iPod"), "iOS"),
    (re.compile(r"CrOS"), "ChromeOS"),
    (re.compile(r"Windows"), "Windows"),
    (re.compile(r"Mac OS X|Macintosh"), "macOS"),
    (re.compile(r"Linux|X11"), "Linux"),
)


def device_label(user_agent: str) -> str:
    """A person's name for the device a `User-Agent` comes from: "Chrome on Linux"."""
    browser = next((name for pattern, name in _BROWSERS if pattern.search(user_agent)), None)
    system = next((name for pattern, name in _SYSTEMS if pattern.search(user_agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or (f"A browser on {system}" if system else "Unknown device")


def _mac(settings: Settings, session_id: uuid.UUID, counter: int) -> bytes:
    message = b"instashare refresh token\0" + session_id.bytes + _COUNTER.pack(counter)
    digest = hmac.new(settings.secret_key.encode(), message, hashlib.sha256).digest()
    return digest[:_MAC_BYTES]


def _refresh_token(settings: Settings, session_id: uuid.UUID, counter: int) -> str:
    raw = session_id.bytes + _COUNTER.pack(counter) + _mac(settings, session_id, counter)
    return base64url.encode(raw)


def _parse_refresh(settings: Settings, token: str) -> tuple[uuid.UUID, int]:
    """The session and counter of a refresh token this server made; Unauthorized otherwise."""
    try:
        raw = base64url.decode(token, size=REFRESH_BYTES)
    except ValueError:
        raise Unauthorized(ENDED) from None
    session_id = uuid.UUID(bytes=raw[:16])
    (counter,) = _COUNTER.unpack_from(raw, 16)
    if not hmac.compare_digest(raw[16 + _COUNTER.size :], _mac(settings, session_id, counter)):
        raise Unauthorized(ENDED)
    return session_id, counter


def start_session(
    session: Session,
    settings: Settings,
    user: User,
    *,
    kind: SessionKind | None = None,
    user_agent: str,
    address: str,
    remember: bool,
) -> Started:
    """Start a session for `user` (who has just proven who they are) and commit it.

    `remember` makes it a kept one, with a refresh token; otherwise `kind` (by default
    told from the user agent: the CLI's, or plain) lasts as long as its access token.
    The account's sessions that are over are removed here, so its rows stay few.
    """
    now = utcnow()
    kind = SessionKind.KEPT if remember else kind or kind_for(user_agent, False)
    lifetime = (
        dt.timedelta(days=settings.session_days)
        if kind == SessionKind.KEPT
        else dt.timedelta(seconds=settings.token_ttl_seconds)
    )
    session.execute(
        delete(SignedInSession).where(
            SignedInSession.user_id == user.id,
            or_(
                SignedInSession.ended_at.is_not(None),
                SignedInSession.expires_at <= now,
                SignedInSession.token_generation != user.token_generation,
            ),
        )
    )
    row = SignedInSession(
        id=uuid.uuid4(),
        user_id=user.id,
        kind=kind,
        device=device_label(user_agent)[:80],
        address=address[:64],
        token_generation=user.token_generation,
        refresh_counter=0,
        created_at=now,
        last_used_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    session.commit()
    return _started(settings, row, user.token_generation)


def _started(settings: Settings, row: SignedInSession, generation: int) -> Started:
    access, expires_in = tokens.issue(settings, row.user_id, generation, row.id)
    if row.kind != SessionKind.KEPT:
        return Started(access, expires_in, None)
    refresh = _refresh_token(settings, row.id, row.refresh_counter)
    return Started(access, expires_in, refresh)


def refresh(
    session: Session, settings: Settings, token: str, *, user_agent: str, address: str
) -> Started:
    """A new access token and the next refresh token, for the current refresh token of a
    kept session that still holds; the token given is spent.

    Unauthorized when the session has ended or expired, when the account's token
    generation moved on (a password change, a disabled account), and for a spent token
    (past REUSE_GRACE), which also ends the session: a copy of it is in other hands.
    """
    session_id, counter = _parse_refresh(settings, token)
    now = utcnow()
    found = session.execute(
        select(SignedInSession, User.token_generation)
        .join(User, User.id == SignedInSession.user_id)
        .where(SignedInSession.id == session_id)
        .with_for_update(of=SignedInSession)  # two refreshes at once: one after the other
    ).one_or_none()
    if found is None:
        raise Unauthorized(ENDED)
    row, generation = found
    if row.kind != SessionKind.KEPT or row.ended_at is not None or row.expires_at <= now:
        raise Unauthorized(ENDED)
    if generation != row.token_generation:
        row.ended_at = row.expires_at = now
        session.commit()
        raise Unauthorized(
            "You were signed out when the password was changed or the account was disabled; "
            "log in again."
        )
    if counter == row.refresh_counter:
        row.refresh_counter += 1
        row.refreshed_at = now
        row.expires_at = now + dt.timedelta(days=settings.session_days)
    elif not (
        counter == row.refresh_counter - 1
        and row.refreshed_at is not None
        and now - row.refreshed_at <= REUSE_GRACE
    ):
        row.ended_at = row.expires_at = now
        session.commit()
        raise Unauthorized(
            "This sign-in was used from somewhere else, so it has ended to keep your account "
            "safe. Log in again."
        )
    row.last_used_at = now
    row.address = address[:64]
    row.device = device_label(user_agent)[:80]
    session.commit()
    return _started(settings, row, generation)


def forget_over(session: Session, batch: int = 10_000) -> int:
    """Delete the rows of sessions that are over (ended, or expired unused), `batch` at a
    time, each batch committed; how many went. Their tokens stay refused: a token whose
    session has no row is."""
    over = select(SignedInSession.id).where(SignedInSession.expires_at <= utcnow()).limit(batch)
    removed = 0
    while True:
        ids = list(session.scalars(over))
        if ids:
            session.execute(
                delete(SignedInSession)
                .where(SignedInSession.id.in_(ids))
                .execution_options(synchronize_session=False)
            )
        session.commit()
        removed += len(ids)
        if len(ids) < batch:
            return removed


def mark_used(session: Session, session_id: uuid.UUID) -> None:
    """Write a session's last use (once a minute at most: the per-request check says when)."""
    now = utcnow()
    session.execute(
        update(SignedInSession)
        .where(
            SignedInSession.id == session_id,
            SignedInSession.last_used_at <= now - users.USED_EVERY,  # else another wrote it
        )
        .values(last_used_at=now)
    )
    session.commit()


# -- "Your sessions" -------------------------------------------------------------------


@dataclass(frozen=True)
class SessionPage:
    items: list[SignedInSession]
    next_cursor: str | None


def _live(user: User, now: dt.datetime):
    return (
        SignedInSession.user_id == user.id,
        SignedInSession.ended_at.is_(None),
        SignedInSession.expires_at > now,
        SignedInSession.token_generation == user.token_generation,
    )


def _encode_cursor(row: SignedInSession) -> str:
    return base64url.encode(json.dumps([row.created_at.isoformat(), str(row.id)]).encode())


def _decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        created, session_id = json.loads(base64url.decode(cursor))
        created_at = dt.datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("naive")
        return created_at, uuid.UUID(session_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "The cursor is not valid for this listing; start again without it."
        ) from None


def list_sessions(
    session: Session, user: User, *, limit: int, cursor: str | None = None
) -> SessionPage:
    """The account's sessions that still hold, newest first, a keyset page at a time."""
    where = list(_live(user, utcnow()))
    if cursor:
        created_at, session_id = _decode_cursor(cursor)
        where.append(
            tuple_(SignedInSession.created_at, SignedInSession.id) < (created_at, session_id)
        )
    rows = list(
        session.scalars(
            select(SignedInSession)
            .where(*where)
            .order_by(SignedInSession.created_at.desc(), SignedInSession.id.desc())
            .limit(limit + 1)
        )
    )
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return SessionPage(rows[:limit], next_cursor)


def end_session(session: Session, user: User, session_id: uuid.UUID) -> None:
    """End one of the account's sessions at once: its access tokens and its refresh token
    are refused from the next request on. NotFound for one that is not its, or over."""
    ended = session.execute(
        update(SignedInSession)
        .where(SignedInSession.id == session_id, *_live(user, utcnow()))
        .values(**ended_now())
    )
    if rowcount(ended) != 1:
        session.rollback()
        raise NotFound("No session of yours has this id; it may have ended already.")
    session.commit()


def end_other_sessions(session: Session, user: User, keep: uuid.UUID | None) -> int:
    """End every session of the account but `keep` ("sign out everywhere else"); how many."""
    where = list(_live(user, utcnow()))
    if keep is not None:
        where.append(SignedInSession.id != keep)
    ended = session.execute(update(SignedInSession).where(*where).values(**ended_now()))
    session.commit()
    return rowcount(ended)
