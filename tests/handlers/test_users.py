"""The /users contract: registration, login and its throttling, tokens, the profile."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import uuid

import jwt
import pytest
import redis
from sqlalchemy import delete

from app.models import User
from tests.helpers import PASSWORD, assert_problem, new_email, upload

REGISTER = "/api/v1/users/register"
LOGIN = "/api/v1/users/login"
ME = "/api/v1/users/me"


def _register(client, email, password=PASSWORD, **extra):
    return client.post(REGISTER, json={"email": email, "password": password, **extra})


def _login(client, email, password=PASSWORD):
    return client.post(LOGIN, json={"email": email, "password": password})


# Registration


def test_register_answers_201_with_the_user_and_its_location(local_client):
    email = new_email()
    response = _register(local_client, email)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == "/api/v1/users/me"
    body = response.json()
    assert set(body) == {"id", "email", "created_at", "role"}
    assert body["email"] == email
    uuid.UUID(body["id"])
    created = dt.datetime.fromisoformat(body["created_at"])
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 60


def test_register_trims_the_email_address(local_client):
    email = new_email()
    response = _register(local_client, f"  {email}\t")
    assert response.status_code == 201, response.text
    assert response.json()["email"] == email
    assert _login(local_client, email).status_code == 200


def test_email_addresses_are_unique_whatever_their_case(local_client):
    local = f"Ann-{uuid.uuid4().hex[:8]}"
    assert _register(local_client, f"{local}@X.com").status_code == 201
    body = assert_problem(_register(local_client, f"{local.lower()}@x.com"), 409)
    assert "already" in body["detail"]
    assert assert_problem(_register(local_client, f" {local.upper()}@X.COM "), 409)
    # The account answers to any case of its address.
    assert _login(local_client, f"{local.lower()}@x.com").status_code == 200


@pytest.mark.parametrize(
    "email",
    [
        "plainaddress",
        "@example.com",
        "ann@",
        "ann@example",
        "ann@@example.com",
        "ann example@example.com",
        "ann@exa mple.com",
        "ann@-example.com",
        "ann@example..com",
        "ann@.example.com",
        "ann@exam_ple.com",
        "a" * 65 + "@example.com",
        "ann@" + "b" * 250 + ".com",
        "ab",
        "   ",
    ],
)
def test_register_refuses_invalid_email_addresses(local_client, email):
    assert_problem(_register(local_client, email), 400)


def test_register_refuses_a_password_under_10_characters(local_client):
    email = new_email()
    assert_problem(_register(local_client, email, "123456789"), 400)
    assert _register(local_client, email, "1234567890").status_code == 201


@pytest.mark.parametrize(
    ("password", "says"),
    [
        ("Secr3tPW", "The password must be at least 10 characters long."),
        ("Secr3tPW" * 200, "The password must be at most 1024 characters long."),
        (8675309123, "The password must be text."),
    ],
    ids=["short", "long", "number"],
)
def test_a_refused_password_is_never_repeated_in_the_answer_or_the_logs(
    local_client, caplog, password, says
):
    with caplog.at_level(logging.DEBUG):
        response = _register(local_client, new_email(), password)
    body = assert_problem(response, 400)
    assert body["detail"] == says
    assert body["type"] == "/problems/invalid-input"
    assert str(password) not in response.text
    assert caplog.records  # the refusal is logged (Connexion's validation log included)
    for record in caplog.records:
        assert str(password) not in record.getMessage(), record.name
        assert str(password) not in str(record.__dict__), record.name


def test_a_secret_in_a_body_with_another_fault_is_not_repeated(local_client, caplog):
    # The e-mail is refused, and jsonschema's message for it would show the whole body.
    body = {"email": ["a@example.com"], "password": "0123456789-secret"}
    with caplog.at_level(logging.DEBUG):
        response = local_client.post(REGISTER, json=body)
    assert "email" in assert_problem(response, 400)["detail"]
    assert "0123456789-secret" not in response.text
    assert all("0123456789-secret" not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("password", ["", "short", "x" * 1025, "y" * 5000])
def test_login_with_a_password_of_any_wrong_length_is_the_same_401(
    local_client, make_account, caplog, password
):
    email = make_account().email
    wrong = assert_problem(_login(local_client, email, "not the right password"), 401)
    with caplog.at_level(logging.DEBUG):
        response = _login(local_client, email, password)
    assert assert_problem(response, 401) == wrong
    if password:
        assert password not in response.text
        assert all(password not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
def test_credentials_refuse_extra_properties(local_client, url):
    body = {"email": new_email(), "password": PASSWORD, "admin": True}
    assert_problem(local_client.post(url, json=body), 400)


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
@pytest.mark.parametrize("missing", ["email", "password"])
def test_credentials_need_both_fields(local_client, url, missing):
    body = {"email": new_email(), "password": PASSWORD}
    del body[missing]
    assert_problem(local_client.post(url, json=body), 400)


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (
            f"email={new_email()}&password=correct+horse+battery",
            "application/x-www-form-urlencoded",
        ),
        ('{"email": "a@example.com", "password": "correct horse battery"}', "text/plain"),
    ],
    ids=["form", "json-as-text"],
)
def test_credentials_must_be_json(local_client, url, content, content_type):
    response = local_client.post(url, content=content, headers={"Content-Type": content_type})
    assert_problem(response, 415)


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
@pytest.mark.parametrize("content", [b'{"email": "\xe9t\xe9@example.com"}', b"\xff\xfe", b"\x80"])
def test_a_json_body_that_is_not_utf8_is_400_not_500(local_client, url, content):
    response = local_client.post(url, content=content, headers={"Content-Type": "application/json"})
    assert "UTF-8" in assert_problem(response, 400)["detail"]


@pytest.mark.parametrize(
    ("url", "email", "password"),
    [
        (LOGIN, "ann\\ud800@example.com", "0123456789ab"),
        (LOGIN, "ann@example.com", "0123456789\\udfff"),
        (REGISTER, "ann\\ud800@example.com", "0123456789ab"),
        (REGISTER, "ann-surrogate@example.com", "0123456789\\ud800"),
    ],
)
def test_text_with_a_lone_surrogate_is_400_not_500(local_client, url, email, password):
    # JSON can spell half a character; nothing can hash, store or look it up.
    content = f'{{"email": "{email}", "password": "{password}"}}'.encode()
    response = local_client.post(url, content=content, headers={"Content-Type": "application/json"})
    assert_problem(response, 400)


@pytest.mark.parametrize("email", ["ann\x00@example.com", "not an address", "ann@example"])
def test_login_with_something_that_is_not_an_address_is_the_same_401(local_client, email):
    unknown = assert_problem(_login(local_client, new_email()), 401)
    assert assert_problem(_login(local_client, email), 401) == unknown


@pytest.mark.parametrize("content", [b"", b"{", b"null", b"[]", b'"text"', b"{'single': 1}"])
def test_a_body_that_is_not_a_credentials_object_is_400(local_client, content):
    response = local_client.post(
        REGISTER, content=content, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400)


@pytest.mark.parametrize("url", [REGISTER, LOGIN])
def test_json_body_over_the_limit_is_refused_with_413(local_client, local_settings, url):
    padding = "x" * (local_settings.max_json_bytes + 1)
    body = assert_problem(
        local_client.post(url, json={"email": new_email(), "password": padding}), 413
    )
    assert body["limit"] == "body"


# Without Content-Length (chunked transfer encoding), Connexion's JSON validator would take
# the body for a missing one; JsonBodyLimit reads it up to the limit and passes its length.
def test_a_chunked_json_registration_is_accepted(local_client):
    email = new_email()

    def chunks():
        yield b'{"email": "' + email.encode() + b'", '
        yield b'"password": "' + PASSWORD.encode() + b'"}'

    response = local_client.post(
        REGISTER, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 201, response.text


def test_chunked_json_body_over_the_limit_is_refused_with_413(local_client, local_settings):
    email = new_email()

    def chunks():
        yield b'{"email": "' + email.encode() + b'", "password": "'
        for _ in range(local_settings.max_json_bytes // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    response = local_client.post(
        REGISTER, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert assert_problem(response, 413)["limit"] == "body"
    assert _login(local_client, email).status_code == 401


# Login


def test_login_gives_a_bearer_token_that_works(local_client, local_settings, make_account):
    email = make_account().email
    response = _login(local_client, email)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == local_settings.token_ttl_seconds
    me = local_client.get(ME, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == email
    # The server's limits, for a form to refuse a bad value before sending it.
    assert me.json()["limits"] == {"share_max_days": local_settings.share_max_days}


def test_wrong_password_and_unknown_email_get_the_same_401(local_client, make_account):
    email = make_account().email
    wrong_password = _login(local_client, email, "not the right password")
    unknown_email = _login(local_client, new_email())
    assert_problem(wrong_password, 401)
    assert wrong_password.json() == assert_problem(unknown_email, 401)
    assert wrong_password.headers["content-type"] == unknown_email.headers["content-type"]


def _address() -> str:
    """A client address no other test uses (the counters outlive a test: they are in Redis)."""
    n = uuid.uuid4().int
    return f"10.{n % 250 + 1}.{n // 250 % 250 + 1}.{n // 62500 % 250 + 1}"


def test_failed_logins_for_one_account_are_throttled_with_retry_after(
    local_app, local_settings, make_account
):
    # The counters live in the run's own Redis (local_settings.redis_url), keyed by e-mail
    # address and client address: fresh accounts and addresses start from zero.
    email, other = make_account().email, make_account().email
    with (
        local_app.test_client(client=(_address(), 40000)) as guesser,
        local_app.test_client(client=(_address(), 40000)) as owner,
    ):
        for attempt in range(local_settings.login_max_failures):
            # The address is the account whatever its case or surrounding spaces.
            variant = email.upper() if attempt % 2 else f" {email} "
            assert_problem(_login(guesser, variant, "wrong password!"), 401)
        throttled = _login(guesser, email, "wrong password!")
        assert_problem(throttled, 429)
        # The first wait is a minute; it doubles with every failure after it.
        assert 55 <= int(throttled.headers["Retry-After"]) <= 60
        # Even the right password waits there, so guessing cannot go on.
        assert_problem(_login(guesser, email), 429)
        # Another account from the same client is not affected, nor the owner elsewhere.
        assert _login(guesser, other).status_code == 200
        assert _login(owner, email).status_code == 200


def test_a_stranger_hammering_an_account_cannot_lock_its_owner_out(local_app, make_account):
    email = make_account().email
    with (
        local_app.test_client(client=(_address(), 40000)) as stranger,
        local_app.test_client(client=(_address(), 40000)) as owner,
    ):
        statuses = [_login(stranger, email, "a guess, wrong").status_code for _ in range(30)]
        assert statuses[:5] == [401] * 5
        assert set(statuses[5:]) == {429}
        # The owner's first login from this address: the right password is let in.
        assert _login(owner, email).status_code == 200
        assert_problem(_login(owner, email, "a typo, wrong"), 401)
        assert _login(owner, email).status_code == 200


def test_a_campaign_from_many_addresses_slows_new_addresses_but_refuses_none(
    make_app, local_settings, make_account
):
    settings = dataclasses.replace(
        local_settings, login_max_failures_per_account=4, login_campaign_interval_seconds=0.5
    )
    app = make_app(settings)
    email = make_account().email
    home = _address()
    with app.test_client(client=(home, 40000)) as owner:
        assert _login(owner, email).status_code == 200  # the owner's usual address
    for _ in range(4):  # four guesses, each from an address of its own: the cap
        with app.test_client(client=(_address(), 40000)) as bot:
            assert_problem(_login(bot, email, "a guess, wrong"), 401)
    with app.test_client(client=(_address(), 40000)) as elsewhere:
        # From a new address the right password still logs in, after its turn came.
        assert _login(elsewhere, email).status_code == 200
    with app.test_client(client=(home, 40000)) as owner:
        assert _login(owner, email).status_code == 200


def test_a_successful_login_resets_the_account_counter(local_client, local_settings, make_account):
    email = make_account().email
    for _ in range(2):
        for _ in range(local_settings.login_max_failures - 1):
            assert_problem(_login(local_client, email, "wrong password!"), 401)
        assert _login(local_client, email).status_code == 200


def test_failed_logins_from_one_client_address_are_throttled(
    make_app, local_settings, make_account
):
    settings = dataclasses.replace(local_settings, login_max_failures_per_ip=3)
    # A fresh address, as the counters outlive an app: they are in the run's own Redis.
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    with redis.Redis.from_url(settings.redis_url) as counters:
        counters.delete(f"login-fail:addr:{address}")
    app = make_app(settings)
    with (
        app.test_client(client=(address, 40000)) as client,
        app.test_client(client=("203.0.113.9", 40000)) as elsewhere,
    ):
        email = make_account().email
        for _ in range(3):
            # Each guess is for another account, so only the address counter adds up.
            assert_problem(_login(client, new_email(), "wrong password!"), 401)
        throttled = _login(client, new_email(), "wrong password!")
        assert_problem(throttled, 429)
        assert 0 < int(throttled.headers["Retry-After"]) <= settings.login_window_seconds
        assert_problem(_login(client, email), 429)
        # The same account from another address logs in.
        assert _login(elsewhere, email).status_code == 200


# Tokens


def test_a_request_without_a_token_gets_401(local_client):
    assert_problem(local_client.get(ME), 401)
    assert_problem(local_client.get("/api/v1/files"), 401)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Bearer garbage", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "garbage"],
)
def test_a_malformed_token_gets_401(local_client, authorization):
    assert_problem(local_client.get(ME, headers={"Authorization": authorization}), 401)


def _jwt(user_id: str, secret: str, *, issued: int, expires: int) -> str:
    claims = {"sub": user_id, "iat": issued, "exp": expires, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm="HS256")


def test_a_token_signed_with_another_secret_gets_401(local_client, make_account):
    account = make_account()
    now = int(time.time())
    forged = _jwt(account.id, "another secret entirely, 32+ chars", issued=now, expires=now + 60)
    assert_problem(local_client.get(ME, headers={"Authorization": f"Bearer {forged}"}), 401)


def test_an_expired_token_gets_401_not_500(local_client, local_settings, make_account):
    account = make_account()
    now = int(time.time())
    expired = _jwt(account.id, local_settings.secret_key, issued=now - 7200, expires=now - 60)
    headers = {"Authorization": f"Bearer {expired}"}
    body = assert_problem(local_client.get(ME, headers=headers), 401)
    assert "expired" in body["detail"]
    assert_problem(local_client.get("/api/v1/files", headers=headers), 401)
    # The same claims, still in date, are accepted: only the expiry made the difference.
    fresh = _jwt(account.id, local_settings.secret_key, issued=now, expires=now + 60)
    assert local_client.get(ME, headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_the_token_of_a_deleted_account_gets_401(local_client, session, make_account):
    account = make_account()
    assert local_client.get(ME, headers=account.headers).status_code == 200
    session.execute(delete(User).where(User.id == uuid.UUID(account.id)))
    session.commit()
    assert_problem(local_client.get(ME, headers=account.headers), 401)
    assert_problem(local_client.get("/api/v1/files", headers=account.headers), 401)
    response = upload(local_client, account)
    assert_problem(response, 401)


# The profile


def test_me_shows_the_profile_and_usage_that_follows_uploads(client, settings, alice):
    me = client.get(ME, headers=alice.headers)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["id"] == alice.id
    assert body["email"] == alice.email
    usage = body["usage"]
    assert (usage["file_count"], usage["bytes_stored"]) == (0, 0)
    assert usage["quota_bytes"] == settings.quota_bytes
    assert upload(client, alice, b"x" * 1234, filename="a.bin").status_code == 202
    assert upload(client, alice, b"y" * 766, filename="b.bin").status_code == 202
    usage = client.get(ME, headers=alice.headers).json()["usage"]
    assert (usage["file_count"], usage["bytes_stored"]) == (2, 2000)
    assert usage["quota_bytes"] == settings.quota_bytes
    newest = _first_file_id(client, alice)  # b.bin
    assert client.delete(f"/api/v1/files/{newest}", headers=alice.headers).status_code == 204
    usage = client.get(ME, headers=alice.headers).json()["usage"]
    assert (usage["file_count"], usage["bytes_stored"]) == (1, 1234)


def _first_file_id(client, account) -> str:
    return client.get("/api/v1/files", headers=account.headers).json()["items"][0]["id"]


def test_me_counts_only_the_callers_files(local_client, make_account):
    alice, bob = make_account(), make_account()
    assert upload(local_client, alice, b"abc").status_code == 202
    assert local_client.get(ME, headers=bob.headers).json()["usage"]["file_count"] == 0


def test_a_token_response_is_never_stored(local_client, make_account):
    account = make_account()
    response = local_client.post(LOGIN, json={"email": account.email, "password": account.password})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    # Anonymous answers carry nosniff too, and are not marked private.
    health = local_client.get("/api/v1/health")
    assert health.headers["x-content-type-options"] == "nosniff"
    assert "cache-control" not in health.headers
