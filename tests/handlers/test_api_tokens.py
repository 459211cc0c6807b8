"""/users/me/tokens: personal API tokens made, listed, used and revoked over HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import pytest
from sqlalchemy import select, update

from app.models import ApiToken, User
from app.services import api_tokens, base64url
from tests.helpers import PASSWORD, Account, assert_problem, upload, upload_ready

TOKENS = "/api/v1/users/me/tokens"
ME = "/api/v1/users/me"
FILES = "/api/v1/files"


def make_token(client, account: Account, **body) -> dict:
    """POST /users/me/tokens as `account` (a session); the 201's body."""
    body.setdefault("name", f"token {uuid.uuid4().hex[:8]}")
    body.setdefault("scopes", ["full"])
    made = client.post(TOKENS, headers=account.headers, json=body)
    assert made.status_code == 201, made.text
    return made.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_is_shown_once_then_listed_without_its_secret(local_client, alice):
    made = local_client.post(
        TOKENS,
        headers=alice.headers,
        json={"name": "  nightly backup ", "scopes": ["upload", "read"], "expires_in_days": 30},
    )
    assert made.status_code == 201, made.text
    assert made.headers["Cache-Control"] == "no-store"
    body = made.json()
    assert made.headers["Location"] == f"{TOKENS}/{body['id']}"
    assert body["name"] == "nightly backup"
    assert body["scopes"] == ["read", "upload"]
    assert body["token"].startswith("isk_") and len(body["token"]) == 47
    assert body["last_used_at"] is None
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert abs(expires - (dt.datetime.now(dt.UTC) + dt.timedelta(days=30))) < dt.timedelta(
        minutes=1
    )
    listed = local_client.get(TOKENS, headers=alice.headers)
    assert listed.status_code == 200, listed.text
    [shown] = listed.json()["items"]
    assert shown == {k: v for k, v in body.items() if k != "token"}
    assert body["token"] not in listed.text


def test_only_the_hash_of_the_secret_is_stored(local_client, alice, session):
    body = make_token(local_client, alice)
    row = session.get(ApiToken, uuid.UUID(body["id"]))
    secret = base64url.decode(body["token"].removeprefix("isk_"))
    assert row.secret_hash == hashlib.sha256(secret).digest()
    assert body["token"].encode() not in row.secret_hash


def test_a_token_works_like_a_session_token_where_its_scope_reaches(local_client, alice):
    token = make_token(local_client, alice, scopes=["read"])["token"]
    me = local_client.get(ME, headers=bearer(token))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == alice.id


def test_an_upload_token_uploads_and_may_not_list(local_client, alice):
    token = make_token(local_client, alice, scopes=["upload"])["token"]
    as_token = Account(alice.id, alice.email, token)
    assert upload(local_client, as_token, b"data", "a.txt").status_code == 202
    refused = assert_problem(local_client.get(FILES, headers=bearer(token)), 403)
    assert refused["detail"] == "This token may only upload files; this needs the read scope."
    listed = local_client.get(FILES, headers=alice.headers).json()
    assert [f["name"] for f in listed["items"]] == ["a.txt"]


def test_a_read_token_may_not_delete_and_says_why(local_client, alice):
    file_id = upload(local_client, alice, b"x", "keep.txt").json()["id"]
    token = make_token(local_client, alice, scopes=["read", "share"])["token"]
    refused = assert_problem(local_client.delete(f"{FILES}/{file_id}", headers=bearer(token)), 403)
    assert refused["detail"] == (
        "This token may only read your files and read and share your files; "
        "this needs the full scope."
    )
    assert local_client.get(f"{FILES}/{file_id}", headers=alice.headers).status_code == 200


def test_making_tokens_with_a_token_needs_full(local_client, alice):
    share_token = make_token(local_client, alice, scopes=["share"])["token"]
    refused = local_client.post(
        TOKENS, headers=bearer(share_token), json={"name": "more", "scopes": ["full"]}
    )
    assert "needs the full scope" in assert_problem(refused, 403)["detail"]
    full = make_token(local_client, alice, scopes=["full"])["token"]
    made = local_client.post(
        TOKENS, headers=bearer(full), json={"name": "more", "scopes": ["read"]}
    )
    assert made.status_code == 201, made.text


def test_revoking_ends_a_token_at_once(local_client, alice):
    body = make_token(local_client, alice, scopes=["read"])
    assert local_client.get(ME, headers=bearer(body["token"])).status_code == 200
    gone = local_client.delete(f"{TOKENS}/{body['id']}", headers=alice.headers)
    assert gone.status_code == 204, gone.text
    refused = assert_problem(local_client.get(ME, headers=bearer(body["token"])), 401)
    assert refused["detail"] == "The access token is not valid."
    assert local_client.get(TOKENS, headers=alice.headers).json()["items"] == []
    again = local_client.delete(f"{TOKENS}/{body['id']}", headers=alice.headers)
    assert assert_problem(again, 404)["detail"] == "You have no API token with this id."


def test_nobody_revokes_or_sees_another_accounts_token(local_client, alice, bob):
    body = make_token(local_client, alice)
    assert_problem(local_client.delete(f"{TOKENS}/{body['id']}", headers=bob.headers), 404)
    assert local_client.get(TOKENS, headers=bob.headers).json()["items"] == []
    assert local_client.get(ME, headers=bearer(body["token"])).status_code == 200


def test_an_expired_token_is_refused_with_a_sentence(local_client, alice, session):
    body = make_token(local_client, alice, expires_in_days=1)
    session.execute(
        update(ApiToken)
        .where(ApiToken.id == uuid.UUID(body["id"]))
        .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    )
    session.commit()
    refused = assert_problem(local_client.get(ME, headers=bearer(body["token"])), 401)
    assert refused["detail"] == "This API token has expired; make a new one."


def test_expires_at_sets_the_expiry(local_client, alice):
    when = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(microsecond=0)
    body = make_token(local_client, alice, expires_at=when.isoformat().replace("+00:00", "Z"))
    assert dt.datetime.fromisoformat(body["expires_at"]) == when


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        ({"name": "   ", "scopes": ["read"]}, "A token's name must be 1 to 100 characters."),
        (
            {"name": "a\nb", "scopes": ["read"]},
            "A token's name cannot contain control characters or line breaks.",
        ),
        (
            {
                "name": "x",
                "scopes": ["read"],
                "expires_in_days": 3,
                "expires_at": "2099-01-01T00:00:00Z",
            },
            "Give expires_in_days or expires_at, not both.",
        ),
        (
            {"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"},
            "expires_at must be in the future.",
        ),
    ],
)
def test_a_bad_token_request_is_400_with_a_sentence(local_client, alice, body, sentence):
    refused = assert_problem(local_client.post(TOKENS, headers=alice.headers, json=body), 400)
    assert refused["detail"] == sentence


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["admin"]},
        {"name": "x" * 101, "scopes": ["read"]},
        {"name": "x", "scopes": ["read"], "expires_in_days": 0},
        {"name": "x"},
    ],
)
def test_the_spec_refuses_what_is_no_token_request(local_client, alice, body):
    assert_problem(local_client.post(TOKENS, headers=alice.headers, json=body), 400)


def test_names_are_unique_per_account_whatever_their_case(local_client, alice, bob):
    make_token(local_client, alice, name="CI")
    taken = local_client.post(
        TOKENS, headers=alice.headers, json={"name": "ci", "scopes": ["read"]}
    )
    assert assert_problem(taken, 409)["detail"] == "You already have an API token named 'ci'."
    make_token(local_client, bob, name="CI")


def test_an_account_has_at_most_50_tokens(local_client, alice, session):
    user_id = uuid.UUID(alice.id)
    session.add_all(
        ApiToken(
            user_id=user_id,
            name=f"t{i}",
            secret_hash=hashlib.sha256(str(i).encode() + user_id.bytes).digest(),
            scopes="read",
            generation=0,
        )
        for i in range(api_tokens.MAX_TOKENS)
    )
    session.commit()
    refused = local_client.post(
        TOKENS, headers=alice.headers, json={"name": "x", "scopes": ["read"]}
    )
    assert assert_problem(refused, 409)["detail"] == (
        "An account may have 50 API tokens; revoke one first."
    )
    assert len(local_client.get(TOKENS, headers=alice.headers).json()["items"]) == 50


def test_a_password_change_ends_every_token(local_client, alice):
    body = make_token(local_client, alice, name="CI", scopes=["read"])
    changed = local_client.post(
        f"{ME}/password",
        headers=alice.headers,
        json={"current_password": PASSWORD, "new_password": PASSWORD + "!"},
    )
    assert changed.status_code == 200, changed.text
    refused = assert_problem(local_client.get(ME, headers=bearer(body["token"])), 401)
    ended = (
        "This API token ended when the password was changed or the account was disabled; "
        "make a new one."
    )
    assert refused["detail"] == ended
    fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    assert local_client.get(TOKENS, headers=fresh).json()["items"] == []
    again = local_client.post(TOKENS, headers=fresh, json={"name": "CI", "scopes": ["read"]})
    assert again.status_code == 201, again.text  # its name is free again


def test_last_used_moves_at_most_once_a_minute(local_client, alice, session):
    body = make_token(local_client, alice, scopes=["read"])
    token_id = uuid.UUID(body["id"])
    assert local_client.get(ME, headers=bearer(body["token"])).status_code == 200
    first = session.scalar(select(ApiToken.last_used_at).where(ApiToken.id == token_id))
    assert first is not None
    assert abs(first - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=30)
    assert local_client.get(ME, headers=bearer(body["token"])).status_code == 200
    session.expire_all()
    assert session.scalar(select(ApiToken.last_used_at).where(ApiToken.id == token_id)) == first
    # A minute later (its last use moved back), the next request writes it again.
    earlier = first - dt.timedelta(seconds=61)
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=earlier))
    session.commit()
    assert local_client.get(ME, headers=bearer(body["token"])).status_code == 200
    session.expire_all()
    moved = session.scalar(select(ApiToken.last_used_at).where(ApiToken.id == token_id))
    assert moved > first
    shown = local_client.get(TOKENS, headers=alice.headers).json()["items"][0]
    assert dt.datetime.fromisoformat(shown["last_used_at"]) == moved


@pytest.mark.parametrize(
    "presented",
    [
        "isk_",
        "isk_" + "A" * 43,  # well formed, no such token
        "isk_" + "A" * 42 + "B",  # bits no byte uses: not the one spelling
        "isk_" + "A" * 44,
        "isk_" + "A" * 42 + ".",
    ],
)
def test_a_token_that_is_none_is_401(local_client, presented):
    refused = assert_problem(local_client.get(ME, headers=bearer(presented)), 401)
    assert refused["detail"] == "The access token is not valid."


def test_logging_out_with_a_token_revokes_it(local_client, alice):
    body = make_token(local_client, alice, scopes=["full"])
    out = local_client.post("/api/v1/users/logout", headers=bearer(body["token"]))
    assert out.status_code == 204, out.text
    assert_problem(local_client.get(ME, headers=bearer(body["token"])), 401)
    assert local_client.get(TOKENS, headers=alice.headers).json()["items"] == []


def test_a_deleted_account_takes_its_tokens(local_client, alice, session):
    body = make_token(local_client, alice)
    session.execute(User.__table__.delete().where(User.id == uuid.UUID(alice.id)))
    session.commit()
    assert session.get(ApiToken, uuid.UUID(body["id"])) is None
    assert_problem(local_client.get(ME, headers=bearer(body["token"])), 401)


def test_revoking_a_token_ends_the_download_grants_it_made(local_client, local_app, alice):
    file_id = upload_ready(local_client, local_app, alice, b"granted bytes", "g.txt")
    body = make_token(local_client, alice, scopes=["read"])
    made = local_client.post(
        f"{FILES}/{file_id}/download-grants", headers=bearer(body["token"]), json={}
    )
    assert made.status_code == 201, made.text
    grant = made.json()["url"].split("/api/v1", 1)[1]
    assert local_client.get(f"/api/v1{grant}").status_code == 200
    local_client.delete(f"{TOKENS}/{body['id']}", headers=alice.headers)
    gone = assert_problem(local_client.get(f"/api/v1{grant}"), 410)
    assert gone["reason"] == "revoked"


def test_a_disabled_accounts_tokens_stop_at_once(local_client, alice, session):
    body = make_token(local_client, alice, scopes=["read"])
    session.execute(
        update(User)
        .where(User.id == uuid.UUID(alice.id))
        .values(disabled_at=dt.datetime.now(dt.UTC))
    )
    session.commit()
    refused = assert_problem(local_client.get(ME, headers=bearer(body["token"])), 401)
    assert refused["detail"] == "This account is disabled; ask an administrator."
