"""Single sign-on: who a verified OpenID sign-in is here, and handing the browser its session.

The flow (README, "Single sign-on"): `begin` makes the provider's URL and keeps the sign-in's
nonce and PKCE verifier under its state for ten minutes; the browser carries the state
there and back, and in an HttpOnly cookie too (the HTTP edge compares them: a sign-in
finishes in the browser that began it). `verify_return` takes that state, once, and has the
provider's answer verified (app.services.oidc); `sign_in` finds or makes the account;
`hand_over` leaves the outcome, an account or why not, under a one-time code the browser
is sent to the web app with (`/#/sso/<code>`): no token in a URL a log may keep. The web
app trades the code for a token (`collect`) within a minute, once.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import AppError, BadGateway, Forbidden, InvalidInput, Unauthorized
from app.models import User, UserIdentity
from app.services import audit, oidc, users
from app.services.once import OneTimeValues
from app.services.passwords import NO_PASSWORD
from app.settings import Settings

log = logging.getLogger(__name__)

STATE_TTL_SECONDS = 600  # from the redirect to the provider until it sends the browser back
CODE_TTL_SECONDS = 60  # from the callback until the web app collects the outcome
_STATE = "sso-state:"
_CODE = "sso-code:"
# The errors an outcome may hold, by name (what `collect` raises again).
_ERRORS: dict[str, type[AppError]] = {
    cls.__name__: cls for cls in (InvalidInput, Unauthorized, Forbidden, BadGateway)
}


def signup_allows_sso(settings: Settings) -> bool:
    """Whether a person with no account may get one by signing in with SSO: only where
    the sign-up mode (`INSTASHARE_SIGNUP`) is `open`. With `invite` or `closed`, only
    people who already have an account (made by an administrator or an invitation) get in.
    """
    return settings.signup == "open"


def names_admin(settings: Settings, claims: dict[str, Any]) -> bool:
    """Whether the provider's claims make this person an administrator here (by their
    address, or a value of the admin claim, such as a group)."""
    if str(claims.get("email", "")).lower() in settings.oidc_admin_emails:
        return True
    if not settings.oidc_admin_claim:
        return False
    held = claims.get(settings.oidc_admin_claim)
    values = held if isinstance(held, list) else [held]
    return any(str(v) in settings.oidc_admin_values for v in values if v is not None)


def begin(settings: Settings, once: OneTimeValues, redirect_uri: str) -> oidc.Authorization:
    """A new sign-in: the provider's URL to send the browser to, its state kept here."""
    made = oidc.authorization(settings, redirect_uri)
    kept = {"nonce": made.nonce, "verifier": made.code_verifier, "redirect_uri": redirect_uri}
    once.put(_STATE + made.state, json.dumps(kept), STATE_TTL_SECONDS)
    return made


def verify_return(
    settings: Settings,
    once: OneTimeValues,
    *,
    state: str,
    browser_state: str,
    code: str,
    error: str,
    iss: str = "",
) -> dict[str, Any]:
    """The verified claims of the sign-in the provider sent the browser back from.

    Its state is taken (a second callback with it finds nothing) and must be the one this
    browser's cookie holds; then the provider's code is traded and its ID token verified.
    """
    label = settings.oidc_label
    raw = once.take(_STATE + state) if state else None
    # A refusal signs nobody in: it is said as it is, whatever its state (some providers
    # send none with it).
    if error == "access_denied":
        raise Unauthorized(f"You did not let {label} sign you in here.")
    if error:
        log.info("the OpenID provider sent back an error: %r", error[:100])
        raise Unauthorized(f"The sign-in at {label} did not complete; sign in again.")
    if raw is None or not hmac.compare_digest(state.encode(), browser_state.encode()):
        raise InvalidInput(
            "This sign-in has expired, was used already, or was begun in another browser; "
            "sign in again."
        )
    if not code:
        raise Unauthorized(f"The sign-in at {label} did not complete; sign in again.")
    # RFC 9207: a provider that names itself in the callback must be ours (a code another
    # provider issued is never sent to this one's token endpoint).
    if iss and iss.rstrip("/") != settings.oidc_issuer.rstrip("/"):
        log.warning("a callback named another issuer: %r", iss[:200])
        raise Unauthorized(f"The sign-in at {label} could not be verified; sign in again.")
    kept = json.loads(raw)
    claims = oidc.verified_claims(
        settings,
        redirect_uri=kept["redirect_uri"],
        code=code,
        code_verifier=kept["verifier"],
        nonce=kept["nonce"],
    )
    _check_claims(settings, claims)
    return claims


def _check_claims(settings: Settings, claims: dict[str, Any]) -> None:
    label = settings.oidc_label
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise Forbidden(f"{label} did not say your e-mail address, which signing in here needs.")
    claims["email"] = email = _address(email)  # as an account's: trimmed, checked
    if claims.get("email_verified") not in (True, "true"):
        raise Forbidden(
            f"Your e-mail address at {label} is not verified, so it cannot sign you in here."
        )
    domain = email.rsplit("@", 1)[1].lower()
    if settings.oidc_allowed_domains and domain not in settings.oidc_allowed_domains:
        raise Forbidden(f"Addresses at {domain} cannot sign in to this server.")


def sign_in(session: Session, settings: Settings, claims: dict[str, Any]) -> uuid.UUID:
    """The account of a verified sign-in: the one its identity (issuer and subject) belongs
    to, else the one with its address (the identity is linked to it), else a new one if
    the sign-up mode lets it. Administrators named by the settings become ones."""
    issuer, subject, email = settings.oidc_issuer, str(claims["sub"]), claims["email"]
    identity = session.get(UserIdentity, (issuer, subject))
    if identity is None:
        user = users.find_by_email(session, email)
        if user is None:
            if not signup_allows_sso(settings):
                raise Forbidden(
                    f"There is no account for {email} here, and this server takes new people "
                    "by invitation only: ask an administrator for one."
                )
            user = User(email=email, password_hash=NO_PASSWORD)
            session.add(user)
            session.flush()
        identity = UserIdentity(issuer=issuer, subject=subject, user_id=user.id, email=email)
        session.add(identity)
    else:
        user = session.get_one(User, identity.user_id)
    if user.disabled_at is not None:  # an administrator's refusal holds for SSO too
        raise Forbidden(users.DISABLED)
    if names_admin(settings, claims) and user.role != "admin":
        # The settings name them: an administrator from this sign-in on (one who leaves the
        # group keeps the role until an administrator takes it away), written to the log.
        user.role = "admin"
        session.flush()
        audit.record(
            session,
            None,
            "user.role",
            audit.Target("user", str(user.id), user.email),
            address=None,
            details={"role": "admin", "by": "single sign-on"},
        )
    identity.email = email
    identity.last_login_at = utcnow()
    try:
        session.commit()
    except IntegrityError:  # the same person's sign-in in another tab made it first
        session.rollback()
        row = session.scalar(
            select(UserIdentity.user_id).where(
                UserIdentity.issuer == issuer, UserIdentity.subject == subject
            )
        )
        if row is None:
            raise
        return row
    return user.id


def _address(email: str) -> str:
    try:
        return users.normalize_email(email)
    except InvalidInput:
        raise Forbidden(f"{email!r} cannot be the address of an account here.") from None


def hand_over(once: OneTimeValues, outcome: uuid.UUID | AppError) -> str:
    """A one-time code the web app collects the outcome of a sign-in with (a minute)."""
    if isinstance(outcome, AppError):
        name = type(outcome).__name__ if type(outcome).__name__ in _ERRORS else "Unauthorized"
        kept = {"error": name, "detail": outcome.detail}
    else:
        kept = {"user_id": str(outcome)}
    code = secrets.token_urlsafe(32)
    once.put(_CODE + code, json.dumps(kept), CODE_TTL_SECONDS)
    return code


def collect(session: Session, once: OneTimeValues, code: str) -> User:
    """The account a sign-in found, for its one-time code; raises the sign-in's error."""
    raw = once.take(_CODE + code)
    if raw is None:
        raise InvalidInput("This sign-in has expired or was used already; sign in again.")
    kept = json.loads(raw)
    if "error" in kept:
        raise _ERRORS[kept["error"]](kept["detail"])
    user = session.get(User, uuid.UUID(kept["user_id"]))
    if user is None:
        raise Unauthorized("The account for this sign-in no longer exists.")
    if user.disabled_at is not None:  # disabled within the minute the code was good for
        raise Forbidden(users.DISABLED)
    return user
