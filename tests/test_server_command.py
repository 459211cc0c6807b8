"""The operator command, run as a real process."""

import os
import signal
import subprocess
import sys

import httpx
import pytest
import sqlalchemy as sa

from tests.helpers import (
    ROOT,
    free_port,
    make_settings,
    new_email,
    settings_env,
    start_server,
)


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
    assert local_settings.secret_key not in result.stdout


def test_check_names_the_dependency_that_fails(local_settings):
    env = settings_env(local_settings)
    env["INSTASHARE_BROKER_URL"] = "redis://127.0.0.1:1/0"
    result = run_cli("check", env=env)
    assert result.returncode == 1
    assert any(line.startswith("broker: FAILED") for line in result.stdout.splitlines())
    assert "database: ok" in result.stdout.splitlines()


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
