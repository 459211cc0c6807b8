"""Single sign-on in a real browser: "Sign in with …", the provider's own page (a real
OpenID provider, tests/oidc_provider.py), and back in the app, signed in."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import delete

from app.models import User
from tests.browser.conftest import CHROMIUM, DESKTOP, screenshot
from tests.handlers.conftest import serve_live
from tests.helpers import make_settings, new_email
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET

# Everything but the app and the provider on loopback is refused: the provider's page asks
# for a stylesheet from a CDN, and a test reaches nothing beyond this machine.
NOT_LOOPBACK = re.compile(r"^https?://(?!127\.0\.0\.1[:/]|localhost[:/])")


@pytest.fixture(scope="module")
def sso_site(engine, database_url, redis_url, tmp_path_factory, openid_provider) -> Iterator[str]:
    """The app, with single sign-on at the provider, on a loopback port; its URL."""
    settings = make_settings(
        tmp_path_factory.mktemp("sso-site"),
        database_url,
        "local",
        oidc_issuer=openid_provider.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_label="Mock ID",
    )
    with serve_live(engine, settings) as server:
        yield server.url


@pytest.fixture(scope="module")
def sso_browser() -> Iterator:
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def sso_page(sso_browser, sso_site) -> Iterator:
    context = sso_browser.new_context(base_url=sso_site, viewport=DESKTOP)
    context.set_default_timeout(20_000)
    context.route(NOT_LOOPBACK, lambda route: route.abort())
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"the page threw: {errors}"


@pytest.fixture
def email(engine) -> Iterator[str]:
    """A new person's address; the account signing in makes is removed after the test."""
    address = new_email()
    yield address
    with engine.begin() as conn:
        conn.execute(delete(User).where(User.email == address))  # its identity goes with it


def test_sign_in_with_the_provider_and_land_in_the_app(sso_page, openid_provider, email):
    page = sso_page
    sub = f"sub-{uuid.uuid4().hex[:12]}"
    openid_provider.person(sub, email=email, email_verified=True, name="Ada")
    page.goto("/")
    button = page.get_by_role("link", name="Sign in with Mock ID")
    expect(button).to_be_visible()
    screenshot(page, "sso-login")

    button.click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(openid_provider.url)}/oauth2/authorize"))
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize").click()

    page.locator("#app-view[data-loaded]").wait_for()
    expect(page.locator("#whoami")).to_have_text(email)
    assert "/sso/" not in page.url  # the one-time code is off the address
    screenshot(page, "sso-signed-in")


def test_a_refusal_at_the_provider_ends_on_the_log_in_page_in_a_sentence(sso_page, openid_provider):
    page = sso_page
    page.goto("/")
    page.get_by_role("link", name="Sign in with Mock ID").click()
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("alert").first).to_have_text(
        "You did not let Mock ID sign you in here."
    )
    assert "/sso/" not in page.url
    screenshot(page, "sso-refused")
