"""Password recovery: a link by mail that sets a new password, once, within minutes.

Nothing is stored. The link's token is the account's id, the link's expiry, and an HMAC
(keyed from the secret key) over those, the account's password hash and its token
generation. Setting a password, through a link or any other way, changes the hash and
moves the generation: every link sent before stops working, the one used included, and
every session ends (as a password change ends them).

Asking for a link answers the same whether or not the address has an account, and takes
about as long: the account is looked up either way and the mail is queued after the answer
has gone (app.handlers.users). Three limits, each per hour, all in the login throttle's
counter store (Redis, shared by every API process):

- per client address (`INSTASHARE_PASSWORD_RESET_MAX_PER_IP`): beyond it, 429. It says
  nothing about any account: it counts the asker's own requests, whatever address they
  name, and tells a script to stop.
- per e-mail address and per account (`INSTASHARE_PASSWORD_RESET_MAX_MAILS`): beyond it,
  the same 202 as always, and no mail. A refusal here would tell who has an account; the
  limit is there so that nobody can fill someone's mailbox.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app import mail as transports
from app.errors import Forbidden, Gone, InvalidInput, MailUnavailable, TooManyRequests
from app.models import User
from app.services import passwords, users
from app.services.base64url import decode, encode
from app.services.mail import Mail, password_reset
from app.services.throttle import CounterStore, LoginThrottle, client_network
from app.settings import Settings

WINDOW_SECONDS = 3600
_ID, _EXPIRY, _MAC = 16, 8, 32
TOKEN_BYTES = _ID + _EXPIRY + _MAC

NOT_VALID = (
    "This password reset link is not valid: it was cut short or changed. Copy the whole "
    "link from the mail, or ask for a new one."
)
SPENT = (
    "This password reset link no longer works: it was used already, or the password was "
    "changed since it was sent. Ask for a new one."
)


def answer(email: str, settings: Settings) -> str:
    """What every request for a link is told, account or not."""
    return (
        f"If an account exists for {email.strip()}, we have sent a link to it to set a new "
        f"password. The link works for {settings.password_reset_minutes} minutes."
    )


def unavailable(settings: Settings) -> str | None:
    """Why this server cannot send reset links, or None when it can."""
    if not transports.configured(settings):
        return (
            "Password recovery by e-mail is not set up on this server (it has no mail "
            "server); ask its administrator to set a new password for you."
        )
    if settings.production and not settings.public_url:
        # The link's host would be the request's Host header: anyone could have a mail
        # sent that points at a server of theirs, with a working token in it.
        return (
            "Password recovery by e-mail is not set up on this server (its public URL, "
            "INSTASHARE_PUBLIC_URL, is not set); ask its administrator."
        )
    return None


def _key(settings: Settings) -> bytes:
    # Its own key, derived: a reset token's MAC is never an access token's signature.
    return hmac.new(settings.secret_key.encode(), b"instashare password reset", "sha256").digest()


def _mac(settings: Settings, user: User, expiry: bytes) -> bytes:
    state = f"{user.password_hash}\0{user.token_generation}".encode()
    return hmac.new(_key(settings), user.id.bytes + expiry + state, hashlib.sha256).digest()


def make_token(settings: Settings, user: User, expires_at: int) -> str:
    """The token of a link for `user` that works until `expires_at` (epoch seconds)."""
    expiry = expires_at.to_bytes(_EXPIRY, "big")
    return encode(user.id.bytes + expiry + _mac(settings, user, expiry))


def link(base_url: str, token: str) -> str:
    """Where the web app's reset screen opens with `token`."""
    return f"{base_url.rstrip('/')}/#/reset/{token}"


def _take(store: CounterStore, key: str, limit: int) -> int:
    return store.take(key, limit, WINDOW_SECONDS)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def request(
    session: Session,
    settings: Settings,
    store: CounterStore,
    *,
    email: str,
    address: str,
    base_url: str,
) -> Mail | None:
    """The mail to send for a request to reset the password of `email`'s account: None when
    there is no such account or its limit is reached (the caller answers the same).

    `base_url` is where the request came to; the configured public URL comes first (and
    is required in production). MailUnavailable when this server sends no mail;
    TooManyRequests past the client address's limit; InvalidInput for no address at all.
    """
    why = unavailable(settings)
    if why:
        raise MailUnavailable(why)
    wait = _take(store, f"reset:ip:{client_network(address)}", settings.password_reset_max_per_ip)
    if wait:
        raise TooManyRequests(
            f"Too many password reset requests from your address; try again in {wait} s.",
            headers={"Retry-After": str(wait)},
        )
    email = users.normalize_email(email)
    limit = settings.password_reset_max_mails
    within = not _take(store, f"reset:to:{_digest(email.lower())}", limit)
    user = users.find_by_email(session, email)
    # Counted for an unknown address too (under its own key): both ways do the same work.
    account_key = str(user.id) if user else f"none:{_digest(email.lower())}"
    within = not _take(store, f"reset:acct:{account_key}", limit) and within
    if user is None or not within:
        return None
    expires_at = int(time.time()) + settings.password_reset_minutes * 60
    token = make_token(settings, user, expires_at)
    base = settings.public_url or base_url
    return password_reset(
        user.email, link(base, token), dt.datetime.fromtimestamp(expires_at, dt.UTC)
    )


def confirm(
    session: Session,
    settings: Settings,
    throttle: LoginThrottle,
    *,
    token: str,
    new_password: str,
    address: str,
) -> User:
    """Set the password of the link's account, ending its sessions (and every link); the
    account, for the new session the caller starts. InvalidInput for a token that is not a
    link's or is spent, or a password no account may have; Gone for an expired link.

    The client `address` that used the link is let in by the login throttle from now on:
    failed logins that made it wait are forgotten.
    """
    try:
        raw = decode(token, size=TOKEN_BYTES)
    except ValueError:
        raise InvalidInput(NOT_VALID) from None
    user_id, expiry, mac = uuid.UUID(bytes=raw[:_ID]), raw[_ID:-_MAC], raw[-_MAC:]
    user = session.get(User, user_id)
    if user is None or not hmac.compare_digest(mac, _mac(settings, user, expiry)):
        raise InvalidInput(SPENT)
    expires_at = dt.datetime.fromtimestamp(int.from_bytes(expiry, "big"), dt.UTC)
    if expires_at <= dt.datetime.now(dt.UTC):
        raise Gone(
            f"This password reset link expired at {expires_at:%Y-%m-%d %H:%M} UTC; ask for a "
            "new one."
        )
    if user.disabled_at is not None:  # a new password does not undo an administrator's refusal
        raise Forbidden(users.DISABLED)
    users.check_new_password(new_password)  # the link stays good for a better password
    new_hash = passwords.for_settings(settings).hash(new_password)
    # Only while the account is as the link saw it: of two uses at once, one sets it.
    generation = session.execute(
        update(User)
        .where(
            User.id == user.id,
            User.password_hash == user.password_hash,
            User.token_generation == user.token_generation,
        )
        .values(password_hash=new_hash, token_generation=User.token_generation + 1)
        .returning(User.token_generation)
    ).scalar_one_or_none()
    if generation is None:
        session.rollback()
        raise InvalidInput(SPENT)
    session.commit()
    throttle.forgive(users.throttle_key(user.email), address)
    set_committed_value(user, "token_generation", generation)
    return user
