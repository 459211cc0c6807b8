"""Settings: read from the environment, validated at start, one clear line on a bad value."""

import os
import pwd
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from app.settings import DEFAULT_SECRET, Settings, SettingsError

GOOD_PRODUCTION = {
    "INSTASHARE_ENV": "production",
    "INSTASHARE_SECRET_KEY": "x" * 48,
    "INSTASHARE_DATABASE_URL": "postgresql+psycopg2://app@db/app",
    "INSTASHARE_REDIS_URL": "redis://redis:6379/1",
    "INSTASHARE_BROKER_URL": "redis://redis:6379/0",
}


def test_defaults_are_the_embedded_default():
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite")
    assert settings.broker_url == "filesystem://"
    assert settings.storage_backend == "local"
    assert settings.max_upload_bytes == 10 * 1024**3


def test_values_are_parsed_from_the_environment():
    settings = Settings.from_env(
        {"INSTASHARE_MAX_UPLOAD_BYTES": "1_000", "INSTASHARE_CORS_ORIGINS": "https://a, https://b"}
    )
    assert settings.max_upload_bytes == 1000
    assert settings.cors_origins == ("https://a", "https://b")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INSTASHARE_MAX_UPLOAD_BYTES", "lots"),
        ("INSTASHARE_MAX_UPLOAD_BYTES", "0"),
        ("INSTASHARE_STORAGE_BACKEND", "s3"),
        ("INSTASHARE_ENV", "staging"),
        ("INSTASHARE_VALIDATE_RESPONSES", "perhaps"),
        ("INSTASHARE_COMPRESSION", "zstd"),
        ("INSTASHARE_COMPRESSION", "FAST"),
        ("INSTASHARE_TRUSTED_PROXIES", "proxy.internal"),
        ("INSTASHARE_TRUSTED_PROXIES", "10.0.0.1/8"),
        ("INSTASHARE_DATABASE_URL", "notaurl"),
        ("INSTASHARE_DATABASE_URL", "nosuchdriver://db/x"),
    ],
)
def test_a_bad_value_names_its_setting(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_compression_is_fast_unless_set_to_small():
    from app.archive.deflate import DEFLATERS

    assert Settings.from_env({}).compression == "fast"
    for setting in DEFLATERS:  # every setting the worker knows is a value it accepts
        assert Settings.from_env({"INSTASHARE_COMPRESSION": setting}).compression == setting
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"INSTASHARE_COMPRESSION": "9"})
    assert str(refused.value) == "INSTASHARE_COMPRESSION='9' is invalid: must be one of fast, small"


def test_no_proxy_is_trusted_unless_configured():
    assert Settings.from_env({}).trusted_proxies == ()
    environ = {"INSTASHARE_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1,::1"}
    assert Settings.from_env(environ).trusted_proxies == ("10.0.0.0/8", "192.0.2.1", "::1")


def test_a_malformed_database_url_is_refused_without_its_password():
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"INSTASHARE_DATABASE_URL": "nosuchdriver://app:hunter2@db/app"})
    assert "hunter2" not in str(refused.value)
    assert "nosuchdriver://****@db/app" in str(refused.value)


def test_production_accepts_a_complete_configuration():
    assert Settings.from_env(GOOD_PRODUCTION).production


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INSTASHARE_SECRET_KEY", None),
        ("INSTASHARE_SECRET_KEY", DEFAULT_SECRET),
        ("INSTASHARE_SECRET_KEY", "short"),
        ("INSTASHARE_SECRET_KEY", "CHANGE-ME-this-placeholder-is-public-generate-one"),
        ("INSTASHARE_DATABASE_URL", "sqlite:///var/x.db"),
        ("INSTASHARE_REDIS_URL", None),
        ("INSTASHARE_BROKER_URL", "filesystem://"),
        ("INSTASHARE_PASSWORD_HASH_MEMORY_KIB", "19455"),
        ("INSTASHARE_PASSWORD_HASH_TIME_COST", "1"),
    ],
)
def test_production_refuses_unsafe_settings(name, value):
    environ = dict(GOOD_PRODUCTION)
    if value is None:
        environ.pop(name)
    else:
        environ[name] = value
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(environ)


def test_gcs_needs_a_bucket():
    with pytest.raises(SettingsError, match="INSTASHARE_GCS_BUCKET"):
        Settings.from_env({"INSTASHARE_STORAGE_BACKEND": "gcs"})


def test_masked_hides_secrets_and_passwords():
    shown = Settings.from_env(
        {**GOOD_PRODUCTION, "INSTASHARE_DATABASE_URL": "postgresql://app:hunter2@db/app"}
    ).masked()
    assert shown["INSTASHARE_SECRET_KEY"] == "****"
    assert "hunter2" not in shown["INSTASHARE_DATABASE_URL"]
    assert shown["INSTASHARE_DATABASE_URL"].endswith("@db/app")


def test_the_data_dir_is_per_user_by_default():
    home = {"HOME": "/home/ada"}
    assert Settings.from_env(home).data_dir == Path("/home/ada/.local/share/instashare")
    xdg = {**home, "XDG_DATA_HOME": "/srv/ada/data"}
    assert Settings.from_env(xdg).data_dir == Path("/srv/ada/data/instashare")
    # The XDG spec: a relative XDG_DATA_HOME is invalid and ignored.
    relative = {**home, "XDG_DATA_HOME": "data"}
    assert Settings.from_env(relative).data_dir == Path("/home/ada/.local/share/instashare")
    assert Settings.from_env({**xdg, "INSTASHARE_DATA_DIR": "/d"}).data_dir == Path("/d")


def test_the_default_database_is_in_the_data_dir_whatever_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    for environ in ({"INSTASHARE_DATA_DIR": str(data)}, {"XDG_DATA_HOME": str(tmp_path)}):
        settings = Settings.from_env(environ)
        database = make_url(settings.database_url).database
        assert database is not None
        assert Path(database) == settings.data_dir / "instashare.db"
        assert Path(database).is_absolute()
    relative = Settings.from_env({"INSTASHARE_DATA_DIR": "here"}).database_url
    assert relative == f"sqlite:///{tmp_path}/here/instashare.db"


def test_a_database_url_that_is_set_wins_over_the_data_dir(tmp_path):
    environ = {"INSTASHARE_DATA_DIR": str(tmp_path), "INSTASHARE_DATABASE_URL": "sqlite:///x.db"}
    assert Settings.from_env(environ).database_url == "sqlite:///x.db"
    assert Settings.from_env(environ, data_dir=tmp_path / "y").database_url == "sqlite:///x.db"


def test_the_suite_keeps_its_data_out_of_the_home_directory(data_home):
    data_dir = Settings.from_env().data_dir
    assert data_dir == data_home / "instashare"
    for home in {Path.home(), Path(pwd.getpwuid(os.getuid()).pw_dir)}:
        assert not data_dir.is_relative_to(home / ".local" / "share")


GOOD_SSO = {
    "INSTASHARE_OIDC_ISSUER": "https://accounts.google.com",
    "INSTASHARE_OIDC_CLIENT_ID": "123.apps.googleusercontent.com",
    "INSTASHARE_OIDC_CLIENT_SECRET": "GOCSPX-secret",
}


def test_single_sign_on_is_off_unless_an_issuer_is_set():
    assert not Settings.from_env({}).sso_enabled
    settings = Settings.from_env(
        {
            **GOOD_SSO,
            "INSTASHARE_OIDC_ALLOWED_DOMAINS": "Example.org, example.com",
            "INSTASHARE_OIDC_ADMIN_EMAILS": "Boss@Example.org",
        }
    )
    assert settings.sso_enabled
    assert settings.oidc_allowed_domains == ("example.org", "example.com")
    assert settings.oidc_admin_emails == ("boss@example.org",)
    assert settings.masked()["INSTASHARE_OIDC_CLIENT_SECRET"] == "****"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"INSTASHARE_OIDC_CLIENT_SECRET": ""}, "INSTASHARE_OIDC_CLIENT_SECRET are required"),
        ({"INSTASHARE_OIDC_ISSUER": "accounts.google.com"}, "must start with https://"),
        ({"INSTASHARE_OIDC_SCOPES": "openid profile"}, "must include openid and email"),
        ({"INSTASHARE_OIDC_ADMIN_CLAIM": "groups"}, "go together"),
    ],
)
def test_single_sign_on_settings_are_checked_at_start(changes, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**GOOD_SSO, **changes})


def test_production_wants_the_provider_over_https():
    issuer = {"INSTASHARE_OIDC_ISSUER": "http://login.example.org"}
    with pytest.raises(SettingsError, match="INSTASHARE_OIDC_ISSUER must start with https://"):
        Settings.from_env({**GOOD_PRODUCTION, **GOOD_SSO, **issuer})
