"""The web app in a real browser (Chromium), against a real server and worker."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import uuid
import zipfile
from pathlib import Path

import httpx
from playwright.sync_api import expect

from app.models import FileStatus, User
from tests.browser.conftest import (
    axe_violations,
    drop_files,
    no_dialogs,
    screenshot,
    sign_in,
    write_file,
)
from tests.factories import FileFactory
from tests.helpers import Account, new_email, runtime, wait_until

MIB = 1024 * 1024
READY_TIMEOUT = 90_000  # ms: a 50 MiB file compressed by a worker on a busy machine


def row(page, name: str):
    """The file list's row for the file called exactly `name`."""
    return page.locator("#files-body tr").filter(
        has=page.locator(".file-name").get_by_text(name, exact=True)
    )


def expect_ready(page, name: str) -> None:
    expect(row(page, name).locator(".badge")).to_have_text("Ready", timeout=READY_TIMEOUT)


def api(site, account: Account) -> httpx.Client:
    return httpx.Client(base_url=f"{site.url}/api/v1", headers=account.headers, timeout=30)


def test_sign_up_log_out_and_log_in(page):
    email, password = new_email(), "correct horse battery"
    page.goto("/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    screenshot(page, "login")
    assert axe_violations(page) == []

    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_role("button", name="Sign up", exact=True).click()
    expect(page.get_by_role("alert").first).to_have_text(
        "Choose a password of at least 10 characters."
    )
    screenshot(page, "signup")
    assert axe_violations(page) == []

    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign up", exact=True).click()
    page.locator("#app-view[data-loaded]").wait_for()
    expect(page.locator("#whoami")).to_have_text(email)
    expect(page.locator("#files-empty")).to_have_text("No files yet. Drop some above.")
    # The token lives in this tab's sessionStorage only: no cookie, nothing in localStorage.
    token = page.evaluate("sessionStorage.getItem('instashare.token')")
    assert token and token not in page.evaluate("JSON.stringify(localStorage)")
    assert page.context.cookies() == []

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('instashare.token')") is None
    ended = httpx.get(f"{page.url}api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert ended.status_code == 401, "logging out ends the session at the server"

    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#auth-error")).to_have_text(
        "That e-mail address and password do not match an account."
    )
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#whoami")).to_have_text(email)


def test_three_dropped_files_become_ready_without_a_reload_then_rename_and_download(
    page, site, account, tmp_path
):
    big = write_file(tmp_path / "big.bin", 50 * MIB, seed=1)
    notes = tmp_path / "notes.txt"
    notes.write_text("minutes of the meeting\n" * 1000)
    photo = write_file(tmp_path / "photo.raw", 300_000, seed=2)
    sign_in(page, account)
    page.evaluate("window.sameDocument = true")

    drop_files(page, [big, notes, photo])
    expect(page.locator("#uploads .upload")).to_have_count(3)
    for path in (big, notes, photo):
        expect_ready(page, path.name)
    assert page.evaluate("window.sameDocument") is True, "the page was reloaded"
    big_row = row(page, "big.bin")
    expect(big_row.locator("td").nth(2)).to_have_text("50 MiB")
    expect(big_row.locator("td").nth(3)).not_to_have_text("—")
    expect(page.locator("#usage-text")).to_contain_text("3 files")
    expect(page.locator("#files-count")).to_have_text("Showing 3 of 3 files")
    screenshot(page, "files")
    assert axe_violations(page) == []

    # Rename in place.
    row(page, "notes.txt").get_by_role("button", name="Rename notes.txt").click()
    field = page.get_by_label("New name for notes.txt")
    expect(field).to_be_focused()
    field.fill("minutes.txt")
    field.press("Enter")
    expect(row(page, "minutes.txt")).to_have_count(1)
    with api(site, account) as client:
        names = {f["name"] for f in client.get("/files").json()["items"]}
    assert names == {"big.bin", "minutes.txt", "photo.raw"}

    # A clash is explained, and changes nothing.
    photo_id = row(page, "photo.raw").get_attribute("data-file-id")
    photo_row = page.locator(f'#files-body tr[data-file-id="{photo_id}"]')
    photo_row.get_by_role("button", name="Rename photo.raw").click()
    field = page.get_by_label("New name for photo.raw")
    field.fill("minutes.txt")
    field.press("Enter")
    expect(photo_row.get_by_role("alert")).to_have_text(
        "This folder already has a file or folder named “minutes.txt”. Choose another name."
    )
    screenshot(page, "rename-clash")
    field.press("Escape")
    expect(row(page, "photo.raw")).to_have_count(1)
    expect(photo_row.get_by_role("button", name="Rename photo.raw")).to_be_focused()

    # So is a change made elsewhere since the rename began (412): the current name shows.
    photo_row.get_by_role("button", name="Rename photo.raw").click()
    field = page.get_by_label("New name for photo.raw")
    with api(site, account) as client:
        etag = client.get(f"/files/{photo_id}").headers["etag"]
        renamed = client.patch(
            f"/files/{photo_id}", json={"name": "photo-2.raw"}, headers={"If-Match": etag}
        )
        assert renamed.status_code == 200
    field.fill("holiday.raw")
    field.press("Enter")
    expect(photo_row.get_by_role("alert")).to_contain_text("changed elsewhere")
    expect(field).to_have_value("photo-2.raw")
    field.press("Escape")

    # Downloads go through a grant URL, straight to disk.
    with page.expect_download() as download:
        row(page, "minutes.txt").get_by_role(
            "button", name="Download the original of minutes.txt"
        ).click()
    assert download.value.suggested_filename == "minutes.txt"
    assert Path(download.value.path()).read_bytes() == notes.read_bytes()
    with page.expect_download() as download:
        row(page, "photo-2.raw").get_by_role(
            "button", name="Download the ZIP of photo-2.raw"
        ).click()
    with zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())) as archive:
        [member] = archive.namelist()
        assert archive.read(member) == photo.read_bytes()


def test_a_file_name_with_markup_shows_as_text_and_runs_nothing(page, account, tmp_path):
    name = "<img src=x onerror=alert(1)>.txt"
    path = tmp_path / name
    path.write_text("harmless")
    sign_in(page, account)
    with no_dialogs(page) as opened:
        page.set_input_files("#picker", str(path))
        expect_ready(page, name)
        expect(row(page, name).locator(".file-name")).to_have_text(name)
        row(page, name).get_by_role("button", name=f"Share {name}").click()
        expect(page.locator("#share-file")).to_have_text(name)
        page.get_by_role("button", name="Close").click()
        row(page, name).get_by_role("button", name=f"Rename {name}").click()
        expect(page.get_by_label(f"New name for {name}")).to_have_value(name)
        page.keyboard.press("Escape")
        assert page.locator("img").count() == 0
    assert opened == []


def test_keyboard_only_log_in_and_upload(page, account, tmp_path):
    path = write_file(tmp_path / "typed.bin", 2 * MIB, seed=3)
    # Playwright takes over file choosers once a page has a listener for them; added this
    # early, that is done before Enter opens one (when it is not, Chromium's own opens).
    page.on("filechooser", lambda _chooser: None)
    page.goto("/")

    def tab_to(element_id: str) -> None:
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == element_id:
                # The focus is visible: a keyboard user sees where they are.
                outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                assert outline == "solid", f"#{element_id} shows no focus ({outline})"
                return
        raise AssertionError(f"#{element_id} cannot be reached with Tab")

    tab_to("email")
    page.keyboard.type(account.email)
    tab_to("password")
    page.keyboard.type(account.password)
    page.keyboard.press("Enter")
    page.locator("#app-view[data-loaded]").wait_for()
    tab_to("choose")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(str(path))
    expect_ready(page, "typed.bin")
    expect(page.locator("#announcer")).not_to_be_empty()


def test_an_interrupted_upload_resumes_in_a_new_page_with_no_byte_sent_twice(
    context, site, account, tmp_path
):
    big = write_file(tmp_path / "resumed.bin", 50 * MIB, seed=4)
    first = context.new_page()
    sign_in(first, account)
    start = site.counter.delivered
    site.link.rate = 8 * MIB  # a slow uplink (50 MiB take 6 s): the tab closes part way
    try:
        first.set_input_files("#picker", str(big))
        wait_until(lambda: site.counter.delivered - start > 12 * MIB, 60, what="12 MiB sent")
        first.close()
    finally:
        site.link.rate = 0

    second = context.new_page()  # a new tab: same origin storage, no session
    second.goto("/")
    urls = second.evaluate(
        "Object.keys(localStorage).filter(k => k.startsWith('tus::'))"
        ".map(k => JSON.parse(localStorage.getItem(k)).uploadUrl)"
    )
    assert len(urls) == 1, urls
    tus_headers = {**account.headers, "Tus-Resumable": "1.0.0"}
    with httpx.Client(base_url=site.url, headers=tus_headers) as client:

        def stored() -> int:
            return int(client.head(urls[0]).headers["upload-offset"])

        # Every byte the server received before the tab closed is kept.
        sent_before = wait_until(
            lambda: (
                site.counter.delivered - start if stored() == site.counter.delivered - start else 0
            ),
            30,
            what="the server keeping what it received",
        )
    assert 0 < sent_before < big.stat().st_size

    sign_in(second, account)
    resumed_from = site.counter.delivered
    second.set_input_files("#picker", str(big))
    expect_ready(second, "resumed.bin")
    assert sent_before + (site.counter.delivered - resumed_from) == big.stat().st_size
    with api(site, account) as client:
        [file] = client.get("/files").json()["items"]
    assert file["sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
    assert second.evaluate("Object.keys(localStorage).filter(k => k.startsWith('tus::'))") == []
    second.close()


def test_cancel_an_upload_and_delete_a_file_after_confirming(page, site, account, tmp_path):
    slow = write_file(tmp_path / "slow.bin", 30 * MIB, seed=5)
    kept = tmp_path / "kept.txt"
    kept.write_text("kept")
    sign_in(page, account)
    page.set_input_files("#picker", str(kept))
    expect_ready(page, "kept.txt")

    start = site.counter.delivered
    site.link.rate = 4 * MIB  # 30 MiB take 7.5 s
    try:
        page.set_input_files("#picker", str(slow))
        wait_until(lambda: site.counter.delivered - start > 2 * MIB, 60, what="2 MiB sent")
        expect(page.locator("#uploads .upload-detail").first).to_have_text(
            re.compile(r"^[0-9.]+ (KiB|MiB) of 30 MiB · [0-9.]+ (B|KiB|MiB)/s · .+ left$")
        )
        screenshot(page, "uploading")
        # The upload holds its size while it runs: the usage bar counts it.
        expect(page.locator("#usage-text")).to_contain_text("30 MiB of 100 GiB used")
        page.get_by_role("button", name="Cancel upload of slow.bin").click()
    finally:
        site.link.rate = 0
    expect(page.locator("#uploads .upload")).to_have_count(0)
    expect(page.locator("#announcer")).to_have_text("Upload of slow.bin cancelled")
    with api(site, account) as client:
        # Terminated at the server (tus DELETE): nothing reserved, no file made.
        wait_until(
            lambda: client.get("/users/me").json()["usage"].get("bytes_reserved", 0) == 0,
            30,
            what="the reservation released",
        )
        assert [f["name"] for f in client.get("/files").json()["items"]] == ["kept.txt"]
    # ... and gives the room back on the page too, with no reload.
    expect(page.locator("#usage-text")).to_have_text("4 B of 100 GiB used · 1 file")

    asked: list[str] = []

    def answer(dialog) -> None:
        asked.append(dialog.message)
        if len(asked) == 1:
            dialog.dismiss()
        else:
            dialog.accept()

    page.on("dialog", answer)
    delete = row(page, "kept.txt").get_by_role("button", name="Delete kept.txt")
    delete.click()
    expect(row(page, "kept.txt")).to_have_count(1)  # "Cancel" in the confirmation
    delete.click()
    expect(row(page, "kept.txt")).to_have_count(0)
    assert asked[0].startswith("Delete “kept.txt”?")
    expect(page.locator("#files-empty")).to_be_visible()
    with api(site, account) as client:
        assert client.get("/files").json()["total"] == 0


def test_the_list_pages_sorts_filters_and_shows_failures(page, site, account):
    owner_id = uuid.UUID(account.id)
    now = dt.datetime.now(dt.UTC)
    with runtime(site.app).sessions() as session:
        owner = session.get(User, owner_id)
        for n in range(52):
            session.add(
                FileFactory.build(
                    owner=owner, name=f"file-{n:02d}.txt", status=FileStatus.READY,
                    sha256="0" * 64, compressed_size=120, processed_at=now,
                    created_at=now - dt.timedelta(minutes=n),
                )
            )  # fmt: skip
        session.add(
            FileFactory.build(
                owner=owner, name="broken.txt", status=FileStatus.FAILED,
                error="The stored bytes did not match their checksum.",
                created_at=now - dt.timedelta(hours=2),
            )
        )  # fmt: skip
        session.commit()
    sign_in(page, account)
    rows = page.locator("#files-body tr")
    expect(rows).to_have_count(50)
    expect(page.locator("#files-count")).to_have_text("Showing 50 of 53 files")
    expect(rows.first.locator(".file-name")).to_have_text("file-00.txt")
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(53)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    expect(row(page, "broken.txt").locator(".file-error")).to_have_text(
        "The stored bytes did not match their checksum."
    )

    page.get_by_label("Sort").select_option("-name")
    expect(rows.first.locator(".file-name")).to_have_text("file-51.txt")
    page.get_by_label("Status").select_option("failed")
    expect(rows).to_have_count(1)
    expect(page.locator("#files-count")).to_have_text("Showing 1 of 1 file")
    page.get_by_label("Status").select_option("processing")
    expect(page.locator("#files-empty")).to_have_text("No processing files.")


def test_share_with_a_password_open_it_as_a_stranger_then_revoke(
    page, browser, site, account, tmp_path
):
    path = tmp_path / "plans.txt"
    path.write_text("the plans\n" * 100)
    sign_in(page, account)
    page.set_input_files("#picker", str(path))
    expect_ready(page, "plans.txt")

    row(page, "plans.txt").get_by_role("button", name="Share plans.txt").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Recipients get").select_option("original")
    dialog.get_by_label("Password (optional)").fill("open sesame")
    dialog.get_by_label("Download limit (optional)").fill("3")
    dialog.get_by_role("button", name="Create link").click()
    expect(dialog.get_by_label("New link")).to_have_value(re.compile(r"/s/"))
    url = dialog.get_by_label("New link").input_value()
    assert url.startswith(f"{site.url}/s/")
    links = dialog.locator("#share-list li")
    expect(links).to_have_count(0)  # the new link is shown once, above the list
    expect(dialog.locator("#share-new-facts")).to_contain_text("password · 0 of 3 downloads")
    screenshot(page, "share-dialog")
    assert axe_violations(page) == []
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    dialog.get_by_role("button", name="Copy", exact=True).first.click()
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == url

    stranger = browser.new_context(viewport={"width": 390, "height": 844}, accept_downloads=True)
    try:
        visitor = stranger.new_page()
        visitor.goto(url)
        screenshot(visitor, "share-page-locked")
        assert axe_violations(visitor) == []
        visitor.get_by_label("Password", exact=True).fill("open sesame")
        with visitor.expect_download() as download:
            visitor.get_by_role("button", name="Download").click()
        assert Path(download.value.path()).read_bytes() == path.read_bytes()
        screenshot(visitor, "share-page")

        dialog.get_by_role("button", name="Close").click()
        row(page, "plans.txt").get_by_role("button", name="Share plans.txt").click()
        expect(links.first).to_contain_text("1 of 3 downloads")
        links.first.get_by_role("button", name="Revoke").click()
        expect(links.first.locator(".badge")).to_have_text("Revoked")

        visitor.goto(url)
        expect(visitor.get_by_role("alert")).to_contain_text("revoked")
        screenshot(visitor, "share-page-revoked")
        assert axe_violations(visitor) == []
    finally:
        stranger.close()
