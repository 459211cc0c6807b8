"""Links to a folder or a selection: what anyone with one sees, each file's download, and
Download all (one ZIP assembled from the stored entries: Range, If-Range, ETag)."""

from __future__ import annotations

import io
import random
import struct
import subprocess
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from app.models import File
from tests.helpers import assert_problem, run_jobs, runtime, started_download, upload

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
NOTES = b"".join(b"%06d GET /files/%d 200\n" % (i, i % 97) for i in range(20_000))
TOOL = random.Random(3).randbytes(150_000)  # does not deflate: stored
README = b"read me\n"


def folder(client, account, name, parent=None) -> str:
    made = client.post(
        "/api/v1/folders",
        headers=account.headers,
        json={"name": name, **({"parent_id": parent} if parent else {})},
    )
    assert made.status_code == 201, made.text
    return made.json()["id"]


def put(client, account, name, content, folder_id=None) -> str:
    form = {"folder_id": folder_id} if folder_id else {}
    created = upload(client, account, content, name, **form)
    assert created.status_code == 202, created.text
    return created.json()["id"]


def link(client, account, *items, **options) -> dict:
    body = {"items": [{"kind": kind, "id": item_id} for kind, item_id in items], **options}
    made = client.post("/api/v1/shares", headers=account.headers, json=body)
    assert made.status_code == 201, made.text
    return made.json()


def path_of(share: dict) -> str:
    return "/s/" + share["url"].rsplit("/s/", 1)[1]


def a_release(client, app, account) -> dict[str, str]:
    """release/{notes.log, README, bin/tool, docs/ (empty)}, all ready: their ids."""
    release = folder(client, account, "release")
    binaries = folder(client, account, "bin", release)
    folder(client, account, "docs", release)
    ids = {
        "release": release,
        "bin": binaries,
        "notes.log": put(client, account, "notes.log", NOTES, release),
        "README": put(client, account, "README", README, release),
        "tool": put(client, account, "tool", TOOL, binaries),
    }
    run_jobs(app)
    return ids


def unzipped(data: bytes, tmp_path: Path) -> dict[str, bytes]:
    """The archive's members (`unzip -t` passing first): path -> bytes; folders -> b"/"."""
    archive_path = tmp_path / f"{uuid.uuid4().hex}.zip"
    archive_path.write_bytes(data)
    tested = subprocess.run(["unzip", "-t", str(archive_path)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {
            info.filename: b"/" if info.is_dir() else archive.read(info)
            for info in archive.infolist()
        }


RELEASE = {
    "release/": b"/",
    "release/README": README,
    "release/bin/": b"/",
    "release/bin/tool": TOOL,
    "release/docs/": b"/",
    "release/notes.log": NOTES,
}


# --- a folder link -------------------------------------------------------------------------


def test_a_folder_link_lists_what_it_holds_and_downloads_it_all(
    local_client, local_app, alice, tmp_path
):
    ids = a_release(local_client, local_app, alice)
    share = link(local_client, alice, ("folder", ids["release"]))
    assert share["kind"] == "folder" and share["file_id"] is None
    assert share["items"] == [{"kind": "folder", "id": ids["release"], "name": "release"}]
    path = path_of(share)

    listed = local_client.get(path)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["kind"] == "folder" and body["name"] == "release"
    assert [e["path"] for e in body["entries"]] == [
        "release/README",
        "release/bin/tool",
        "release/notes.log",
    ]
    assert body["folders"] == ["release", "release/bin", "release/docs"]
    assert body["total_size"] == len(NOTES) + len(TOOL) + len(README)
    assert (body["ready_count"], body["pending_count"]) == (3, 0)
    tool = next(e for e in body["entries"] if e["name"] == "tool")
    assert tool["size"] == len(TOOL) and tool["status"] == "ready"
    assert tool["content_url"].endswith(f"{path}/files/{ids['tool']}/content")

    got = local_client.get(path + "/archive")
    assert got.status_code == 200, got.text
    assert got.headers["Content-Type"] == "application/zip"
    assert got.headers["Content-Length"] == str(len(got.content)) == str(body["archive"]["size"])
    assert got.headers["ETag"] == body["archive"]["etag"]
    assert 'filename="release.zip"' in got.headers["Content-Disposition"]
    assert unzipped(got.content, tmp_path) == RELEASE
    with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
        methods = {i.filename: i.compress_type for i in archive.infolist()}
    assert methods["release/notes.log"] == zipfile.ZIP_DEFLATED  # copied, not compressed again
    assert methods["release/bin/tool"] == zipfile.ZIP_STORED

    # The same selection gives the same bytes; /content of the link is the same download.
    assert local_client.get(path + "/archive").content == got.content
    assert local_client.get(path + "/content").content == got.content
    head = local_client.head(path + "/archive")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(got.content))

    one = local_client.get(f"{path}/files/{ids['notes.log']}/content")
    assert one.status_code == 200
    with zipfile.ZipFile(io.BytesIO(one.content)) as archive:
        assert archive.read("notes.log") == NOTES


def test_ranges_of_the_archive_resume_to_the_same_bytes(local_client, local_app, alice):
    ids = a_release(local_client, local_app, alice)
    path = path_of(link(local_client, alice, ("folder", ids["release"]))) + "/archive"
    whole = local_client.get(path)
    etag, size = whole.headers["ETag"], len(whole.content)
    pieces = []
    for start, end in ((0, 99), (100, size // 2), (size // 2 + 1, size - 1)):
        part = local_client.get(path, headers={"Range": f"bytes={start}-{end}", "If-Range": etag})
        assert part.status_code == 206, part.text
        assert part.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
        pieces.append(part.content)
    assert b"".join(pieces) == whole.content
    assert local_client.get(path, headers={"Range": f"bytes={size}-"}).status_code == 416
    assert local_client.get(path, headers={"If-None-Match": etag}).status_code == 304


def test_a_folder_link_is_live_and_a_change_is_a_new_archive(
    local_client, local_app, alice, tmp_path
):
    ids = a_release(local_client, local_app, alice)
    path = path_of(link(local_client, alice, ("folder", ids["release"])))
    before = local_client.get(path + "/archive")
    old_etag = before.headers["ETag"]

    # A file added later is listed at once, not ready, and left out of Download all.
    later = put(local_client, alice, "CHANGES", b"1.1: faster\n", ids["bin"])
    body = local_client.get(path).json()
    assert (body["ready_count"], body["pending_count"]) == (3, 1)
    pending = next(e for e in body["entries"] if e["file_id"] == later)
    assert pending["status"] == "pending" and pending["path"] == "release/bin/CHANGES"
    assert body["archive"]["etag"] == old_etag
    assert local_client.get(path + "/archive").content == before.content
    assert_problem(local_client.get(f"{path}/files/{later}/content"), 409)
    words = local_client.get(path, headers=BROWSER).text
    assert "1 of the files is not ready yet" in words

    # Ready: in the archive, under a new ETag; a resume with the old one gets it all (200).
    run_jobs(local_app)
    resumed = local_client.get(
        path + "/archive", headers={"Range": "bytes=100-", "If-Range": old_etag}
    )
    assert resumed.status_code == 200
    assert resumed.headers["ETag"] != old_etag
    assert unzipped(resumed.content, tmp_path) == {
        **RELEASE,
        "release/bin/CHANGES": b"1.1: faster\n",
    }

    # Renamed or deleted: a new ETag again, and the archive says so.
    renamed = local_client.patch(
        f"/api/v1/files/{ids['README']}", headers=alice.headers, json={"name": "README.md"}
    )
    assert renamed.status_code == 200, renamed.text
    after_rename = local_client.get(path + "/archive")
    assert after_rename.headers["ETag"] != resumed.headers["ETag"]
    assert "release/README.md" in unzipped(after_rename.content, tmp_path)
    assert local_client.delete(f"/api/v1/files/{later}", headers=alice.headers).status_code == 204
    after_delete = local_client.get(path + "/archive")
    assert "release/bin/CHANGES" not in unzipped(after_delete.content, tmp_path)

    # The folder deleted: nothing is left of the link.
    gone = local_client.delete(f"/api/v1/folders/{ids['release']}", headers=alice.headers)
    assert gone.status_code == 204, gone.text
    assert_problem(local_client.get(path), 404)
    assert_problem(local_client.get(path + "/archive"), 404)


# --- a selection ---------------------------------------------------------------------------


def test_a_selection_is_fixed_and_its_names_never_clash(local_client, local_app, alice, tmp_path):
    ids = a_release(local_client, local_app, alice)
    other = folder(local_client, alice, "other")
    top_readme = put(local_client, alice, "README", b"top\n")
    other_readme = put(local_client, alice, "README", b"other\n", other)
    run_jobs(local_app)
    share = link(
        local_client,
        alice,
        ("file", top_readme),
        ("folder", ids["bin"]),
        ("file", other_readme),
    )
    assert share["kind"] == "selection"
    assert [i["name"] for i in share["items"]] == ["README", "bin", "README"]
    path = path_of(share)
    body = local_client.get(path).json()
    assert body["name"] == "3 items"
    assert [e["path"] for e in body["entries"]] == ["README", "README (2)", "bin/tool"]
    assert body["folders"] == ["bin"]
    assert unzipped(local_client.get(path + "/archive").content, tmp_path) == {
        "README": b"top\n",
        "README (2)": b"other\n",
        "bin/": b"/",
        "bin/tool": TOOL,
    }
    # A file added to the root later is not in the selection; one added to its folder is.
    put(local_client, alice, "later.txt", b"later")
    put(local_client, alice, "later.bin", b"later", ids["bin"])
    run_jobs(local_app)
    paths = [e["path"] for e in local_client.get(path).json()["entries"]]
    assert paths == ["README", "README (2)", "bin/later.bin", "bin/tool"]


def test_one_file_item_is_a_one_file_link(local_client, local_app, alice):
    ids = a_release(local_client, local_app, alice)
    share = link(local_client, alice, ("file", ids["README"]))
    assert share["kind"] == "file" and share["file_id"] == ids["README"]
    assert share["items"] == [{"kind": "file", "id": ids["README"], "name": "README"}]
    path = path_of(share)
    assert local_client.get(path).json()["name"] == "README.zip"
    assert_problem(local_client.get(path + "/archive"), 404)
    assert local_client.get(f"{path}/files/{ids['README']}/content").status_code == 200
    assert_problem(local_client.get(f"{path}/files/{ids['tool']}/content"), 404)
    listed = local_client.get("/api/v1/shares", headers=alice.headers).json()["items"]
    assert listed[0]["kind"] == "file"


def test_bad_items_are_refused_in_plain_words(local_client, local_app, alice, bob):
    ids = a_release(local_client, local_app, alice)
    bobs = put(local_client, bob, "bob.txt", b"bob")

    def refused(items, status):
        made = local_client.post("/api/v1/shares", headers=alice.headers, json={"items": items})
        return assert_problem(made, status)["detail"]

    assert "There is no file" in refused([{"kind": "file", "id": bobs}], 404)
    assert "There is no folder" in refused([{"kind": "folder", "id": str(uuid.uuid4())}], 404)
    twice = [{"kind": "file", "id": ids["README"]}] * 2
    assert refused(twice, 400) == f"The file {ids['README']} is given twice."
    refused([], 400)
    refused([{"kind": "link", "id": ids["README"]}], 400)
    refused([{"kind": "file", "id": str(uuid.uuid4())}] * 1001, 400)
    made = local_client.post(
        "/api/v1/shares",
        headers=alice.headers,
        json={"items": [{"kind": "folder", "id": ids["release"]}], "expires_in_days": 1000},
    )
    assert "A link lasts 1 to" in assert_problem(made, 400)["detail"]


# --- what a stranger can reach -------------------------------------------------------------


def test_a_stranger_reaches_only_what_the_link_holds(local_client, local_app, alice, bob):
    ids = a_release(local_client, local_app, alice)
    outside = put(local_client, alice, "private.txt", b"secret")
    bobs = put(local_client, bob, "bob.txt", b"bob's")
    run_jobs(local_app)
    path = path_of(link(local_client, alice, ("folder", ids["bin"])))
    assert local_client.get(f"{path}/files/{ids['tool']}/content").status_code == 200
    for other in (outside, bobs, ids["README"], ids["notes.log"], str(uuid.uuid4())):
        answer = local_client.get(f"{path}/files/{other}/content")
        assert_problem(answer, 404)
        assert local_client.head(f"{path}/files/{other}/content").status_code == 404
    for trick in (
        f"{path}/files/..%2F..%2Fapi%2Fv1%2Ffiles%2F{outside}/content",
        f"{path}/files/{outside}%00/content",
        f"{path}/files/{ids['tool']}/../{outside}/content",
        f"{path}/files/{outside.upper()}x/content",
    ):
        answer = local_client.get(trick)
        assert answer.status_code in (400, 404), (trick, answer.status_code)
        assert b"secret" not in answer.content
    # A file moved out of the shared folder is out of the link at once.
    moved = local_client.patch(
        f"/api/v1/files/{ids['tool']}", headers=alice.headers, json={"folder_id": None}
    )
    assert moved.status_code == 200, moved.text
    assert_problem(local_client.get(f"{path}/files/{ids['tool']}/content"), 404)
    # Another link's token with this file id: still its own link's files only.
    other_path = path_of(link(local_client, bob, ("file", bobs)))
    assert_problem(local_client.get(f"{other_path}/files/{outside}/content"), 404)


def test_password_expiry_and_revocation_hold_for_every_route(local_client, local_app, alice):
    ids = a_release(local_client, local_app, alice)
    share = link(local_client, alice, ("folder", ids["release"]), password="open sesame")
    path = path_of(share)
    routes = [path, path + "/archive", f"{path}/files/{ids['tool']}/content", path + "/content"]
    for route in routes:
        assert_problem(local_client.get(route), 401)
        good = local_client.get(route, headers={"X-Share-Password": "open sesame"})
        assert good.status_code == 200, (route, good.text)
        assert good.headers["Cache-Control"] == "private, no-store"
    # The page's form gives a grant for Download all.
    granted = local_client.post(path + "/grants", headers={"X-Share-Password": "open sesame"})
    assert granted.status_code == 201, granted.text
    grant_path = granted.json()["url"].split("testserver", 1)[1]
    via_grant = local_client.get(grant_path)
    assert via_grant.status_code == 200
    assert (
        via_grant.content
        == local_client.get(path + "/archive", headers={"X-Share-Password": "open sesame"}).content
    )
    revoked = local_client.delete(f"/api/v1/shares/{share['id']}", headers=alice.headers)
    assert revoked.status_code == 204
    for route in routes:
        assert assert_problem(local_client.get(route), 410)["reason"] == "revoked"
    assert_problem(local_client.get(grant_path), 410)


def test_the_page_lists_files_with_their_downloads(local_client, local_app, alice):
    ids = a_release(local_client, local_app, alice)
    evil = put(local_client, alice, "<img src=x onerror=alert(1)>.txt", b"x", ids["release"])
    path = path_of(link(local_client, alice, ("folder", ids["release"])))
    page = local_client.get(path, headers=BROWSER)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    token = path.rsplit("/", 1)[1]
    assert f'href="{token}/archive"' in page.text and "Download all" in page.text
    assert f'href="{token}/files/{ids["tool"]}/content"' in page.text
    assert "release/bin/tool" in page.text and "Folder" in page.text
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text
    assert f"{token}/files/{evil}/content" not in page.text  # not ready: no download yet
    assert "<script" not in page.text.lower()


# --- originals -----------------------------------------------------------------------------


def test_a_link_serving_originals_stores_them_in_the_archive(
    local_client, local_app, alice, tmp_path
):
    ids = a_release(local_client, local_app, alice)
    path = path_of(link(local_client, alice, ("folder", ids["release"]), serves="original"))
    got = local_client.get(path + "/archive")
    assert got.status_code == 200
    assert unzipped(got.content, tmp_path) == RELEASE
    with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    # A range from the middle of a deflated file's data: inflated from its seek point.
    size = len(got.content)
    start = got.content.index(NOTES[:64])
    part = local_client.get(path + "/archive", headers={"Range": f"bytes={start + 5000}-"})
    assert part.status_code == 206 and part.content == got.content[start + 5000 :]
    assert len(got.content) == size
    one = local_client.get(f"{path}/files/{ids['notes.log']}/content")
    assert one.content == NOTES


# --- what the worker records, and rows from before ------------------------------------------


def test_the_worker_records_where_each_entry_lies(local_client, local_app, alice, tmp_path):
    ids = a_release(local_client, local_app, alice)
    rt = runtime(local_app)
    with rt.sessions() as session:
        for name in ("notes.log", "tool", "README"):
            file = session.get(File, uuid.UUID(ids[name]))
            assert file is not None and file.entry_offset is not None
            with rt.storage.open(file.archive_key) as raw:
                with zipfile.ZipFile(raw) as stored:
                    (info,) = stored.infolist()
                raw.seek(info.header_offset + 26)
                lengths = raw.read(4)
            name_length, extra_length = struct.unpack("<HH", lengths)
            assert file.entry_compressed_size == info.compress_size
            assert file.entry_offset == info.header_offset + 30 + name_length + extra_length


def test_files_from_before_are_located_once_and_give_the_same_archive(
    local_client, local_app, alice, tmp_path
):
    ids = a_release(local_client, local_app, alice)
    path = path_of(link(local_client, alice, ("folder", ids["release"])))
    expected = local_client.get(path + "/archive").content
    rt = runtime(local_app)
    file_ids = [uuid.UUID(ids[n]) for n in ("notes.log", "tool", "README")]
    with rt.sessions() as session:
        recorded = {
            row.id: (row.entry_offset, row.entry_compressed_size, row.version)
            for row in session.execute(select(File).where(File.id.in_(file_ids))).scalars()
        }
        session.execute(
            update(File)
            .where(File.id.in_(file_ids))
            .values(entry_offset=None, entry_compressed_size=None, updated_at=File.updated_at)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    assert local_client.get(path + "/archive").content == expected
    with rt.sessions() as session:
        again = {
            row.id: (row.entry_offset, row.entry_compressed_size, row.version)
            for row in session.execute(select(File).where(File.id.in_(file_ids))).scalars()
        }
    assert again == recorded  # found again, recorded, and no version (ETag) moved


# --- counting ------------------------------------------------------------------------------


def test_one_download_all_or_one_file_is_one_download(local_client, local_app, alice):
    ids = a_release(local_client, local_app, alice)
    path = path_of(link(local_client, alice, ("folder", ids["release"]), max_downloads=3))
    first = local_client.get(path + "/archive")
    assert first.status_code == 200
    # Its resume (the ticket in If-Range) is not counted again.
    size = len(first.content)
    resumed = local_client.get(
        path + "/archive",
        headers={"Range": f"bytes={size // 2}-", "If-Range": first.headers["ETag"]},
    )
    assert resumed.status_code == 206 and resumed.content == first.content[size // 2 :]
    assert local_client.get(f"{path}/files/{ids['tool']}/content").status_code == 200
    assert local_client.head(path + "/archive").status_code == 200  # a HEAD never counts
    assert local_client.get(path).json()["downloads_left"] == 1
    assert local_client.get(path + "/archive").status_code == 200
    assert assert_problem(local_client.get(path + "/archive"), 410)["reason"] == "exhausted"
    assert_problem(local_client.get(f"{path}/files/{ids['tool']}/content"), 410)
    owner_view = local_client.get("/api/v1/shares", headers=alice.headers).json()["items"][0]
    assert owner_view["downloads"] == 3 and owner_view["state"] == "exhausted"


def test_the_limit_is_exact_under_concurrency(live):
    owner = live.account()
    ids = a_release(live.http, live.app, owner)
    path = path_of(link(live.http, owner, ("folder", ids["release"]), max_downloads=4))
    routes = [path + "/archive", f"{path}/files/{ids['tool']}/content"]

    def fetch(n):
        with httpx.Client(base_url=live.url, timeout=60) as http:
            return http.get(routes[n % 2]).status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = sorted(pool.map(fetch, range(40)))
    assert statuses == [200] * 4 + [410] * 36
    listed = live.http.get("/api/v1/shares", headers=owner.headers).json()["items"][0]
    assert listed["downloads"] == 4


@pytest.mark.parametrize("serves", ["zip", "original"])
def test_a_selection_changing_while_it_is_downloaded(live, tmp_path, serves):
    # A download cut at half; the selection changes; the resume with the old If-Range gets
    # the whole new archive, which unzips to the new contents.
    owner = live.account()
    ids = a_release(live.http, live.app, owner)
    path = path_of(link(live.http, owner, ("folder", ids["release"]), serves=serves))
    url = path + "/archive"
    with live.http.stream("GET", url) as first:
        etag, size = first.headers["ETag"], int(first.headers["Content-Length"])
        got = b""
        for chunk in first.iter_bytes():
            got += chunk
            if len(got) >= size // 2:
                break
    put(live.http, owner, "added.txt", b"added while downloading", ids["release"])
    run_jobs(live.app)
    resumed = live.http.get(url, headers={"Range": f"bytes={len(got)}-", "If-Range": etag})
    assert resumed.status_code == 200 and resumed.headers["ETag"] != etag
    assert unzipped(resumed.content, tmp_path)["release/added.txt"] == b"added while downloading"


def test_a_browser_unlocks_a_folder_link_and_downloads_it_all(local_client, local_app, alice):
    ids = a_release(local_client, local_app, alice)
    path = path_of(link(local_client, alice, ("folder", ids["release"]), password="open sesame"))
    locked = local_client.get(path, headers=BROWSER)
    assert locked.status_code == 401
    assert "A folder shared with a password" in locked.text and "all as one ZIP" in locked.text
    assert "release" not in locked.text  # nothing of what it holds before the password
    posted = local_client.post(
        path + "/grants", data={"password": "open sesame"}, headers=BROWSER,
        follow_redirects=False,
    )  # fmt: skip
    grant = started_download(posted).removeprefix("../..")
    # The card of what it holds, now that the password was right.
    assert '<h1 id="heading" class="name">release</h1>' in posted.text
    assert "3 files" in posted.text
    got = local_client.get(grant)
    assert got.status_code == 200 and got.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
        assert archive.read("release/bin/tool") == TOOL


def test_entries_say_which_files_and_folders_a_working_link_shares(local_client, local_app, alice):
    def marks(folder_id=None) -> dict[str, bool]:
        params = {"folder_id": folder_id} if folder_id else {}
        page = local_client.get("/api/v1/entries", params=params, headers=alice.headers)
        assert page.status_code == 200, page.text
        return {item["name"]: item["shared"] for item in page.json()["items"]}

    trip = folder(local_client, alice, "trip")
    put(local_client, alice, "inside.txt", README, trip)
    alone = put(local_client, alice, "alone.txt", README)
    picked = put(local_client, alice, "picked.txt", README)
    put(local_client, alice, "plain.txt", README)
    assert marks() == dict.fromkeys(["trip", "alone.txt", "picked.txt", "plain.txt"], False)

    one = local_client.post(f"/api/v1/files/{alone}/shares", headers=alice.headers, json={})
    assert one.status_code == 201, one.text
    link(local_client, alice, ("folder", trip))
    link(local_client, alice, ("file", picked), expires_in_hours=1)
    assert marks() == {"trip": True, "alone.txt": True, "picked.txt": True, "plain.txt": False}
    assert marks(trip) == {"inside.txt": False}  # the folder carries the mark

    # A revoked link, or one used up, marks nothing.
    revoked = local_client.delete(f"/api/v1/shares/{one.json()['id']}", headers=alice.headers)
    assert revoked.status_code == 204
    assert marks()["alone.txt"] is False
    used = link(local_client, alice, ("file", alone), max_downloads=1)
    assert marks()["alone.txt"] is True
    run_jobs(local_app)
    route = "content" if used["kind"] == "file" else "archive"
    assert local_client.get(f"{path_of(used)}/{route}").status_code == 200
    assert marks()["alone.txt"] is False
