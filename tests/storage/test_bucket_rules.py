"""The bucket's CORS and lifecycle rules, as `check` prints them and `bucket-rules` writes them."""

from __future__ import annotations

import json

import pytest

from app.settings import Settings
from app.storage import bucket_rules
from tests.helpers import settings_env
from tests.test_server_command import run_cli


def test_rules_follow_the_settings(tmp_path):
    settings = Settings.from_env(
        {},
        data_dir=tmp_path,
        public_url="https://share.example.org/app",
        cors_origins=("https://other.example",),
        upload_expiry_seconds=10 * 86400,
    )
    (rule,) = bucket_rules.cors(settings)
    assert rule["origin"] == ["https://other.example", "https://share.example.org"]
    assert "PUT" in rule["method"] and "Range" in rule["responseHeader"]
    (life,) = bucket_rules.lifecycle(settings)["rule"]
    # Past the upload's own expiry (10 days) and a GCS session's week.
    assert life["condition"] == {"age": 11, "matchesPrefix": ["tmp/"]}


@pytest.mark.slow  # runs `instashare-server`
def test_check_prints_them_and_bucket_rules_writes_them(gcs_settings):
    env = settings_env(gcs_settings)
    checked = run_cli("check", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "bucket cors (instashare-server bucket-rules cors): [" in checked.stdout
    assert "bucket lifecycle (instashare-server bucket-rules lifecycle): {" in checked.stdout
    written = run_cli("bucket-rules", "lifecycle", env=env)
    assert json.loads(written.stdout) == bucket_rules.lifecycle(gcs_settings)
