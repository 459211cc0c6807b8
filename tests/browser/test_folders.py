"""Folders in the web app (Chromium), against a real server and worker: a folder uploaded
with its structure, navigated by its breadcrumb, reorganised, and shared as one link."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import axe_violations, screenshot, sign_in, write_file
from tests.browser.test_webapp import api, expect_ready, row
from tests.helpers import Account, wait_until

# A folder's files one request each, four at a time: on a 2-core machine under a load
# average of 40 (other suites beside this one) 102 files took over 90 s.
FOLDER_TIMEOUT = 240_000


def folder_row(page, name: str):
    """The list's row for the folder called exactly `name`."""
    return page.locator("#files-body tr.folder").filter(
        has=page.locator(".folder-name").get_by_text(name, exact=True)
    )


def crumbs(page) -> list[str]:
    return page.get_by_role("navigation", name="Folders").locator("li").all_inner_texts()


def make_tree(root: Path) -> dict[str, bytes]:
    """A small folder with subfolders, as a person has on disk; its files by path."""
    files = {
        "trip/notes.txt": b"what we saw\n" * 50,
        "trip/day 1/photo.raw": write_file(root / "photo.raw", 200_000, seed=7).read_bytes(),
        "trip/day 1/route.txt": b"north then east\n",
        "trip/day 2/deep/last.txt": b"the end\n",
    }
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    (root / "photo.raw").unlink()
    return files


def tree_of(client: httpx.Client, folder_id: str | None = None, prefix: str = "") -> dict:
    """Every file under a folder (the root without one), by path, from the API."""
    found: dict[str, dict] = {}
    params: dict = {"limit": 100, **({"folder_id": folder_id} if folder_id else {})}
    while True:
        page = client.get("/entries", params=params).json()
        for entry in page["items"]:
            if entry["kind"] == "folder":
                found.update(tree_of(client, entry["id"], f"{prefix}{entry['name']}/"))
            else:
                found[prefix + entry["name"]] = entry
        if not page["next_cursor"]:
            return found
        params["cursor"] = page["next_cursor"]


def test_upload_a_folder_open_it_by_breadcrumb_and_share_it(page, site, account, tmp_path):
    files = make_tree(tmp_path)
    sign_in(page, account)
    page.set_input_files("#folder-picker", str(tmp_path / "trip"))

    group = page.locator("#uploads .upload.group")
    expect(group.locator(".upload-name")).to_have_text("trip")
    expect(group).to_have_class("upload group done", timeout=FOLDER_TIMEOUT)
    expect(group.locator(".upload-detail")).to_have_text("Uploaded 4 files (196 KiB)")
    expect(folder_row(page, "trip")).to_have_count(1)
    with api(site, account) as client:
        wait_until(
            lambda: (
                all(f["status"] == "ready" for f in tree_of(client).values())
                and len(tree_of(client)) == 4
            ),
            90,
            what="the folder's files ready",
        )
        stored = tree_of(client)
    assert set(stored) == set(files), "the folder keeps its structure"
    for path, data in files.items():
        assert stored[path]["sha256"] == hashlib.sha256(data).hexdigest()

    # Down by the folders' names, up by the breadcrumb, back with the browser's button.
    page.get_by_label("Sort").select_option("name")
    folder_row(page, "trip").get_by_role("link", name="trip").click()
    expect(page.get_by_role("heading", name="trip")).to_be_focused()
    assert crumbs(page) == ["All files", "trip"]
    names = page.locator("#files-body tr .folder-name, #files-body tr .file-name")
    expect(names).to_have_text(["day 1", "day 2", "notes.txt"])  # folders first
    expect_ready(page, "notes.txt")
    folder_row(page, "day 2").get_by_role("link", name="day 2").click()
    folder_row(page, "deep").get_by_role("link", name="deep").click()
    expect(page.get_by_role("heading", name="deep")).to_be_visible()
    assert crumbs(page) == ["All files", "trip", "day 2", "deep"]
    expect_ready(page, "last.txt")
    screenshot(page, "folder")
    assert axe_violations(page) == []

    page.get_by_role("navigation", name="Folders").get_by_role("link", name="trip").click()
    expect(page.get_by_role("heading", name="trip")).to_be_visible()
    expect(names).to_have_text(["day 1", "day 2", "notes.txt"])
    page.go_back()
    expect(page.get_by_role("heading", name="deep")).to_be_visible()
    page.reload()  # the address keeps the place
    page.locator("#app-view[data-loaded]").wait_for()
    expect(page.get_by_role("heading", name="deep")).to_be_visible()
    assert crumbs(page) == ["All files", "trip", "day 2", "deep"]
    page.get_by_role("navigation", name="Folders").get_by_role("link", name="All files").click()


def test_new_folder_rename_move_and_delete_with_the_selection(page, site, account, tmp_path):
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(name)
    sign_in(page, account)
    page.set_input_files("#picker", [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")])
    expect_ready(page, "a.txt")
    expect_ready(page, "b.txt")

    for name in ("Inbox", "Archive"):
        page.get_by_role("button", name="New folder").click()
        field = page.get_by_label("Folder name")
        expect(field).to_be_focused()
        field.fill(name)
        field.press("Enter")
        expect(folder_row(page, name)).to_have_count(1)
    page.get_by_role("button", name="New folder").click()
    page.get_by_label("Folder name").fill("a.txt")
    page.get_by_label("Folder name").press("Enter")
    expect(page.locator("#new-folder-error")).to_have_text(
        "This folder already has a file or folder named “a.txt”. Choose another name."
    )
    screenshot(page, "new-folder-clash")
    page.get_by_label("Folder name").press("Escape")
    expect(page.get_by_role("button", name="New folder")).to_be_focused()

    # Rename a folder in place.
    folder_row(page, "Inbox").get_by_role("button", name="Rename the folder Inbox").click()
    field = page.get_by_label("New name for Inbox")
    field.fill("Incoming")
    field.press("Enter")
    expect(folder_row(page, "Incoming")).to_have_count(1)

    # Move two files and a folder into "Archive", from the keyboard.
    row(page, "a.txt").get_by_role("checkbox").press("Space")
    row(page, "b.txt").get_by_role("checkbox").press("Space")
    folder_row(page, "Incoming").get_by_role("checkbox").press("Space")
    expect(page.locator("#selection-count")).to_have_text("1 folder and 2 files selected")
    screenshot(page, "selection")
    page.get_by_role("button", name="Move to…").press("Enter")
    dialog = page.get_by_role("dialog", name="Move 3 items")
    expect(dialog.get_by_role("button", name="Incoming (being moved)")).to_be_disabled()
    expect(dialog.get_by_role("button", name="Move to All files")).to_be_disabled()
    screenshot(page, "move-dialog")
    assert axe_violations(page) == []
    expect(dialog.get_by_role("button", name="Archive")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog.get_by_role("button", name="Move to Archive")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#files-body tr")).to_have_count(1)
    expect(page.locator("#announcer")).to_have_text("3 items moved to Archive")

    folder_row(page, "Archive").get_by_role("link", name="Archive").click()
    expect(page.locator("#files-body tr")).to_have_count(3)
    with api(site, account) as client:
        assert set(tree_of(client)) == {"Archive/a.txt", "Archive/b.txt"}
        archive = client.get("/entries").json()["items"][0]
        assert archive["name"] == "Archive"

    # A folder never moves into itself: the dialog does not offer it, and the API says no.
    folder_row(page, "Incoming").get_by_role("checkbox").check()
    page.get_by_role("button", name="Move to…").click()
    dialog = page.get_by_role("dialog", name="Move “Incoming”")
    expect(dialog.get_by_role("button", name="Incoming (being moved)")).to_be_disabled()
    dialog.get_by_role("button", name="Close").click()

    # Delete a folder and a file at once, after confirming.
    asked: list[str] = []
    page.on("dialog", lambda d: (asked.append(d.message), d.accept()))
    page.get_by_role("button", name="Clear selection").click()
    folder_row(page, "Incoming").get_by_role("checkbox").check()
    row(page, "a.txt").get_by_role("checkbox").check()
    page.get_by_role("group", name="Selection").get_by_role("button", name="Delete").click()
    expect(page.locator("#files-body tr")).to_have_count(1)
    assert asked == [
        "Delete 1 folder and 1 file? Everything in the folder goes too, and their links stop"
        " working. This cannot be undone."
    ]
    with api(site, account) as client:
        assert set(tree_of(client)) == {"Archive/b.txt"}
        assert client.get("/users/me").json()["usage"]["file_count"] == 1


def test_a_dropped_folder_keeps_its_structure(page, site, account: Account, tmp_path):
    """A folder dragged from a file manager: the drop hands over directory entries, read a
    batch at a time (Chromium's readers give 100 per call), as the browser does."""
    paths = {f"pics/{n:03d}.txt": f"picture {n}\n".encode() for n in range(101)}
    paths["pics/sub/inner.txt"] = b"inner\n"
    for path, data in paths.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    sign_in(page, account)
    site.link.rate = 200  # bytes a second: a few seconds for the lot, to see it under way
    try:
        page.evaluate(
            "() => { const i = document.createElement('input'); i.type = 'file'; i.multiple = true;"
            " i.id = '__drag_source'; i.hidden = true; document.body.append(i); }"
        )
        page.set_input_files("#__drag_source", [str(tmp_path / p) for p in paths])
        page.evaluate(
            """(paths) => {
                // What Chromium hands a page for a dropped folder: FileSystemEntry objects.
                const source = document.getElementById('__drag_source');
                const files = [...source.files];
                source.remove();
                const dir = (fullPath, children) => ({
                    isFile: false, isDirectory: true, fullPath, name: fullPath.split('/').pop(),
                    createReader() {
                        let at = 0;
                        return { readEntries(ok) {
                            setTimeout(() => { ok(children.slice(at, at + 100)); at += 100; });
                        } };
                    },
                });
                const file = (fullPath, f) => ({
                    isFile: true, isDirectory: false, fullPath, name: f.name,
                    file(ok) { setTimeout(() => ok(f)); },
                });
                const byPath = Object.fromEntries(paths.map((p, i) => [p, files[i]]));
                const build = (prefix) => {
                    const here = paths.filter((p) => p.startsWith(prefix + '/'));
                    const direct = here.filter((p) => !p.slice(prefix.length + 1).includes('/'));
                    const subs = [...new Set(here.filter((p) => !direct.includes(p))
                        .map((p) => prefix + '/' + p.slice(prefix.length + 1).split('/')[0]))];
                    return dir('/' + prefix,
                        [...direct.map((p) => file('/' + p, byPath[p])), ...subs.map(build)]);
                };
                const data = { items: [{ webkitGetAsEntry: () => build('pics') }], files: [] };
                const zone = document.getElementById('dropzone');
                for (const type of ['dragenter', 'dragover', 'drop']) {
                    const event = new Event(type, { bubbles: true, cancelable: true });
                    Object.defineProperty(event, 'dataTransfer', { value: data });
                    zone.dispatchEvent(event);
                }
            }""",
            list(paths),
        )
        group = page.locator("#uploads .upload.group")
        expect(group.locator(".upload-name")).to_have_text("pics")
        expect(group.locator(".upload-detail")).to_have_text(
            re.compile(r"^[0-9]+ of 102 files · [0-9.]+ (B|KiB) of 1\.1 KiB · .+/s · .+ left$")
        )
        screenshot(page, "uploading-folder")
    finally:
        site.link.rate = 0
    expect(group).to_have_class("upload group done", timeout=FOLDER_TIMEOUT)
    expect(folder_row(page, "pics")).to_have_count(1)
    with api(site, account) as client:
        stored = tree_of(client)
    assert set(stored) == set(paths)


def test_share_a_folder_and_a_selection_then_a_stranger_downloads_it_all(
    page, browser, site, account, tmp_path
):
    files = make_tree(tmp_path)
    (tmp_path / "readme.txt").write_text("read me first\n")
    sign_in(page, account)
    page.set_input_files("#folder-picker", str(tmp_path / "trip"))
    page.set_input_files("#picker", str(tmp_path / "readme.txt"))
    expect_ready(page, "readme.txt")
    with api(site, account) as client:
        wait_until(
            lambda: [f["status"] for f in tree_of(client).values()] == ["ready"] * 5,
            90,
            what="the files ready",
        )

    # One link for the whole folder, from the selection.
    folder_row(page, "trip").get_by_role("checkbox", name="Select the folder trip").check()
    expect(page.locator("#selection-count")).to_have_text("1 folder selected")
    page.get_by_role("group", name="Selection").get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog", name="Share")
    expect(dialog.locator("#share-file")).to_have_text(
        "The folder “trip” and everything in it, including what is added later"
    )
    dialog.get_by_role("button", name="Create link").click()
    link = re.compile(re.escape(site.url) + r"/s/[A-Za-z0-9_-]+$")
    expect(dialog.get_by_label("New link")).to_have_value(link, timeout=20_000)
    folder_url = dialog.get_by_label("New link").input_value()
    expect(dialog.locator("#share-list li")).to_have_count(0)  # shown once, above
    expect(dialog.locator("#share-new-facts")).to_contain_text("folder")
    screenshot(page, "share-folder")
    assert axe_violations(page) == []
    dialog.get_by_role("button", name="Close").click()

    # A stranger, on a phone, downloads it all: one ZIP with the folder's structure.
    stranger = browser.new_context(viewport={"width": 390, "height": 844}, accept_downloads=True)
    try:
        visitor = stranger.new_page()
        visitor.goto(folder_url)
        expect(visitor.get_by_role("link", name="Download all")).to_be_visible()
        screenshot(visitor, "share-page-folder")
        assert axe_violations(visitor) == []
        with visitor.expect_download() as download:
            visitor.get_by_role("link", name="Download all").click()
        with zipfile.ZipFile(download.value.path()) as archive:
            assert archive.testzip() is None
            members = archive.namelist()
            assert {n: archive.read(n) for n in members if not n.endswith("/")} == files
            assert {n for n in members if n.endswith("/")} == {
                "trip/", "trip/day 1/", "trip/day 2/", "trip/day 2/deep/"
            }  # fmt: skip
    finally:
        stranger.close()

    # A selection (the folder and a file beside it) is one link too.
    row(page, "readme.txt").get_by_role("checkbox").check()
    expect(page.locator("#selection-count")).to_have_text("1 folder and 1 file selected")
    page.get_by_role("group", name="Selection").get_by_role("button", name="Share").click()
    expect(dialog.locator("#share-file")).to_have_text("1 folder and 1 file: trip, readme.txt")
    expect(dialog.locator("#share-list li")).to_have_count(0)
    expect(dialog.get_by_label("New link")).to_be_hidden()
    dialog.get_by_role("button", name="Create link").click()
    expect(dialog.get_by_label("New link")).to_have_value(link, timeout=20_000)
    expect(dialog.locator("#share-new-facts")).to_contain_text("1 folder and 1 file")
    listing = httpx.get(
        dialog.get_by_label("New link").input_value(), headers={"Accept": "application/json"}
    ).json()
    assert listing["kind"] == "selection"
    assert {entry["path"] for entry in listing["entries"]} == {*files, "readme.txt"}
