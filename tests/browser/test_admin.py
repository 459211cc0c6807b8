"""The Admin view in a real browser: an administrator disables an account and sets its
quota, makes an invitation, and a new person signs up with its link."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import expect
from sqlalchemy import update

from app.models import User
from tests.browser.conftest import DESKTOP, axe_violations, screenshot, sign_in
from tests.helpers import Account, new_email, runtime


def _administrator(site) -> Account:
    with httpx.Client(base_url=site.url, timeout=30) as client:
        account = Account.register(client)
    with runtime(site.app).sessions() as session:
        session.execute(update(User).where(User.id == uuid.UUID(account.id)).values(role="admin"))
        session.commit()
    return account


def test_an_admin_disables_a_user_and_invites_someone_who_signs_up(page, browser, site):
    admin = _administrator(site)
    with httpx.Client(base_url=site.url, timeout=30) as client:
        person = Account.register(client)
    sign_in(page, admin)
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Administration")).to_be_visible()

    page.get_by_label("Search accounts").fill(person.email)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#admin-users-count")).to_have_text("1 account matches")
    row = page.locator(f'#admin-users tr[data-user-id="{person.id}"]')
    expect(row).to_have_count(1)
    page.get_by_label(f"Quota of {person.email} (empty: the server's)").fill("2")
    row.get_by_label(f"Unit of the quota of {person.email}").select_option("GB")
    page.get_by_role("button", name=f"Set the quota of {person.email}").click()
    row = page.locator(f'#admin-users tr[data-user-id="{person.id}"]')
    expect(row.locator("input.quota-amount")).to_have_value("2")
    page.get_by_role("button", name=f"Disable {person.email}").click()
    expect(page.get_by_role("button", name=f"Enable {person.email}")).to_be_visible()
    expect(row.locator(".badge")).to_have_text("disabled")
    with httpx.Client(base_url=site.url, timeout=30) as client:
        refused = client.get("/api/v1/users/me", headers=person.headers)
        assert refused.status_code == 401
        assert refused.json()["detail"] == "This account is disabled; ask an administrator."
        me = client.get("/api/v1/users/me", headers=admin.headers).json()
        assert me["role"] == "admin"

    invitee = new_email()
    page.get_by_label("Only for this e-mail (optional)").fill(invitee)
    page.get_by_role("button", name="Create invitation").click()
    link = page.locator("#invite-link")
    expect(page.locator("#invite-new")).to_be_visible()
    url = link.input_value()
    assert "/#/invite/" in url
    expect(page.locator("#invitations li").first).to_contain_text(invitee)
    expect(page.locator("#audit-log")).to_contain_text(f"disabled {person.email}")
    screenshot(page, "admin")
    assert axe_violations(page) == []

    newcomer = browser.new_context(base_url=site.url, viewport=DESKTOP)
    try:
        signup = newcomer.new_page()
        errors: list[str] = []
        signup.on("pageerror", lambda exc: errors.append(str(exc)))
        signup.goto(url)
        expect(signup.get_by_role("heading", name="Create an account")).to_be_visible()
        expect(signup.locator("#auth-invited")).to_be_visible()
        signup.get_by_label("E-mail", exact=True).fill(invitee)
        signup.get_by_label("Password", exact=True).fill("correct horse battery")
        screenshot(signup, "invite")
        signup.get_by_role("button", name="Sign up", exact=True).click()
        signup.locator("#app-view[data-loaded]").wait_for()
        expect(signup.get_by_role("link", name="Admin")).to_be_hidden()
        assert errors == []
    finally:
        newcomer.close()

    page.reload()
    page.locator("#admin-view").wait_for()
    expect(page.locator("#audit-log")).to_contain_text(
        f"registered with an invitation for {invitee}"
    )
    expect(page.locator("#invitations li").first).to_contain_text("used")
