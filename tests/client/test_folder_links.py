"""`instashare share PATH...` for a folder or a selection, and `get URL` of such a link:
the ZIP of everything, resumed, or unpacked with --extract."""

from __future__ import annotations

import json
import os
import zipfile

import httpx
import sqlalchemy as sa

from app.services.sizes import iec
from instashare_cli.config import DownloadState
from tests.client.support import Cli, one_error_line
from tests.client.test_folders import BIG, TREE, write_tree

FILES = {k: v for k, v in TREE.items() if v is not None}


def _share(user: Cli, *args: str) -> tuple[str, str]:
    made = user.ok("share", *args)
    [url] = made.stdout.splitlines()  # the URL, and nothing else, for scripts
    return url, made.stderr.strip()


def test_a_folder_link_gives_everything_as_a_zip_or_unpacked(user, stranger, live_server):
    write_tree(user.cwd)
    user.ok("upload", "-r", "holiday", "--wait")
    url, said = _share(user, "holiday", "--expires", "2d")
    assert url.startswith(f"{live_server.url}/s/")
    assert " to the folder holiday/ (what it holds now and later): expires " in said

    got = stranger.ok("get", url)
    size = (stranger.cwd / "holiday.zip").stat().st_size
    assert got.stdout.strip() == f"saved holiday.zip ({iec(size)})"
    with zipfile.ZipFile(stranger.cwd / "holiday.zip") as archive:
        assert archive.testzip() is None
        assert {n: archive.read(n) for n in archive.namelist() if not n.endswith("/")} == FILES

    unpacked = stranger.ok("get", url, "--extract", "copy")
    total = sum(len(d) for d in FILES.values())
    assert unpacked.stdout.strip() == f"extracted 4 files ({iec(total)}) into copy"
    for relative, data in FILES.items():
        assert (stranger.cwd / "copy" / relative).read_bytes() == data
    assert not [p for p in (stranger.cwd / "copy").iterdir() if p.name.startswith(".")]

    [link] = json.loads(user.ok("shares", "--json").stdout)
    assert (link["kind"], link["file_name"], link["downloads"]) == ("folder", "holiday/", 2)
    assert "holiday/" in user.ok("shares", "holiday").stdout

    # Live: a file added later is in the next download.
    (user.cwd / "late.txt").write_bytes(b"late")
    user.ok("upload", "late.txt", "--to", "holiday", "--wait")
    stranger.ok("get", url, "--extract", "copy")
    assert (stranger.cwd / "copy" / "holiday" / "late.txt").read_bytes() == b"late"


def test_several_paths_make_one_selection_link(user, stranger):
    write_tree(user.cwd)
    user.ok("upload", "-r", "holiday", "--wait")
    url, said = _share(user, "holiday/a.txt", "holiday/2024", "--max-downloads", "5")
    assert " to 2 items (holiday/a.txt, holiday/2024/): expires " in said
    assert said.endswith(", 5 downloads")
    stranger.ok("get", url, "--extract", "sel")
    found = sorted(
        p.relative_to(stranger.cwd / "sel").as_posix()
        for p in (stranger.cwd / "sel").rglob("*")
        if p.is_file()
    )
    assert found == ["2024/b.txt", "2024/deep/big.bin", "a.txt"]
    assert (stranger.cwd / "sel" / "2024" / "deep" / "big.bin").read_bytes() == BIG
    [link] = json.loads(user.ok("shares", "--json").stdout)
    assert (link["kind"], link["file_name"]) == ("selection", "a.txt, 2024/")


def test_a_partial_download_all_resumes_with_a_range(user, stranger, live_server):
    write_tree(user.cwd)
    user.ok("upload", "-r", "holiday", "--wait")
    url, _ = _share(user, "holiday")
    with httpx.stream("GET", url + "/archive") as response:
        assert response.status_code == 200
        etag = response.headers["ETag"]
        whole = response.read()
    half = len(whole) // 2
    (stranger.cwd / "holiday.zip.part").write_bytes(whole[:half])
    (stranger.cwd / "holiday.zip.part.etag").write_text(etag)
    DownloadState(stranger.config_dir / "instashare").put(
        url, stranger.cwd / "holiday.zip", archive=True
    )
    before = len(live_server.access_log())
    result = stranger.ok("get", url)
    assert f"resuming holiday.zip at {iec(half)} of {iec(len(whole))}" in result.stderr
    assert (stranger.cwd / "holiday.zip").read_bytes() == whole
    # (The whole archive's GET above may be logged after `before` was taken.)
    [ranged] = [
        e
        for e in live_server.access_log()[before:]
        if e["method"] == "GET" and e["path"] == "/s/…/archive" and e["status"] != 200
    ]
    assert (ranged["status"], ranged["bytes_out"]) == (206, len(whole) - half)


def test_extract_is_for_multi_file_links(user, stranger):
    (user.cwd / "one.txt").write_bytes(b"one")
    user.ok("upload", "one.txt", "--wait")
    url, _ = _share(user, "one.txt")
    refused = stranger.run("get", url, "--extract", "out")
    assert refused.returncode == 2
    assert one_error_line(refused) == (
        "instashare: error: --extract is for a link to a folder or to several files"
    )
    both = stranger.run("get", url, "--extract", "out", "-o", "x.zip")
    assert both.returncode == 2
    root = user.run("share", "/")
    assert root.returncode == 2
    assert one_error_line(root) == "instashare: error: cannot share your root folder"


def test_files_not_ready_are_said_to_be_left_out(user, stranger, live_server):
    write_tree(user.cwd)
    user.ok("upload", "-r", "holiday", "--wait")
    url, _ = _share(user, "holiday")
    engine = sa.create_engine(live_server.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE files SET status = 'processing' WHERE name = 'b.txt'"))
        got = stranger.ok("get", url, "-o", "part.zip")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE files SET status = 'ready' WHERE name = 'b.txt'"))
        engine.dispose()
    assert "1 file of this link is not ready yet and not in the ZIP" in got.stderr
    with zipfile.ZipFile(stranger.cwd / "part.zip") as archive:
        assert "holiday/2024/b.txt" not in archive.namelist()
    assert os.path.getsize(stranger.cwd / "part.zip") > 0
