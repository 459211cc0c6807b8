"""Every screen a person can reach, in the system's light and dark schemes: axe-core finds
no serious or critical problem on any, and each is saved at phone and desktop width
(`.artifacts/screenshots/screen-*`) for a person to look at."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import DESKTOP, axe_violations, screenshot, sign_in
from tests.helpers import Account, wait_until

STRANGER_PASSWORD = "open sesame 42"


def _upload(client: httpx.Client, name: str, data: bytes, folder_id: str | None = None) -> str:
    form = {"folder_id": folder_id} if folder_id else {}
    made = client.post("/upload_files", files={"file": (name, data)}, data=form)
    assert made.status_code == 202, made.text
    return made.json()["id"]


def _links(site, account: Account) -> dict[str, str]:
    """Ready files in the root and in a folder, and the links a stranger opens."""
    with httpx.Client(base_url=f"{site.url}/api/v1", headers=account.headers, timeout=30) as client:
        folder = client.post("/folders", json={"name": "Holiday 2026"}).json()["id"]
        report = _upload(client, "report.pdf", b"%PDF-1.4 a report\n" * 400)
        _upload(client, "notes.txt", b"minutes of the meeting\n" * 50)
        for n in range(3):
            _upload(client, f"day {n + 1}.txt", f"what we did on day {n + 1}\n".encode(), folder)

        def all_ready() -> bool:
            listed = client.get("/files", params={"limit": 100}).json()["items"]
            return len(listed) == 5 and all(f["status"] == "ready" for f in listed)

        wait_until(all_ready, 90, 0.2, what="five files ready")

        def link(path: str, body: dict) -> dict:
            made = client.post(path, json={"expires_in_days": 7, **body})
            assert made.status_code == 201, made.text
            return made.json()

        gone = link(f"/files/{report}/shares", {})
        assert client.delete(f"/shares/{gone['id']}").status_code == 204
        return {
            "file": link(f"/files/{report}/shares", {})["url"],
            "locked": link(f"/files/{report}/shares", {"password": STRANGER_PASSWORD})["url"],
            "folder": link("/shares", {"items": [{"kind": "folder", "id": folder}]})["url"],
            "gone": gone["url"],
            "folder_id": folder,
        }


def _clean(page, name: str, scheme: str) -> None:
    assert axe_violations(page) == [], name
    screenshot(page, f"screen-{name}-{scheme}")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_screen_reads_well_in_both_schemes(browser, site, account, scheme):
    links = _links(site, account)
    context = browser.new_context(
        base_url=site.url, viewport=DESKTOP, color_scheme=scheme, accept_downloads=True
    )
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        page.goto("/")
        page.get_by_label("E-mail", exact=True).wait_for()
        _clean(page, "sign-in", scheme)

        page.get_by_role("button", name="Forgot password?").click()
        page.get_by_label("E-mail address", exact=True).wait_for()
        _clean(page, "forgot-password", scheme)
        page.goto("/#/reset/a-link-from-a-mail")
        expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
        _clean(page, "reset-password", scheme)

        sign_in(page, account)
        expect(page.locator("#files-body tr")).to_have_count(3)  # the folder and two files
        _clean(page, "files", scheme)

        page.get_by_role("button", name="Share report.pdf").click()
        expect(page.get_by_role("dialog")).to_be_visible()
        _clean(page, "share-dialog", scheme)
        page.keyboard.press("Escape")
        expect(page.get_by_role("dialog")).to_be_hidden()

        page.get_by_role("checkbox", name="Select notes.txt").check()
        page.get_by_role("button", name="Move to…").click()
        expect(page.get_by_role("dialog")).to_be_visible()
        _clean(page, "move-dialog", scheme)
        page.keyboard.press("Escape")

        page.goto(f"/#/folders/{links['folder_id']}")
        expect(page.locator("#files-body tr")).to_have_count(3)
        _clean(page, "folder", scheme)

        page.goto("/#/links")
        expect(page.get_by_role("textbox", name="Link to the folder Holiday 2026")).to_be_visible()
        _clean(page, "links", scheme)

        page.goto("/#/tokens")
        expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
        _clean(page, "tokens", scheme)

        for name in ("file", "locked", "folder", "gone"):
            page.goto(links[name])
            page.locator("main").wait_for()
            _clean(page, f"share-page-{name}", scheme)
        page.goto(links["locked"])
        page.get_by_label("Password", exact=True).fill(STRANGER_PASSWORD)
        with page.expect_download():
            page.get_by_role("button", name="Download").click()
        expect(page.get_by_text("Download started").first).to_be_visible()
        _clean(page, "share-page-unlocked", scheme)

        page.goto("/nope")
        expect(
            page.get_by_role("link", name=re.compile("Instashare|home", re.I)).first
        ).to_be_visible()
        _clean(page, "not-found", scheme)
    finally:
        context.close()
