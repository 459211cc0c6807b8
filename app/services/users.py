"""Accounts: registration, login, the sessions they start and end, and the password."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from app.models import ApiToken, RevokedToken, User
from app.services import invitations, passwords, tokens
from app.services.throttle import Attempt, LoginThrottle, Subject
from app.settings import Settings

# The HTML living standard's e-mail grammar, with a dot required in the domain. Anchored.
EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


def normalize_email(raw: str) -> str:
    """Trimmed and checked; InvalidInput when it is not an address."""
    email = raw.strip()
    if len(email) > 254 or not EMAIL.fullmatch(email):
        raise InvalidInput(f"{email!r} is not a valid e-mail address.")
    return email


def find_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == email.lower()))


def _check_new_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"The password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters.")


SIGNUP_CLOSED = "Sign-up is closed on this server; ask an administrator for an account."
SIGNUP_INVITE = "Sign-up on this server is by invitation; ask an administrator for an invitation."
DISABLED = "This account is disabled; ask an administrator."


def register(
    session: Session,
    settings: Settings,
    email: str,
    password: str,
    *,
    invitation: str | None = None,
    address: str | None = None,
) -> User:
    """Create an account, as the sign-up mode allows (`settings.signup`): `open` to anyone,
    `invite` with an invitation's token, `closed` to no one (Forbidden, saying so).

    An invitation given is used up in the same transaction, whatever the mode. Conflict
    when the address (in any case) already has an account.
    """
    if settings.signup == "closed":
        raise Forbidden(SIGNUP_CLOSED)
    if settings.signup == "invite" and not invitation:
        raise Forbidden(SIGNUP_INVITE)
    email = normalize_email(email)
    _check_new_password(password)
    if find_by_email(session, email) is not None:
        raise Conflict("An account with this e-mail address already exists.")
    invited = invitations.claim(session, invitation, email) if invitation else None
    user = User(
        id=uuid.uuid4(), email=email, password_hash=passwords.for_settings(settings).hash(password)
    )
    session.add(user)
    try:
        session.flush()
        if invited is not None:
            invitations.used_by(session, invited, user, address=address)
        session.commit()
    except IntegrityError:  # a concurrent registration won the race
        session.rollback()
        raise Conflict("An account with this e-mail address already exists.") from None
    return user


def throttle_key(email: str) -> str:
    """What login throttling counts an e-mail address as: the account, whatever its case."""
    return email.strip().lower()


def login(
    session: Session,
    settings: Settings,
    throttle: LoginThrottle,
    *,
    email: str,
    password: str,
    address: str,
    attempt: Attempt | None = None,
) -> tuple[str, int]:
    """A fresh access token; one Unauthorized for an unknown address or a wrong password.

    The attempt is counted before the password is verified (`attempt`, begun by the HTTP
    edge, which waited for its turn; or begun here, refused rather than kept waiting).
    A password no account could have (too short, too long) is just a wrong one: the same
    401, the same time taken, and a failure counted.
    """
    account = throttle_key(email)
    if attempt is None:
        attempt = throttle.begin(account, address, subject=Subject.ACCOUNT, may_wait=False)
    attempt.admit()
    try:
        user = find_by_email(session, normalize_email(account))
    except InvalidInput:  # not an address, so no account (and nothing to send the database)
        user = None
    # A password over the limit is checked by its first MAX_PASSWORD + 1 characters (still
    # wrong, as no account has one that long): its time never depends on what was sent.
    hashes = passwords.for_settings(settings)
    matches = hashes.matches(user.password_hash if user else None, password[: MAX_PASSWORD + 1])
    if not (matches and MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        attempt.failed()
        raise Unauthorized("The e-mail address or the password is wrong.")
    assert user is not None
    attempt.succeeded()
    if user.disabled_at is not None:  # told only to whoever knows the password
        raise Forbidden(DISABLED)
    if hashes.needs_rehash(user.password_hash):
        user.password_hash = hashes.hash(password)
    user.last_seen_at = utcnow()
    session.commit()
    return tokens.issue(settings, user.id, user.token_generation)


# Built once: a request only binds its token's values.
_SESSION_ACCOUNT = (
    select(User, RevokedToken.jti)
    .outerjoin(RevokedToken, RevokedToken.jti == bindparam("jti"))
    .where(User.id == bindparam("user_id"))
)
# The same check for a request that needs no more of the account than its id (most of
# them): two columns read as a Core row, without building a User in the identity map.
_SESSION_STATE = (
    select(User.token_generation, RevokedToken.jti, User.disabled_at)
    .select_from(User)
    .outerjoin(RevokedToken, RevokedToken.jti == bindparam("jti"))
    .where(User.id == bindparam("user_id"))
)

# The same question as one SQL condition, for a statement that reads something else as
# well (the files page): the request then makes no trip of its own for it.
SESSION_HOLDS = (
    select(User.id)
    .where(
        User.id == bindparam("session_user_id"),
        User.token_generation == bindparam("session_generation"),
    )
    .correlate(None)  # its own row of `users`, even inside a statement that reads that table
    .exists()
) & ~select(RevokedToken.jti).where(RevokedToken.jti == bindparam("session_jti")).exists()


def session_holds_params(claims: tokens.Claims) -> dict[str, object]:
    """The parameters SESSION_HOLDS binds, for the session of `claims`."""
    return {
        "session_user_id": claims.user_id,
        "session_generation": claims.generation,
        "session_jti": claims.jti,
    }


def _check_session(
    claims: tokens.Claims,
    generation: int | None,
    revoked: str | None,
    disabled: dt.datetime | None = None,
) -> None:
    """Unauthorized unless the account exists (`generation` is not None) and the session holds."""
    if generation is None:
        raise Unauthorized("The account for this token no longer exists.")
    if disabled is not None:  # disabling moved the generation on as well
        raise Unauthorized(DISABLED)
    if revoked is not None:
        raise Unauthorized("This session has ended (logged out); log in again.")
    if generation != claims.generation:
        raise Unauthorized("This session ended when the password was changed; log in again.")


def session_account(session: Session, claims: tokens.Claims) -> User:
    """The account of a request's token, in one query; Unauthorized if its session ended.

    The token's revocation (logout) and the account's token generation (password change)
    are read by the same query that loads the account: a primary-key join, no extra trip.
    """
    row = session.execute(
        _SESSION_ACCOUNT, {"user_id": claims.user_id, "jti": claims.jti}
    ).one_or_none()
    user, revoked = row if row is not None else (None, None)
    _check_session(
        claims, user.token_generation if user else None, revoked, user.disabled_at if user else None
    )
    assert user is not None
    return user


def session_owner(session: Session, claims: tokens.Claims) -> uuid.UUID:
    """The account id of a request's token, once its session is known to hold (as above).

    Asked of the database at every request, never remembered: a logout or a password
    change on any process refuses the token from the next request on.
    """
    row = (
        session.connection()
        .execute(_SESSION_STATE, {"user_id": claims.user_id, "jti": claims.jti})
        .one_or_none()
    )
    generation, revoked, disabled = row if row is not None else (None, None, None)
    _check_session(claims, generation, revoked, disabled)
    return claims.user_id


# A request moves `last_seen_at` only when it is this old (app.http.streaming.Seen).
SEEN_EVERY = dt.timedelta(minutes=1)


def touch_seen(session: Session, user_id: uuid.UUID) -> None:
    """Record that the account made a request now, unless one did within SEEN_EVERY: the
    condition keeps every process's touches of one account to one write a minute."""
    now = utcnow()
    session.execute(
        update(User)
        .where(
            User.id == user_id,
            (User.last_seen_at.is_(None)) | (User.last_seen_at < now - SEEN_EVERY),
        )
        .values(last_seen_at=now, updated_at=User.updated_at)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def logout(session: Session, claims: tokens.Claims) -> None:
    """End the session of one token: it is refused from now until it would have expired.

    Tokens whose expiry has passed need no row (they are refused anyway): their rows are
    removed here, so the table holds at most one token lifetime's logouts. An API token's
    log-out revokes it for good.
    """
    session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= utcnow()))
    if claims.api_token_id is not None:
        session.execute(delete(ApiToken).where(ApiToken.id == claims.api_token_id))
    session.add(RevokedToken(jti=claims.jti, expires_at=claims.expires_at))
    try:
        session.commit()
    except IntegrityError:  # a second logout with the same token, at the same moment
        session.rollback()


def change_password(
    session: Session,
    settings: Settings,
    throttle: LoginThrottle,
    user: User,
    *,
    current: str,
    new: str,
    address: str,
) -> tuple[str, int]:
    """Set a new password and end every session of the account; a token for a new one.

    The current password is checked (and throttled) like a login's: a stolen token alone
    cannot take the account over. Forbidden when it is wrong.
    """
    attempt = throttle.begin(
        throttle_key(user.email), address, subject=Subject.ACCOUNT, may_wait=False
    )
    attempt.admit()
    hashes = passwords.for_settings(settings)
    if not hashes.matches(user.password_hash, current[: MAX_PASSWORD + 1]):
        attempt.failed()
        raise Forbidden("The current password is wrong.")
    attempt.succeeded()
    _check_new_password(new)
    # One statement moves the generation on, so two changes at once end in two generations.
    generation = session.execute(
        update(User)
        .where(User.id == user.id)
        .values(password_hash=hashes.hash(new), token_generation=User.token_generation + 1)
        .returning(User.token_generation)
    ).scalar_one()
    session.commit()
    return tokens.issue(settings, user.id, generation)
