"""Single sign-on against a real OpenID provider (tests/oidc_provider.py) over HTTP: the
code flow from the app's redirect to the provider's form, back through the callback, to the
web app's one-time code and the token it trades it for."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, update

from app.models import User, UserIdentity
from app.services import sso
from tests import oidc_provider
from tests.helpers import PASSWORD, assert_problem, make_settings, new_email

START = "/api/v1/users/sso"
EXCHANGE = "/api/v1/users/sso/exchange"
WEBAPP_CODE = "http://testserver/#/sso/"


def _sso_settings(tmp_path_factory, database_url, openid_provider, **overrides):
    return make_settings(
        tmp_path_factory.mktemp("sso"),
        database_url,
        "local",
        oidc_issuer=openid_provider.url,
        oidc_client_id=oidc_provider.CLIENT_ID,
        oidc_client_secret=oidc_provider.CLIENT_SECRET,
        **{"oidc_label": "Mock ID", **overrides},
    )


@pytest.fixture(scope="module")
def sso_settings(tmp_path_factory, database_url, redis_url, openid_provider):
    return _sso_settings(tmp_path_factory, database_url, openid_provider)


@pytest.fixture
def sso_client(make_app, sso_settings):
    with make_app(sso_settings).test_client() as client:
        yield client


def person(openid_provider, email: str | None = None, *, verified: bool = True, **claims) -> str:
    """A person at the provider (a new subject); their subject."""
    sub = f"sub-{uuid.uuid4().hex[:12]}"
    email = email or new_email()
    openid_provider.person(sub, email=email, email_verified=verified, name="Ada", **claims)
    return sub


def begin(client) -> str:
    """Click "Sign in with …": where the app sends the browser (the provider's form)."""
    response = client.get(START, follow_redirects=False)
    assert response.status_code == 302, response.text
    assert response.headers["cache-control"] == "no-store"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/api/v1/users/sso" in cookie
    return response.headers["location"]


def come_back(client, back: str) -> str:
    """Follow the provider's redirect to the callback: the web app's one-time code."""
    response = client.get(back, follow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(WEBAPP_CODE), location
    return location.removeprefix(WEBAPP_CODE)


def exchange(client, code: str):
    return client.post(EXCHANGE, json={"code": code})


def sign_in(client, openid_provider, sub: str):
    """The whole flow as `sub`; the exchange's answer."""
    return exchange(client, come_back(client, openid_provider.authorize(begin(client), sub)))


def profile(client, token: str) -> dict:
    response = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_provider_says_whether_sso_is_on_and_its_name(local_client, sso_client):
    assert local_client.get("/api/v1/users/sso/provider").json()["enabled"] is False
    body = sso_client.get("/api/v1/users/sso/provider").json()
    assert body == {"enabled": True, "label": "Mock ID"}
    assert "Single sign-on is not set up" in assert_problem(local_client.get(START), 404)["detail"]


def test_the_redirect_asks_for_a_code_with_pkce_state_and_nonce(sso_client, openid_provider):
    query = oidc_provider.query_of(begin(sso_client))
    assert query["response_type"] == "code"
    assert query["client_id"] == oidc_provider.CLIENT_ID
    assert query["redirect_uri"] == "http://testserver/api/v1/users/sso/callback"
    assert query["scope"] == "openid email profile"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256
    assert query["state"] and query["nonce"] and query["state"] != query["nonce"]


def test_a_new_person_gets_an_account_and_a_session(sso_client, openid_provider, session):
    email = new_email()
    sub = person(openid_provider, email)
    response = sign_in(sso_client, openid_provider, sub)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    me = profile(sso_client, body["access_token"])
    assert me["email"] == email
    identity = session.get(UserIdentity, (openid_provider.url, sub))
    assert identity is not None and str(identity.user_id) == me["id"]
    # No password signs in to it.
    login = sso_client.post("/api/v1/users/login", json={"email": email, "password": "!"})
    assert_problem(login, 401)


def test_an_existing_account_is_matched_by_its_verified_address(
    sso_client, openid_provider, make_account, session
):
    account = make_account()
    sub = person(openid_provider, account.email.upper())  # the provider's spelling may differ
    me = profile(sso_client, sign_in(sso_client, openid_provider, sub).json()["access_token"])
    assert me["id"] == account.id
    assert session.get(UserIdentity, (openid_provider.url, sub)).user_id == uuid.UUID(account.id)
    # Its password still works.
    login = sso_client.post(
        "/api/v1/users/login", json={"email": account.email, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text


def test_a_returning_person_is_matched_by_subject_when_their_address_changed(
    sso_client, openid_provider, session
):
    sub = person(openid_provider, "first-" + new_email())
    first = profile(sso_client, sign_in(sso_client, openid_provider, sub).json()["access_token"])
    openid_provider.person(sub, email="renamed-" + new_email(), email_verified=True)
    again = profile(sso_client, sign_in(sso_client, openid_provider, sub).json()["access_token"])
    assert again["id"] == first["id"]
    assert again["email"] == first["email"]  # the account keeps its own address
    assert session.scalar(select(User).where(User.id == uuid.UUID(first["id"]))) is not None


def test_an_unverified_address_is_refused(sso_client, openid_provider, session):
    email = new_email()
    unverified = person(openid_provider, email, verified=False)
    body = assert_problem(sign_in(sso_client, openid_provider, unverified), 403)
    assert body["detail"] == (
        "Your e-mail address at Mock ID is not verified, so it cannot sign you in here."
    )
    assert session.scalar(select(User).where(User.email == email)) is None


def test_only_the_allowed_domains_sign_in(
    make_app, tmp_path_factory, database_url, redis_url, openid_provider
):
    settings = _sso_settings(
        tmp_path_factory, database_url, openid_provider, oidc_allowed_domains="Example.ORG"
    )
    with make_app(settings).test_client() as client:
        other = person(openid_provider, new_email())  # @example.com
        body = assert_problem(sign_in(client, openid_provider, other), 403)
        assert body["detail"] == "Addresses at example.com cannot sign in to this server."
        allowed = person(openid_provider, f"ada-{uuid.uuid4().hex[:8]}@example.org")
        assert sign_in(client, openid_provider, allowed).status_code == 200


@pytest.mark.parametrize("mode", ["invite", "closed"])
def test_signing_in_by_invitation_only_lets_in_existing_accounts(
    make_app, tmp_path_factory, database_url, redis_url, openid_provider, make_account, mode
):
    settings = _sso_settings(tmp_path_factory, database_url, openid_provider, signup=mode)
    with make_app(settings).test_client() as client:
        email = new_email()
        body = assert_problem(sign_in(client, openid_provider, person(openid_provider, email)), 403)
        assert body["detail"] == (
            f"There is no account for {email} here, and this server takes new people by "
            "invitation only: ask an administrator for one."
        )
        account = make_account()
        existing = person(openid_provider, account.email)
        assert sign_in(client, openid_provider, existing).status_code == 200


def test_a_disabled_account_cannot_sign_in_with_sso(
    sso_client, openid_provider, make_account, session
):
    account = make_account()
    session.execute(update(User).where(User.id == account.id).values(disabled_at=func.now()))
    session.commit()
    body = assert_problem(
        sign_in(sso_client, openid_provider, person(openid_provider, account.email)), 403
    )
    assert body["detail"] == "This account is disabled; ask an administrator."


def test_administrators_are_named_by_a_claim_or_an_address(
    tmp_path_factory, database_url, redis_url, openid_provider
):
    settings = _sso_settings(
        tmp_path_factory,
        database_url,
        openid_provider,
        oidc_admin_claim="groups",
        oidc_admin_values="instashare-admins,ops",
        oidc_admin_emails="Boss@Example.com",
    )
    assert sso.names_admin(settings, {"email": "boss@example.com"})
    assert sso.names_admin(settings, {"email": "a@b.co", "groups": ["staff", "ops"]})
    assert sso.names_admin(settings, {"email": "a@b.co", "groups": "instashare-admins"})
    assert not sso.names_admin(settings, {"email": "a@b.co", "groups": ["staff"]})
    assert not sso.names_admin(settings, {"email": "a@b.co"})


def test_an_administrator_by_claim_signs_in(
    make_app, tmp_path_factory, database_url, redis_url, openid_provider
):
    settings = _sso_settings(
        tmp_path_factory,
        database_url,
        openid_provider,
        oidc_admin_claim="groups",
        oidc_admin_values="instashare-admins",
    )
    with make_app(settings).test_client() as client:
        sub = person(openid_provider, groups=["instashare-admins"])
        answer = sign_in(client, openid_provider, sub)
        assert answer.status_code == 200
        assert profile(client, answer.json()["access_token"])["role"] == "admin"
        plain = sign_in(client, openid_provider, person(openid_provider, groups=["staff"]))
        assert profile(client, plain.json()["access_token"])["role"] == "user"


def test_a_sign_in_is_a_session_and_keep_me_signed_in_holds_through_the_provider(
    sso_client, openid_provider
):
    sub = person(openid_provider)
    plain = sign_in(sso_client, openid_provider, sub)
    assert "set-cookie" not in plain.headers  # not kept: no refresh cookie
    code = come_back(sso_client, openid_provider.authorize(begin(sso_client), sub))
    kept = sso_client.post(EXCHANGE, json={"code": code, "remember": True})
    assert kept.status_code == 200, kept.text
    cookie = kept.headers["set-cookie"]
    assert cookie.startswith("instashare_refresh=") and "HttpOnly" in cookie
    token = kept.json()["access_token"]
    listed = sso_client.get(
        "/api/v1/users/me/sessions", headers={"Authorization": f"Bearer {token}"}
    ).json()["items"]
    assert {item["kind"] for item in listed} == {"plain", "kept"}
    # Logging out ends the SSO session like any other: its token is refused from then on.
    headers = {"Authorization": f"Bearer {token}"}
    assert sso_client.post("/api/v1/users/logout", headers=headers).status_code == 204
    assert_problem(sso_client.get("/api/v1/users/me", headers=headers), 401)


def test_a_refusal_at_the_provider_ends_in_a_sentence(sso_client, openid_provider):
    code = come_back(sso_client, openid_provider.deny(begin(sso_client)))
    body = assert_problem(exchange(sso_client, code), 401)
    assert body["detail"] == "You did not let Mock ID sign you in here."


def test_a_callback_replayed_is_refused(sso_client, openid_provider):
    back = openid_provider.authorize(begin(sso_client), person(openid_provider))
    assert exchange(sso_client, come_back(sso_client, back)).status_code == 200
    again = come_back(sso_client, back)
    body = assert_problem(exchange(sso_client, again), 400)
    assert body["detail"].startswith("This sign-in has expired, was used already")


def test_a_one_time_code_is_good_once(sso_client, openid_provider):
    code = come_back(
        sso_client, openid_provider.authorize(begin(sso_client), person(openid_provider))
    )
    assert exchange(sso_client, code).status_code == 200
    body = assert_problem(exchange(sso_client, code), 400)
    assert body["detail"] == "This sign-in has expired or was used already; sign in again."


def test_a_callback_in_another_browser_is_refused(make_app, sso_settings, openid_provider):
    # Someone's callback URL (their code, their state) opened in another browser: the
    # state is not its cookie's, so nobody is signed in to the first person's account.
    app = make_app(sso_settings)
    with app.test_client() as theirs, app.test_client() as victims:
        back = openid_provider.authorize(begin(theirs), person(openid_provider))
        body = assert_problem(exchange(victims, come_back(victims, back)), 400)
        assert "begun in another browser" in body["detail"]


def test_a_code_from_another_sign_in_fails_its_nonce(sso_client, openid_provider):
    sub = person(openid_provider)
    first = openid_provider.authorize(begin(sso_client), sub)
    second = oidc_provider.query_of(openid_provider.authorize(begin(sso_client), sub))
    # The first sign-in's code with the second's state: the ID token the provider gives
    # for it carries the first sign-in's nonce.
    code = oidc_provider.query_of(first)["code"]
    back = f"/api/v1/users/sso/callback?code={code}&state={second['state']}"
    body = assert_problem(exchange(sso_client, come_back(sso_client, back)), 401)
    assert body["detail"] == "The sign-in at Mock ID could not be verified; sign in again."


def test_a_provider_code_used_twice_is_refused(sso_client, openid_provider):
    sub = person(openid_provider)
    first = openid_provider.authorize(begin(sso_client), sub)
    assert exchange(sso_client, come_back(sso_client, first)).status_code == 200
    state = oidc_provider.query_of(begin(sso_client))["state"]
    code = oidc_provider.query_of(first)["code"]
    back = f"/api/v1/users/sso/callback?code={code}&state={state}"
    body = assert_problem(exchange(sso_client, come_back(sso_client, back)), 401)
    assert body["detail"] == "The sign-in at Mock ID could not be verified; sign in again."


def test_a_provider_that_does_not_answer_is_said_plainly(
    make_app, tmp_path_factory, database_url, redis_url
):
    from tests.helpers import free_port

    down = oidc_provider.Provider(f"http://127.0.0.1:{free_port()}")
    settings = _sso_settings(tmp_path_factory, database_url, down, oidc_label="Nobody")
    with make_app(settings).test_client() as client:
        response = client.get(START, follow_redirects=False)
        assert response.status_code == 303, response.text
        code = response.headers["location"].removeprefix(WEBAPP_CODE)
        body = assert_problem(exchange(client, code), 502)
        assert body["detail"] == "Nobody did not answer as expected; try again in a moment."


def test_a_callback_naming_another_issuer_is_refused(sso_client, openid_provider):
    back = openid_provider.authorize(begin(sso_client), person(openid_provider))
    mixed_up = f"{back}&iss=https://attacker.example"
    body = assert_problem(exchange(sso_client, come_back(sso_client, mixed_up)), 401)
    assert body["detail"] == "The sign-in at Mock ID could not be verified; sign in again."


def test_an_address_no_account_could_have_is_refused(sso_client, openid_provider, session):
    odd = f"two words-{uuid.uuid4().hex[:6]}@example.com"
    body = assert_problem(sign_in(sso_client, openid_provider, person(openid_provider, odd)), 403)
    assert body["detail"] == f"{odd!r} cannot be the address of an account here."
    assert session.scalar(select(User).where(User.email == odd)) is None
