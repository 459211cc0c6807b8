"""The operator command, run as a real process."""

import contextlib
import email
import os
import signal
import socket
import subprocess
import sys
import time
from email.policy import default
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.server import dev_banner
from app.settings import Settings
from tests.helpers import (
    ROOT,
    Dev,
    free_port,
    make_settings,
    new_email,
    settings_env,
    start_server,
    wait_until,
)
from tests.mailbox import Mailbox, reset_link, self_signed

pytestmark = pytest.mark.slow  # every test here starts `instashare-server`


def run_cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "app.server", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_bad_setting_stops_with_one_line():
    env = {**os.environ, "INSTASHARE_MAX_UPLOAD_BYTES": "lots"}
    result = run_cli("serve", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "instashare-server: configuration error: INSTASHARE_MAX_UPLOAD_BYTES='lots' is invalid: "
        "invalid literal for int() with base 10: 'lots'"
    ]


def test_a_bad_compression_setting_stops_the_worker_with_one_line():
    env = {**os.environ, "INSTASHARE_COMPRESSION": "smallest"}
    result = run_cli("worker", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "instashare-server: configuration error: INSTASHARE_COMPRESSION='smallest' is invalid: "
        "must be one of fast, small"
    ]


def test_production_refuses_the_default_secret():
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env["INSTASHARE_ENV"] = "production"
    result = run_cli("worker", env=env)
    assert result.returncode == 2
    assert "INSTASHARE_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_prints_masked_settings_and_passes(local_settings):
    result = run_cli("check", env=settings_env(local_settings))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "INSTASHARE_SECRET_KEY=****" in lines
    assert {"database: ok", "broker: ok", "storage: ok", "redis: ok"} <= set(lines)
    assert "download signer: none (downloads stream through the API)" in lines
    # No mail is not a failure (files are served without it); it is said.
    assert lines[-1] == (
        "mail: not configured (set INSTASHARE_SMTP_HOST; until then password recovery answers 503)"
    )
    assert local_settings.secret_key not in result.stdout


def test_check_logs_in_to_the_smtp_server_as_the_worker_will(local_settings, tmp_path):
    certificate = self_signed(tmp_path)
    box = Mailbox(certificate=certificate, login=("mailer", "s3cret")).start()
    env = settings_env(local_settings) | {
        "INSTASHARE_SMTP_HOST": "127.0.0.1",
        "INSTASHARE_SMTP_PORT": str(box.port),
        "INSTASHARE_SMTP_USER": "mailer",
        "INSTASHARE_SMTP_PASSWORD": "s3cret",
        "INSTASHARE_MAIL_FROM": "noreply@example.com",
        "SSL_CERT_FILE": str(certificate[0]),  # the test server's certificate is trusted
    }
    try:
        passed = run_cli("check", env=env)
        failed = run_cli("check", env=env | {"INSTASHARE_SMTP_PASSWORD": "wrong"})
    finally:
        box.stop()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.splitlines()[-1] == (
        f"mail: ok (SMTP 127.0.0.1:{box.port} (starttls, as mailer))"
    )
    assert "INSTASHARE_SMTP_PASSWORD=****" in passed.stdout.splitlines()
    assert "s3cret" not in passed.stdout
    assert failed.returncode == 1
    assert failed.stdout.splitlines()[-1].startswith(
        f"mail: FAILED SMTP 127.0.0.1:{box.port} (starttls, as mailer): "
        "SMTPAuthenticationError: (535"
    )


def test_check_names_the_dependency_that_fails(local_settings):
    env = settings_env(local_settings)
    env["INSTASHARE_BROKER_URL"] = "redis://127.0.0.1:1/0"
    result = run_cli("check", env=env)
    assert result.returncode == 1
    assert any(line.startswith("broker: FAILED") for line in result.stdout.splitlines())
    assert "database: ok" in result.stdout.splitlines()


def test_check_reads_the_single_sign_on_providers_discovery(local_settings, openid_provider):
    from tests.helpers import free_port

    env = settings_env(local_settings)
    env.update(
        INSTASHARE_OIDC_ISSUER=openid_provider.url,
        INSTASHARE_OIDC_CLIENT_ID="instashare",
        INSTASHARE_OIDC_CLIENT_SECRET="not-a-secret",
    )
    result = run_cli("check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "openid provider: ok" in result.stdout.splitlines()
    assert "INSTASHARE_OIDC_CLIENT_SECRET=****" in result.stdout.splitlines()
    env["INSTASHARE_OIDC_ISSUER"] = f"http://127.0.0.1:{free_port()}"
    result = run_cli("check", env=env)
    assert result.returncode == 1
    assert any(line.startswith("openid provider: FAILED") for line in result.stdout.splitlines())


def test_migrate_is_safe_to_repeat(local_settings):
    env = settings_env(local_settings)
    for _ in range(2):
        result = run_cli("migrate", env=env)
        assert result.returncode == 0, result.stderr
        assert "newest schema" in result.stdout


def test_recount_reports_drifted_usage_counters_and_repairs_them(tmp_path):
    url = f"sqlite:///{tmp_path}/usage.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env.update(INSTASHARE_DATABASE_URL=url, INSTASHARE_DATA_DIR=str(tmp_path))
    assert run_cli("migrate", env=env).returncode == 0
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        # One file of 40 bytes, counted as none.
        conn.execute(
            sa.text(
                "INSERT INTO users (id, email, password_hash, created_at, updated_at) "
                "VALUES ('00000000000000000000000000000001', 'a@example.com', '-', "
                "'2026-12-01 00:00:00+00:00', '2026-12-01 00:00:00+00:00')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO files (id, owner_id, name, status, size, crc32, content_type, "
                "attempts, created_at, updated_at, version) VALUES "
                "('00000000000000000000000000000002', '00000000000000000000000000000001', "
                "'a.txt', 'pending', 40, 0, 'text/plain', 0, '2026-12-01 00:00:00+00:00', "
                "'2026-12-01 00:00:00+00:00', 1)"
            )
        )
    engine.dispose()

    drifted = run_cli("recount", env=env)
    assert drifted.returncode == 1, drifted.stderr
    assert drifted.stdout.splitlines() == [
        "00000000-0000-0000-0000-000000000001: counted 0 files, 0 bytes stored, 0 reserved; "
        "the rows say 1, 40, 0"
    ]
    repaired = run_cli("recount", "--repair", env=env)
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stdout.strip().endswith("(repaired)")
    again = run_cli("recount", env=env)
    assert again.returncode == 0
    assert again.stdout.strip() == "every account's usage counters match its files and uploads"


def _without_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}


@pytest.mark.parametrize("command", ["check", "migrate", "serve", "recount"])
@pytest.mark.parametrize("url", ["notaurl", "nosuchdriver://db/x"])
def test_a_malformed_database_url_stops_with_one_line(tmp_path, command, url):
    env = {**_without_settings(), "INSTASHARE_DATABASE_URL": url}
    env["INSTASHARE_DATA_DIR"] = str(tmp_path)
    result = run_cli(command, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"instashare-server: configuration error: INSTASHARE_DATABASE_URL='{url}' is not a "
        "database URL (give one like postgresql+psycopg2://USER:PASSWORD@HOST/DB or "
        "sqlite:///PATH)"
    ]


@pytest.mark.parametrize("command", ["migrate", "recount"])
def test_a_database_that_does_not_answer_is_one_line_naming_it(tmp_path, command):
    url = f"postgresql+psycopg2://instashare:hunter2-secret@127.0.0.1:{free_port()}/instashare"
    env = {**_without_settings(), "INSTASHARE_DATABASE_URL": url}
    env["INSTASHARE_DATA_DIR"] = str(tmp_path)
    result = run_cli(command, env=env)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("instashare-server: database postgresql+psycopg2://****@127.0.0.1:")
    assert "Connection refused" in line
    assert "hunter2-secret" not in result.stdout + result.stderr


def test_check_says_in_one_line_that_the_database_does_not_answer(tmp_path):
    url = f"postgresql+psycopg2://instashare:hunter2-secret@127.0.0.1:{free_port()}/instashare"
    env = {**_without_settings(), "INSTASHARE_DATABASE_URL": url}
    env["INSTASHARE_DATA_DIR"] = str(tmp_path)
    result = run_cli("check", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("database: ")]
    assert line.startswith("database: FAILED OperationalError: connection to server at")
    assert "hunter2-secret" not in result.stdout + result.stderr


@pytest.mark.parametrize(("trusted", "believed"), [("", False), ("127.0.0.1", True)])
def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(
    tmp_path, database_url, redis_url, trusted, believed
):
    # In-process login counters: this server's own, nobody else's failures count here.
    settings = make_settings(
        tmp_path, database_url, redis_url="", login_max_failures_per_ip=3, trusted_proxies=trusted
    )
    with open(tmp_path / "server.log", "ab") as log:
        server, base = start_server(settings, log=log)
    try:
        statuses = [
            httpx.post(
                f"{base}/api/v1/users/login",
                json={"email": new_email(), "password": "not anyone's password"},
                headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
                timeout=30,
            ).status_code
            for n in range(4)
        ]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    # From a trusted proxy each request is its own client; otherwise they are all the
    # proxy's, and its limit of 3 failures is reached.
    assert statuses == ([401] * 4 if believed else [401, 401, 401, 429])


def _dev_env(tmp_path) -> dict[str, str]:
    return {**_without_settings(), "XDG_DATA_HOME": str(tmp_path / "xdg")}


def test_dev_prints_one_short_block_and_keeps_its_data_per_user(tmp_path):
    env, data = _dev_env(tmp_path), tmp_path / "xdg" / "instashare"
    account = {"email": "ada@example.com", "password": "correct horse battery"}
    (tmp_path / "one").mkdir()
    dev = Dev(env=env, cwd=tmp_path / "one")
    # Timeouts for a busy machine: a password hash at the default cost takes its time.
    registered = httpx.post(f"{dev.base}/api/v1/users/register", json=account, timeout=60)
    assert registered.status_code == 201
    wait_until(lambda: " ready." in (data / "dev.log").read_text(), 60, what="the worker up")
    # With no SMTP server, a mail is a file in the data dir, its link one that works.
    asked = httpx.post(
        f"{dev.base}/api/v1/users/password-reset", json={"email": account["email"]}, timeout=60
    )
    assert asked.status_code == 202, asked.text
    mail = wait_until(lambda: list((data / "mail").glob("*.eml")), 60, what="the mail file")[0]
    link, token = reset_link(email.message_from_bytes(mail.read_bytes(), policy=default))
    assert link.startswith(f"{dev.base}/#/reset/")
    new = {"token": token, "new_password": "a brand new passphrase"}
    confirmed = httpx.post(f"{dev.base}/api/v1/users/password-reset/confirm", json=new, timeout=60)
    assert confirmed.status_code == 200, confirmed.text
    account["password"] = new["new_password"]
    status, out, err = dev.stop()

    assert status == 0
    assert out.splitlines() == [
        f"Instashare is running: open {dev.base}/",
        f"  API docs  {dev.base}/api/v1/ui",
        f"  data      {data}",
        f"  logs      {data}/dev.log",
        f"  mail      {data}/mail (no SMTP server is set: each mail is a file there)",
        "Press Ctrl-C to stop.",
        "Stopping...",
        "Stopped.",
    ]
    assert err == ""  # no JSON, no Celery banner, no warnings
    log = (data / "dev.log").read_text()
    assert '"msg": "POST /api/v1/users/register 201"' in log  # the API's lines
    assert "celery@" in log  # and the worker's, its banner included
    assert not (tmp_path / "one" / "var").exists()

    # Started from elsewhere, it has the same data: the account is still there.
    (tmp_path / "two").mkdir()
    dev = Dev(env=env, cwd=tmp_path / "two")
    try:
        login = httpx.post(f"{dev.base}/api/v1/users/login", json=account, timeout=60)
        assert login.status_code == 200
    finally:
        assert dev.stop()[0] == 0


def _descendants(pid: int) -> set[int]:
    """Every process below `pid`, however deep (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Whether `pid` is a process still running (a zombie, waiting to be reaped, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("signalled", ["SIGTERM to dev alone", "Ctrl-C at the terminal"])
def test_dev_stops_within_5_seconds_finishing_a_request_and_leaving_no_process(tmp_path, signalled):
    data = tmp_path / "data"
    dev = Dev("--data-dir", str(data), env=_dev_env(tmp_path), cwd=tmp_path)
    try:
        wait_until(lambda: " ready." in (data / "dev.log").read_text(), 60, what="worker up")
        account = {"email": new_email(), "password": "correct horse battery"}
        httpx.post(f"{dev.base}/api/v1/users/register", json=account, timeout=30)
        token = httpx.post(f"{dev.base}/api/v1/users/login", json=account, timeout=30).json()
        tree = _descendants(dev.proc.pid)
        assert len(tree) >= 3, tree  # the worker, its pool's process and its beat
        boundary = "x-boundary-x"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"'
            f"\r\nContent-Type: application/octet-stream\r\n\r\n{'y' * 200_000}"
            f"\r\n--{boundary}--\r\n"
        ).encode()
        head = (
            f"POST /api/v1/upload_files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token['access_token']}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", dev.port), timeout=30) as upload:
            upload.sendall(head + body[:1000])
            spool = data / "spool"
            wait_until(lambda: any(p.is_file() for p in spool.rglob("*")), 30, what="spooling")
            started = time.monotonic()
            if signalled == "SIGTERM to dev alone":  # as a container runtime does
                os.kill(dev.proc.pid, signal.SIGTERM)
            else:
                os.killpg(dev.proc.pid, signal.SIGINT)
            time.sleep(0.5)
            # The request in flight gets a moment to finish, and is answered.
            upload.sendall(body[1000:])
            answer = b""
            while chunk := upload.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 202"), answer[:300]
        dev.proc.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        if dev.proc.poll() is None:
            os.killpg(dev.proc.pid, signal.SIGKILL)
            dev.proc.wait()
    assert dev.proc.returncode == 0
    assert took < 5, f"dev took {took:.1f} s to stop"
    assert [pid for pid in tree if _alive(pid)] == []


def test_dev_takes_a_data_dir_and_logs_on_the_terminal_when_verbose(tmp_path):
    data = tmp_path / "mine"
    dev = Dev("--data-dir", str(data), "--verbose", env=_dev_env(tmp_path), cwd=tmp_path)
    httpx.get(f"{dev.base}/api/v1/health")
    status, out, err = dev.stop()

    assert status == 0
    assert f"  data      {data}" in out.splitlines()
    assert "  logs      on this terminal (--verbose)" in out.splitlines()
    assert '"msg": "GET /api/v1/health 200"' in err
    assert (data / "instashare.db").exists()
    assert not (data / "dev.log").exists()
    assert not (tmp_path / "xdg").exists()


def test_dev_on_a_taken_port_says_so_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "app.server", "dev", "--port", str(port)],
            env={**_without_settings(), "INSTASHARE_DATA_DIR": str(tmp_path)},
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""  # no URL that would not answer
    assert result.stderr.splitlines() == [
        f"instashare-server: port {port} is in use on 127.0.0.1 (is Instashare already "
        f"running?); choose another with --port, e.g. --port {port + 1}"
    ]


def test_the_dev_banner_names_a_database_and_storage_set_outside_the_data_dir(tmp_path):
    settings = Settings.from_env(
        {
            "INSTASHARE_DATA_DIR": str(tmp_path),
            "INSTASHARE_DATABASE_URL": "postgresql+psycopg2://app:hunter2@db/app",
            "INSTASHARE_STORAGE_DIR": "/mnt/shared",
        }
    )
    wildcard = "0.0.0.0"  # noqa: S104 - what a browser cannot open, shown as loopback
    lines = dev_banner(settings, wildcard, 8080, tmp_path / "dev.log").splitlines()
    assert lines == [
        "Instashare is running: open http://127.0.0.1:8080/",
        "  API docs  http://127.0.0.1:8080/api/v1/ui",
        f"  data      {tmp_path}",
        "  database  postgresql+psycopg2://****@db/app",
        "  files     /mnt/shared",
        f"  logs      {tmp_path}/dev.log",
        "  mail      not configured (set INSTASHARE_SMTP_HOST; until then password recovery "
        "answers 503)",
        "Press Ctrl-C to stop.",
    ]


def test_create_admin_makes_promotes_and_is_safe_to_repeat(tmp_path):
    url = f"sqlite:///{tmp_path}/admin.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env.update(INSTASHARE_DATABASE_URL=url, INSTASHARE_DATA_DIR=str(tmp_path))
    assert run_cli("migrate", env=env).returncode == 0

    def cli(*args, stdin=""):
        return subprocess.run(
            [sys.executable, "-m", "app.server", *args],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, input=stdin,
        )  # fmt: skip

    made = cli(
        "create-admin", "Root@Example.com", "--password-stdin", stdin="correct horse battery\n"
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "Root@Example.com made an administrator"
    short = cli("create-admin", "other@example.com", "--password-stdin", stdin="short\n")
    assert short.returncode == 1
    assert short.stderr.strip() == (
        "instashare-server: The password must be 10 to 1024 characters."
    )
    again = cli("create-admin", "root@example.com")  # no prompt: it exists
    assert again.stdout.strip() == "Root@Example.com was an administrator already"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (id, email, password_hash, created_at, updated_at) "
                "VALUES ('00000000000000000000000000000002', 'ada@example.com', '-', "
                "'2026-12-01 00:00:00+00:00', '2026-12-01 00:00:00+00:00')"
            )
        )
    promoted = cli("create-admin", "ada@example.com")
    assert promoted.stdout.strip() == "ada@example.com is an administrator now"
    with engine.connect() as conn:
        roles = dict(conn.execute(sa.text("SELECT email, role FROM users")).all())
        actions = conn.execute(sa.text("SELECT action FROM audit_events")).scalars().all()
    engine.dispose()
    assert roles == {"Root@Example.com": "admin", "ada@example.com": "admin"}
    assert actions == ["admin.create", "admin.create"]


def test_serve_makes_the_administrator_of_its_settings(tmp_path):
    url = f"sqlite:///{tmp_path}/serve.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env.update(INSTASHARE_DATABASE_URL=url, INSTASHARE_DATA_DIR=str(tmp_path))
    assert run_cli("migrate", env=env).returncode == 0
    env.update(INSTASHARE_ADMIN_EMAIL="ops@example.com")
    refused = run_cli("serve", env=env)  # no password for an account that does not exist
    assert refused.returncode == 2
    assert "a password is needed" in refused.stderr
