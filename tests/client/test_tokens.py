"""API tokens from the command line: `instashare tokens`, and INSTASHARE_TOKEN in place of a
login, against a live server; a revocation seen at once by every process of another."""

from __future__ import annotations

import json
import os
import signal

import httpx

from tests.client.support import Cli, one_error_line
from tests.helpers import make_settings, start_server


def _make(user: Cli, *args: str) -> str:
    made = user.ok("tokens", "create", *args)
    token = made.stdout.strip()
    assert token.startswith("isk_") and len(token) == 47, made.stdout
    assert "shown this once" in made.stderr
    return token


def test_a_script_uploads_with_an_upload_token_and_nothing_more(user, stranger, tmp_path):
    token = _make(user, "nightly", "--scope", "upload", "--expires", "30d")
    report = stranger.cwd / "report.txt"
    report.write_text("figures\n")

    # No login in this home: the variable is the credential.
    stranger.ok("upload", "report.txt", INSTASHARE_TOKEN=token)
    assert [f["name"] for f in user.files()] == ["report.txt"]

    refused = stranger.run("ls", INSTASHARE_TOKEN=token)
    assert refused.returncode == 3
    assert one_error_line(refused) == (
        "instashare: error: This token may only upload files; this needs the read scope."
    )

    [listed] = json.loads(user.ok("tokens", "list", "--json").stdout)
    assert listed["name"] == "nightly" and listed["scopes"] == ["upload"]
    assert listed["last_used_at"] is not None and listed["expires_at"] is not None
    assert token not in user.ok("tokens", "list").stdout

    user.ok("tokens", "revoke", listed["id"])
    after = stranger.run("upload", "report.txt", INSTASHARE_TOKEN=token)
    assert after.returncode == 3
    assert one_error_line(after) == (
        "instashare: error: The access token is not valid. (the token in INSTASHARE_TOKEN)"
    )


def test_a_read_token_lists_and_whoami_says_whose_it_is(user, stranger):
    token = _make(user, "dashboard")  # read, the default
    whoami = stranger.ok("whoami", INSTASHARE_TOKEN=token)
    assert whoami.stdout.splitlines()[0] == f"{user.email} on {user.server}"
    assert stranger.ok("ls", INSTASHARE_TOKEN=token).stdout.strip() == "no files or folders"
    # It ends no login (there is none): it says what to do instead.
    out = stranger.run("logout", INSTASHARE_TOKEN=token)
    assert out.returncode == 2
    assert "unset the variable, or revoke the token" in one_error_line(out)


def test_a_token_name_taken_is_refused(user):
    _make(user, "ci")
    again = user.run("tokens", "create", "CI")
    assert again.returncode == 1
    assert one_error_line(again) == "instashare: error: You already have an API token named 'CI'."


def test_a_revocation_holds_at_once_on_every_process(live_server, user, tmp_path):
    """Revoked through one server process; the very next request to either process of a
    second server (two gunicorn workers, the same database) is refused. Each request comes
    on a connection of its own, so both workers take some of them."""
    token = _make(user, "everywhere")
    headers = {"Authorization": f"Bearer {token}"}
    settings = make_settings(tmp_path, live_server.database_url, broker_url="filesystem://")
    server, url = start_server(settings, workers=2)
    try:
        fresh = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=url, headers=headers, timeout=30, limits=fresh) as http:
            before = [http.get("/api/v1/users/me").status_code for _ in range(40)]
            assert before == [200] * 40
            [listed] = json.loads(user.ok("tokens", "list", "--json").stdout)
            user.ok("tokens", "revoke", listed["id"])
            refused = [http.get("/api/v1/users/me").status_code for _ in range(40)]
            assert refused == [401] * 40
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
