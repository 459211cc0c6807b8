"""The version guards: a library whose internals app.overrides reaches into must be a
version its override was written for, or the API and the worker do not start."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest

from app import overrides
from app.overrides import Guard, UnsupportedVersion, check_versions
from app.queue.celery import make_celery
from app.web import create_app
from tests.helpers import ROOT


@pytest.fixture
def unexpected_kombu(monkeypatch):
    """The guards as if kombu's override were written for a version not installed."""
    monkeypatch.setattr(overrides, "GUARDS", (Guard("kombu", ("0.0.1",), "its override"),))
    check_versions.cache_clear()
    yield
    check_versions.cache_clear()


def test_the_installed_versions_are_the_supported_ones():
    check_versions.cache_clear()
    check_versions()


def test_each_guard_supports_the_version_the_lock_pins():
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    for guard in overrides.GUARDS:
        pinned = re.search(rf"^{re.escape(guard.library)}==(\S+)", lock, re.MULTILINE)
        assert pinned is not None, guard.library
        assert pinned[1] in guard.supported, (guard.library, pinned[1])


def test_an_unexpected_version_is_refused_in_one_line_naming_the_versions():
    guard = Guard("stream-zip", ("0.0.84",), "app.overrides.stream_zip")
    with pytest.raises(UnsupportedVersion) as refused:
        guard.check("0.0.90")
    said = str(refused.value)
    assert "\n" not in said
    assert said.startswith("stream-zip 0.0.90 is installed, but app.overrides.stream_zip ")
    assert "stream-zip 0.0.84" in said


def test_the_api_does_not_start_on_an_unexpected_version(unexpected_kombu, local_settings):
    found = re.escape(version("kombu"))
    with pytest.raises(UnsupportedVersion, match=rf"^kombu {found} is installed, .* kombu 0\.0\.1"):
        create_app(local_settings)


def test_the_worker_does_not_start_on_an_unexpected_version(unexpected_kombu, local_settings):
    with pytest.raises(UnsupportedVersion, match=rf"^kombu {re.escape(version('kombu'))} is "):
        make_celery(local_settings)


def test_the_project_installs_only_versions_a_guard_supports():
    # A fresh install (CI's, a container's) resolves the ranges in pyproject.toml: a release
    # they admitted but no guard knows would stop the API and the worker from starting.
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    declared = {
        (req := Requirement(line)).name: req.specifier
        for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    for guard in overrides.GUARDS:
        specifier = declared[guard.library]
        newest = max(Version(v) for v in guard.supported)
        beyond = [Version(f"{newest.major}.{newest.minor}.{newest.micro + 1}"),
                  Version(f"{newest.major}.{newest.minor + 1}.0")]  # fmt: skip
        assert all(specifier.contains(v) for v in guard.supported), guard
        assert not any(specifier.contains(v) for v in beyond), (guard.library, str(specifier))
