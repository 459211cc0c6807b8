"""The operator command, run as a real process."""

import os
import subprocess
import sys

import sqlalchemy as sa

from tests.helpers import ROOT, settings_env


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
