"""Download grants: a short-lived URL that downloads one file with no header at all.

A browser cannot put a Bearer token or a link's password on a plain link, and a download of
gigabytes must stream to disk, not through a page's memory. So the owner (with their
token) or anyone who knows a link's password asks for a grant, and the browser follows
`/api/v1/downloads/{grant}` like any link.

A grant is compact and signed, not stored: a version byte, its kind (an owner's file, an
owner's selection of files and folders, or a share link) and format, when it stops starting
downloads, the file's, owner's or link's id and, for the owner's kinds, the owner's token
generation and the id of the access token that asked for it (with its session's, when it
has one: `jti~sid`); a selection's items follow
(a kind byte and an id each, at most MAX_ITEMS: the URL stays under the 8 KiB a request
line may be); then an HMAC-SHA256 (16 bytes) of all that under a key derived from the
server secret for this purpose alone, so no share token or JWT signature can stand in for
one. Base64url.

Every use checks it again: a file (or selection) grant stops when its owner's session ends
(logout, a session ended from another device, a password change: the same rules as the
token) and never outlives the token that
asked for it; a share grant is the link itself, without its password, so a revoked, expired
or used up link stops its grants, and each download through one counts toward the link's
limit.
The lifetime bounds when a download may start: one under way is not cut, and a resume
after it needs a new grant.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
import struct
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Gone, NotFound
from app.models import File, RevokedToken, Share, SignedInSession, User
from app.services import base64url, files, selections, shares
from app.services.tokens import Claims

_VERSION = 1
_SHARE, _ORIGINAL, _SELECTION = 0b001, 0b010, 0b100
_HEAD = struct.Struct(">BBQ16s")  # version, flags, expiry (unix seconds), id
_OWNER = struct.Struct(">IB")  # token generation, length of the token id that follows
_COUNT = struct.Struct(">H")  # a selection's number of items
_ITEM = struct.Struct(">B16s")  # an item: 0 a file, 1 a folder; its id
_MAC_BYTES = 16
# Whether the session that made a grant still holds (its row, and when it ended).
_SESSION_STATE = (SignedInSession.id, SignedInSession.ended_at)
# A selection's grant grows 17 bytes an item: 250 make a URL of about 5,800 characters.
MAX_ITEMS = 250


@dataclass(frozen=True)
class Grant:
    """What a valid grant says."""

    kind: str  # "file", "selection" or "share"
    target: uuid.UUID  # the file's id, the owner's (a selection), or the share link's
    original: bool
    expires_at: int  # unix seconds
    generation: int = 0  # file and selection grants: the owner's token generation
    jti: str = ""  # file and selection grants: the access token that asked for it
    items: tuple[tuple[str, uuid.UUID], ...] = ()  # a selection's ("file"/"folder", id)
    session_id: uuid.UUID | None = None  # file and selection grants: the token's session


@functools.lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    # A key of its own, derived for this one purpose: share tokens MAC under the secret with
    # their own label, and access tokens (HS256) take the secret itself as their key.
    return hmac.new(secret.encode(), b"instashare/download-grant/v1", hashlib.sha256).digest()


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(_key(secret), payload, hashlib.sha256).digest()[:_MAC_BYTES]


def encode(secret: str, grant: Grant) -> str:
    """The grant as it goes in a URL."""
    kind = {"share": _SHARE, "selection": _SELECTION}.get(grant.kind, 0)
    flags = kind | (_ORIGINAL if grant.original else 0)
    payload = _HEAD.pack(_VERSION, flags, grant.expires_at, grant.target.bytes)
    if grant.kind != "share":
        jti = (
            grant.jti if grant.session_id is None else f"{grant.jti}~{grant.session_id.hex}"
        ).encode()
        payload += _OWNER.pack(grant.generation, len(jti)) + jti
    if grant.kind == "selection":
        payload += _COUNT.pack(len(grant.items)) + b"".join(
            _ITEM.pack(item_kind == "folder", item.bytes) for item_kind, item in grant.items
        )
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
    if version != _VERSION or (flags & _SHARE and flags & _SELECTION):
        raise _invalid()
    kind = "share" if flags & _SHARE else "selection" if flags & _SELECTION else "file"
    grant = Grant(kind, uuid.UUID(bytes=target), bool(flags & _ORIGINAL), expires_at)
    if kind == "share":
        if len(payload) != _HEAD.size:
            raise _invalid()
    else:
        grant = _owner_part(grant, payload[_HEAD.size :])
    if expires_at <= (time.time() if now is None else now):
        raise Gone("This download link has expired; ask for a new one.", reason="expired")
    return grant


def _owner_part(grant: Grant, rest: bytes) -> Grant:
    """`grant` with what follows the head of an owner's grant: the token it came from and,
    for a selection, its items (nothing more, nothing less)."""
    if len(rest) < _OWNER.size:
        raise _invalid()
    generation, length = _OWNER.unpack_from(rest)
    jti, rest = rest[_OWNER.size : _OWNER.size + length], rest[_OWNER.size + length :]
    if len(jti) != length:
        raise _invalid()
    items: list[tuple[str, uuid.UUID]] = []
    if grant.kind == "selection":
        if len(rest) < _COUNT.size:
            raise _invalid()
        (count,) = _COUNT.unpack_from(rest)
        rest = rest[_COUNT.size :]
        if len(rest) != count * _ITEM.size:
            raise _invalid()
        for kind, item in _ITEM.iter_unpack(rest):
            if kind > 1:
                raise _invalid()
            items.append(("folder" if kind else "file", uuid.UUID(bytes=item)))
        rest = b""
    if rest:
        raise _invalid()
    try:
        token_id, _, sid = jti.decode().partition("~")
        session_id = uuid.UUID(hex=sid) if sid else None
    except (UnicodeDecodeError, ValueError):
        raise _invalid() from None
    return dataclasses.replace(
        grant, generation=generation, jti=token_id, items=tuple(items), session_id=session_id
    )


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
    return Grant(
        "file", file_id, original, expiry, claims.generation, claims.jti,
        session_id=claims.session_id,
    )  # fmt: skip


def for_selection(
    session: Session,
    claims: Claims,
    items: Sequence[selections.Item],
    *,
    original: bool,
    lifetime: int,
    now: float | None = None,
) -> tuple[Grant, selections.Listing]:
    """A grant for one ZIP of some of the owner's files and folders, and what it holds now
    (NotFound naming the first item not the owner's; NotReady while nothing in it is)."""
    selections.check_owned(session, claims.user_id, items)
    found = selections.owned(session, claims.user_id, items)
    selections.ensure_some_ready(found)
    expiry = min(_expiry(lifetime, now), int(claims.expires_at.timestamp()))
    pairs = tuple((item.kind, item.id) for item in items)
    grant = Grant(
        "selection", claims.user_id, original, expiry, claims.generation, claims.jti, pairs,
        claims.session_id,
    )  # fmt: skip
    return grant, found


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
        select(File, User.token_generation, RevokedToken.jti, *_SESSION_STATE)
        .join(User, User.id == File.owner_id)
        .outerjoin(RevokedToken, RevokedToken.jti == grant.jti)
        .outerjoin(SignedInSession, _session_join(grant))
        .where(File.id == grant.target)
    ).one_or_none()
    if row is None:
        raise NotFound("The file of this download was deleted.")
    file, generation, revoked, found, ended_at = row
    _check_session(grant, generation, revoked, found, ended_at)
    return file


def owner_of(session: Session, grant: Grant) -> uuid.UUID:
    """The owner whose selection a selection grant opens; Gone once its session ended."""
    row = session.execute(
        select(User.token_generation, RevokedToken.jti, *_SESSION_STATE)
        .select_from(User)
        .outerjoin(RevokedToken, RevokedToken.jti == grant.jti)
        .outerjoin(SignedInSession, _session_join(grant))
        .where(User.id == grant.target)
    ).one_or_none()
    if row is None:
        raise NotFound("The account of this download was deleted.")
    _check_session(grant, *row)
    return grant.target


def _session_join(grant: Grant):
    # By primary key (and the account's); a grant from a token without a session finds none.
    return (SignedInSession.id == grant.session_id) & (SignedInSession.user_id == User.id)


def _check_session(
    grant: Grant,
    generation: int,
    revoked: str | None,
    found: uuid.UUID | None,
    ended_at: dt.datetime | None,
) -> None:
    """Gone when the session that made the grant has ended (as its token would be refused)."""
    session_over = grant.session_id is not None and (found is None or ended_at is not None)
    if revoked is not None or generation != grant.generation or session_over:
        raise Gone(
            "The session that made this download link has ended; ask for a new one.",
            reason="revoked",
        )


def share_of(session: Session, grant: Grant) -> tuple[Share, File | None]:
    """The link a share grant opens and its file, checked as every use of the link is."""
    # An exhausted link still answers a resume of one of its counted downloads.
    return shares.resolve_id(session, grant.target, exhausted_ok=True)
