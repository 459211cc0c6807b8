"""The operator command, run as a real process."""

import os
import subprocess
import sys

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
