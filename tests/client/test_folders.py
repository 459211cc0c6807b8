"""`instashare mkdir/ls/mv/rm` on folders, and `upload -r`, against a live server and worker."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from app.services.sizes import iec
from instashare_cli import remote
from instashare_cli.api import Api
from tests.client.support import Cli, one_error_line

BIG = os.urandom(300_000)  # over one block: created first, then sent in PATCHes
TREE: dict[str, bytes | None] = {
    "holiday/a.txt": b"a" * 2500,
    "holiday/2024/b.txt": b"bee",
    "holiday/2024/deep/big.bin": BIG,
    "holiday/x/y/empty.txt": b"",
    "holiday/nothing/": None,  # an empty directory
}


def write_tree(root: Path, tree: dict[str, bytes | None] = TREE) -> None:
    for relative, data in tree.items():
        path = root / relative
        if data is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def rows(result) -> list[list[str]]:
    """A table's rows (the header left out), each split on spaces."""
    return [line.split() for line in result.stdout.splitlines()[1:]]


def test_mkdir_makes_the_path_and_ls_lists_folders_first(user):
    made = user.ok("mkdir", "photos/2024/summer")
    assert made.stdout.splitlines() == [
        "made photos/",
        "made photos/2024/",
        "made photos/2024/summer/",
    ]
    assert user.ok("mkdir", "photos/2024").stdout.strip() == "photos/2024/ is already there"
    user.ok("mkdir", "/photos/2023/")  # a leading or trailing slash changes nothing
    (user.cwd / "a.txt").write_bytes(b"x" * 2500)
    uploaded = user.ok("upload", "a.txt", "--to", "photos", "--wait")
    assert uploaded.stdout.splitlines()[0].startswith("uploaded a.txt (2.4 KiB) to photos/ as ")

    by_name = user.ok("ls", "photos", "--sort", "name")
    assert by_name.stdout.splitlines()[0].split() == [
        "NAME",
        "STATUS",
        "SIZE",
        "COMPRESSED",
        "CREATED",
    ]
    assert [r[0] for r in rows(by_name)] == ["2023/", "2024/", "a.txt"]
    assert rows(by_name)[2][1:4] == ["ready", "2.4", "KiB"]
    backwards = user.ok("ls", "photos", "--sort", "-name")
    assert [r[0] for r in rows(backwards)] == ["2024/", "2023/", "a.txt"]  # folders still first
    assert [r[0] for r in rows(user.ok("ls"))] == ["photos/"]
    listed = json.loads(user.ok("ls", "photos", "--json", "--sort", "name").stdout)
    assert [(e["kind"], e["name"]) for e in listed] == [
        ("folder", "2023"),
        ("folder", "2024"),
        ("file", "a.txt"),
    ]
    assert user.ok("ls", "photos", "--count").stdout.strip() == "3"
    assert user.ok("ls", "photos", "--count", "--status", "ready").stdout.strip() == "1"
    assert user.ok("ls", "--count", "--status", "ready").stdout.strip() == "0"  # the root's
    assert [r[0] for r in rows(user.ok("ls", "photos/a.txt"))] == ["a.txt"]
    assert user.ok("ls", "photos/2024/summer").stdout.strip() == (
        "no files or folders in photos/2024/summer/"
    )

    in_the_way = user.run("mkdir", "photos/a.txt/more")
    assert in_the_way.returncode == 1
    assert one_error_line(in_the_way) == "instashare: error: photos/a.txt is a file, not a folder"
    missing = user.run("ls", "photos/nothing")
    assert missing.returncode == 4
    assert one_error_line(missing) == (
        "instashare: error: you have no file or folder named 'photos/nothing'"
    )
    assert user.run("mkdir", "/").returncode == 2


def test_a_folder_by_its_id_and_a_file_by_its_path(user):
    user.ok("mkdir", "docs/old")
    [docs] = json.loads(user.ok("ls", "--json").stdout)
    [old] = json.loads(user.ok("ls", "docs", "--json").stdout)
    assert [r[0] for r in rows(user.ok("ls", docs["id"]))] == ["old/"]
    (user.cwd / "n.txt").write_bytes(b"notes")
    user.ok("upload", "n.txt", "--to", "docs/old")
    [file] = json.loads(user.ok("ls", old["id"], "--json").stdout)
    assert user.ok("mv", file["id"], "m.txt").stdout.strip() == "moved docs/old/n.txt to m.txt"
    user.ok("get", "m.txt", "--original", "-o", "back.txt")
    assert (user.cwd / "back.txt").read_bytes() == b"notes"


def test_upload_r_keeps_the_structure(user):
    write_tree(user.cwd)
    result = user.ok("upload", "-r", "holiday", "--wait")
    size = sum(len(d) for d in TREE.values() if d is not None)
    assert result.stdout.splitlines() == [
        f"uploaded 4 files ({iec(size)}) to /",
        "4 files ready",
    ]
    assert "4/4 files" in result.stderr  # the one bar, for all of them

    assert [r[0] for r in rows(user.ok("ls", "holiday", "--sort", "name"))] == [
        "2024/",
        "nothing/",
        "x/",
        "a.txt",
    ]
    assert [r[0] for r in rows(user.ok("ls", "holiday/x/y"))] == ["empty.txt"]
    user.ok("get", "holiday/2024/deep/big.bin", "--original", "-o", "big.bin")
    assert (user.cwd / "big.bin").read_bytes() == BIG
    files = list(Api(user.server, user.token()).files())
    assert sorted(f["name"] for f in files) == ["a.txt", "b.txt", "big.bin", "empty.txt"]
    assert {f["status"] for f in files} == {"ready"}
    assert not list((user.config_dir / "instashare" / "trees").iterdir())  # all up: forgotten

    # Again, into a folder made on the way: the same tree beside nothing else.
    again = user.ok("upload", "-r", "holiday", "--to", "backup/2024")
    assert again.stdout.strip() == f"uploaded 4 files ({iec(size)}) to backup/2024/"
    assert [r[0] for r in rows(user.ok("ls", "backup/2024"))] == ["holiday/"]
    assert user.ok("ls", "backup/2024/holiday/2024/deep", "--count").stdout.strip() == "1"


def test_a_directory_needs_r_and_a_clash_spares_the_others(user):
    write_tree(user.cwd)
    plain = user.run("upload", "holiday")
    assert plain.returncode == 2
    assert "holiday is a directory; upload -r uploads it with everything in it" in plain.stderr
    user.ok("mkdir", "holiday/2024/b.txt")  # a folder where a file of the tree goes
    clash = user.run("upload", "-r", "holiday")
    assert clash.returncode == 1
    errors = [line for line in clash.stderr.splitlines() if line.startswith("instashare:")]
    assert errors[0].startswith("instashare: error: holiday/2024/b.txt: ")
    assert errors[-1] == "instashare: error: 1 file not uploaded"
    # The size of what went up: the refused file's 3 bytes left out.
    assert clash.stdout.strip() == f"uploaded 3 files ({iec(2500 + len(BIG))}) to /"
    assert user.ok("ls", "holiday", "--count").stdout.strip() == "4"


def test_mv_renames_and_moves_files_and_folders(user):
    user.ok("mkdir", "a/b")
    user.ok("mkdir", "docs")
    (user.cwd / "n.txt").write_bytes(b"notes")
    user.ok("upload", "n.txt", "--to", "a")

    assert user.ok("mv", "a/n.txt", "docs").stdout.strip() == "moved a/n.txt to docs/n.txt"
    renamed = user.ok("mv", "docs/n.txt", "docs/m.txt")
    assert renamed.stdout.strip() == "renamed docs/n.txt to docs/m.txt"
    assert user.ok("mv", "a", "docs/a2").stdout.strip() == "moved a/ to docs/a2/"
    assert [r[0] for r in rows(user.ok("ls", "docs", "--sort", "name"))] == ["a2/", "m.txt"]
    assert [r[0] for r in rows(user.ok("ls", "docs/a2"))] == ["b/"]

    cycle = user.run("mv", "docs", "docs/a2/b")
    assert cycle.returncode == 1
    assert one_error_line(cycle) == (
        "instashare: error: A folder cannot be moved into itself or into a folder inside it."
    )
    assert user.ok("mv", "docs/m.txt", "/").stdout.strip() == "moved docs/m.txt to m.txt"
    (user.cwd / "m.txt").write_bytes(b"other")
    user.ok("upload", "m.txt", "--to", "docs")
    clash = user.run("mv", "m.txt", "docs/")  # a file of that name is there already
    assert clash.returncode == 1
    assert "m.txt" in one_error_line(clash)
    missing = user.run("mv", "nothing", "docs")
    assert missing.returncode == 4


def test_rm_of_a_folder_needs_r_and_frees_the_quota_at_once(user):
    write_tree(user.cwd)
    user.ok("upload", "-r", "holiday", "--wait")
    plain = user.run("rm", "holiday", "--yes")
    assert plain.returncode == 1
    assert one_error_line(plain) == (
        "instashare: error: holiday/ is a folder; to delete it and everything in it, "
        "use: instashare rm -r holiday"
    )
    declined = user.run("rm", "-r", "holiday", input="n\n")
    assert declined.returncode == 1
    assert "Delete the folder holiday/ and everything in it?" in declined.stderr
    assert user.ok("rm", "-r", "holiday", "--yes").stdout.strip() == "deleted holiday/"
    assert user.ok("ls").stdout.strip() == "no files or folders"
    assert user.ok("whoami").stdout.splitlines()[1].startswith("0 files, 0 B stored (")
    root = user.run("rm", "-r", "/", "--yes")
    assert root.returncode == 2
    assert one_error_line(root) == "instashare: error: cannot delete your root folder"


def test_files_in_folders_by_path_for_get_rm_and_share(user):
    (user.cwd / "r.txt").write_bytes(b"report")
    user.ok("upload", "r.txt", "--to", "work/2024", "--wait")
    user.ok("get", "work/2024/r.txt", "--original", "-o", "copy.txt")
    assert (user.cwd / "copy.txt").read_bytes() == b"report"
    folder = user.run("get", "work/2024", "--original")  # a folder comes as one ZIP only
    assert folder.returncode == 2
    assert "--original is for a file" in folder.stderr
    made = user.ok("share", "work/2024/r.txt")
    assert made.stderr.strip().split(": expires")[0].endswith("to work/2024/r.txt (as a ZIP)")
    assert user.ok("rm", "work/2024/r.txt", "--yes").stdout.strip() == "deleted work/2024/r.txt"
    assert user.ok("ls", "work/2024", "--count").stdout.strip() == "0"


def test_an_other_account_sees_none_of_it(user, cli, tmp_path):
    user.ok("mkdir", "private")
    [folder] = json.loads(user.ok("ls", "--json").stdout)
    other = Cli(user.server, tmp_path / "other").login()
    result = other.run("ls", folder["id"])
    assert result.returncode == 4
    assert one_error_line(result) == (
        f"instashare: error: you have no file or folder with the id {folder['id']}"
    )


def test_a_path_is_looked_up_by_name_not_by_paging_through_each_folder(user):
    user.ok("mkdir", "big/zz last")
    with Api(user.server, user.token()) as api:
        big = remote.find(api, "big")
        assert big is not None
        for i in range(150):  # two pages' worth before "zz last", in name order
            api.create_folder(f"f{i:03d}", big.id)
        listings: list[dict] = []
        send = api._send

        def counted(method: str, url: str, **kwargs):
            if url == "/entries":
                listings.append(kwargs.get("params", {}))
            return send(method, url, **kwargs)

        api._send = counted  # type: ignore[method-assign]
        found = remote.find(api, "big/zz last")
    assert found is not None and found.kind == "folder" and found.path == "big/zz last"
    assert [p.get("name") for p in listings] == ["big", "zz last"]  # one request a step
    assert user.ok("ls", "big", "--count").stdout.strip() == "151"


def test_get_a_folder_saves_it_as_one_zip_with_its_structure(user):
    write_tree(user.cwd)
    user.ok("upload", "-r", "holiday", "--wait")
    (user.cwd / "out").mkdir()
    saved = user.ok("get", "holiday", "-o", "out/")
    assert saved.stdout.strip().startswith(f"saved {Path('out') / 'holiday.zip'} (")
    with zipfile.ZipFile(user.cwd / "out" / "holiday.zip") as archive:
        assert archive.testzip() is None
        got = {i.filename: b"/" if i.is_dir() else archive.read(i) for i in archive.infolist()}
    expected = {
        "holiday/": b"/",
        "holiday/2024/": b"/",
        "holiday/2024/deep/": b"/",
        "holiday/x/": b"/",
        "holiday/x/y/": b"/",
        "holiday/nothing/": b"/",  # an empty folder is in it too
        **{path: data for path, data in TREE.items() if data is not None},
    }
    assert got == expected
    assert not list((user.cwd / "out").glob("*.part"))
    # The same again (into the same place): refused without --force, then the same bytes.
    refused = user.run("get", "holiday", "-o", "out/")
    assert refused.returncode != 0
    user.ok("get", "holiday", "-o", "out/again.zip")
    assert (user.cwd / "out" / "again.zip").read_bytes() == (
        user.cwd / "out" / "holiday.zip"
    ).read_bytes()
    assert "--original is for a file" in user.run("get", "holiday", "--original").stderr
