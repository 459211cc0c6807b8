"""API tokens as a service: their one spelling, scopes, expiry, what `resolve` says, the
per-account limit under a race, on PostgreSQL and on SQLite (the embedded default)."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from app.db import make_session_factory
from app.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from app.models import ApiToken, RevokedToken, User
from app.services import api_tokens, base64url
from tests.factories import UserFactory
from tests.helpers import committing_engine


@dataclass
class Owner:
    sessions: sessionmaker
    id: uuid.UUID


@pytest.fixture(params=["postgresql", "sqlite"])
def owner(request, tmp_path):
    """A committed account on PostgreSQL (the run's database) or a fresh SQLite file."""
    engine = committing_engine(request, tmp_path)
    sessions = make_session_factory(engine)
    user = UserFactory.build()
    with sessions() as session:
        session.add(user)
        session.commit()
    yield Owner(sessions, user.id)
    with sessions() as session:
        session.execute(sa.delete(User).where(User.id == user.id))  # cascades
        session.commit()
    if request.param == "sqlite":
        engine.dispose()


def _make(owner: Owner, **options) -> tuple[ApiToken, str]:
    options.setdefault("name", f"t {uuid.uuid4().hex[:6]}")
    options.setdefault("scopes", ["read"])
    with owner.sessions() as session:
        return api_tokens.create(session, owner.id, **options)


def _resolve(owner: Owner, text: str):
    with owner.sessions() as session:
        return api_tokens.resolve(session, api_tokens.digest_of(text))


# --- the token's text ------------------------------------------------------------------------


def test_a_token_is_the_prefix_and_32_random_bytes_in_base64url():
    secret = bytes(range(32))
    text = api_tokens.PREFIX + base64url.encode(secret)
    assert len(text) == 47
    assert api_tokens.digest_of(text) == hashlib.sha256(secret).digest()


@pytest.mark.parametrize(
    "text",
    [
        "isk_",
        "isk_" + "A" * 42,  # 31.5 bytes
        "isk_" + "A" * 44,
        "isk_" + "A" * 42 + "B",  # stray bits: another spelling of the same bytes
        "isk_" + "A" * 42 + "=",
        "isk_" + "A" * 41 + "+A",  # standard base64, not base64url
        "isk_" + "A" * 41 + " A",
    ],
)
def test_only_the_one_spelling_is_a_token(text):
    with pytest.raises(Unauthorized, match=r"^The access token is not valid\.$"):
        api_tokens.digest_of(text)


# --- scopes --------------------------------------------------------------------------------


def test_scopes_are_kept_once_each_in_one_order():
    assert api_tokens.check_scopes(["upload", "read", "upload"]) == "read upload"
    with pytest.raises(InvalidInput, match="'admin' is not a scope"):
        api_tokens.check_scopes(["read", "admin"])
    with pytest.raises(InvalidInput, match="at least one scope"):
        api_tokens.check_scopes([])


@pytest.mark.parametrize(
    ("held", "needed", "reached"),
    [
        ({"read"}, {"read"}, True),
        ({"read"}, {"upload"}, False),
        ({"read"}, {"share"}, False),
        ({"read"}, {"full"}, False),
        ({"upload"}, {"upload"}, True),
        ({"upload"}, {"read"}, False),
        ({"share"}, {"read"}, True),
        ({"share"}, {"share"}, True),
        ({"share"}, {"upload"}, False),
        ({"share"}, {"full"}, False),
        ({"full"}, {"full"}, True),
        ({"full"}, {"upload"}, True),
        ({"read", "upload"}, {"upload"}, True),
        ({"upload"}, {"read", "upload"}, True),
        ({"share"}, {"read", "upload"}, True),
    ],
)
def test_what_each_scope_reaches(held, needed, reached):
    assert api_tokens.reaches(frozenset(held), frozenset(needed)) is reached


def test_the_refusal_names_what_the_token_may_do_and_the_scope_it_lacks():
    with pytest.raises(Forbidden) as refused:
        api_tokens.check_reach(frozenset({"upload"}), frozenset({"read"}))
    assert refused.value.detail == "This token may only upload files; this needs the read scope."
    with pytest.raises(Forbidden) as refused:
        api_tokens.check_reach(frozenset({"read"}), frozenset({"share", "upload"}))
    assert refused.value.detail == (
        "This token may only read your files; this needs the upload or share scope."
    )


# --- made, resolved, revoked ---------------------------------------------------------------


def test_a_token_resolves_to_its_account_and_scopes(owner):
    made, text = _make(owner, scopes=["upload", "read"], expires_in_days=10)
    claims = _resolve(owner, text)
    assert claims.user_id == owner.id
    assert claims.api_token_id == made.id
    assert claims.scopes == {"read", "upload"}
    assert claims.jti == f"api-{made.id.hex}"
    # Its claims outlive the request by at most a day, whatever the token's own expiry.
    assert claims.expires_at <= dt.datetime.now(dt.UTC) + api_tokens.CLAIMS_HORIZON


def test_a_token_that_never_expires_has_no_expiry(owner):
    made, text = _make(owner)
    assert made.expires_at is None
    assert _resolve(owner, text).user_id == owner.id


def test_an_expired_token_is_refused(owner):
    made, text = _make(owner, expires_in_days=1)
    with owner.sessions() as session:
        session.execute(
            sa.update(ApiToken)
            .where(ApiToken.id == made.id)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
        session.commit()
    with pytest.raises(Unauthorized, match="has expired; make a new one"):
        _resolve(owner, text)


def test_a_moved_token_generation_ends_the_accounts_tokens(owner):
    _, text = _make(owner)
    with owner.sessions() as session:
        session.execute(
            sa.update(User)
            .where(User.id == owner.id)
            .values(token_generation=User.token_generation + 1)
        )
        session.commit()
    with pytest.raises(
        Unauthorized, match="ended when the password was changed or the account was disabled"
    ):
        _resolve(owner, text)
    with owner.sessions() as session:
        assert api_tokens.list_tokens(session, owner.id) == []


def test_last_use_is_written_once_a_minute(owner):
    made, text = _make(owner)
    _resolve(owner, text)
    with owner.sessions() as session:
        first = session.get(ApiToken, made.id).last_used_at
    _resolve(owner, text)
    with owner.sessions() as session:
        assert session.get(ApiToken, made.id).last_used_at == first


def test_a_revoked_token_is_refused_and_its_id_remembered(owner):
    made, text = _make(owner)
    with owner.sessions() as session:
        api_tokens.revoke(session, owner.id, made.id)
    with pytest.raises(Unauthorized, match=r"^The access token is not valid\.$"):
        _resolve(owner, text)
    with owner.sessions() as session:
        # Its download grants name this id: they end with it.
        assert session.get(RevokedToken, api_tokens.jti_of(made.id)) is not None
        with pytest.raises(NotFound):
            api_tokens.revoke(session, owner.id, made.id)


def test_names_are_unique_per_account_in_any_case(owner):
    _make(owner, name="Deploy")
    with pytest.raises(Conflict, match="already have an API token named 'DEPLOY'"):
        _make(owner, name="DEPLOY")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"expires_in_days": 0}, "1 to 3650 days"),
        ({"expires_in_days": 3651}, "1 to 3650 days"),
        ({"expires_at": dt.datetime(2030, 1, 1)}, "time zone"),
        ({"expires_at": dt.datetime.now(dt.UTC) - dt.timedelta(days=1)}, "in the future"),
        ({"expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(days=4000)}, "at most 3650"),
    ],
)
def test_an_expiry_out_of_bounds_is_refused(owner, options, message):
    with pytest.raises(InvalidInput, match=message):
        _make(owner, **options)


def test_no_race_makes_more_than_the_limit(owner):
    """Racers creating at once: the account's row lock counts them one after another."""
    for _ in range(api_tokens.MAX_TOKENS - 3):
        _make(owner)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def race() -> None:
        start.wait()
        try:
            _make(owner)
            outcomes.append("made")
        except Conflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["made"] * 3 + ["refused"] * 5
    with owner.sessions() as session:
        assert len(api_tokens.list_tokens(session, owner.id)) == api_tokens.MAX_TOKENS
