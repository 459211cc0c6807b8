"""The wheel built from the repository holds the whole project and serves its contract.

The images install this wheel (`pip install --no-deps /tmp/src`), so whatever it lacks, they
lack: a package missing from pyproject.toml's list passes every test that imports from the
repository and breaks only in the image. Here the wheel is built and unpacked into a temp
dir, and a Python started elsewhere imports the app from it alone.

Needs no services. The wheel is built from a copy of the repository: setuptools writes
`build/` and `*.egg-info` beside the sources, and packs whatever an earlier build left in
`build/lib` (a package dropped from the list would still ship), and two runs at once would
share them. Built without build isolation, so offline: the test extras bring the setuptools
that `[build-system]` asks for.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

# Where each package directory of the repository lands in the wheel: the contract stays at
# the top of the repository and ships as `app.spec`.
SOURCES = {
    "app": "app",
    "worker": "worker",
    "instashare_cli": "instashare_cli",
    "swagger": "app/spec",
}
NOT_SHIPPED = {"tests"}  # packages of the repository that stay out of the wheel
# Left out of the copy the wheel is built from: none of it is the project, some is big.
LOCAL_STATE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
    ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis", "var", ".env", ".artifacts",
)  # fmt: skip

# Run by a fresh interpreter whose only copy of the project is the unpacked wheel.
PROBE = r"""
import json, sys
from importlib.resources import files
from pathlib import Path

import app
import instashare_cli.main
import worker.tasks
from app.settings import Settings
from app.web import create_app

data = Path(sys.argv[1])
settings = Settings(data_dir=data, database_url=f"sqlite:///{data}/wheel.db")
with create_app(settings).test_client() as client:
    response = client.get("/api/v1/openapi.json")
ours = {"app", "worker", "instashare_cli"}
print(json.dumps({
    "status": response.status_code,
    "body": response.text,
    "spec": str(files("app.spec")),
    "modules": {
        name: getattr(module, "__file__", None)
        for name, module in sorted(sys.modules.items())
        if name.split(".")[0] in ours
    },
}))
"""


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, set[str]]:
    """The project's wheel, unpacked: (its directory, the names of its files)."""
    work = tmp_path_factory.mktemp("wheel")
    source, dist, site = work / "source", work / "dist", work / "site"
    shutil.copytree(ROOT, source, ignore=LOCAL_STATE, symlinks=True)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist),
         str(source)],
        cwd=work, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    [path] = dist.glob("instashare-*.whl")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        archive.extractall(site)
    return site, names


def test_the_wheel_holds_every_package_of_the_repository(wheel) -> None:
    _, names = wheel
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages - NOT_SHIPPED == set(SOURCES), "a new top-level package: add it here"
    expected = set()
    for source, target in SOURCES.items():
        for path in (ROOT / source).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                expected.add(f"{target}/{path.relative_to(ROOT / source).as_posix()}")
    # Every package directory (app/**, worker, instashare_cli), the contract, the migrations.
    for directory in [ROOT / "app", *(ROOT / "app").rglob("*"), ROOT / "worker"]:
        if (directory / "__init__.py").is_file():
            assert f"{directory.relative_to(ROOT).as_posix()}/__init__.py" in names
    assert "instashare_cli/__init__.py" in names
    assert {"app/spec/openapi.yaml", "app/spec/ops.yaml"} <= names
    assert {"app/migrations/env.py", "app/migrations/script.py.mako"} <= names
    versions = {p.name for p in (ROOT / "app/migrations/versions").glob("*.py")}
    assert versions
    assert {f"app/migrations/versions/{v}" for v in versions} <= names
    missing = sorted(expected - names)
    assert not missing, f"the wheel lacks {missing}: is pyproject.toml's package list whole?"
    assert not [n for n in names if n.split("/")[0] in NOT_SHIPPED]


def test_the_wheel_declares_the_console_scripts(wheel) -> None:
    site, _ = wheel
    [dist_info] = site.glob("instashare-*.dist-info")
    entry_points = configparser.ConfigParser()
    entry_points.read(dist_info / "entry_points.txt", encoding="utf-8")
    declared = pyproject()["project"]["scripts"]
    assert dict(entry_points["console_scripts"]) == declared
    assert declared["instashare-server"] == "app.server:main"


def test_the_app_runs_from_the_wheel_alone_and_serves_its_spec(wheel, tmp_path) -> None:
    site, _ = wheel
    data = tmp_path / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env["PYTHONPATH"] = str(site)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(data)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stdout + probe.stderr
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    # Every module of the project came from the unpacked wheel, none from the repository.
    modules = found["modules"]
    assert {"app", "app.web", "app.spec", "worker.tasks", "instashare_cli.main"} <= set(modules)
    for name, file in modules.items():
        assert file is not None, f"{name} has no file: a namespace package outside the wheel?"
        assert Path(file).is_relative_to(site), f"{name} was imported from {file}"
    assert Path(found["spec"]).is_relative_to(site)
    assert found["status"] == 200, found["body"]
    spec = yaml.safe_load((ROOT / "swagger" / "openapi.yaml").read_text(encoding="utf-8"))
    assert json.loads(found["body"])["info"]["title"] == spec["info"]["title"]
