"""Sharing in a real browser (issue 23, items 4-7): the share dialog (the original by
default, expiry presets, the new link shown once with its QR code), the Links view and the
Shared mark, and a password link's page before and after its password."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path

import httpx
from playwright.sync_api import expect
from sqlalchemy import update

from app.models import Share
from tests.browser.conftest import axe_violations, screenshot, sign_in
from tests.helpers import Account, runtime, wait_until

READY_TIMEOUT = 90_000


def row(page, name: str):
    return page.locator("#files-body tr").filter(
        has=page.locator(".file-name, .folder-name").get_by_text(name, exact=True)
    )


def api(site, account: Account) -> httpx.Client:
    return httpx.Client(base_url=f"{site.url}/api/v1", headers=account.headers, timeout=30)


def upload_ready(page, path: Path) -> None:
    page.set_input_files("#picker", str(path))
    expect(row(page, path.name).locator(".badge").first).to_have_text(
        "Ready", timeout=READY_TIMEOUT
    )


def both_schemes_clean(page, name: str) -> None:
    """axe-core finds nothing serious in light and in dark; screenshots of both."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        screenshot(page, name if scheme == "light" else f"{name}-dark")
        assert axe_violations(page) == [], scheme
    page.emulate_media(color_scheme="light")


def test_the_dialog_gives_the_original_with_expiry_presets_the_link_once_and_its_qr_code(
    page, browser, site, account, tmp_path
):
    path = tmp_path / "résumé 2026.pdf"
    path.write_bytes(b"%PDF-1.4 a short resume\n")
    sign_in(page, account)
    upload_ready(page, path)

    row(page, path.name).get_by_role("button", name=f"Share {path.name}").click()
    dialog = page.get_by_role("dialog", name="Share")
    # The original is what a stranger gets unless the owner picks the ZIP (one pick away).
    expect(dialog.get_by_label("Recipients get")).to_have_value("original")
    expiry = dialog.get_by_label("Expires", exact=True)
    assert expiry.locator("option").all_inner_texts() == [
        "1 hour", "1 day", "7 days", "30 days", "Custom…"
    ]  # fmt: skip
    expect(expiry).to_have_value("7d")
    expect(dialog.get_by_label("Expires after (days)")).to_be_hidden()
    expiry.select_option(label="1 hour")
    dialog.get_by_role("button", name="Create link").click()

    new_link = dialog.get_by_label("New link")
    expect(new_link).to_have_value(re.compile(r"/s/[A-Za-z0-9_-]+$"))
    url = new_link.input_value()
    # Shown once: above, with its facts, and not again in the list below.
    expect(dialog.locator("#share-list li")).to_have_count(0)
    expect(dialog.locator("#share-new-facts")).to_contain_text("Original · no password")
    inputs = "url => [...document.querySelectorAll('dialog input')].map(i => i.value)"
    assert page.evaluate(inputs, url).count(url) == 1
    with api(site, account) as client:
        [made] = client.get("/shares").json()["items"]
    left = dt.datetime.fromisoformat(made["expires_at"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=55) < left <= dt.timedelta(hours=1)
    assert made["serves"] == "original"

    # Its QR code, drawn by the server, loads under the app's CSP.
    qr = dialog.get_by_role("img", name="QR code of the new link")
    expect(qr).to_be_visible()
    wait_until(lambda: qr.evaluate("img => img.complete && img.naturalWidth > 0"), 10, what="QR")
    token = url.rsplit("/", 1)[1]
    assert qr.get_attribute("src") == f"/s/{token}/qr.svg"
    both_schemes_clean(page, "share-dialog-new-link")

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    dialog.get_by_role("button", name="Copy", exact=True).click()
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == url

    # A create that fails (here refused before it is sent) leaves no "Copied" and no earlier
    # link that looks like its result.
    expiry.select_option(label="Custom…")
    dialog.get_by_label("Expires after (days)").fill("100000")
    dialog.get_by_role("button", name="Create link").click()
    expect(dialog.locator("#share-error")).to_have_text("A link can last from 1 to 90 days.")
    expect(dialog.get_by_role("button", name="Copied")).to_have_count(0)
    expect(new_link).to_be_hidden()
    # The link made before is in the list now, once.
    expect(dialog.locator("#share-list li")).to_have_count(1)

    # A stranger's page: the file by its own name, and its original bytes.
    stranger = browser.new_context(viewport={"width": 390, "height": 844}, accept_downloads=True)
    try:
        visitor = stranger.new_page()
        visitor.goto(url)
        expect(visitor.get_by_role("heading", level=1)).to_have_text(path.name)
        with visitor.expect_download() as download:
            visitor.get_by_role("link", name="Download").click()
        assert download.value.suggested_filename == path.name
        assert Path(download.value.path()).read_bytes() == path.read_bytes()
    finally:
        stranger.close()


def test_the_links_view_lists_every_link_with_its_state_and_rows_carry_a_shared_mark(
    page, site, account, tmp_path
):
    sign_in(page, account)
    for name in ("kept.txt", "spent.txt", "plain.txt"):
        path = tmp_path / name
        path.write_text(f"{name}\n" * 10)
        upload_ready(page, path)
    with api(site, account) as client:
        ids = {f["name"]: f["id"] for f in client.get("/files").json()["items"]}
        trip = client.post("/folders", json={"name": "trip"}).json()["id"]

        def share(path: str, **body) -> dict:
            made = client.post(path, json=body)
            assert made.status_code == 201, made.text
            return made.json()

        kept = share(f"/files/{ids['kept.txt']}/shares", password="sesame")
        spent = share(f"/files/{ids['spent.txt']}/shares", max_downloads=1)
        assert httpx.get(f"{spent['url']}/content").status_code == 200
        gone = share(f"/files/{ids['plain.txt']}/shares", serves="zip")
        assert client.delete(f"/shares/{gone['id']}").status_code == 204
        old = share(f"/files/{ids['plain.txt']}/shares")
        folder = share("/shares", items=[{"kind": "folder", "id": trip}])
    with runtime(site.app).sessions() as session:
        session.execute(
            update(Share)
            .where(Share.id == uuid.UUID(old["id"]))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )
        session.commit()

    page.reload()
    page.locator("#app-view[data-loaded]").wait_for()
    for name, marked in (("kept.txt", 1), ("trip", 1), ("spent.txt", 0), ("plain.txt", 0)):
        expect(row(page, name).locator(".badge.shared")).to_have_count(marked)

    page.get_by_role("navigation", name="Views").get_by_role("link", name="Links").click()
    view = page.locator("#links-view")
    expect(view.get_by_role("heading", name="Your links")).to_be_visible()
    items = view.locator("#links-list > li")
    expect(items).to_have_count(5)
    expect(view.locator("#links-count")).to_have_text(
        "5 links: 2 active, 1 expired, 1 used up, 1 revoked"
    )

    def item(link: dict):
        return view.locator(f'li[data-share-id="{link["id"]}"]')

    expect(item(kept).locator(".badge")).to_have_text("Active")
    expect(item(kept)).to_contain_text("kept.txt")
    expect(item(kept)).to_contain_text("password · 0 downloads")
    expect(item(spent).locator(".badge")).to_have_text("Used up")
    expect(item(spent)).to_contain_text("1 of 1 download")
    expect(item(gone).locator(".badge")).to_have_text("Revoked")
    expect(item(old).locator(".badge")).to_have_text("Expired")
    expect(item(folder)).to_contain_text("the folder trip")
    expect(item(spent).get_by_role("button", name=re.compile("^Revoke"))).to_have_count(0)
    both_schemes_clean(page, "links")

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    item(folder).get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == folder["url"]
    item(kept).get_by_role("button", name="Revoke the link to kept.txt").click()
    expect(item(kept).locator(".badge")).to_have_text("Revoked")
    expect(view.locator("#links-count")).to_have_text(
        "5 links: 1 active, 1 expired, 1 used up, 2 revoked"
    )

    # Back on the files (the browser's Back works too): kept.txt is no longer shared.
    page.go_back()
    expect(page.locator("#links-view")).to_be_hidden()
    expect(row(page, "kept.txt").locator(".badge.shared")).to_have_count(0)
    expect(row(page, "trip").locator(".badge.shared")).to_have_count(1)


def test_a_password_page_says_only_what_is_safe_then_shows_the_card_and_download_started(
    page, browser, site, account, tmp_path
):
    path = tmp_path / "layoffs 2027.txt"
    path.write_text("the list\n" * 200)
    sign_in(page, account)
    upload_ready(page, path)
    with api(site, account) as client:
        [file] = client.get("/files").json()["items"]
        made = client.post(
            f"/files/{file['id']}/shares",
            json={"password": "open sesame", "max_downloads": 2, "serves": "original"},
        )
        assert made.status_code == 201, made.text
        url = made.json()["url"]

    stranger = browser.new_context(viewport={"width": 390, "height": 844}, accept_downloads=True)
    try:
        visitor = stranger.new_page()
        visitor.goto(url)
        heading = visitor.get_by_role("heading", level=1)
        expect(heading).to_have_text("A file shared with a password")
        card = visitor.locator("main")
        expect(card).to_contain_text("Downloads left")
        expect(card).to_contain_text("Link expires")
        # Nothing of what it holds before the password: no name, no size.
        assert "layoffs" not in visitor.content()
        expect(card.get_by_text("Size")).to_have_count(0)
        both_schemes_clean(visitor, "share-page-password")

        visitor.get_by_label("Password", exact=True).fill("open sesame")
        with visitor.expect_download() as download:
            visitor.get_by_role("button", name="Download").click()
        assert Path(download.value.path()).read_bytes() == path.read_bytes()
        assert download.value.suggested_filename == "layoffs 2027.txt"
        # After the right password: the file's card, and the download said to have started.
        expect(visitor.get_by_role("status")).to_have_text("Download started.")
        expect(heading).to_have_text("layoffs 2027.txt")
        facts = visitor.locator(".facts")
        expect(facts).to_contain_text("Size")
        expect(facts).to_contain_text("Link expires")
        expect(facts.locator("div").filter(has_text="Downloads left")).to_contain_text("1")
        both_schemes_clean(visitor, "share-page-password-started")
    finally:
        stranger.close()
    with api(site, account) as client:
        assert client.get("/shares").json()["items"][0]["downloads"] == 1
