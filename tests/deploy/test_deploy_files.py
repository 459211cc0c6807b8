"""The deployment files validate and name only things that exist.

Covers Dockerfile, worker.Dockerfile, .dockerignore, docker-compose.yml, .env.example,
requirements.lock and the GitHub workflows. Needs neither Docker nor the network: the schemas
are check-jsonschema's vendored ones and zizmor runs offline, both from this interpreter's
environment (the `test` extra).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOCKERFILES = ["Dockerfile", "worker.Dockerfile"]
WORKFLOWS = [".github/workflows/test.yml", ".github/workflows/build.yml"]
SETTING = re.compile(r"\bINSTASHARE_[A-Z0-9_]+\b")
SERVER = "instashare-server"
APP_SERVICES = ["api", "worker", "scheduler"]
# The builder's install of the project itself: `<venv>/bin/pip install --no-deps <source>`.
PROJECT_INSTALL = re.compile(r"(?P<venv>/\S+)/bin/pip install --no-deps (?P<source>/\S+)")


# --- helpers ---------------------------------------------------------------------------------


def text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def tool(name: str) -> str:
    """A console script installed beside this interpreter (so the venv's copy is used)."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed beside {sys.executable}: pip install -e '.[test]'")
    return str(path)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, check=False
    )


def compose() -> dict[str, Any]:
    return yaml.safe_load(text("docker-compose.yml"))


def workflow(name: str) -> dict[str, Any]:
    # PyYAML reads the `on:` key as True; only jobs and steps are looked at here.
    return yaml.safe_load(text(name))


def pyproject() -> dict[str, Any]:
    return tomllib.loads(text("pyproject.toml"))


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) for each instruction, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text(dockerfile).splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).partition(" ")
        result.append((keyword.upper(), rest.strip()))
        pending = ""
    return result


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def healthcheck_command(dockerfile: str) -> list[str]:
    [arguments] = [rest for kw, rest in instructions(dockerfile) if kw == "HEALTHCHECK"]
    return exec_form(arguments.split(" CMD ", 1)[1].strip())


def cmd(dockerfile: str) -> list[str]:
    [arguments] = [rest for kw, rest in instructions(dockerfile) if kw == "CMD"]
    return exec_form(arguments)


def stages(dockerfile: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """(name, instructions) for each build stage; an unnamed stage's name is ""."""
    result: list[tuple[str, list[tuple[str, str]]]] = []
    for keyword, arguments in instructions(dockerfile):
        if keyword == "FROM":
            words = arguments.split()
            named = len(words) == 3 and words[1].upper() == "AS"
            result.append((words[2] if named else "", []))
        elif result:
            result[-1][1].append((keyword, arguments))
    return result


def copies(dockerfile: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY or ADD from the build context."""
    result = []
    for keyword, arguments in instructions(dockerfile):
        if keyword not in {"COPY", "ADD"}:
            continue
        args = exec_form(arguments)
        if any(a.startswith("--from") for a in args):
            continue
        *sources, destination = [a for a in args if not a.startswith("--")]
        result.append((sources, destination))
    return result


def landing(source: str, destination: str) -> str:
    """Where COPY puts `source` (a file, or a directory's contents) given `destination`."""
    if source.endswith("/") or (ROOT / source).is_dir():
        return destination.rstrip("/")
    if destination.endswith("/"):
        return destination + Path(source).name
    return destination


def package_source_roots() -> set[str]:
    """The top-level directories pyproject.toml builds its packages from (`swagger` too)."""
    config = pyproject()["tool"]["setuptools"]
    package_dir = config.get("package-dir", {})
    roots = set()
    for package in config["packages"]:
        # A package's directory: its own mapping, else its nearest mapped parent's, else its
        # dotted name as a path.
        parts = package.split(".")
        for cut in range(len(parts), 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in package_dir:
                path = "/".join([package_dir[prefix], *parts[cut:]])
                break
        else:
            path = "/".join(parts)
        roots.add(path.split("/")[0])
    return roots


def env_example() -> dict[str, str]:
    """The KEY=VALUE lines of .env.example that are not commented out."""
    values = {}
    for line in text(".env.example").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (or a directory above it) out of the build context."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in text(".dockerignore").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        regex = dockerignore_regex(line.lstrip("!").strip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def server_commands() -> list[list[str]]:
    """Every exec-form `instashare-server …` the images and the compose file run."""
    commands = []
    for dockerfile in DOCKERFILES:
        commands += [cmd(dockerfile), healthcheck_command(dockerfile)]
    for service in compose()["services"].values():
        command = service.get("command")
        if command is not None:
            commands.append(command if isinstance(command, list) else shlex.split(command))
        test = service.get("healthcheck", {}).get("test")
        if isinstance(test, list) and test[0] == "CMD":
            commands.append(test[1:])
    return [c for c in commands if c and c[0] == SERVER]


# --- schemas and linters ---------------------------------------------------------------------


@pytest.mark.slow  # check-jsonschema
def test_compose_file_matches_the_compose_spec() -> None:
    result = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # check-jsonschema
def test_workflows_match_the_github_workflow_schema() -> None:
    result = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *WORKFLOWS
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # zizmor
def test_zizmor_finds_nothing_of_high_severity() -> None:
    # Offline: no token may reach it (a GH_TOKEN would conflict with --offline).
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN"}
    }
    result = run(
        tool("zizmor"), "--offline", "--no-progress", "--format", "json", ".github/workflows",
        env=env,
    )  # fmt: skip
    # 0: no findings; 10-14: findings, by their highest severity. Anything else is an error.
    assert result.returncode in {0, *range(10, 15)}, result.stderr
    findings = json.loads(result.stdout)
    high = [
        f"{f['ident']}: {f['desc']}"
        for f in findings
        if f["determinations"]["severity"].lower() == "high"
    ]
    assert not high, high


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["docker-compose.yml", ".env.example", *DOCKERFILES])
def test_every_instashare_variable_is_a_setting(name: str) -> None:
    from app.settings import documented_settings

    known = {env for env, _, _ in documented_settings()}
    unknown = set(SETTING.findall(text(name))) - known
    assert not unknown, f"{name} names settings that app.settings does not have: {unknown}"


def test_the_example_env_is_a_valid_production_configuration_once_its_secret_is_set() -> None:
    import secrets

    from app.settings import Settings, SettingsError

    environ = dict(env_example())
    for dockerfile in DOCKERFILES:  # the images set the data and spool directories
        for keyword, arguments in instructions(dockerfile):
            if keyword == "ENV":
                for assignment in shlex.split(arguments):
                    key, _, value = assignment.partition("=")
                    environ.setdefault(key, value)
    for name in ("INSTASHARE_SECRET_KEY", "POSTGRES_PASSWORD"):
        assert "CHANGE-ME" in environ[name], f"{name} must be an obvious placeholder"
    # The placeholder secret is public: production must refuse to start with it.
    with pytest.raises(SettingsError, match="INSTASHARE_SECRET_KEY"):
        Settings.from_env(environ)
    environ["INSTASHARE_SECRET_KEY"] = secrets.token_urlsafe(48)
    settings = Settings.from_env(environ)  # raises SettingsError naming what is wrong
    assert settings.production
    assert settings.storage_backend == "gcs"
    assert settings.database_url.startswith("postgresql+psycopg2://")


def test_the_example_env_points_at_the_compose_services() -> None:
    env = env_example()
    services = compose()["services"]
    url = make_url(env["INSTASHARE_DATABASE_URL"])
    assert (url.username, url.password, url.database) == (
        env["POSTGRES_USER"],
        env["POSTGRES_PASSWORD"],
        env["POSTGRES_DB"],
    ), "INSTASHARE_DATABASE_URL must use the POSTGRES_* values the database is created with"
    for name in ("INSTASHARE_DATABASE_URL", "INSTASHARE_BROKER_URL", "INSTASHARE_REDIS_URL"):
        assert make_url(env[name]).host in services, name
    emulator = env["STORAGE_EMULATOR_HOST"].split("://", 1)[1].split(":")[0]
    assert emulator in services


def test_env_files_are_kept_out_of_git_and_images() -> None:
    assert dockerignored(".env")
    assert not dockerignored(".env.example")
    gitignore = {line.strip() for line in text(".gitignore").splitlines()}
    assert gitignore & {".env", "/.env", ".env*", ".env.*"}, ".env must be in .gitignore"


# --- commands, files and endpoints -----------------------------------------------------------


def test_every_server_command_is_a_real_subcommand_with_real_options() -> None:
    from app.server import main

    commands = server_commands()
    used = {c[1] for c in commands}
    assert {"serve", "worker", "scheduler", "migrate", "check"} <= used
    for command in commands:
        subcommand = main.commands.get(command[1])
        assert subcommand is not None, f"{command}: no such subcommand"
        try:
            subcommand.make_context(command[1], list(command[2:]))
        except click.UsageError as exc:
            pytest.fail(f"{command}: {exc}")
    # Mentions in comments and prose too.
    mentioned = set()
    for name in [*DOCKERFILES, "docker-compose.yml", ".env.example"]:
        mentioned |= set(re.findall(rf"{SERVER}\s+([a-z][a-z-]*)", text(name)))
    assert mentioned <= set(main.commands), mentioned - set(main.commands)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_copied_files_exist_and_reach_the_build_context(dockerfile: str) -> None:
    copied = [source for sources, _ in copies(dockerfile) for source in sources]
    assert {"requirements.lock", "app/", "worker/", "swagger/"} <= set(copied)
    assert {"pyproject.toml", "README.md", "instashare_cli/"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), f"{dockerfile} copies {source}, which does not exist"
        assert not dockerignored(source), f".dockerignore excludes {source}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_project_is_copied_whole_to_where_pip_installs_it_from(dockerfile: str) -> None:
    [install] = [m for _, rest in instructions(dockerfile) if (m := PROJECT_INSTALL.search(rest))]
    project = install["source"].rstrip("/")
    landed = {
        landing(source, destination): source
        for sources, destination in copies(dockerfile)
        for source in sources
    }
    readme = pyproject()["project"]["readme"]
    needed = {"pyproject.toml", readme, *package_source_roots()}
    assert {"app", "worker", "instashare_cli", "swagger"} <= needed
    for path in sorted(needed):
        assert f"{project}/{path}" in landed, f"{dockerfile} does not copy {path} to {project}/"
        assert landed[f"{project}/{path}"].rstrip("/") == path


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_images_install_the_project_and_run_its_entry_point(dockerfile: str) -> None:
    # The builder installs the locked dependencies (hash-checked), then the project itself
    # with --no-deps: its wheel carries the contract (swagger/ as `app.spec`) and writes the
    # `instashare-server` console script that pyproject.toml declares.
    target = pyproject()["project"]["scripts"][SERVER]
    module, attr = target.split(":")
    assert callable(getattr(importlib.import_module(module), attr)), target
    source = text(dockerfile)
    assert "--require-hashes" in source
    [(_, builder), *_, (final_name, final)] = stages(dockerfile)
    runs = [rest for kw, rest in builder if kw == "RUN"]
    [locked] = [i for i, r in enumerate(runs) if "--require-hashes" in r]
    assert "-r /tmp/requirements.lock" in runs[locked]
    [installed] = [i for i, r in enumerate(runs) if PROJECT_INSTALL.search(r)]
    assert locked < installed, "the project must be installed after its hash-checked lock"
    venv = PROJECT_INSTALL.search(runs[installed])["venv"]
    assert venv in runs[locked], "the lock and the project go to one environment"
    # The final stage takes that environment whole and finds its scripts on PATH.
    assert final_name == ""
    assert ("COPY", f"--from=builder {venv} {venv}") in final
    env = " ".join(rest for kw, rest in final if kw == "ENV")
    assert re.search(rf"\bPATH={re.escape(venv)}/bin:", env), env
    assert cmd(dockerfile)[0] == SERVER
    # Nothing is run from source any more: no PYTHONPATH, no hand-written script.
    assert "PYTHONPATH" not in source
    assert f"from {module} import" not in source
    assert not [r for r in runs if SERVER in r], "the console script comes from the wheel"
    user = [rest for kw, rest in instructions(dockerfile) if kw == "USER"]
    assert user and user[-1].split(":")[0] not in {"root", "0"}, "the image must not run as root"
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}\s*$", source, re.M)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in source


@pytest.mark.slow  # `serve`
def test_the_api_healthcheck_follows_the_port_serve_listens_on(tmp_path: Path) -> None:
    # `serve` on another port, set the one way the image knows (INSTASHARE_PORT): the
    # image's own health check command finds it there.
    from tests.helpers import ROOT, answers, free_port, wait_for_port, wait_until

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env.update(
        INSTASHARE_PORT=str(port),
        INSTASHARE_DATA_DIR=str(tmp_path),
        INSTASHARE_DATABASE_URL=f"sqlite:///{tmp_path}/health.db",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "app.server", "serve", "--host", "127.0.0.1", "--workers", "1"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout=30)
        # As the image's start period does: the worker may still be importing the app.
        url = f"http://127.0.0.1:{port}/api/v1/health"
        wait_until(lambda: answers(url), 60, 0.1, what="serve up")
        check = subprocess.run(
            healthcheck_command("Dockerfile"), env=env, capture_output=True, timeout=30
        )
        assert check.returncode == 0, check.stderr
        env["INSTASHARE_PORT"] = str(free_port())  # nothing listens there: unhealthy
        check = subprocess.run(
            healthcheck_command("Dockerfile"), env=env, capture_output=True, timeout=30
        )
        assert check.returncode != 0
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def test_the_api_healthcheck_compiles_and_its_url_is_served(tmp_path: Path) -> None:
    from app.settings import Settings
    from app.web import create_app

    command = healthcheck_command("Dockerfile")
    assert command[:2] == ["python", "-c"]
    compile(command[2], "<HEALTHCHECK>", "exec")
    # The check asks the port `serve` listens on: both read INSTASHARE_PORT.
    assert "os.environ['INSTASHARE_PORT']" in command[2]
    (path,) = re.search(r"http://127\.0\.0\.1:%s(/[^'\"]*)", command[2]).groups()
    assert ("ENV", "INSTASHARE_PORT=8000") in instructions("Dockerfile")
    assert ("EXPOSE", "8000") in instructions("Dockerfile")
    assert Settings().port == 8000

    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/health.db")
    with create_app(settings).test_client() as client:
        response = client.get(path)
    assert response.status_code == 200, response.text


# --- compose -------------------------------------------------------------------------------


def test_compose_stack_has_its_services_wired_in_order() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) >= {*APP_SERVICES, "migrate", "postgres", "redis", "gcs", "flower"}
    assert services["migrate"]["command"] == [SERVER, "migrate"]
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    # Whatever is waited for as healthy has a health check, in compose or in its image.
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            if how["condition"] != "service_healthy":
                continue
            target = services[dependency]
            dockerfile = target.get("build", {}).get("dockerfile")
            has_check = "test" in target.get("healthcheck", {}) or (
                dockerfile is not None and healthcheck_command(dockerfile)
            )
            assert has_check, f"{name} waits for {dependency} to be healthy; it has no check"
    assert "8000:8000" in services["api"]["ports"]
    assert any(p.endswith("5555:5555") for p in services["flower"]["ports"])
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


def test_compose_builds_the_dockerfiles_and_declares_its_volumes() -> None:
    spec = compose()
    declared = set(spec["volumes"])
    for name, service in spec["services"].items():
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
        for env_file in service.get("env_file", []):
            path = env_file["path"] if isinstance(env_file, dict) else env_file
            assert path == ".env" and (ROOT / ".env.example").is_file()
    built = {s["build"]["dockerfile"] for s in spec["services"].values() if "build" in s}
    assert built == set(DOCKERFILES)


# --- workflows ------------------------------------------------------------------------------


def steps(name: str) -> list[dict[str, Any]]:
    return [step for job in workflow(name)["jobs"].values() for step in job["steps"]]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_actions_are_pinned_and_checkouts_keep_no_credentials(name: str) -> None:
    source = text(name)
    uses = re.findall(r"uses:\s*(\S+)(.*)", source)
    assert uses
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{ref} is not pinned by SHA"
        assert re.search(r"#\s*v\d+(\.\d+)*", comment), f"{ref} needs a `# vX.Y.Z` comment"
    for step in steps(name):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False
    assert "permissions" in workflow(name)


def test_the_test_workflow_runs_the_configured_tools() -> None:
    project = pyproject()
    runs = [step.get("run", "") for step in steps(".github/workflows/test.yml")]
    joined = "\n".join(runs)
    test_extra = {canonicalize_name(Requirement(r).name) for r in project["project"][
        "optional-dependencies"]["test"]}  # fmt: skip
    assert "pip install -e '.[test]'" in joined
    for tool_name, command in [
        ("ruff", "ruff check"),
        ("ruff", "ruff format --check"),
        ("mypy", "mypy"),
        ("pytest", "pytest"),
    ]:
        assert any(r.strip().startswith(command) for r in runs), command
        assert tool_name in test_extra, f"{tool_name} is not in the test extra"
    assert "ruff" in project["tool"]
    for path in project["tool"]["mypy"]["files"]:
        assert (ROOT / path).exists(), f"[tool.mypy] files names {path}, which does not exist"
    for path in project["tool"]["pytest"]["ini_options"]["testpaths"]:
        assert (ROOT / path).is_dir()
    python = {
        step["with"]["python-version"]
        for step in steps(".github/workflows/test.yml")
        if step.get("uses", "").startswith("actions/setup-python@")
    }
    assert python == {"3.11"}
    assert project["tool"]["mypy"]["python_version"] == "3.11"


def test_the_test_workflow_sets_the_variables_the_suite_reads() -> None:
    jobs = workflow(".github/workflows/test.yml")["jobs"]
    names = {name for job in jobs.values() for name in job.get("env", {})}
    assert {"INSTASHARE_TEST_DATABASE_URL", "INSTASHARE_TEST_REDIS_URL"} <= names
    suite = "\n".join(
        p.read_text(encoding="utf-8")
        for p in (ROOT / "tests").rglob("*.py")
        if "deploy" not in p.parts
    )
    for name in names:
        assert name in suite, f"the workflow sets {name}, which no test reads"


def test_the_build_workflow_builds_both_images() -> None:
    [job] = workflow(".github/workflows/build.yml")["jobs"].values()
    built = {entry["dockerfile"] for entry in job["strategy"]["matrix"]["include"]}
    assert built == set(DOCKERFILES)
    assert job["permissions"] == {"contents": "read", "packages": "write"}


# --- the lock --------------------------------------------------------------------------------


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    source = text("requirements.lock")
    assert "uv pip compile pyproject.toml --generate-hashes" in source  # how to regenerate
    pinned: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", source):
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if match:
            assert "--hash=sha256:" in block, f"{match[1]} has no hash"
            pinned[canonicalize_name(match[1])] = match[2]
    for dependency in pyproject()["project"]["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"requirements.lock pins {name}=={pinned[name]}, outside {requirement.specifier}"
        )
