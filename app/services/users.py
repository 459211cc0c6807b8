"""Accounts: registration, login and the profile with its usage."""

from __future__ import annotations

import re
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, Unauthorized
from app.models import User
from app.services import tokens
from app.services.throttle import LoginThrottle
from app.settings import Settings

# The HTML living standard's e-mail grammar, with a dot required in the domain. Anchored.
EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
# Verified against when the e-mail is unknown, so both failures take the same time.
_DUMMY_HASH = hasher.hash("not a real password, only for timing")


def normalize_email(raw: str) -> str:
    """Trimmed and checked; InvalidInput when it is not an address."""
    email = raw.strip()
    if len(email) > 254 or not EMAIL.fullmatch(email):
        raise InvalidInput(f"{email!r} is not a valid e-mail address.")
    return email


def find_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == email.lower()))


def register(session: Session, email: str, password: str) -> User:
    """Create an account; Conflict when the address (in any case) already has one."""
    email = normalize_email(email)
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"The password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters.")
    if find_by_email(session, email) is not None:
        raise Conflict("An account with this e-mail address already exists.")
    user = User(email=email, password_hash=hasher.hash(password))
    session.add(user)
    try:
        session.commit()
    except IntegrityError:  # a concurrent registration won the race
        session.rollback()
        raise Conflict("An account with this e-mail address already exists.") from None
    return user


def login(
    session: Session,
    settings: Settings,
    throttle: LoginThrottle,
    *,
    email: str,
    password: str,
    address: str,
) -> tuple[str, int]:
    """A fresh access token; one Unauthorized for an unknown address or a wrong password."""
    account = email.strip().lower()
    throttle.check(account, address)
    try:
        user = find_by_email(session, normalize_email(account))
    except InvalidInput:  # not an address, so no account (and nothing to send the database)
        user = None
    try:
        hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        if user is None:
            raise VerificationError
    except (VerificationError, InvalidHashError):
        throttle.failed(account, address)
        raise Unauthorized("The e-mail address or the password is wrong.") from None
    throttle.succeeded(account, address)
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
        session.commit()
    return tokens.issue(settings, user.id)


def get(session: Session, user_id: uuid.UUID) -> User:
    """The account a token names; Unauthorized if it no longer exists."""
    user = session.get(User, user_id)
    if user is None:
        raise Unauthorized("The account for this token no longer exists.")
    return user
