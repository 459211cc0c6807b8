"""The owner's own ZIP and thumbnails in the web app (Chromium), against a real server and
worker: files and a folder chosen in the list downloaded as one ZIP (from the selection bar
and from the folder's row), and an uploaded image's thumbnail in its row."""

from __future__ import annotations

import io
import re
import zipfile

from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import axe_violations, requests_to, screenshot, sign_in
from tests.browser.test_folders import folder_row, make_tree, tree_of
from tests.browser.test_webapp import api, expect_ready, row
from tests.helpers import wait_until


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 60, 30)).save(out, "PNG")
    return out.getvalue()


def zip_members(download) -> dict[str, bytes]:
    """The downloaded archive's members: path -> bytes (folders -> b"/")."""
    with zipfile.ZipFile(download.value.path()) as archive:
        assert archive.testzip() is None
        return {
            info.filename: b"/" if info.is_dir() else archive.read(info)
            for info in archive.infolist()
        }


def test_select_files_and_a_folder_download_one_zip_and_see_a_thumbnail(
    page, site, account, tmp_path
):
    files = make_tree(tmp_path)
    (tmp_path / "readme.txt").write_bytes(b"read me first\n")
    (tmp_path / "cover.png").write_bytes(cover := png())
    (tmp_path / "other.txt").write_bytes(b"not chosen\n")
    sign_in(page, account)
    page.set_input_files("#folder-picker", str(tmp_path / "trip"))
    page.set_input_files("#picker", [str(tmp_path / n) for n in ("readme.txt", "cover.png")])
    page.set_input_files("#picker", str(tmp_path / "other.txt"))
    for name in ("readme.txt", "cover.png", "other.txt"):
        expect_ready(page, name)
    with api(site, account) as client:
        wait_until(
            lambda: [f["status"] for f in tree_of(client).values()] == ["ready"] * 7,
            120,
            what="the files ready",
        )

    # The image's row shows its thumbnail (fetched with the token, from a blob: URL); the
    # text files keep their type badge.
    thumb = row(page, "cover.png").locator("img.thumb")
    expect(thumb).to_have_attribute("src", re.compile(r"^blob:"), timeout=20_000)
    wait_until(lambda: thumb.evaluate("img => img.complete && img.naturalWidth") == 320, 10)
    expect(row(page, "readme.txt").locator(".type.text")).to_have_count(1)
    expect(row(page, "readme.txt").locator("img")).to_have_count(0)

    # Two files and a folder, chosen in the list: one ZIP with the folder's structure.
    folder_row(page, "trip").get_by_role("checkbox", name="Select the folder trip").check()
    for name in ("readme.txt", "cover.png"):
        row(page, name).get_by_role("checkbox").check()
    expect(page.locator("#selection-count")).to_have_text("1 folder and 2 files selected")
    bar = page.get_by_role("group", name="Selection")
    with page.expect_download() as download:
        bar.get_by_role("button", name="Download as ZIP").click()
    assert download.value.suggested_filename == "3 items.zip"
    members = zip_members(download)
    assert {n: members[n] for n in members if not n.endswith("/")} == {
        **files,
        "readme.txt": b"read me first\n",
        "cover.png": cover,
    }
    assert {n for n in members if n.endswith("/")} == {
        "trip/", "trip/day 1/", "trip/day 2/", "trip/day 2/deep/"
    }  # fmt: skip
    screenshot(page, "selection-zip")
    assert axe_violations(page) == []

    # A folder's own row downloads it alone.
    with page.expect_download() as download:
        folder_row(page, "trip").get_by_role(
            "button", name="Download the ZIP of the folder trip"
        ).click()
    assert download.value.suggested_filename == "trip.zip"
    assert {n: v for n, v in zip_members(download).items() if v != b"/"} == files

    # Lazily: on a screen too short to show the list, no thumbnail is asked for until its
    # row is scrolled to.
    asked = requests_to(page, "/preview")
    page.set_viewport_size({"width": 1000, "height": 150})
    page.reload()
    page.locator("#app-view[data-loaded]").wait_for()
    expect(row(page, "cover.png")).to_have_count(1)
    page.wait_for_timeout(1000)
    assert asked == []
    row(page, "cover.png").scroll_into_view_if_needed()
    expect(row(page, "cover.png").locator("img.thumb")).to_have_attribute(
        "src", re.compile("^blob:")
    )
    assert len(asked) == 1


def folders_of(client, folder_id: str | None = None, prefix: str = "") -> set[str]:
    """Every folder under a folder (the root without one), by path, from the API."""
    found: set[str] = set()
    params = {"limit": 100, **({"folder_id": folder_id} if folder_id else {})}
    for entry in client.get("/entries", params=params).json()["items"]:
        if entry["kind"] == "folder":
            path = f"{prefix}{entry['name']}"
            found |= {path} | folders_of(client, entry["id"], path + "/")
    return found


def test_a_dropped_folders_empty_subfolders_are_made_too(page, site, account, tmp_path):
    (tmp_path / "a.txt").write_bytes(b"the one file\n")
    sign_in(page, account)
    page.evaluate(
        "() => { const i = document.createElement('input'); i.type = 'file';"
        " i.id = '__drag_source'; i.hidden = true; document.body.append(i); }"
    )
    page.set_input_files("#__drag_source", str(tmp_path / "a.txt"))
    page.evaluate(
        """() => {
            // What Chromium hands a page for a dropped folder: FileSystemEntry objects.
            const source = document.getElementById('__drag_source');
            const [file] = source.files;
            source.remove();
            const dir = (fullPath, children) => ({
                isFile: false, isDirectory: true, fullPath, name: fullPath.split('/').pop(),
                createReader() {
                    let done = false;
                    return { readEntries(ok) {
                        setTimeout(() => { ok(done ? [] : children); done = true; });
                    } };
                },
            });
            const leaf = {
                isFile: true, isDirectory: false, fullPath: '/pics/a.txt', name: 'a.txt',
                file(ok) { setTimeout(() => ok(file)); },
            };
            const tree = dir('/pics', [
                leaf, dir('/pics/blank', []), dir('/pics/later', [dir('/pics/later/deeper', [])]),
            ]);
            const data = { items: [{ webkitGetAsEntry: () => tree }], files: [] };
            const zone = document.getElementById('dropzone');
            for (const type of ['dragenter', 'dragover', 'drop']) {
                const event = new Event(type, { bubbles: true, cancelable: true });
                Object.defineProperty(event, 'dataTransfer', { value: data });
                zone.dispatchEvent(event);
            }
        }"""
    )
    expect(page.locator("#uploads .upload.group")).to_have_class(
        "upload group done", timeout=60_000
    )
    expected = {"pics", "pics/blank", "pics/later", "pics/later/deeper"}
    with api(site, account) as client:
        wait_until(lambda: folders_of(client) == expected, 30, what="the empty folders")
        assert set(tree_of(client)) == {"pics/a.txt"}
    folder_row(page, "pics").locator(".folder-name").click()
    expect(folder_row(page, "blank")).to_have_count(1)
    expect(folder_row(page, "later")).to_have_count(1)
