"""`instashare share/shares/unshare` and `get URL` against a live server and worker."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import zipfile
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from app.services.sizes import iec
from instashare_cli.config import DownloadState
from tests.client.support import Cli, one_error_line

TEXT = b"".join(b"line %d of a shared log\n" % i for i in range(20_000))
LINK_PASSWORD = "open sesame 42"


@pytest.fixture
def database(live_server) -> Iterator[sa.Engine]:
    """The live server's database, to move a link's clock or a file's state as time would."""
    engine = sa.create_engine(live_server.database_url)
    yield engine
    engine.dispose()


def _uploaded(user: Cli, name: str = "log.txt", content: bytes = TEXT) -> dict:
    (user.cwd / name).write_bytes(content)
    user.ok("upload", name, "--wait")
    [file] = [f for f in user.files() if f["name"] == name]
    return file


def _share(user: Cli, *args: str, **kwargs) -> str:
    made = user.ok("share", *args, **kwargs)
    [url] = made.stdout.splitlines()  # the URL, and nothing else, for scripts
    return url


def _links(user: Cli, *args: str) -> list[dict]:
    return json.loads(user.ok("shares", "--json", *args).stdout)


def test_share_list_download_as_a_stranger_and_unshare(user, stranger, live_server):
    _uploaded(user)
    made = user.ok("share", "log.txt", "--expires", "2d")
    url = made.stdout.strip()
    assert url.startswith(f"{live_server.url}/s/")
    [link] = _links(user)
    assert made.stderr.strip().startswith(f"link {link['id']} to log.txt (as a ZIP): expires ")
    assert link["url"] == url and link["file_name"] == "log.txt"
    expires = dt.datetime.fromisoformat(link["expires_at"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=2) - expires < dt.timedelta(minutes=1)
    assert "1 active share link" in user.ok("whoami").stdout

    got = stranger.ok("get", url)  # no account, no login
    assert got.stdout.strip().startswith("saved log.txt.zip (")
    with zipfile.ZipFile(stranger.cwd / "log.txt.zip") as archive:
        assert archive.read("log.txt") == TEXT
    assert not list(stranger.cwd.glob("*.part*"))

    table = user.ok("shares").stdout.splitlines()
    assert table[0].split() == [
        "ID", "FILE", "URL", "CREATED", "EXPIRES", "DOWNLOADS", "LAST", "DOWNLOAD", "PASSWORD",
        "STATE",
    ]  # fmt: skip
    row = table[1].split()
    assert row[:3] == [link["id"], "log.txt", url]
    assert row[-2:] == ["no", "active"]
    assert "1" in row[3:-2]  # one download, no limit

    assert user.ok("unshare", link["id"]).stdout.strip() == f"revoked link {link['id']}"
    gone = stranger.run("get", url, "--force")
    assert gone.returncode == 4
    assert one_error_line(gone) == "instashare: error: The owner revoked this link."
    assert "0 active share links" in user.ok("whoami").stdout
    assert _links(user)[0]["state"] == "revoked"


def test_the_links_of_one_file_and_unshare_by_url(user):
    _uploaded(user, "a.txt", b"first")
    _uploaded(user, "b.txt", b"second")
    of_a = [_share(user, "a.txt") for _ in range(2)]
    of_b = _share(user, "b.txt", "--expires", "12h", "--original")
    assert [link["url"] for link in _links(user, "a.txt")] == of_a[::-1]
    assert [link["url"] for link in _links(user)] == [of_b, *of_a[::-1]]
    [b_link] = _links(user, "b.txt")
    assert b_link["serves"] == "original"
    expires = dt.datetime.fromisoformat(b_link["expires_at"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=12) - expires < dt.timedelta(minutes=1)

    user.ok("unshare", of_a[0])
    assert [link["state"] for link in _links(user, "a.txt")] == ["active", "revoked"]
    assert user.ok("shares", "b.txt").stdout.count("\n") == 2  # the header and one link
    (user.cwd / "c.txt").write_bytes(b"third")
    user.ok("upload", "c.txt", "--wait")
    assert user.ok("shares", "c.txt").stdout.strip() == "no share links for c.txt"


def test_a_password_link_asks_for_it_and_never_shows_it(user, stranger):
    _uploaded(user)
    typed = f"{LINK_PASSWORD}\n{LINK_PASSWORD}\n"
    made = user.ok("share", "log.txt", "--password", "--original", "--max-downloads", "2",
                   input=typed)  # fmt: skip
    url = made.stdout.strip()
    assert made.stderr.rstrip().endswith(", 2 downloads, password")
    assert LINK_PASSWORD not in made.stdout + made.stderr

    wrong = stranger.run("get", url, input="not the password\n")
    assert wrong.returncode == 3
    assert one_error_line_after_prompt(wrong) == "instashare: error: The link's password is wrong."
    got = stranger.ok("get", url, input=f"{LINK_PASSWORD}\n")
    assert LINK_PASSWORD not in got.stdout + got.stderr
    assert (stranger.cwd / "log.txt").read_bytes() == TEXT  # the original, as shared
    # A script gives it in the environment.
    stranger.ok("get", url, "-o", "again.txt", INSTASHARE_SHARE_PASSWORD=LINK_PASSWORD)
    assert (stranger.cwd / "again.txt").read_bytes() == TEXT

    [link] = _links(user)
    assert (link["downloads"], link["max_downloads"], link["has_password"]) == (2, 2, True)
    assert link["state"] == "exhausted"
    row = user.ok("shares").stdout.splitlines()[1].split()
    assert "2/2" in row and row[-2:] == ["yes", "exhausted"]
    done = stranger.run("get", url, "-o", "third.txt", INSTASHARE_SHARE_PASSWORD=LINK_PASSWORD)
    assert done.returncode == 4
    assert one_error_line(done) == "instashare: error: This link has reached its download limit."


def one_error_line_after_prompt(result) -> str:
    """The error line of a run that prompted first (the prompt goes to stderr too)."""
    assert "Traceback" not in result.stderr, result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("instashare:")]
    return line


def test_a_script_gives_the_password_in_the_environment(user, stranger):
    _uploaded(user)
    url = _share(user, "log.txt", "--password", INSTASHARE_SHARE_PASSWORD=LINK_PASSWORD)
    meta = httpx.get(url, headers={"X-Share-Password": LINK_PASSWORD, "Accept": "application/json"})
    assert meta.status_code == 200 and meta.json()["has_password"] is True
    assert httpx.get(url, headers={"Accept": "application/json"}).status_code == 401
    stranger.ok("get", url, INSTASHARE_SHARE_PASSWORD=LINK_PASSWORD)
    assert (stranger.cwd / "log.txt.zip").exists()


def test_too_many_wrong_passwords_say_when_to_try_again(user, stranger):
    _uploaded(user)
    url = _share(user, "log.txt", "--password", INSTASHARE_SHARE_PASSWORD=LINK_PASSWORD)
    for _ in range(5):
        assert stranger.run("get", url, INSTASHARE_SHARE_PASSWORD="a wrong one").returncode == 3
    throttled = stranger.run("get", url, INSTASHARE_SHARE_PASSWORD=LINK_PASSWORD)
    assert throttled.returncode == 1
    line = one_error_line(throttled)
    assert line.startswith("instashare: error: Too many wrong passwords")
    assert line.endswith(" s)") and "(try again in " in line


def test_unknown_expired_and_failed_links_exit_with_one_line(user, stranger, database):
    file = _uploaded(user)
    url = _share(user, "log.txt")
    unknown = stranger.run("get", url[:-4] + "AAAA")
    assert unknown.returncode == 4
    assert one_error_line(unknown) == "instashare: error: There is no such link."

    [link] = _links(user)
    with database.begin() as conn:
        conn.execute(
            sa.text("UPDATE shares SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": link["id"]},
        )
    expired = stranger.run("get", url)
    assert expired.returncode == 4
    assert one_error_line(expired) == "instashare: error: This link has expired."
    assert "0 active share links" in user.ok("whoami").stdout

    url = _share(user, "log.txt")
    with database.begin() as conn:  # as a job that gave up would leave it
        conn.execute(
            sa.text("UPDATE files SET status = 'failed', error = 'broken' WHERE id = :id"),
            {"id": file["id"]},
        )
    failed = stranger.run("get", url)
    assert failed.returncode == 1
    assert one_error_line(failed).startswith("instashare: error: ")
    assert not (stranger.cwd / "log.txt.zip").exists()


def test_bad_options_are_usage_errors(user, stranger):
    _uploaded(user)
    for expires in ("3", "7x", "0d", "-1d"):
        bad = user.run("share", "log.txt", "--expires", expires)
        assert bad.returncode == 2, (expires, bad.stderr)
    too_long = user.run("share", "log.txt", "--expires", "100d")
    assert too_long.returncode == 1
    assert "1 to 90 days" in one_error_line(too_long)
    url = _share(user, "log.txt")
    assert stranger.run("get", url, "--original").returncode == 2
    assert user.run("unshare", "not-a-link").returncode == 2
    assert _links(user)[0]["state"] == "active"


def _head_etag(url: str) -> str:
    response = httpx.head(url + "/content")
    assert response.status_code == 200
    return response.headers["ETag"]


def test_a_partial_download_through_a_link_resumes_with_a_range(user, stranger, live_server):
    data = os.urandom(700_000)
    _uploaded(user, "data.bin", data)
    url = _share(user, "data.bin", "--original")
    token = url.rsplit("/", 1)[1]

    (stranger.cwd / "out.bin.part").write_bytes(data[:250_000])
    (stranger.cwd / "out.bin.part.etag").write_text(_head_etag(url))
    before = len(live_server.access_log())  # the server's log is the module's
    result = stranger.ok("get", url, "-o", "out.bin")
    assert "resuming out.bin at 244 KiB of 684 KiB" in result.stderr
    assert (stranger.cwd / "out.bin").read_bytes() == data
    # The access log keeps the link's path, not its token (a credential).
    [ranged] = [
        e
        for e in live_server.access_log()[before:]
        if e["method"] == "GET" and e["path"] == "/s/…/content"
    ]
    assert not any(token in e["path"] for e in live_server.access_log())
    assert (ranged["status"], ranged["bytes_out"]) == (206, 700_000 - 250_000)


def test_resuming_the_one_download_of_a_limited_link_does_not_count_again(user, stranger):
    data = os.urandom(700_000)
    _uploaded(user, "data.bin", data)
    url = _share(user, "data.bin", "--original", "--max-downloads", "1")
    # The one download starts, and is cut off after some bytes, where `get URL` keeps them.
    with httpx.stream("GET", url + "/content") as response:
        assert response.status_code == 200
        ticket = response.headers["ETag"]
        first = next(response.iter_bytes(100_000))
    (stranger.cwd / "data.bin.part").write_bytes(first)
    (stranger.cwd / "data.bin.part.etag").write_text(ticket)
    DownloadState(stranger.config_dir / "instashare").put(url, stranger.cwd / "data.bin")
    assert httpx.get(url, headers={"Accept": "application/json"}).status_code == 410

    result = stranger.ok("get", url)
    assert f"resuming data.bin at {iec(len(first))}" in result.stderr
    assert (stranger.cwd / "data.bin").read_bytes() == data
    [link] = _links(user)
    assert (link["downloads"], link["state"]) == (1, "exhausted")
    again = stranger.run("get", url, "-o", "again.bin")
    assert again.returncode == 4


def test_a_zip_link_saves_under_the_files_current_name(user, stranger):
    _uploaded(user)
    url = _share(user, "log.txt")
    user.ok("mv", "log.txt", "renamed.txt")
    (stranger.cwd / "out").mkdir()
    stranger.ok("get", url, "-o", "out")
    with zipfile.ZipFile(io.BytesIO((stranger.cwd / "out" / "renamed.txt.zip").read_bytes())) as z:
        assert z.read(z.namelist()[0]) == TEXT
    exists = stranger.run("get", url, "-o", "out")
    assert exists.returncode == 1
    assert one_error_line(exists).endswith("exists; use --force to overwrite it")


def test_links_to_a_folder_and_a_selection_are_listed_by_what_they_share(user, live_server):
    # Made over the API (the CLI's `share PATH...` is another change): `shares` lists them.
    auth = {"Authorization": f"Bearer {user.token()}"}
    file = _uploaded(user)
    with httpx.Client(base_url=f"{live_server.url}/api/v1", headers=auth, timeout=30) as http:
        folder = http.post("/folders", json={"name": "reports"}).json()
        for items in (
            [{"kind": "folder", "id": folder["id"]}],
            [{"kind": "folder", "id": folder["id"]}, {"kind": "file", "id": file["id"]}],
        ):
            assert http.post("/shares", json={"items": items}).status_code == 201
    selection, folder_link = _links(user)
    assert (selection["kind"], selection["file_name"]) == ("selection", "reports/, log.txt")
    assert (folder_link["kind"], folder_link["file_name"]) == ("folder", "reports/")
    table = user.ok("shares").stdout
    assert "reports/, log.txt" in table
