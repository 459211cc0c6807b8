"""Download grants: a short-lived URL that downloads one file with no header at all.

A browser cannot put a Bearer token or a link's password on a plain link, and a download of
gigabytes must stream to disk, not through a page's memory. So the owner (with their
token) or anyone who knows a link's password asks for a grant, and the browser follows
`/api/v1/downloads/{grant}` like any link.

A grant is compact and signed, not stored: a version byte, its kind (an owner's file or a
share link) and format, when it stops starting downloads, the file's or link's id and, for
a file, the owner's token generation and the id of the access token that asked for it; then
an HMAC-SHA256 (16 bytes) of all that under a key derived from the server secret for this
purpose alone, so no share token or JWT signature can stand in for one. Base64url.

Every use checks it again: a file grant stops when its owner's session ends (logout, a
password change: the same rules as the token) and never outlives the token that asked for
it; a share grant is the link itself, without its password, so a revoked, expired or used
up link stops its grants, and each download through one counts toward the link's limit.
The lifetime bounds when a download may start: one under way is not cut, and a resume
after it needs a new grant.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import struct
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Gone, NotFound
from app.models import File, RevokedToken, Share, User
from app.services import base64url, files, shares
from app.services.tokens import Claims

_VERSION = 1
_SHARE, _ORIGINAL = 0b01, 0b10
_HEAD = struct.Struct(">BBQ16s")  # version, flags, expiry (unix seconds), id
_OWNER = struct.Struct(">IB")  # token generation, length of the token id that follows
_MAC_BYTES = 16


@dataclass(frozen=True)
class Grant:
    """What a valid grant says."""

    kind: str  # "file" or "share"
    target: uuid.UUID  # the file's id, or the share link's
    original: bool
    expires_at: int  # unix seconds
    generation: int = 0  # file grants: the owner's token generation
    jti: str = ""  # file grants: the access token that asked for it


@functools.lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    # A key of its own, derived for this one purpose: share tokens MAC under the secret with
    # their own label, and access tokens (HS256) take the secret itself as their key.
    return hmac.new(secret.encode(), b"instashare/download-grant/v1", hashlib.sha256).digest()


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(_key(secret), payload, hashlib.sha256).digest()[:_MAC_BYTES]


def encode(secret: str, grant: Grant) -> str:
    """The grant as it goes in a URL."""
    flags = (_SHARE if grant.kind == "share" else 0) | (_ORIGINAL if grant.original else 0)
    payload = _HEAD.pack(_VERSION, flags, grant.expires_at, grant.target.bytes)
    if grant.kind == "file":
        jti = grant.jti.encode()
        payload += _OWNER.pack(grant.generation, len(jti)) + jti
    return base64url.encode(payload + _mac(secret, payload))


def _invalid() -> NotFound:
    return NotFound("There is no such download; ask for a new link.")


def decode(secret: str, presented: str, now: float | None = None) -> Grant:
    """The grant `presented` is: NotFound unless this server signed it, Gone once expired."""
    try:
        # One spelling per grant: no padding, stray character or unused bit passes for it.
        raw = base64url.decode(presented)
    except ValueError:
        raise _invalid() from None
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if len(payload) < _HEAD.size or not hmac.compare_digest(mac, _mac(secret, payload)):
        raise _invalid()
    version, flags, expires_at, target = _HEAD.unpack_from(payload)
    if version != _VERSION:
        raise _invalid()
    grant = Grant(
        kind="share" if flags & _SHARE else "file",
        target=uuid.UUID(bytes=target),
        original=bool(flags & _ORIGINAL),
        expires_at=expires_at,
    )
    if grant.kind == "file":
        rest = payload[_HEAD.size :]
        if len(rest) < _OWNER.size:
            raise _invalid()
        generation, length = _OWNER.unpack_from(rest)
        jti = rest[_OWNER.size :]
        if len(jti) != length:
            raise _invalid()
        grant = Grant(
            grant.kind, grant.target, grant.original, expires_at, generation, jti.decode()
        )
    elif len(payload) != _HEAD.size:
        raise _invalid()
    if expires_at <= (time.time() if now is None else now):
        raise Gone("This download link has expired; ask for a new one.", reason="expired")
    return grant


def expires_at(grant: Grant) -> dt.datetime:
    """When the grant stops starting downloads."""
    return dt.datetime.fromtimestamp(grant.expires_at, dt.UTC)


def _expiry(lifetime: int, now: float | None) -> int:
    return int((time.time() if now is None else now) + lifetime)


# --- issuing --------------------------------------------------------------------------------


def for_file(
    session: Session,
    claims: Claims,
    file_id: uuid.UUID,
    *,
    original: bool,
    lifetime: int,
    now: float | None = None,
) -> Grant:
    """A grant for one of the owner's files (NotFound for anyone else's; NotReady before)."""
    files.ensure_ready(files.get(session, claims.user_id, file_id))
    # Never longer than the token that asks for it: what a token could not do once it has
    # expired, a grant it made cannot do either.
    expiry = min(_expiry(lifetime, now), int(claims.expires_at.timestamp()))
    return Grant("file", file_id, original, expiry, claims.generation, claims.jti)


def for_share(share: Share, file: File | None, *, lifetime: int, now: float | None = None) -> Grant:
    """A grant for what a link serves (a folder or selection link's: its Download all),
    once its password (if any) was given."""
    if file is not None:
        files.ensure_ready(file)
    return Grant("share", share.id, share.serves == "original", _expiry(lifetime, now))


# --- using ----------------------------------------------------------------------------------


def file_of(session: Session, grant: Grant) -> File:
    """The file a file grant opens; NotFound once deleted, Gone once its session ended."""
    row = session.execute(
        select(File, User.token_generation, RevokedToken.jti)
        .join(User, User.id == File.owner_id)
        .outerjoin(RevokedToken, RevokedToken.jti == grant.jti)
        .where(File.id == grant.target)
    ).one_or_none()
    if row is None:
        raise NotFound("The file of this download was deleted.")
    file, generation, revoked = row
    if revoked is not None or generation != grant.generation:
        raise Gone(
            "The session that made this download link has ended; ask for a new one.",
            reason="revoked",
        )
    return file


def share_of(session: Session, grant: Grant) -> tuple[Share, File | None]:
    """The link a share grant opens and its file, checked as every use of the link is."""
    # An exhausted link still answers a resume of one of its counted downloads.
    return shares.resolve_id(session, grant.target, exhausted_ok=True)
