"""Share links: made by a file's owner, used by anyone who has the URL.

The token in a link is the link's id (16 random bytes) followed by an HMAC of that id under
the server's secret (16 bytes), base64url: 43 characters. Nothing about the token is stored,
so the owner can be shown the URL again, and a copy of the database alone (without the
secret) opens no link. Changing `INSTASHARE_SECRET_KEY` ends every link.

A download is counted by one guarded UPDATE (`downloads < max_downloads`), so a limit holds
exactly however many clients race for the last download. What counts as one download is
decided by the HTTP edge (app.handlers.shares); on a link with a limit, a resume of a
counted download presents its ticket (`resume_ticket`) and is not counted again, within
bounds kept in the database (a `ShareDownload` row per counted download): for
`resume_window` after the download began, and for `resume_budget(size)` bytes in all,
each resume reserving its bytes by a guarded UPDATE before they are sent (a
`resume_step` ahead: `reserve_resume`), so that replays racing through any number of API
processes cannot spend more. A ticket past either bound is no resume: the request is a new download.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import functools
import hashlib
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, bindparam, delete, func, or_, select, tuple_, union, update
from sqlalchemy.orm import Session

from app.db import rowcount, utcnow
from app.errors import Gone, InvalidInput, NotFound, Unauthorized
from app.models import File, Share, ShareDownload, ShareItem, ShareKind, User
from app.services import base64url, files
from app.services.passwords import Passwords
from app.services.users import MAX_PASSWORD

DEFAULT_DAYS = 7
MIN_PASSWORD = 4
SERVES = ("zip", "original")
_MAC_BYTES = 16
_TOKEN_BYTES = 16 + _MAC_BYTES
# What the resumes of one counted download may send in all, beyond one copy of the file: a
# quarter more, for the bytes a cut connection had sent that never arrived and are asked
# again (a few MB at most in a kernel's buffers each time, many cuts of a big file).
RESUME_MARGIN = 4  # a 1/RESUME_MARGIN of the size
RESUME_STEP_MIN = 256 * 1024
# A download's number as a ticket spells it: ASCII digits (str.isdigit() also takes "²",
# which int() refuses), few enough for int() (which refuses over 4,300 of them).
_TICKET_NUMBER = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class Ticket:
    """A resume ticket presented back: its ETag and the number of the download it resumes."""

    tag: str
    number: int


@dataclass(frozen=True)
class Page:
    items: list[Share]
    next_cursor: str | None
    total: int


# --- tokens ---------------------------------------------------------------------------------


def _mac(secret: str, purpose: bytes, *parts: bytes) -> bytes:
    return hmac.new(secret.encode(), b"\0".join((purpose, *parts)), hashlib.sha256).digest()


def token(secret: str, share_id: uuid.UUID) -> str:
    """The link's token: its id and the id's HMAC under `secret`, base64url, unpadded."""
    raw = share_id.bytes + _mac(secret, b"share-link", share_id.bytes)[:_MAC_BYTES]
    return base64url.encode(raw)


def share_id_of(secret: str, presented: str) -> uuid.UUID:
    """The id a token names; NotFound for anything not made by `token` with this secret,
    spelled as `token` spells it (no other case, padding or stray character)."""
    try:
        raw = base64url.decode(presented, size=_TOKEN_BYTES)
    except ValueError:
        raise NotFound("There is no such link.") from None
    share_id, mac = raw[:16], raw[16:]
    if not hmac.compare_digest(mac, _mac(secret, b"share-link", share_id)[:_MAC_BYTES]):
        raise NotFound("There is no such link.")
    return uuid.UUID(bytes=share_id)


def resume_ticket(secret: str, share: Share, number: int, base_etag: str) -> str:
    """The ETag of the `number`-th download of a limited link: presented back in `If-Range`
    it proves a range request resumes that download (not counted again)."""
    inner = base_etag.strip('"')
    mac = _mac(secret, b"share-download", share.id.bytes, str(number).encode(), inner.encode())
    return f'"{inner}.d{number}.{mac[:8].hex()}"'


def presented_ticket(
    secret: str, share: Share, base_etag: str, *values: str | None
) -> Ticket | None:
    """The first of `values` (If-Range, If-None-Match) that is a ticket of this link for the
    file as it is now, if any (genuine: whether it still resumes is `reserve_resume`'s)."""
    inner = base_etag.strip('"')
    for value in values:
        for candidate in (value or "").split(","):
            tag = candidate.strip()
            prefix = f'"{inner}.d'
            if not (tag.startswith(prefix) and tag.endswith('"')):
                continue
            number, _, _mac_hex = tag[len(prefix) : -1].partition(".")
            if _TICKET_NUMBER.fullmatch(number) and hmac.compare_digest(
                tag, resume_ticket(secret, share, int(number), base_etag)
            ):
                return Ticket(tag, int(number))
    return None


def resume_budget(size: int) -> int:
    """The bytes the resumes of one counted download of `size` bytes may send in all: one
    copy and a `RESUME_MARGIN`-th more (rounded up)."""
    return size + -(-size // RESUME_MARGIN)


def resume_step(size: int) -> int:
    """How far ahead of what it has sent a resume reserves (a sixteenth of the budget, at
    least 256 KiB): a resume whose client vanished without a word holds no more than this
    unsent until the server notices, not the rest of the file."""
    return max(RESUME_STEP_MIN, resume_budget(size) // 16)


def reserve_resume(
    session: Session,
    share_id: uuid.UUID,
    number: int,
    length: int,
    *,
    size: int,
    window: dt.timedelta | None,
    room: int | None = None,
) -> bool:
    """Reserve `length` bytes for a resume of the `number`-th download of a link (of a file
    of `size` bytes), before they are sent; False when that download began more than
    `window` ago (None: a resume under way, which its hours do not cut), or its resumes
    would send more than `resume_budget(size)` in all, or, with `room`, when fewer than
    `room` bytes are left (a resume starts only with room for all it is to send).

    One guarded UPDATE: racing resumes (any API process) are decided by the database, each
    seeing what the others reserved.
    """
    guards = [
        ShareDownload.share_id == share_id,
        ShareDownload.number == number,
        ShareDownload.resumed_bytes + max(length, room or 0) <= resume_budget(size),
    ]
    if window is not None:
        guards.append(ShareDownload.began_at > utcnow() - window)
    reserved = session.execute(
        update(ShareDownload)
        .where(*guards)
        .values(resumed_bytes=ShareDownload.resumed_bytes + length)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return rowcount(reserved) == 1


def give_back(session: Session, share_id: uuid.UUID, number: int, unsent: int) -> None:
    """Return to a download's budget the part of a reserved resume that was never sent (the
    client went away): a resume of a resume costs only what it takes again."""
    session.execute(
        update(ShareDownload)
        .where(
            ShareDownload.share_id == share_id,
            ShareDownload.number == number,
            ShareDownload.resumed_bytes >= unsent,
        )
        .values(resumed_bytes=ShareDownload.resumed_bytes - unsent)
        .execution_options(synchronize_session=False)
    )
    session.commit()


# --- the owner's side -----------------------------------------------------------------------


def _owned_file(session: Session, owner_id: uuid.UUID, file_id: uuid.UUID) -> File:
    return files.get(session, owner_id, file_id)


def create(session: Session, owner_id: uuid.UUID, file_id: uuid.UUID, **options) -> Share:
    """A new link to one of the owner's files (ready or not yet); `options` as `build`
    takes them."""
    _owned_file(session, owner_id, file_id)
    share = build(owner_id, **options)
    share.file_id = file_id
    session.add(share)
    session.commit()
    return share


def build(
    owner_id: uuid.UUID,
    *,
    expires_in_days: int | None = None,
    expires_in_hours: int | None = None,
    never_expires: bool = False,
    password: str | None = None,
    max_downloads: int | None = None,
    serves: str = "zip",
    max_days: int,
    allow_never: bool,
    hashes: Passwords,
    kind: ShareKind = ShareKind.FILE,
) -> Share:
    """A new link's row with its options checked, not yet added (its file or items are
    the caller's)."""
    if serves not in SERVES:
        raise InvalidInput(f"A link serves one of {', '.join(SERVES)}.")
    if sum((expires_in_days is not None, expires_in_hours is not None, never_expires)) > 1:
        raise InvalidInput("Give one of expires_in_days, expires_in_hours and never_expires.")
    if never_expires:
        if not allow_never:
            raise InvalidInput("Links that never expire are not allowed on this server.")
        expires_at = None
    elif expires_in_hours is not None:
        if not 1 <= expires_in_hours <= max_days * 24:
            raise InvalidInput(f"A link lasts 1 to {max_days * 24} hours.")
        expires_at = utcnow() + dt.timedelta(hours=expires_in_hours)
    else:
        days = DEFAULT_DAYS if expires_in_days is None else expires_in_days
        if not 1 <= days <= max_days:
            raise InvalidInput(f"A link lasts 1 to {max_days} days.")
        expires_at = utcnow() + dt.timedelta(days=days)
    if max_downloads is not None and max_downloads < 1:
        raise InvalidInput("A download limit is at least 1.")
    if password is not None and not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"A link's password has {MIN_PASSWORD} to {MAX_PASSWORD} characters.")
    return Share(
        # From `secrets`: the token is this id and its HMAC (see the module docstring).
        id=uuid.UUID(bytes=secrets.token_bytes(16), version=4),
        kind=kind,
        owner_id=owner_id,
        serves=serves,
        password_hash=hashes.hash(password) if password is not None else None,
        max_downloads=max_downloads,
        downloads=0,
        expires_at=expires_at,
    )


def _encode_cursor(share: Share) -> str:
    raw = json.dumps([share.created_at.isoformat(), str(share.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        created, share_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after = dt.datetime.fromisoformat(created)
        if after.tzinfo is None:  # the column refuses naive datetimes
            raise ValueError("naive datetime")
        return after, uuid.UUID(share_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("The cursor is not one this server gave out.") from None


def list_shares(
    session: Session,
    owner_id: uuid.UUID,
    *,
    file_id: uuid.UUID | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> Page:
    """The owner's links (of one file, or all), newest first, a page at a time, and how
    many there are in all."""
    if file_id is not None:
        _owned_file(session, owner_id, file_id)
    params: dict[str, object] = {"scope": file_id or owner_id, "limit": limit + 1}
    if cursor:
        params["after"], params["after_id"] = _decode_cursor(cursor)
    page, counter = _page_statements(file_id is not None, bool(cursor))
    rows = session.execute(page, params).all()
    # An empty page has no row to carry the total: ask the count itself.
    total = rows[0].total if rows else session.scalar(counter, params)
    next_cursor = _encode_cursor(rows[limit - 1].Share) if len(rows) > limit else None
    return Page([row.Share for row in rows[:limit]], next_cursor, int(total or 0))


@functools.cache
def _page_statements(of_file: bool, after: bool):
    """(a page, the total) as statements, built once per shape of listing.

    As in app.services.files: the cursor is a row-value bound, `(created_at, id) <
    (:after, :after_id)`, which PostgreSQL takes as a bound of the walk down
    `ix_shares_owner_id_created_at` (or `ix_shares_file_id_created_at`) where `a < v OR
    (a = v AND id < x)` filters every link the walk passes. The total is counted in the
    same statement, so it agrees with the page: an owner's links are made by hand, so the
    count stays small (an owner with 100,000 links counts them in about 12 ms) and needs
    no counter kept beside it.
    """
    column = Share.file_id if of_file else Share.owner_id
    scope = column == bindparam("scope", type_=column.type)
    where = [scope]
    if after:
        bound = tuple_(
            bindparam("after", type_=Share.created_at.type),
            bindparam("after_id", type_=Share.id.type),
        )
        where.append(tuple_(Share.created_at, Share.id) < bound)
    counter = select(func.count()).select_from(Share).where(scope)
    page = (
        select(Share, counter.scalar_subquery().label("total"))
        .where(*where)
        .order_by(Share.created_at.desc(), Share.id.desc())
        .limit(bindparam("limit", type_=Integer))
    )
    return page, counter


def revoke(session: Session, owner_id: uuid.UUID, share_id: uuid.UUID) -> None:
    """End a link at once (for every API process: the next request reads the row)."""
    share = session.get(Share, share_id)
    if share is None or share.owner_id != owner_id:
        raise NotFound(f"There is no link {share_id}.")
    if share.revoked_at is None:
        share.revoked_at = utcnow()
    session.commit()


# --- the public side ------------------------------------------------------------------------


def why_gone(share: Share, now: dt.datetime | None = None) -> str | None:
    """`revoked`, `expired` or `exhausted` when the link no longer works; None while it does."""
    now = now or utcnow()
    if share.revoked_at is not None:
        return "revoked"
    if share.expires_at is not None and share.expires_at <= now:
        return "expired"
    if share.max_downloads is not None and share.downloads >= share.max_downloads:
        return "exhausted"
    return None


_GONE = {
    "revoked": "The owner revoked this link.",
    "expired": "This link has expired.",
    "exhausted": "This link has reached its download limit.",
}


def gone(reason: str) -> Gone:
    return Gone(_GONE[reason], reason=reason)


class Count(enum.Enum):
    """What a GET of a link's file does to its count of downloads."""

    NONE = "none"  # nothing (a HEAD, a 304, a range of a link without a limit)
    RESUME = "resume"  # resumes the download of its ticket, if its time and bytes allow
    NEW = "new"  # is a new download, counted


def download_counts(
    share: Share, ticket: Ticket | None, *, bodiless: bool, not_modified: bool, starts_at: int
) -> Count:
    """Whether a request for a link's file counts as a download (`ticket`: the one its
    `If-Range` or `If-None-Match` presents, on a link with a limit; `starts_at`: the first
    byte its answer sends; `bodiless`: a HEAD or a 304).

    One download is a GET that sends the file from its first byte. On a link with a limit,
    each counted download gets an ETag of its own (a ticket); a range request that starts
    further on presenting it in `If-Range` resumes that download and is not counted again,
    for `share_resume_hours` after the download began and for about one more copy of the
    file in all (the HTTP edge reserves its bytes as they go). Every other GET counts: a
    range from the middle without a ticket, or with one that is past its time or spent, is
    a new download (`new_download`), or 410 once the limit is reached. On a link without a
    limit only a GET from the first byte counts, and a range from further on never does:
    nothing is held back by the count, and a download manager's parallel pieces are one
    download, not eight. HEAD and 304 answers never count.
    """
    if ticket is not None and (not_modified or starts_at > 0):
        return Count.NONE if bodiless else Count.RESUME
    return new_download(share, bodiless=bodiless, starts_at=starts_at)


def new_download(share: Share, *, bodiless: bool, starts_at: int) -> Count:
    """A request that resumes nothing: NEW when it counts, NONE when not; 410 once the
    link's downloads are used up (a HEAD too)."""
    if why_gone(share) == "exhausted":
        raise gone("exhausted")
    if bodiless or (share.max_downloads is None and starts_at > 0):
        return Count.NONE
    return Count.NEW


def resolve(
    session: Session, secret: str, presented: str, *, exhausted_ok: bool = False
) -> tuple[Share, File | None]:
    """The link a token names and its file (None for a folder or selection link, whose
    files are app.services.selections'); NotFound (unknown) or Gone (and why)."""
    return resolve_id(session, share_id_of(secret, presented), exhausted_ok=exhausted_ok)


def resolve_id(
    session: Session, share_id: uuid.UUID, *, exhausted_ok: bool = False
) -> tuple[Share, File | None]:
    """`resolve` for a link known by its id (a download grant's)."""
    # The owner's row comes with it (a primary-key join): a disabled owner's links answer
    # as revoked links do, until the account is enabled again.
    row = session.execute(
        select(Share, File, User.disabled_at)
        .join(User, User.id == Share.owner_id)
        .outerjoin(File, File.id == Share.file_id)
        .where(Share.id == share_id)
    ).one_or_none()
    if row is None or (row[0].kind == ShareKind.FILE and row[1] is None):
        raise NotFound("There is no such link.")
    share, file, disabled = row
    if disabled is not None:
        raise gone("revoked")
    reason = why_gone(share)
    if reason is not None and not (exhausted_ok and reason == "exhausted"):
        raise gone(reason)
    if share.serves == "original" and file is not None:
        # Its download reads the seek index (a deferred column) after this session ended.
        _ = file.seek_index
    return share, file


def throttle_key(share_id: uuid.UUID) -> str:
    """What password throttling counts a link as: its id, apart from every account."""
    return f"share:{share_id}"


def check_password(share: Share, password: str | None, hashes: Passwords) -> None:
    """Unauthorized unless the link has no password or `password` is it (argon2id)."""
    if share.password_hash is None:
        return
    if password is None:
        raise Unauthorized("This link needs its password (X-Share-Password).", password=True)
    if not hashes.matches(share.password_hash, password):
        raise Unauthorized("The link's password is wrong.", password=True)


def count_download(
    session: Session, share_id: uuid.UUID, *, resume_window: dt.timedelta | None = None
) -> int:
    """Count one download of a live link; its number (1, 2, …) or Gone when none is left.

    One UPDATE, guarded by the limit: when clients race for the last download, the database
    lets exactly one of them through. With `resume_window` (a link with a limit), the
    download gets the row its resumes are counted in, and the link's rows past that window
    (which resume nothing any more) go, in the same transaction.
    """
    now = utcnow()
    number = session.execute(
        update(Share)
        .where(
            Share.id == share_id,
            Share.revoked_at.is_(None),
            ~select(User.id)
            .where(User.id == Share.owner_id, User.disabled_at.is_not(None))
            .exists(),
            or_(Share.expires_at.is_(None), Share.expires_at > now),
            or_(Share.max_downloads.is_(None), Share.downloads < Share.max_downloads),
        )
        .values(downloads=Share.downloads + 1, last_downloaded_at=now)
        .returning(Share.downloads)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if number is None:
        session.rollback()
        share = session.get(Share, share_id)
        if share is None:  # its file was deleted meanwhile
            raise NotFound("There is no such link.")
        raise gone(why_gone(share) or "revoked")
    if resume_window is not None:
        session.execute(
            delete(ShareDownload)
            .where(
                ShareDownload.share_id == share_id,
                ShareDownload.began_at <= now - resume_window,
            )
            .execution_options(synchronize_session=False)
        )
        session.add(ShareDownload(share_id=share_id, number=number, began_at=now))
    session.commit()
    return int(number)


def forget_downloads(session: Session, window: dt.timedelta, batch: int = 10_000) -> int:
    """Delete the rows of counted downloads that began more than `window` ago (their tickets
    resume nothing any more), `batch` at a time, each batch committed; how many went."""
    stale = (
        select(ShareDownload.share_id, ShareDownload.number)
        .where(ShareDownload.began_at <= utcnow() - window)
        .limit(batch)
    )
    removed = 0
    while True:
        keys = session.execute(stale).all()
        if keys:
            session.execute(
                delete(ShareDownload)
                .where(tuple_(ShareDownload.share_id, ShareDownload.number).in_(keys))
                .execution_options(synchronize_session=False)
            )
        session.commit()
        removed += len(keys)
        if len(keys) < batch:
            return removed


def working(now: Any = None) -> tuple:
    """The conditions of a link that still works (`why_gone` is None), as SQL (`now`: a
    time or a bound parameter; default: now)."""
    return _working(utcnow() if now is None else now)


def _working(now: Any) -> tuple:
    """The conditions of a link that still works (`why_gone` is None), as SQL."""
    return (
        Share.revoked_at.is_(None),
        or_(Share.expires_at.is_(None), Share.expires_at > now),
        or_(Share.max_downloads.is_(None), Share.downloads < Share.max_downloads),
    )


def active_count(session: Session, owner_id: uuid.UUID) -> int:
    """How many of the owner's links still work."""
    working = _working(utcnow())
    return int(
        session.scalar(
            select(func.count()).select_from(Share).where(Share.owner_id == owner_id, *working)
        )
        or 0
    )


def shared_ids(
    session: Session, file_ids: list[uuid.UUID], folder_ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these files and folders a working link shares by name (a one-file link to
    the file, or a folder or selection link that lists it): one query, by the indexes on
    `shares.file_id`, `share_items.file_id` and `share_items.folder_id`. A file inside a
    shared folder is not counted: the folder shows the mark."""
    if not file_ids and not folder_ids:
        return set()
    working = _working(utcnow())
    by_file = select(Share.file_id.label("id")).where(Share.file_id.in_(file_ids), *working)
    listed_files = (
        select(ShareItem.file_id.label("id"))
        .join(Share, Share.id == ShareItem.share_id)
        .where(ShareItem.file_id.in_(file_ids), *working)
    )
    listed_folders = (
        select(ShareItem.folder_id.label("id"))
        .join(Share, Share.id == ShareItem.share_id)
        .where(ShareItem.folder_id.in_(folder_ids), *working)
    )
    return set(session.scalars(union(by_file, listed_files, listed_folders)))
