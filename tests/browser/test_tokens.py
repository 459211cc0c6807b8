"""The API tokens view in a real browser: a token made with its scopes and expiry, its
secret shown once with Copy, listed without it, used by a script, then revoked."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import httpx
from playwright.sync_api import expect
from sqlalchemy import update

from app.models import ApiToken
from tests.browser.conftest import axe_violations, screenshot, sign_in
from tests.helpers import runtime

TOKEN = re.compile(r"^isk_[A-Za-z0-9_-]{43}$")


def test_a_token_is_made_shown_once_listed_used_and_revoked(page, site, account):
    sign_in(page, account)
    page.get_by_role("link", name="API tokens").click()
    view = page.get_by_role("region", name="API tokens")
    expect(view.get_by_role("heading", name="API tokens")).to_be_visible()
    expect(page).to_have_title("Instashare: API tokens")
    expect(page.locator("#tokens-empty")).to_be_visible()

    # Refused before it is sent: no name.
    view.get_by_role("button", name="Create token").click()
    expect(page.locator("#token-error")).to_have_text("Give the token a name.")
    expect(view.get_by_label("Name", exact=True)).to_be_focused()

    view.get_by_label("Name", exact=True).fill("backup script")
    view.get_by_role("checkbox", name=re.compile("^Upload")).check()
    view.get_by_label("Expires").select_option(label="90 days")
    view.get_by_role("button", name="Create token").click()

    secret = view.get_by_label("Your new token")
    expect(secret).to_have_value(TOKEN)
    token = secret.input_value()
    expect(page.locator("#token-once")).to_have_text("Copy it now: it is not shown again.")
    item = page.locator("#tokens-list li")
    expect(item).to_have_count(1)
    expect(item.locator(".token-name")).to_have_text("backup script")
    expect(item.locator(".badge.scope")).to_have_text(["read", "upload"])
    expect(item.locator(".share-facts")).to_contain_text("never used")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        screenshot(page, "tokens" if scheme == "light" else "tokens-dark")
        assert axe_violations(page) == [], scheme
    page.emulate_media(color_scheme="light")

    # A script uses it: what its scopes reach, and no more.
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"{site.url}/api/v1", headers=headers, timeout=30) as script:
        assert script.get("/users/me").json()["email"] == account.email
        assert script.get("/shares").status_code == 403

        # Shown once: leave the view and come back, and the secret is nowhere on the page.
        page.get_by_role("link", name="Files").click()
        page.get_by_role("link", name="API tokens").click()
        expect(page.locator("#token-new")).to_be_hidden()
        expect(item.locator(".share-facts")).to_contain_text("last used")
        assert token not in page.content()
        assert token not in page.evaluate(
            "() => [...document.querySelectorAll('input')].map(i => i.value).join(' ')"
        )

        item.get_by_role("button", name="Revoke the token backup script").click()
        expect(page.locator("#tokens-empty")).to_be_visible()
        assert script.get("/users/me").status_code == 401

    # A token past its expiry says so (refused since, listed until revoked).
    with httpx.Client(base_url=f"{site.url}/api/v1", headers=account.headers) as owner:
        made = owner.post("/users/me/tokens", json={"name": "old", "scopes": ["read"]}).json()
    with runtime(site.app).sessions() as session:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        where = ApiToken.id == uuid.UUID(made["id"])
        session.execute(update(ApiToken).where(where).values(expires_at=past))
        session.commit()
    page.reload()
    expect(item.locator(".share-facts")).to_contain_text("expired")
