"""Fixtures that give the tests real services: PostgreSQL, Redis, a GCS emulator.

Nothing here is mocked. One PostgreSQL database is created and migrated per run; each
test that touches it runs inside a transaction that is rolled back at its end (SQLAlchemy's
`join_transaction_mode="create_savepoint"`: the services' commits become savepoints). The
app under test sends its compression jobs to `InlineJobs`, and a test runs them with
`run_jobs(app)`; real Celery workers run only in the tests about the worker (tests/worker,
tests/client, shutdown), each on a database and broker of its own. Redis is a private
`redis-server` per run, so runs side by side share nothing.

Pure tests (names, tokens, ranges, settings) ask for none of these and need no server. A
missing PostgreSQL or redis-server stops the run with exit status 3 and how to start it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine
from app.runtime import build_runtime
from app.services import tokens
from app.settings import Settings
from app.storage.gcs import GCSStorage
from tests import faultproxy
from tests.factories import FACTORIES, UserFactory
from tests.faultproxy import FaultProxy
from tests.helpers import (
    ADMIN_DB_URL,
    GCS_BUCKET,
    REDIS_ENV,
    Account,
    InlineJobs,
    drop_template,
    fresh_database,
    listening,
    make_settings,
    new_email,
    proxied_gcs,
    runtime,
)

STOP_KEY = "instashare_stop"
# Fixtures that start a process or a server: a live server (uvicorn in a thread, or
# gunicorn), a Celery worker, a private redis-server, Chromium, the wheel build, the CLI. A
# test that uses one, directly or through other fixtures, is marked `slow`; a test that
# starts one itself says so with `@pytest.mark.slow`. The run's own PostgreSQL database,
# redis-server and GCS emulator start once per run and are not counted: nearly every test
# needs them. Only fixtures that start processes may be named here, whichever module
# defines them (tests/test_markers.py checks what `-m "not slow"` keeps).
PROCESS_FIXTURES = frozenset(
    {
        "live_server",  # tests/client (gunicorn + a worker), tests/handlers (uvicorn)
        "live",  # tests/handlers (on live_server), tests/worker/test_lifecycle (a worker)
        "impatient",  # tests/handlers/test_slow_clients: a live server of its own
        "server",  # tests/http/test_protocol (uvicorn), tests/worker/test_crash_safety
        "broker",  # tests/worker/test_crash_safety: a redis-server to stop and start
        "private_redis",  # tests/handlers/test_ops
        "offline_cli",  # tests/client: the CLI as a process
        "site",  # tests/browser: the app on a port, with a worker
        "browser",  # tests/browser: Chromium
        "wheel",  # tests/deploy/test_wheel: pip builds the wheel
        "openid_provider",  # tests/handlers/test_sso, tests/browser/test_sso: a provider server
        "sso_site",  # tests/browser/test_sso: the app with single sign-on, on a port
        "sso_browser",  # tests/browser/test_sso: Chromium
    }
)


def _stop(config: pytest.Config, reason: str) -> None:
    message = f"The test suite needs real services: {reason}"
    # Under pytest-xdist this runs in a worker, whose exit message nobody sees: hand it to
    # the controlling process, which prints it (pytest_testnodedown below).
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[STOP_KEY] = message
    pytest.exit(message, returncode=3)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` every test that starts processes through its fixtures (PROCESS_FIXTURES)."""
    # Before `-m "not slow"` deselects (conftest hooks run before pytest's own).
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


class SlowModulesFirst:
    """Run the modules that have `slow` tests first.

    pytest-xdist hands out tests in this order: with the long ones first, the run ends on
    tests of milliseconds, and no process waits long for another to finish its last test
    (the worker tests, last by name, left one process alone for minutes). Each module's
    tests keep their order, and stay together.
    """

    @pytest.hookimpl(trylast=True)  # after the marks, and pytest's grouping by fixtures
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        slow_modules = {item.path for item in items if item.get_closest_marker("slow")}
        items.sort(key=lambda item: item.path not in slow_modules)  # stable


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SlowModulesFirst(), "instashare-slow-modules-first")


def pytest_testnodedown(node, error) -> None:
    """xdist: a worker stopped for a missing service; stop the whole run, saying why."""
    message = getattr(node, "workeroutput", {}).get(STOP_KEY)
    if message:
        pytest.exit(message, returncode=3)


@pytest.fixture(scope="session", autouse=True)
def data_home(tmp_path_factory) -> Iterator[Path]:
    """`$XDG_DATA_HOME` for the run and the processes it starts: a directory of its own."""
    # The default data dir is per user; a test that gives none writes here, not in ~.
    saved = os.environ.get("XDG_DATA_HOME")
    home = tmp_path_factory.mktemp("xdg-data-home")
    os.environ["XDG_DATA_HOME"] = str(home)
    yield home
    if saved is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = saved


@pytest.fixture(scope="session", autouse=True)
def _database_template() -> Iterator[None]:
    """The migrated template `fresh_database` copies is dropped when the run ends."""
    # Autouse and first: torn down after every fixture that made a database from it.
    yield
    drop_template()


# --- services ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def database_url(pytestconfig) -> Iterator[str]:
    """This run's PostgreSQL database, migrated with Alembic, dropped at the end."""
    try:
        probe = sa.create_engine(ADMIN_DB_URL)
        with probe.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        probe.dispose()
    except Exception as exc:
        _stop(
            pytestconfig,
            f"PostgreSQL is not reachable at {ADMIN_DB_URL} ({type(exc).__name__}). Start it: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        )
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url) -> Iterator[sa.Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine) -> Iterator[sessionmaker]:
    """Sessions that all live in one transaction, rolled back when the test ends.

    They share one connection: a session's rollback undoes whatever other sessions
    committed since its savepoint began. A test where two sessions must really race (row
    locks, a job failing while a request deletes) needs committed sessions on `engine`.
    """
    connection = engine.connect()
    outer = connection.begin()
    factory = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield factory
    outer.rollback()
    connection.close()


@pytest.fixture
def session(sessions) -> Iterator[Session]:
    with sessions() as session:
        yield session


@pytest.fixture
def factories(session) -> Iterator[None]:
    """The factories write through this test's session."""
    for factory in FACTORIES:
        factory._meta.sqlalchemy_session = session
    yield
    for factory in FACTORIES:
        factory._meta.sqlalchemy_session = None


@pytest.fixture(scope="session")
def redis_url(pytestconfig, tmp_path_factory) -> Iterator[str]:
    """A private redis-server for this run (no persistence); its URL without a database."""
    exe = shutil.which("redis-server")
    if exe is None:
        _stop(pytestconfig, "redis-server is not installed (Debian: apt-get install redis-server).")
    argv = [exe, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path_factory.mktemp("redis")), "--port"]  # fmt: skip
    with listening(lambda port: [*argv, str(port)]) as port:
        url = f"redis://127.0.0.1:{port}"
        os.environ[REDIS_ENV] = url
        try:
            yield url
        finally:
            os.environ.pop(REDIS_ENV, None)


@pytest.fixture(scope="session")
def redis_client(redis_url) -> redis.Redis:
    return redis.Redis.from_url(f"{redis_url}/2")


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory) -> Iterator[str]:
    """gcp-storage-emulator on a free loopback port, with the test bucket; its host URL."""
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    argv = [str(exe), "start", "--host", "127.0.0.1", "--default-bucket", GCS_BUCKET,
            "--in-memory", "--quiet", "--port"]  # fmt: skip
    with listening(lambda port: [*argv, str(port)], cwd=tmp_path_factory.mktemp("gcs")) as port:
        host = f"http://127.0.0.1:{port}"
        os.environ["STORAGE_EMULATOR_HOST"] = host
        try:
            yield host
        finally:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)


@pytest.fixture(scope="session")
def _fault_proxy(gcs_emulator) -> Iterator[FaultProxy]:
    with faultproxy.running(gcs_emulator) as proxy:
        yield proxy


@pytest.fixture
def fault_proxy(_fault_proxy) -> Iterator[FaultProxy]:
    """The fault-injecting proxy in front of the emulator (tests/faultproxy.py), unscripted.

    Clients reach it with `STORAGE_EMULATOR_HOST=fault_proxy.url` (see `proxied_storage`,
    `proxied_env`); what a test scripts and records is forgotten when it ends.
    """
    _fault_proxy.clear()
    yield _fault_proxy
    _fault_proxy.clear()


@pytest.fixture
def proxied_storage(fault_proxy) -> GCSStorage:
    """A GCS backend on the test bucket whose every request passes through `fault_proxy`."""
    return proxied_gcs(fault_proxy)


@pytest.fixture(scope="session")
def openid_provider() -> Iterator:
    """A real OpenID provider on a loopback port, for single sign-on (tests/oidc_provider.py)."""
    from tests import oidc_provider  # its Flask app, only for the runs that ask for it

    with oidc_provider.running() as provider:
        yield provider


# --- settings and the app ------------------------------------------------------------------


@pytest.fixture(scope="session")
def local_settings(tmp_path_factory, database_url, redis_url) -> Settings:
    return make_settings(tmp_path_factory.mktemp("local"), database_url, "local")


@pytest.fixture(scope="session")
def gcs_settings(tmp_path_factory, database_url, redis_url, gcs_emulator) -> Settings:
    return make_settings(tmp_path_factory.mktemp("gcsdata"), database_url, "gcs")


@pytest.fixture(scope="session", params=["local", "gcs"])
def backend(request) -> str:
    """Runs a test once per storage backend."""
    return request.param


@pytest.fixture(scope="session")
def settings(request, backend) -> Settings:
    return request.getfixturevalue(f"{backend}_settings")


@pytest.fixture(scope="session")
def _apps() -> dict:
    """Apps built so far, by their settings: building one parses the spec (~0.3 s)."""
    return {}


@pytest.fixture
def make_app(_apps, sessions):
    """An app for some settings, on this test's transaction, with its jobs held inline."""

    def make(settings: Settings):
        app = _apps.get(settings)
        if app is None:
            from app.web import create_app

            rt = build_runtime(settings, sessions=sessions, jobs=InlineJobs())
            app = _apps[settings] = create_app(settings, runtime=rt)
        rt = runtime(app)
        rt.sessions = sessions
        rt.jobs.waiting.clear()
        rt.jobs.mails.clear()
        return app

    return make


@pytest.fixture
def app(make_app, settings):
    return make_app(settings)


@pytest.fixture
def local_app(make_app, local_settings):
    return make_app(local_settings)


@pytest.fixture
def proxied_app(make_app, gcs_settings, fault_proxy, monkeypatch):
    """The gcs app, its storage talking through `fault_proxy`, giving up after 3 s."""
    app = make_app(gcs_settings)
    storage = proxied_gcs(fault_proxy, deadline=3.0, timeout=1.0)
    monkeypatch.setattr(runtime(app), "storage", storage)
    return app


@pytest.fixture
def client(app):
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture
def local_client(local_app):
    with local_app.test_client() as test_client:
        yield test_client


@pytest.fixture
def storage(app):
    return runtime(app).storage


# --- accounts ------------------------------------------------------------------------------


@pytest.fixture
def make_account(factories, local_settings):
    """A new account with a token, made as rows (registering over HTTP hashes twice)."""

    def make(email: str | None = None) -> Account:
        user = UserFactory(email=email or new_email())
        token, _ = tokens.issue(local_settings, user.id)
        return Account(str(user.id), user.email, token)

    return make


@pytest.fixture
def alice(make_account) -> Account:
    return make_account()


@pytest.fixture
def bob(make_account) -> Account:
    return make_account()
