"""Password recovery in a real browser: the mail is read from the SMTP server the worker
sent it to, and its link is opened in a new tab, as from a mail program."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from app.services import password_resets
from tests.browser.conftest import axe_violations, screenshot
from tests.helpers import Account, new_email
from tests.mailbox import reset_link

NEW = "a brand new passphrase"


def _ask_for_a_link(page, email: str, shot: str = "") -> None:
    page.goto("/")
    if shot:
        screenshot(page, shot)
    page.get_by_role("button", name="Forgot password?").click()
    expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    page.get_by_label("E-mail address", exact=True).fill(email)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("status").filter(has_text="If an account exists")).to_have_text(
        f"If an account exists for {email}, we have sent a link to it to set a new password. "
        "The link works for 30 minutes. Check your mail, and its spam folder."
    )


def _open(context, link: str):
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(link)
    return tab, errors


def test_forgot_password_mail_link_new_password_signed_in(page, context, site, account: Account):
    _ask_for_a_link(page, account.email, shot="login-forgot")
    screenshot(page, "forgot-password")
    assert axe_violations(page) == []

    link, token = reset_link(site.mailbox.wait_for(account.email, 60))
    assert link == f"{site.url}/#/reset/{token}"
    tab, errors = _open(context, link)
    expect(tab.get_by_role("heading", name="Choose a new password")).to_be_visible()
    tab.get_by_label("New password", exact=True).fill("short")
    tab.get_by_role("button", name="Set the password").click()
    expect(tab.get_by_role("alert").first).to_have_text(
        "Choose a password of at least 10 characters."
    )
    screenshot(tab, "reset-password")
    assert axe_violations(tab) == []

    tab.get_by_label("New password", exact=True).fill(NEW)
    tab.get_by_role("button", name="Set the password").click()
    tab.locator("#app-view[data-loaded]").wait_for()
    expect(tab.locator("#whoami")).to_have_text(account.email)
    assert "reset" not in tab.url, "the spent link leaves the address bar"
    assert errors == []

    with httpx.Client(base_url=f"{site.url}/api/v1", timeout=30) as api:
        assert api.get("/users/me", headers=account.headers).status_code == 401
        old = {"email": account.email, "password": account.password}
        assert api.post("/users/login", json=old).status_code == 401
        assert api.post("/users/login", json={**old, "password": NEW}).status_code == 200

    # The same link again: it says why it does not work, and how to get another.
    again, errors = _open(context, link)
    again.get_by_label("New password", exact=True).fill(NEW + " again")
    again.get_by_role("button", name="Set the password").click()
    expect(again.get_by_role("alert").first).to_have_text(password_resets.SPENT)
    again.get_by_role("button", name="Ask for a new link").click()
    expect(again.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    assert "reset" not in again.url
    assert errors == []


def test_an_unknown_address_is_told_the_same_and_gets_no_mail(page, site, account: Account):
    unknown = new_email()
    _ask_for_a_link(page, unknown)
    _ask_for_a_link(page, account.email)  # its mail is sent after the unknown one's would be
    site.mailbox.wait_for(account.email, 60)
    assert site.mailbox.to(unknown) == []


def test_leaving_the_reset_screen_by_the_address_shows_the_log_in_form(page):
    page.goto("/#/reset/a-link-from-a-mail")
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.evaluate("location.hash = '#/'")  # as the back button to the app's own address
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_hidden()
