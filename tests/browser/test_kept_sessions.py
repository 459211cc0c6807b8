"""'Keep me signed in' and 'Your sessions' in a real browser (Chromium on http://127.0.0.1)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, axe_violations, requests_to, screenshot, sign_in


def _loaded(page, email: str) -> None:
    page.locator("#app-view[data-loaded]").wait_for()
    expect(page.locator("#whoami")).to_have_text(email)


def test_a_kept_session_survives_tabs_and_reloads_until_it_is_ended_elsewhere(
    browser, context, site, account
):
    first = context.new_page()
    first.goto("/")
    first.get_by_label("E-mail", exact=True).fill(account.email)
    first.get_by_label("Password", exact=True).fill(account.password)
    first.get_by_label("Keep me signed in").check()
    first.get_by_role("button", name="Log in", exact=True).click()
    _loaded(first, account.email)

    # Chromium keeps a Secure cookie from http://127.0.0.1 (a potentially trustworthy
    # origin), with exactly the attributes it was set with; no script can read it.
    (cookie,) = context.cookies()
    assert cookie["name"] == "instashare_refresh"
    assert cookie["path"] == "/api/v1/users/session"
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    assert "instashare_refresh" not in first.evaluate("document.cookie")
    # The access token is in the script's memory only: no storage holds it.
    assert first.evaluate("sessionStorage.getItem('instashare.token')") is None
    assert first.evaluate("Object.keys(localStorage)") == ["instashare.kept"]

    second = context.new_page()  # a new tab: signed in, without a word
    refreshes = requests_to(second, "/users/session/refresh", "POST")
    second.goto("/")
    _loaded(second, account.email)
    assert len(refreshes) == 1
    first.reload()  # and a reload
    _loaded(first, account.email)

    # Elsewhere (another browser, signed in as usual): "Your sessions" ends the kept one.
    elsewhere = browser.new_context(base_url=site.url, viewport=DESKTOP)
    try:
        other = elsewhere.new_page()
        sign_in(other, account)
        other.get_by_role("link", name="Sessions").click()
        kept = other.locator("#sessions-list li").filter(has_text="Kept signed in")
        expect(kept).to_have_count(1)
        expect(other.locator("#sessions-list li").filter(has_text="This browser")).to_have_count(1)
        screenshot(other, "sessions")
        assert axe_violations(other) == []
        kept.get_by_role("button", name="End the session of Chrome on Linux").click()
        expect(kept).to_have_count(0)
    finally:
        elsewhere.close()

    # The first tab's next request is refused, and its refresh too: it asks to log in.
    first.get_by_role("link", name="Links").click()
    expect(first.get_by_role("heading", name="Log in")).to_be_visible()
    expect(first.locator("#auth-error")).to_have_text("Your session has ended. Log in again.")
    second.reload()
    expect(second.get_by_role("heading", name="Log in")).to_be_visible()


def test_logging_out_of_a_kept_session_clears_its_cookie(context, account):
    page = context.new_page()
    page.goto("/")
    page.get_by_label("E-mail", exact=True).fill(account.email)
    page.get_by_label("Password", exact=True).fill(account.password)
    page.get_by_label("Keep me signed in").check()
    page.get_by_role("button", name="Log in", exact=True).click()
    _loaded(page, account.email)
    assert len(context.cookies()) == 1
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert context.cookies() == []
    page.reload()  # nothing left to sign in with
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_without_keep_me_signed_in_a_new_tab_asks_to_log_in(context, account):
    page = context.new_page()
    sign_in(page, account)
    assert context.cookies() == []
    page.reload()  # the tab keeps its token, as before
    _loaded(page, account.email)
    other = context.new_page()
    refreshes = requests_to(other, "/users/session/refresh")
    other.goto("/")
    expect(other.get_by_role("heading", name="Log in")).to_be_visible()
    assert refreshes == []  # nothing asked of the server for a browser that keeps nothing


def test_a_kept_session_refreshes_its_token_a_minute_before_it_expires(context, site, account):
    page = context.new_page()
    page.clock.install()  # the page's timers on a clock the test moves
    page.goto("/")
    page.get_by_label("E-mail", exact=True).fill(account.email)
    page.get_by_label("Password", exact=True).fill(account.password)
    page.get_by_label("Keep me signed in").check()
    page.get_by_role("button", name="Log in", exact=True).click()
    _loaded(page, account.email)
    refreshes = requests_to(page, "/users/session/refresh", "POST")
    page.clock.fast_forward(site.settings.token_ttl_seconds * 1000 - 120_000)
    page.wait_for_timeout(300)
    assert refreshes == []  # not yet
    with page.expect_response(lambda r: r.url.endswith("/users/session/refresh")) as answer:
        page.clock.fast_forward(90_000)  # 30 s before it expires
    assert answer.value.status == 200
    page.get_by_role("link", name="Links").click()  # the new token works
    expect(page.get_by_role("heading", name="Your links")).to_be_visible()
    expect(page.get_by_role("heading", name="Log in")).to_be_hidden()
