"""`instashare upload/ls/mv/get/rm` against a live server and worker."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile

import httpx

from app.services.sizes import iec
from instashare_cli.api import Api
from tests.client.support import one_error_line

TEXT = b"".join(b"line %d of a compressible log\n" % i for i in range(50_000))


def test_upload_wait_list_rename_download_delete(user):
    (user.cwd / "log.txt").write_bytes(TEXT)
    noise = os.urandom(300_000)
    (user.cwd / "noise.bin").write_bytes(noise)

    uploaded = user.ok("upload", "log.txt", "noise.bin", "--wait")
    lines = uploaded.stdout.splitlines()
    assert lines[0].startswith(f"uploaded log.txt ({iec(len(TEXT))}) as ")
    assert lines[1].startswith("uploaded noise.bin (293 KiB) as ")
    assert lines[2].startswith(f"log.txt is ready: {iec(len(TEXT))} → ")
    assert lines[3].startswith("noise.bin is ready: 293 KiB → ")
    assert "total" in uploaded.stderr  # the overall bar, beside one per file

    files = user.files()
    assert [f["name"] for f in files] == ["noise.bin", "log.txt"]  # newest first
    assert {f["status"] for f in files} == {"ready"}
    by_name = {f["name"]: f for f in files}
    assert by_name["log.txt"]["sha256"] == hashlib.sha256(TEXT).hexdigest()
    assert lines[0].endswith(by_name["log.txt"]["id"])

    table = user.ok("ls", "--sort", "name").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "SIZE", "COMPRESSED", "CREATED"]
    assert [row.split()[:2] for row in table[1:]] == [["log.txt", "ready"], ["noise.bin", "ready"]]
    compressed = by_name["log.txt"]["compressed_size"]
    assert compressed < len(TEXT)
    assert table[1].split()[2:6] == [*iec(len(TEXT)).split(), *iec(compressed).split()]
    assert user.ok("ls", "--status", "failed").stdout.strip() == "no files with status failed"

    renamed = user.ok("mv", "log.txt", "renamed log.txt")
    assert renamed.stdout.strip() == "renamed log.txt to renamed log.txt"
    assert {f["name"] for f in user.files()} == {"renamed log.txt", "noise.bin"}

    got = user.ok("get", "renamed log.txt")
    assert got.stdout.strip() == f"saved renamed log.txt.zip ({iec(compressed)})"
    with zipfile.ZipFile(user.cwd / "renamed log.txt.zip") as archive:
        [entry] = archive.namelist()  # named as the file was when it was compressed
        assert archive.read(entry) == TEXT
    user.ok("get", by_name["noise.bin"]["id"], "--original", "-o", "copy.bin")
    assert (user.cwd / "copy.bin").read_bytes() == noise
    (user.cwd / "out").mkdir()
    user.ok("get", "noise.bin", "-o", "out")
    with zipfile.ZipFile(user.cwd / "out" / "noise.bin.zip") as archive:
        assert archive.read("noise.bin") == noise

    again = user.run("get", "noise.bin", "--original", "-o", "copy.bin")
    assert again.returncode == 1
    assert (
        one_error_line(again) == "instashare: error: copy.bin exists; use --force to overwrite it"
    )
    user.ok("get", "noise.bin", "--original", "-o", "copy.bin", "--force")

    declined = user.run("rm", "noise.bin", input="n\n")
    assert declined.returncode == 1
    assert "Delete noise.bin (293 KiB)?" in declined.stderr
    assert user.ok("rm", "noise.bin", "--yes").stdout.strip() == "deleted noise.bin"
    assert [f["name"] for f in user.files()] == ["renamed log.txt"]

    whoami = user.ok("whoami").stdout.splitlines()
    assert whoami[1].startswith(f"1 file, {iec(len(TEXT))} stored (")


def test_upload_names_and_empty_files(user):
    (user.cwd / "a.txt").write_bytes(b"hello")
    (user.cwd / "empty").write_bytes(b"")
    user.ok("upload", "a.txt", "--name", "[b]old name.txt", "--wait")
    user.ok("upload", "empty", "--wait")
    files = {f["name"]: f for f in user.files()}
    assert files["[b]old name.txt"]["size"] == 5  # not read as Rich markup
    assert files["empty"]["size"] == 0
    assert files["empty"]["status"] == "ready"
    assert "[b]old name.txt" in user.ok("ls").stdout
    user.ok("get", "empty", "--original", "-o", "empty.copy")
    assert (user.cwd / "empty.copy").read_bytes() == b""
    two = user.run("upload", "a.txt", "empty", "--name", "x")
    assert two.returncode == 2
    assert "--name takes one file only" in two.stderr


def test_a_name_clash_is_reported_and_the_other_files_still_go_up(user):
    (user.cwd / "a.txt").write_bytes(b"first")
    user.ok("upload", "a.txt")
    (user.cwd / "b.txt").write_bytes(b"second")
    result = user.run("upload", "a.txt", "b.txt")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("instashare:")]
    assert errors == ["instashare: error: a.txt: You already have a file named 'a.txt'."]
    assert "uploaded b.txt" in result.stdout
    assert {f["name"] for f in user.files()} == {"a.txt", "b.txt"}

    clash = user.run("mv", "b.txt", "a.txt")
    assert clash.returncode == 1
    assert one_error_line(clash).startswith("instashare: error: ")
    assert "a.txt" in one_error_line(clash)


def test_a_taken_name_is_kept_both_or_replaced_on_request(user):
    (user.cwd / "a.txt").write_bytes(b"first")
    user.ok("upload", "a.txt")
    (user.cwd / "a.txt").write_bytes(b"second!")
    kept = user.ok("upload", "a.txt", "--keep-both")
    assert "named a (1).txt" in kept.stdout
    (user.cwd / "a.txt").write_bytes(b"third, longer")
    user.ok("upload", "a.txt", "--replace")
    assert sorted((f["name"], f["size"]) for f in user.files()) == [("a (1).txt", 7), ("a.txt", 13)]
    both = user.run("upload", "a.txt", "--replace", "--keep-both")
    assert both.returncode == 2
    assert "--keep-both and --replace cannot go together" in both.stderr


def test_ls_lists_unfinished_uploads_too(user):
    headers = {"Authorization": f"Bearer {user.token()}", "Tus-Resumable": "1.0.0"}
    with httpx.Client(base_url=user.server, headers=headers, timeout=30) as client:
        made = client.post(
            "/api/v1/uploads",
            headers={"Upload-Length": "3000000", "Upload-Metadata": "filename Y2FtZXJhLm1vdg=="},
        )
        assert made.status_code == 201, made.text
        sent = client.patch(
            made.headers["Location"],
            headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
            content=b"x" * 1_000_000,
        )
        assert sent.status_code == 204, sent.text
    listed = user.ok("ls").stdout
    line = next(line for line in listed.splitlines() if "camera.mov" in line)
    assert line.split()[:2] == ["camera.mov", "unfinished"]
    assert "977 KiB of 2.9 MiB" in line


def test_missing_files_exit_4(user):
    for args in (
        ["get", "nothing.txt"],
        ["rm", "nothing.txt", "--yes"],
        ["mv", "nothing.txt", "other.txt"],
        ["get", "00000000-0000-4000-8000-000000000000"],
    ):
        result = user.run(*args)
        assert result.returncode == 4, args
        assert one_error_line(result).startswith("instashare: error: you have no file ")
    assert one_error_line(user.run("get", "nothing.txt")) == (
        "instashare: error: you have no file or folder named 'nothing.txt'"
    )


def test_another_users_file_is_not_found(user, cli, tmp_path):
    (user.cwd / "mine.txt").write_bytes(b"secret")
    user.ok("upload", "mine.txt")
    file_id = user.files()[0]["id"]
    other = type(user)(user.server, tmp_path / "other").login()
    result = other.run("get", file_id, "--original")
    assert result.returncode == 4
    assert (
        one_error_line(result)
        == f"instashare: error: you have no file or folder with the id {file_id}"
    )


def test_ls_json_follows_every_page(user):
    for i in range(5):
        (user.cwd / f"f{i}.txt").write_bytes(b"x" * i)
    user.ok("upload", *[f"f{i}.txt" for i in range(5)])
    listed = json.loads(user.ok("ls", "--json", "--sort", "name").stdout)
    assert [f["name"] for f in listed] == [f"f{i}.txt" for i in range(5)]
    with Api(user.server, user.token()) as api:
        paged = list(api.files(sort="name", page_size=2))  # three pages
    assert [f["id"] for f in paged] == [f["id"] for f in listed]
    assert (
        json.loads(io.StringIO(user.ok("ls", "--json", "--status", "failed").stdout).read()) == []
    )


def test_names_in_either_spelling_are_one_and_disguises_are_refused(user):
    decomposed, composed = "cafe\u0301.txt", "caf\u00e9.txt"
    (user.cwd / decomposed).write_bytes(b"coffee")
    user.ok("upload", decomposed)
    assert [f["name"] for f in user.files()] == [composed]
    # Typed either way, it is the same file.
    assert user.ok("mv", decomposed, "menu.txt").stdout.strip() == f"renamed {composed} to menu.txt"

    (user.cwd / "invoice\u202efdp.exe").write_bytes(b"MZ")
    refused = user.run("upload", "invoice\u202efdp.exe")
    assert refused.returncode == 1
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in one_error_line(refused)
    assert [f["name"] for f in user.files()] == ["menu.txt"]


def test_ls_count_is_the_listing_total(user):
    for i in range(3):
        (user.cwd / f"c{i}.txt").write_bytes(b"c" * i)
    user.ok("upload", *[f"c{i}.txt" for i in range(3)])
    assert user.ok("ls", "--count").stdout.strip() == "3"
    assert user.ok("ls", "--count", "--status", "failed").stdout.strip() == "0"
    user.ok("rm", "c0.txt", "--yes")
    assert user.ok("ls", "--count").stdout.strip() == "2"
