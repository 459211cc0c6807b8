"""Access tokens: what `verify` accepts and what it refuses."""

import time
import uuid

import jwt
import pytest

from app.errors import Unauthorized
from app.services import tokens
from app.settings import Settings

SETTINGS = Settings.from_env({}, secret_key="s" * 40, token_ttl_seconds=600)


def _encode(claims: dict, secret: str = SETTINGS.secret_key, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def test_issued_token_verifies_to_its_user():
    user_id = uuid.uuid4()
    token, expires_in = tokens.issue(SETTINGS, user_id)
    assert expires_in == 600
    claims = tokens.verify(SETTINGS, token)
    assert claims.user_id == user_id
    assert claims.generation == 0
    assert len(claims.jti) == 32
    assert abs(claims.expires_at.timestamp() - time.time() - 600) < 5


def test_a_token_carries_the_generation_it_was_issued_in():
    token, _ = tokens.issue(SETTINGS, uuid.uuid4(), generation=7)
    assert tokens.verify(SETTINGS, token).generation == 7


def test_a_token_from_before_generations_is_generation_0():
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "iat": now, "exp": now + 60, "jti": "a" * 32}
    assert tokens.verify(SETTINGS, _encode(claims)).generation == 0


@pytest.mark.parametrize(
    ("claim", "value"),
    [("jti", None), ("jti", ""), ("jti", 42), ("jti", "x" * 65), ("gen", -1), ("gen", "1"),
     ("gen", 1.5), ("gen", True)],
)  # fmt: skip
def test_a_token_without_a_usable_id_or_generation_is_refused(claim, value):
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "iat": now, "exp": now + 60, "jti": "a" * 32, "gen": 0}
    claims[claim] = value
    with pytest.raises(Unauthorized, match="not valid"):
        tokens.verify(SETTINGS, _encode(claims))


def test_issued_token_expires_after_the_configured_lifetime():
    token, _ = tokens.issue(SETTINGS, uuid.uuid4())
    claims = jwt.decode(token, SETTINGS.secret_key, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - time.time()) < 5


def test_two_tokens_for_one_user_differ():
    user_id = uuid.uuid4()
    assert tokens.issue(SETTINGS, user_id)[0] != tokens.issue(SETTINGS, user_id)[0]


def test_expired_token_is_refused_saying_so():
    now = int(time.time())
    token = _encode({"sub": str(uuid.uuid4()), "iat": now - 7200, "exp": now - 3600})
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(SETTINGS, token)


def test_token_signed_with_another_secret_is_refused():
    other = Settings.from_env({}, secret_key="o" * 40)
    token, _ = tokens.issue(other, uuid.uuid4())
    with pytest.raises(Unauthorized, match="not valid"):
        tokens.verify(SETTINGS, token)


def test_unsigned_token_is_refused():
    now = int(time.time())
    token = jwt.encode({"sub": str(uuid.uuid4()), "iat": now, "exp": now + 60}, None, "none")
    with pytest.raises(Unauthorized):
        tokens.verify(SETTINGS, token)


@pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "é", "Bearer x", "x" * 5000])
def test_garbage_is_refused(garbage):
    with pytest.raises(Unauthorized):
        tokens.verify(SETTINGS, garbage)


@pytest.mark.parametrize("missing", ["sub", "exp", "iat"])
def test_token_missing_a_claim_is_refused(missing):
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "iat": now, "exp": now + 60}
    del claims[missing]
    with pytest.raises(Unauthorized):
        tokens.verify(SETTINGS, _encode(claims))


@pytest.mark.parametrize("sub", ["not-a-uuid", 42, None, ""])
def test_token_whose_subject_is_not_a_user_id_is_refused(sub):
    now = int(time.time())
    with pytest.raises(Unauthorized):
        tokens.verify(SETTINGS, _encode({"sub": sub, "iat": now, "exp": now + 60}))


def test_a_token_verified_before_still_expires_on_time(monkeypatch):
    token, _ = tokens.issue(SETTINGS, uuid.uuid4())
    claims = tokens.verify(SETTINGS, token)  # now remembered
    assert tokens.verify(SETTINGS, token) == claims
    later = claims.expires_at.timestamp() + 1
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(SETTINGS, token)


def test_a_token_is_verified_against_each_secret_on_its_own():
    token, _ = tokens.issue(SETTINGS, uuid.uuid4())
    tokens.verify(SETTINGS, token)
    other = Settings.from_env({}, secret_key="t" * 40)
    with pytest.raises(Unauthorized, match="not valid"):
        tokens.verify(other, token)


def test_a_token_has_one_spelling():
    token, _ = tokens.issue(SETTINGS, uuid.uuid4())
    header, payload, signature = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    flipped = alphabet[alphabet.index(signature[-1]) ^ 1]  # a bit no byte of it uses
    for other in (
        f"{header}.{payload}.{signature[:5]}\\{signature[5:]}",
        f"{header}.{payload}.{signature}=",
        f"{header}.{payload}.{signature[:-1]}{flipped}",
    ):
        with pytest.raises(Unauthorized):
            tokens.verify(SETTINGS, other)
    assert tokens.verify(SETTINGS, token)
