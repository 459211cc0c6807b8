"""Accounts: registration, login, the sessions they start and end, and the password."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable

from sqlalchemy import and_, bindparam, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from app.models import ApiToken, RevokedToken, SessionKind, SignedInSession, User
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


def check_new_password(password: str) -> None:
    """InvalidInput unless `password` is one an account may have (its length)."""
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
    check_new_password(password)
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


def authenticate(
    session: Session,
    settings: Settings,
    throttle: LoginThrottle,
    *,
    email: str,
    password: str,
    address: str,
    attempt: Attempt | None = None,
) -> User:
    """The account these are the e-mail and password of (a log-in: its session is started
    by `app.services.sessions.start_session`); one Unauthorized for an unknown address or a
    wrong password.

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
        session.commit()
    # `last_seen_at` is moved after the answer (app.handlers.users.login).
    return user


# Built once: a request only binds its token's values. The token's session (`sid`) is
# joined by its primary key (and its account's): a token without one finds no row.
_SESSION_OF_TOKEN = and_(
    SignedInSession.id == bindparam("sid", type_=SignedInSession.id.type),
    SignedInSession.user_id == User.id,
)
_SESSION_COLUMNS = (RevokedToken.jti, SignedInSession.id, SignedInSession.ended_at,
                    SignedInSession.last_used_at)  # fmt: skip
_SESSION_ACCOUNT = (
    select(User, *_SESSION_COLUMNS)
    .select_from(User)
    .outerjoin(RevokedToken, RevokedToken.jti == bindparam("jti"))
    .outerjoin(SignedInSession, _SESSION_OF_TOKEN)
    .where(User.id == bindparam("user_id"))
)
# The same check for a request that needs no more of the account than its id (most of
# them): a few columns read as a Core row, without building a User in the identity map.
_SESSION_STATE = (
    select(User.token_generation, User.disabled_at, *_SESSION_COLUMNS)
    .select_from(User)
    .outerjoin(RevokedToken, RevokedToken.jti == bindparam("jti"))
    .outerjoin(SignedInSession, _SESSION_OF_TOKEN)
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
# And for a token with a session: when that session was last used, NULL when it has ended
# (or is not the account's). A primary-key probe beside the page's other columns.
SESSION_LAST_USED = (
    select(SignedInSession.last_used_at)
    .where(
        SignedInSession.id == bindparam("session_id", type_=SignedInSession.id.type),
        SignedInSession.user_id == bindparam("session_user_id"),
        SignedInSession.ended_at.is_(None),
    )
    .correlate(None)
    .scalar_subquery()
)
# How often a session's last use is written: at most once a minute, whatever the traffic.
USED_EVERY = dt.timedelta(minutes=1)
# What the HTTP edge is told when a session's last use is due to be written (its id).
Used = Callable[[uuid.UUID], None]


def session_holds_params(claims: tokens.Claims) -> dict[str, object]:
    """The parameters SESSION_HOLDS (and SESSION_LAST_USED) bind, for the session of `claims`."""
    return {
        "session_user_id": claims.user_id,
        "session_generation": claims.generation,
        "session_jti": claims.jti,
        "session_id": claims.session_id,
    }


def _check_session(
    claims: tokens.Claims,
    generation: int | None,
    disabled: dt.datetime | None,
    revoked: str | None,
    found: uuid.UUID | None,
    ended_at: dt.datetime | None,
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
    if claims.session_id is not None and (found is None or ended_at is not None):
        raise Unauthorized("This session has ended (signed out); log in again.")


def note_use(claims: tokens.Claims, last_used: dt.datetime | None, used: Used | None) -> None:
    """Tell `used` the token's session, when its last use is older than USED_EVERY."""
    due = last_used is not None and last_used <= utcnow() - USED_EVERY
    if used is not None and claims.session_id is not None and due:
        used(claims.session_id)


def session_account(session: Session, claims: tokens.Claims, used: Used | None = None) -> User:
    """The account of a request's token, in one query; Unauthorized if its session ended.

    The token's revocation (logout), its session's end and the account's token generation
    (password change) are read by the same query that loads the account: primary-key
    joins, no extra trip. `used` hears of a session whose last use is due to be written.
    """
    row = session.execute(
        _SESSION_ACCOUNT,
        {"user_id": claims.user_id, "jti": claims.jti, "sid": claims.session_id},
    ).one_or_none()
    user, revoked, found, ended_at, last_used = row if row is not None else (None,) * 5
    _check_session(
        claims,
        user.token_generation if user else None,
        user.disabled_at if user else None,
        revoked,
        found,
        ended_at,
    )
    assert user is not None
    note_use(claims, last_used, used)
    return user


def session_owner(session: Session, claims: tokens.Claims, used: Used | None = None) -> uuid.UUID:
    """The account id of a request's token, once its session is known to hold (as above).

    Asked of the database at every request, never remembered: a logout, a session ended
    from another device or a password change on any process refuses the token from the
    next request on.
    """
    row = (
        session.connection()
        .execute(
            _SESSION_STATE,
            {"user_id": claims.user_id, "jti": claims.jti, "sid": claims.session_id},
        )
        .one_or_none()
    )
    generation, disabled, revoked, found, ended_at, last_used = (
        row if row is not None else (None,) * 6
    )
    _check_session(claims, generation, disabled, revoked, found, ended_at)
    note_use(claims, last_used, used)
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
    """End the session of one token: the token (and the download grants it made) is refused
    from now until it would have expired, and so is every other of its session's.

    Tokens whose expiry has passed need no row (they are refused anyway): their rows are
    removed here, so the table holds at most one token lifetime's logouts. An API token's
    log-out revokes it for good.
    """
    session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= utcnow()))
    if claims.api_token_id is not None:
        session.execute(delete(ApiToken).where(ApiToken.id == claims.api_token_id))
    session.add(RevokedToken(jti=claims.jti, expires_at=claims.expires_at))
    if claims.session_id is not None:
        session.execute(
            update(SignedInSession)
            .where(SignedInSession.id == claims.session_id, SignedInSession.ended_at.is_(None))
            .values(ended_at=utcnow(), expires_at=utcnow())
        )
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
    token: tokens.Claims | None = None,
) -> tuple[str, int]:
    """Set a new password and end every session of the account but the one of `token`,
    which goes on in the new generation (a kept one's refresh too); a token for it.

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
    check_new_password(new)
    # One statement moves the generation on, so two changes at once end in two generations.
    generation = session.execute(
        update(User)
        .where(User.id == user.id)
        .values(password_hash=hashes.hash(new), token_generation=User.token_generation + 1)
        .returning(User.token_generation)
    ).scalar_one()
    sid = token.session_id if token is not None else None
    if sid is not None:
        session.execute(
            update(SignedInSession)
            .where(SignedInSession.id == sid, SignedInSession.user_id == user.id)
            .values(
                token_generation=generation,
                last_used_at=utcnow(),
                # A session without a refresh lasts as long as its newest access token.
                expires_at=case(
                    (SignedInSession.kind == SessionKind.KEPT, SignedInSession.expires_at),
                    else_=utcnow() + dt.timedelta(seconds=settings.token_ttl_seconds),
                ),
            )
        )
    session.commit()
    return tokens.issue(settings, user.id, generation, sid)
