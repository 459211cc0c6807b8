"""The dead ends of issue 23 a person no longer meets: a name already taken (keep both or
replace, never a retried 409), an upload cut short that the page forgot (listed, resumed,
discarded), a mistyped address (a page with a way home)."""

from __future__ import annotations

import base64

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import axe_violations, requests_to, screenshot, sign_in, write_file
from tests.browser.test_webapp import api, expect_ready, row

MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


def looked_at(page, name: str) -> None:
    """axe-core finds nothing serious in either colour scheme; screenshots of both."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.wait_for_timeout(400)  # past the app's colour transitions (0.1 s)
        assert axe_violations(page) == [], scheme
        screenshot(page, name if scheme == "light" else f"{name}-dark")
    page.emulate_media(color_scheme="light")


def test_a_taken_name_offers_keep_both_and_replace_and_is_never_retried(
    page, site, account, tmp_path
):
    first = tmp_path / "one" / "report.txt"
    first.parent.mkdir()
    first.write_text("the first report\n")
    sign_in(page, account)
    page.set_input_files("#picker", str(first))
    expect_ready(page, "report.txt")

    creations = requests_to(page, "/api/v1/uploads", "POST")
    second = tmp_path / "two" / "report.txt"
    second.parent.mkdir()
    second.write_text("the second report, longer\n")
    page.set_input_files("#picker", str(second))
    item = page.locator("#uploads .upload").filter(has_text="You already have")
    expect(item.locator(".upload-detail")).to_have_text(
        "You already have a file named 'report.txt'.", timeout=3000
    )
    keep = item.get_by_role("button", name="Keep both: upload report.txt under a new name")
    expect(keep).to_be_visible()
    expect(item.get_by_role("button", name="Replace the file named report.txt")).to_be_visible()
    looked_at(page, "name-taken")
    page.wait_for_timeout(1500)  # time a retry would have taken
    assert len(creations) == 1, f"the refused creation was sent again: {creations}"

    keep.click()
    expect_ready(page, "report (1).txt")
    expect(row(page, "report.txt")).to_have_count(1)

    third = tmp_path / "three" / "report.txt"
    third.parent.mkdir()
    third.write_text("the third report, the longest of all\n")
    page.set_input_files("#picker", str(third))
    item = page.locator("#uploads .upload").filter(has_text="You already have")
    item.get_by_role("button", name="Replace the file named report.txt").click()
    expect(row(page, "report.txt").locator("td").nth(2)).to_have_text("37 B", timeout=20_000)
    with api(site, account) as client:
        names = sorted(f["name"] for f in client.get("/files").json()["items"])
    assert names == ["report (1).txt", "report.txt"]


def _unfinished(site, account, name: str, data: bytes, sent: int) -> str:
    """An upload of `data` begun by another client, `sent` bytes of it received."""
    with httpx.Client(base_url=site.url, headers={**account.headers, **TUS}, timeout=60) as c:
        made = c.post(
            "/api/v1/uploads",
            headers={
                "Upload-Length": str(len(data)),
                "Upload-Metadata": f"filename {base64.b64encode(name.encode()).decode()}",
            },
        )
        assert made.status_code == 201, made.text
        url = made.headers["Location"]
        patched = c.patch(
            url,
            headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
            content=data[:sent],
        )
        assert patched.status_code == 204, patched.text
        return url


def test_unfinished_uploads_are_listed_resumed_and_discarded(page, site, account, tmp_path):
    movie = write_file(tmp_path / "camera roll.mov", 8 * MIB, seed=3)
    _unfinished(site, account, "camera roll.mov", movie.read_bytes(), 3 * MIB)
    draft = write_file(tmp_path / "draft.bin", 2 * MIB, seed=4)
    _unfinished(site, account, "draft.bin", draft.read_bytes(), MIB // 2)
    sign_in(page, account)

    section = page.get_by_role("region", name="Unfinished uploads")
    items = section.get_by_role("listitem")
    expect(items).to_have_count(2)
    expect(items.filter(has_text="camera roll.mov")).to_have_text(
        "camera roll.mov — 3.0 of 8.0 MiB · choose it again to resume · Discard"
    )
    expect(page.locator("#usage-text")).to_contain_text("10 MiB of")
    looked_at(page, "unfinished-uploads")

    section.get_by_role("button", name="Discard the unfinished upload of draft.bin").click()
    expect(items).to_have_count(1)
    expect(page.locator("#usage-text")).to_contain_text("8.0 MiB of")

    # Chosen again here (this browser never saw it begin): only the rest goes over the wire.
    start = site.counter.delivered
    page.set_input_files("#picker", str(movie))
    expect_ready(page, "camera roll.mov")
    sent = site.counter.delivered - start
    assert 5 * MIB <= sent < 5 * MIB + 64 * 1024, sent
    expect(section).to_be_hidden()
    with api(site, account) as client:
        file = next(
            f for f in client.get("/files").json()["items"] if f["name"] == "camera roll.mov"
        )
        assert file["size"] == 8 * MIB
        assert client.get("/uploads").json() == {"items": [], "total": 0}


def test_a_mistyped_address_gets_a_page_with_a_way_home(page):
    for path in ("/nope", "/files/x/y"):
        answer = page.goto(path)
        assert answer is not None and answer.status == 404
        expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    looked_at(page, "not-found")
    page.get_by_role("link", name="Go to your files").click()
    expect(page.get_by_role("button", name="Log in", exact=True)).to_be_visible()
