"""`instashare register/login/whoami/logout`, help and exit statuses, against a live server."""

from __future__ import annotations

import email as email_parser
import json
import stat
import subprocess
import sys
from email.policy import default
from pathlib import Path

import httpx
import pytest

from tests.client.support import Cli, error_line, one_error_line
from tests.helpers import PASSWORD, free_port, new_email, wait_until
from tests.mailbox import reset_link

COMMANDS = ["register", "login", "logout", "password", "reset-password", "whoami", "upload", "ls",
            "mv", "rm", "get"]  # fmt: skip


def test_login_after_register_goes_to_the_server_registered_on(cli):
    email = new_email()
    # --server alone (no INSTASHARE_URL): the next command, without it, must go there too.
    cli.ok("--server", cli.server, "register", input=f"{email}\n{PASSWORD}\n{PASSWORD}\n",
           INSTASHARE_URL="")  # fmt: skip
    logged_in = cli.ok("login", input=f"{email}\n{PASSWORD}\n", INSTASHARE_URL="")
    assert f"logged in to {cli.server} as {email}" in logged_in.stdout


def test_register_login_whoami_logout(cli):
    email = new_email()
    registered = cli.ok("register", input=f"{email}\n{PASSWORD}\n{PASSWORD}\n")
    assert f"registered {email}" in registered.stdout
    assert PASSWORD not in registered.stdout + registered.stderr

    logged_in = cli.ok("login", input=f"{email}\n{PASSWORD}\n")
    assert f"logged in to {cli.server} as {email}" in logged_in.stdout

    config_dir = cli.config_dir / "instashare"
    config = config_dir / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    saved = json.loads(config.read_text())
    assert saved["server"] == cli.server
    assert saved["logins"][cli.server]["email"] == email

    whoami = cli.ok("whoami")
    assert whoami.stdout.splitlines() == [
        f"{email} on {cli.server}",
        "0 files, 0 B stored (0.0% of your 100 GiB quota)",
        "0 active share links",
    ]

    assert cli.ok("logout").stdout.strip() == f"logged out {email} from {cli.server}"
    assert cli.server not in json.loads(config.read_text()).get("logins", {})
    after = cli.run("whoami")
    assert after.returncode == 3
    assert one_error_line(after) == (
        f"instashare: error: not logged in to {cli.server}; run: instashare login"
    )


def test_a_short_password_is_refused_saying_the_minimum_and_never_shown(cli):
    typed = "Secr3tPW"
    result = cli.run("register", input=f"{new_email()}\n{typed}\n{typed}\n")
    assert result.returncode == 1
    # Typed at the hidden prompt (stdin is not a terminal here, so getpass warns).
    assert error_line(result.stderr) == (
        "instashare: error: The password must be at least 10 characters long."
    )
    assert typed not in result.stdout + result.stderr


def test_logout_ends_the_session_on_the_server(user):
    token = user.token()
    assert user.ok("logout").stdout.strip() == f"logged out {user.email} from {user.server}"
    # Whoever kept a copy of the token cannot use it either.
    answer = httpx.get(
        f"{user.server}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 401


def test_logout_of_a_session_the_server_ended_still_forgets_it(user):
    token = user.token()
    httpx.post(
        f"{user.server}/api/v1/users/logout", headers={"Authorization": f"Bearer {token}"}
    ).raise_for_status()
    assert user.ok("logout").stdout.strip() == f"logged out {user.email} from {user.server}"
    assert user.run("whoami").returncode == 3


def test_logout_keeps_the_session_when_the_server_is_unreachable(user, offline_cli):
    result = user.run("--server", offline_cli.server, "logout")
    # Another server: not logged in there, nothing to do.
    assert result.stdout.strip() == f"not logged in to {offline_cli.server}"
    config = user.config_dir / "instashare" / "config.json"
    saved = json.loads(config.read_text())
    saved["logins"][offline_cli.server] = saved["logins"][user.server]
    config.write_text(json.dumps(saved))
    result = user.run("--server", offline_cli.server, "logout")
    assert result.returncode == 5
    assert one_error_line(result).endswith("still logged in: run instashare logout again")
    assert offline_cli.server in json.loads(config.read_text())["logins"]


def test_password_changes_it_and_ends_every_other_session(user, live_server, tmp_path):
    elsewhere = Cli(live_server.url, tmp_path / "elsewhere")
    elsewhere.ok("login", "--email", user.email, "--password", PASSWORD)
    new = "a brand new passphrase"
    changed = user.ok("password", input=f"{PASSWORD}\n{new}\n{new}\n")
    assert changed.stdout.strip() == (
        f"changed the password of {user.email} on {user.server}; every other session has ended"
    )
    assert PASSWORD not in changed.stdout + changed.stderr
    assert new not in changed.stdout + changed.stderr
    assert user.ok("whoami").stdout.startswith(f"{user.email} on ")  # this one goes on
    ended = elsewhere.run("whoami")
    assert ended.returncode == 3
    assert one_error_line(ended).endswith("(log in again: instashare login)")
    assert elsewhere.run("login", "--email", user.email, "--password", PASSWORD).returncode == 3
    elsewhere.ok("login", "--email", user.email, "--password", new)


def test_password_with_the_wrong_current_one_exits_3(user):
    result = user.run(
        "password", "--current-password", "not the password", "--new-password", "whatever 123"
    )
    assert result.returncode == 3
    assert one_error_line(result) == "instashare: error: The current password is wrong."
    user.ok("whoami")


def test_the_server_is_remembered_after_login(user):
    """Without --server or INSTASHARE_URL, the client talks to the server it logged in to."""
    env = user.env()
    del env["INSTASHARE_URL"]
    result = subprocess.run(
        user.args("whoami"), env=env, cwd=user.cwd, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{user.email} on {user.server}\n")


def test_a_wrong_password_exits_3(user):
    result = user.run("login", "--email", user.email, "--password", "not the password")
    assert result.returncode == 3
    assert one_error_line(result) == (
        "instashare: error: The e-mail address or the password is wrong."
    )


def test_an_invalid_token_exits_3_and_says_to_log_in(user):
    config = user.config_dir / "instashare" / "config.json"
    saved = json.loads(config.read_text())
    saved["logins"][user.server]["token"] = "not.a.token"
    config.write_text(json.dumps(saved))
    result = user.run("ls")
    assert result.returncode == 3
    assert one_error_line(result).endswith("(log in again: instashare login)")


def test_a_taken_email_exits_1_with_the_servers_detail(user):
    result = user.run("register", "--email", user.email, "--password", PASSWORD)
    assert result.returncode == 1
    assert one_error_line(result) == (
        "instashare: error: An account with this e-mail address already exists."
    )


@pytest.mark.slow  # the CLI
def test_a_server_that_is_down_exits_5_with_one_line(tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    cli = Cli(down, tmp_path)
    result = cli.run("login", "--email", new_email(), "--password", PASSWORD)
    assert result.returncode == 5
    assert one_error_line(result) == f"instashare: error: cannot reach {down}: connection refused"


def test_a_bad_server_url_is_a_usage_error(offline_cli):
    result = offline_cli.run("--server", "ftp://example.com", "whoami")
    assert result.returncode == 2
    assert "is not a server URL" in one_error_line(result)


def test_help_documents_exit_statuses_and_every_command_has_an_example(offline_cli):
    cli = offline_cli  # help never reaches a server
    top = cli.ok("--help").stdout
    for code in ("3  not logged in", "4  no such file", "5  the server failed"):
        assert code in top
    for command in COMMANDS:
        assert command in top
        text = cli.ok(command, "--help").stdout
        assert "Example" in text, command
        assert "instashare " in text.split("Example", 1)[1], command


@pytest.mark.slow  # the CLI
def test_the_console_script_is_installed():
    script = Path(sys.executable).with_name("instashare")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("instashare, version ")


@pytest.mark.parametrize("args", [["upload"], ["get"], ["ls", "--sort", "size"], ["frobnicate"]])
def test_usage_errors_exit_2(offline_cli, args):
    result = offline_cli.run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_register_with_an_invitation_link_uses_it_once(cli, stranger, live_server):
    import sqlalchemy as sa

    admin_email = new_email()
    with httpx.Client(base_url=f"{cli.server}/api/v1", timeout=30) as http:
        body = {"email": admin_email, "password": PASSWORD}
        assert http.post("/users/register", json=body).status_code == 201
        engine = sa.create_engine(live_server.database_url)
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE users SET role = 'admin' WHERE email = :e"), {"e": admin_email}
            )
        engine.dispose()
        token = http.post("/users/login", json=body).json()["access_token"]
        made = http.post(
            "/admin/invitations", headers={"Authorization": f"Bearer {token}"}, json={}
        ).json()
    email = new_email()
    registered = cli.ok(
        "register", "--invite", made["link"], input=f"{email}\n{PASSWORD}\n{PASSWORD}\n"
    )
    assert f"registered {email}" in registered.stdout
    again = stranger.run(
        "register", "--invite", made["token"], input=f"{new_email()}\n{PASSWORD}\n{PASSWORD}\n"
    )
    assert again.returncode != 0
    assert error_line(again.stderr) == (
        "instashare: error: This invitation has been used already; ask for a new one."
    )


def test_reset_password_asks_for_a_link_that_arrives_by_mail(cli, live_server):
    email = new_email()
    cli.ok("register", input=f"{email}\n{PASSWORD}\n{PASSWORD}\n")
    said = cli.ok("reset-password", email)
    assert said.stdout.strip() == (
        f"If an account exists for {email}, we have sent a link to it to set a new password. "
        "The link works for 30 minutes."
    )
    unknown = new_email()
    assert unknown in cli.ok("reset-password", unknown).stdout  # the same answer

    def arrived():
        for path in live_server.mail_dir.glob("*.eml"):
            message = email_parser.message_from_bytes(path.read_bytes(), policy=default)
            if message["To"] == email:
                return message
        return None

    message = wait_until(arrived, 60, what="the mail")
    link, token = reset_link(message)
    assert link == f"{cli.server}/#/reset/{token}"
    new = {"token": token, "new_password": "a brand new passphrase"}
    done = httpx.post(f"{cli.server}/api/v1/users/password-reset/confirm", json=new, timeout=30)
    assert done.status_code == 200, done.text
    assert f"as {email}" in cli.ok("login", input=f"{email}\na brand new passphrase\n").stdout
    assert not [
        p for p in live_server.mail_dir.glob("*.eml") if unknown in p.read_text(errors="replace")
    ]
