"""The administrators' API (/api/v1/admin), sign-up modes and invitations, in a test's
transaction: who may call it, what each change does to the account, and the audit log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
import yaml
from sqlalchemy import select, update

from app.models import AuditEvent, Invitation, User
from app.services import tokens
from tests.factories import PASSWORD, UserFactory
from tests.helpers import (
    ROOT,
    Account,
    assert_problem,
    new_email,
    run_jobs,
    stored_keys,
    upload,
    upload_ready,
)

A = "/api/v1/admin"
REGISTER = "/api/v1/users/register"
LOGIN = "/api/v1/users/login"


@pytest.fixture
def make_admin(factories, local_settings):
    def make(email: str | None = None) -> Account:
        user = UserFactory(email=email or new_email(), role="admin")
        token, _ = tokens.issue(local_settings, user.id)
        return Account(str(user.id), user.email, token)

    return make


@pytest.fixture
def root(make_admin) -> Account:
    return make_admin()


def _actions(session, target: str) -> list[str]:
    session.expire_all()
    return list(
        session.scalars(
            select(AuditEvent.action).where(AuditEvent.target_id == target).order_by(AuditEvent.id)
        )
    )


def _operations() -> list[tuple[str, str]]:
    spec = yaml.safe_load((ROOT / "swagger" / "admin.yaml").read_text())
    return [
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "patch", "delete")
    ]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_only_an_administrator_reaches_any_admin_operation(local_client, alice, method, path):
    url = A + path.replace("{user_id}", alice.id).replace("{invitation_id}", str(uuid.uuid4()))
    body = {"role": "admin"} if method == "PATCH" else {} if method == "POST" else None
    refused = local_client.request(method, url, headers=alice.headers, json=body)
    assert assert_problem(refused, 403)["detail"] == "Only an administrator may do this."
    assert_problem(local_client.request(method, url, json=body), 401)


def test_me_says_the_role(local_client, alice, root):
    assert local_client.get("/api/v1/users/me", headers=alice.headers).json()["role"] == "user"
    assert local_client.get("/api/v1/users/me", headers=root.headers).json()["role"] == "admin"


def test_the_users_listing_searches_sorts_and_pages_with_a_total(local_client, root, make_account):
    tag = uuid.uuid4().hex[:8]
    made = [make_account(f"{tag}-{n}@Example.com") for n in range(5)]
    seen, cursor = [], None
    while True:
        params = {"q": tag.upper(), "sort": "email", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = local_client.get(f"{A}/users", headers=root.headers, params=params).json()
        assert page["total"] == 5
        seen += [item["email"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(a.email for a in made)
    item = local_client.get(f"{A}/users", headers=root.headers, params={"q": made[0].email}).json()
    [one] = item["items"]
    assert one["state"] == "active" and one["role"] == "user" and one["quota_bytes"] is None
    assert one["effective_quota_bytes"] == 100 * 1024**3
    assert {"file_count", "bytes_stored", "active_links", "last_seen_at"} <= set(one)
    bad = local_client.get(f"{A}/users", headers=root.headers, params={"cursor": "nope"})
    assert "cursor" in assert_problem(bad, 400)["detail"]


def test_an_own_quota_replaces_the_servers_and_null_gives_it_back(
    local_client, local_app, root, alice
):
    url = f"{A}/users/{alice.id}"
    changed = local_client.patch(url, headers=root.headers, json={"quota_bytes": 1000})
    assert changed.status_code == 200, changed.text
    assert changed.json()["effective_quota_bytes"] == 1000
    me = local_client.get("/api/v1/users/me", headers=alice.headers).json()
    assert me["usage"]["quota_bytes"] == 1000
    assert upload(local_client, alice, b"a" * 600, "a.bin").status_code == 202
    refused = assert_problem(upload(local_client, alice, b"b" * 401, "b.bin"), 413)
    assert refused["detail"] == "401 B is more than the 400 B you have left."
    # tus reserves the same way
    tus = local_client.post(
        "/api/v1/uploads",
        headers={
            **alice.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "401",
            "Upload-Metadata": "filename dC5iaW4=",
        },
    )
    assert_problem(tus, 413)
    local_client.patch(url, headers=root.headers, json={"quota_bytes": None})
    assert upload(local_client, alice, b"b" * 401, "b.bin").status_code == 202
    negative = local_client.patch(url, headers=root.headers, json={"quota_bytes": -1})
    assert_problem(negative, 400)


def test_an_administrator_makes_another_who_can_then_administer(local_client, root, alice, session):
    made = local_client.patch(f"{A}/users/{alice.id}", headers=root.headers, json={"role": "admin"})
    assert made.json()["role"] == "admin"
    assert local_client.get(f"{A}/totals", headers=alice.headers).status_code == 200
    assert _actions(session, alice.id) == ["user.role"]
    [event] = local_client.get(
        f"{A}/audit", headers=root.headers, params={"action": "user.role", "actor": root.id}
    ).json()["items"][:1]
    assert event["actor_email"] == root.email
    assert event["target"] == {"kind": "user", "id": alice.id, "label": alice.email}
    assert event["details"] == {"from": "user", "to": "admin"}
    assert event["address"]


@pytest.mark.parametrize(
    ("method", "body"),
    [("PATCH", {"role": "user"}), ("PATCH", {"disabled": True}), ("DELETE", None)],
)
def test_an_administrator_cannot_demote_disable_or_delete_themselves(
    local_client, root, method, body
):
    refused = local_client.request(method, f"{A}/users/{root.id}", headers=root.headers, json=body)
    assert "another administrator can" in assert_problem(refused, 403)["detail"]
    assert local_client.get(f"{A}/totals", headers=root.headers).status_code == 200


def test_disabling_ends_sessions_links_and_login_and_enabling_restores_links(
    local_client, local_app, root, session
):
    person = Account.register(local_client)
    file_id = upload_ready(local_client, local_app, person, b"hello there", "h.txt")
    link = local_client.post(
        f"/api/v1/files/{file_id}/shares", headers=person.headers, json={}
    ).json()["url"]
    link = link[link.index("/s/") :]
    grant = local_client.post(
        f"/api/v1/files/{file_id}/download-grants", headers=person.headers, json={}
    ).json()["url"]
    grant = grant[grant.index("/api/") :]
    assert local_client.get(f"{link}/content").status_code == 200

    off = local_client.patch(
        f"{A}/users/{person.id}", headers=root.headers, json={"disabled": True}
    )
    assert off.json()["state"] == "disabled"

    told = assert_problem(local_client.get("/api/v1/files", headers=person.headers), 401)
    assert told["detail"] == "This account is disabled; ask an administrator."
    assert_problem(local_client.get("/api/v1/users/me", headers=person.headers), 401)
    assert assert_problem(local_client.get(grant), 410)["reason"] == "revoked"
    assert assert_problem(local_client.get(f"{link}/content"), 410)["reason"] == "revoked"
    assert assert_problem(local_client.get(link), 410)["reason"] == "revoked"
    login = {"email": person.email, "password": PASSWORD}
    refused = assert_problem(local_client.post(LOGIN, json=login), 403)
    assert refused["detail"] == "This account is disabled; ask an administrator."
    # A wrong password is still just wrong: nothing said about the account.
    wrong = local_client.post(LOGIN, json={**login, "password": "x" * 12})
    assert_problem(wrong, 401)

    on = local_client.patch(
        f"{A}/users/{person.id}", headers=root.headers, json={"disabled": False}
    )
    assert on.json()["state"] == "active"
    assert local_client.get(f"{link}/content").status_code == 200
    assert_problem(local_client.get("/api/v1/users/me", headers=person.headers), 401)
    assert local_client.post(LOGIN, json=login).status_code == 200
    assert _actions(session, person.id) == ["user.disable", "user.enable"]


def test_deleting_an_account_takes_its_rows_at_once_and_objects_by_the_worker(
    local_client, local_app, root, session
):
    person = Account.register(local_client)
    upload_ready(local_client, local_app, person, b"bytes to remove", "r.txt")
    assert stored_keys(local_app, person.id)
    gone = local_client.delete(f"{A}/users/{person.id}", headers=root.headers)
    assert gone.status_code == 204
    assert session.get(User, uuid.UUID(person.id)) is None
    assert_problem(local_client.get(f"{A}/users/{person.id}", headers=root.headers), 404)
    run_jobs(local_app)  # the deletion job the delete sent
    assert stored_keys(local_app, person.id) == []
    assert _actions(session, person.id) == ["user.delete"]
    assert_problem(local_client.delete(f"{A}/users/{person.id}", headers=root.headers), 404)


def test_totals_count_the_servers_accounts_files_and_links(local_client, local_app, root):
    before = local_client.get(f"{A}/totals", headers=root.headers).json()
    person = Account.register(local_client)
    file_id = upload_ready(local_client, local_app, person, b"12345", "t.txt")
    local_client.post(f"/api/v1/files/{file_id}/shares", headers=person.headers, json={})
    after = local_client.get(f"{A}/totals", headers=root.headers).json()
    assert after["users"] == before["users"] + 1
    assert after["files"] == before["files"] + 1
    assert after["bytes_stored"] == before["bytes_stored"] + 5
    assert after["links"] == before["links"] + 1


# --- sign-up modes and invitations ---------------------------------------------------------


@pytest.fixture
def invite_only(make_app, local_settings):
    app = make_app(dataclasses.replace(local_settings, signup="invite"))
    with app.test_client() as client:
        yield client


def _invite(client, admin: Account, **body) -> dict:
    made = client.post(f"{A}/invitations", headers=admin.headers, json=body)
    assert made.status_code == 201, made.text
    return made.json()


def test_signup_says_the_mode(local_client, invite_only, make_app, local_settings):
    assert local_client.get("/api/v1/signup").json() == {"mode": "open"}
    assert invite_only.get("/api/v1/signup").json() == {"mode": "invite"}
    closed = make_app(dataclasses.replace(local_settings, signup="closed"))
    with closed.test_client() as client:
        assert client.get("/api/v1/signup").json() == {"mode": "closed"}
        body = {"email": new_email(), "password": PASSWORD}
        refused = assert_problem(client.post(REGISTER, json=body), 403)
        assert refused["detail"].startswith("Sign-up is closed on this server")


def test_invite_mode_takes_an_invitation_once(invite_only, root, session):
    body = {"email": new_email(), "password": PASSWORD}
    refused = assert_problem(invite_only.post(REGISTER, json=body), 403)
    assert "by invitation" in refused["detail"]
    made = _invite(invite_only, root)
    assert made["link"].endswith(f"/#/invite/{made['token']}")
    assert made["state"] == "pending" and made["email"] is None
    created = invite_only.post(REGISTER, json={**body, "invitation": made["token"]})
    assert created.status_code == 201, created.text
    again = {"email": new_email(), "password": PASSWORD, "invitation": made["token"]}
    assert "used already" in assert_problem(invite_only.post(REGISTER, json=again), 403)["detail"]
    forged = {**again, "invitation": "x" * 43}
    assert "not valid" in assert_problem(invite_only.post(REGISTER, json=forged), 403)["detail"]
    listed = invite_only.get(f"{A}/invitations", headers=root.headers).json()["items"]
    assert [i["state"] for i in listed if i["id"] == made["id"]] == ["used"]
    assert "token" not in listed[0]
    # Only its hash is kept.
    stored = session.get(Invitation, uuid.UUID(made["id"]))
    assert made["token"] not in (stored.token_hash, str(stored.email))
    assert _actions(session, made["id"]) == ["invitation.create", "invitation.use"]
    for event in invite_only.get(f"{A}/audit", headers=root.headers).json()["items"]:
        assert made["token"] not in str(event)


def test_an_invitation_for_an_address_takes_only_that_address(invite_only, root):
    email = new_email()
    made = _invite(invite_only, root, email=email.upper(), expires_in_days=2)
    other = {"email": new_email(), "password": PASSWORD, "invitation": made["token"]}
    assert "another e-mail" in assert_problem(invite_only.post(REGISTER, json=other), 403)["detail"]
    mine = {**other, "email": email}
    assert invite_only.post(REGISTER, json=mine).status_code == 201


def test_revoked_and_expired_invitations_say_so(invite_only, root, session):
    revoked = _invite(invite_only, root)
    url = f"{A}/invitations/{revoked['id']}"
    assert invite_only.delete(url, headers=root.headers).status_code == 204
    body = {"email": new_email(), "password": PASSWORD, "invitation": revoked["token"]}
    assert "revoked" in assert_problem(invite_only.post(REGISTER, json=body), 403)["detail"]
    expired = _invite(invite_only, root)
    session.execute(
        update(Invitation)
        .where(Invitation.id == uuid.UUID(expired["id"]))
        .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    )
    session.commit()
    body["invitation"] = expired["token"]
    assert "expired" in assert_problem(invite_only.post(REGISTER, json=body), 403)["detail"]
    assert _actions(session, revoked["id"]) == ["invitation.create", "invitation.revoke"]
    too_long = invite_only.post(
        f"{A}/invitations", headers=root.headers, json={"expires_in_days": 91}
    )
    assert_problem(too_long, 400)


def test_the_audit_log_pages_newest_first(local_client, root, make_account):
    people = [make_account() for _ in range(3)]
    for person in people:
        local_client.patch(f"{A}/users/{person.id}", headers=root.headers, json={"quota_bytes": 5})
    seen, cursor = [], None
    while len(seen) < 3:
        params = {"limit": 2, "actor": root.id, **({"cursor": cursor} if cursor else {})}
        page = local_client.get(f"{A}/audit", headers=root.headers, params=params).json()
        seen += [e["target"]["id"] for e in page["items"]]
        cursor = page["next_cursor"]
    assert seen[:3] == [p.id for p in reversed(people)]
