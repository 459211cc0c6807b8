"""Fixtures that give the tests real services: PostgreSQL, Redis, Celery, a GCS emulator.

Nothing here is mocked. A missing PostgreSQL or Redis stops the whole run with a message
saying how to start it; no test is ever skipped for it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app.migrate import upgrade
from app.settings import Settings

ADMIN_DB_URL = os.environ.get(
    "INSTASHARE_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("INSTASHARE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
GCS_BUCKET = "instashare-test"
PASSWORD = "correct horse battery staple"
ROOT = Path(__file__).resolve().parent.parent


def _redis_db(n: int) -> str:
    """The test Redis server, database `n` (one per role, so roles never share keys)."""
    return REDIS_URL.rsplit("/", 1)[0] + f"/{n}"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail fast, and clearly, when a service the suite needs is not running."""
    problems = []
    try:
        engine = sa.create_engine(ADMIN_DB_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        problems.append(
            f"PostgreSQL is not reachable at {ADMIN_DB_URL} ({type(exc).__name__}). Start it: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        problems.append(
            f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__}). Start it: "
            'redis-server --daemonize yes --port 6379 --save "" --appendonly no'
        )
    if problems:
        pytest.exit("\n".join(["The test suite needs real services:", *problems]), returncode=3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextlib.contextmanager
def fresh_database(prefix: str = "instashare_test") -> Iterator[str]:
    """A new PostgreSQL database, migrated with Alembic; its URL. Dropped afterwards."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(ADMIN_DB_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_DB_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, migrated with Alembic, dropped at the end."""
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    return client


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory) -> Iterator[str]:
    """gcp-storage-emulator on a free loopback port, with the test bucket; its host URL."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("gcs")
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    proc = subprocess.Popen(
        [str(exe), "start", "--host", "127.0.0.1", "--port", str(port),
         "--default-bucket", GCS_BUCKET, "--in-memory", "--quiet"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        host = f"http://127.0.0.1:{port}"
        os.environ["STORAGE_EMULATOR_HOST"] = host
        yield host
    finally:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
        proc.terminate()
        proc.wait(timeout=10)


def start_server(settings: Settings, workers: int = 1, log=subprocess.DEVNULL):
    """`instashare-server serve` on a free loopback port, answering; (process, base URL)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--workers", str(workers),
         "--host", "127.0.0.1", "--port", str(port)],
        env=settings_env(settings), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout=30)
    except BaseException:
        server.kill()
        server.wait()
        raise
    return server, f"http://127.0.0.1:{port}"


def make_settings(tmp: Path, database_url: str, backend: str = "local", **overrides) -> Settings:
    """Settings for a test app or worker: real PostgreSQL and Redis, storage under `tmp`."""
    values = dict(
        database_url=database_url,
        broker_url=_redis_db(14 if backend == "local" else 13),
        redis_url=_redis_db(15),
        data_dir=tmp,
        storage_backend=backend,
        gcs_bucket=GCS_BUCKET,
        validate_responses=True,
        sweep_interval_seconds=1.0,
        job_lease_seconds=5,
        login_max_failures=5,
        login_max_failures_per_ip=1000,
        worker_metrics_port=0,  # several test workers run at once; a fixed port would clash
    )
    values.update(overrides)
    return Settings.from_env({}, **values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for a subprocess (worker, server, CLI)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env.update({k: v for k, v in settings.masked().items() if v != ""})
    env["INSTASHARE_SECRET_KEY"] = settings.secret_key
    env["INSTASHARE_DATABASE_URL"] = settings.database_url
    env["INSTASHARE_BROKER_URL"] = settings.broker_url
    env["INSTASHARE_REDIS_URL"] = settings.redis_url
    return env


@pytest.fixture(scope="session")
def local_settings(tmp_path_factory, database_url) -> Settings:
    return make_settings(tmp_path_factory.mktemp("local"), database_url, "local")


@pytest.fixture(scope="session")
def gcs_settings(tmp_path_factory, database_url, gcs_emulator) -> Settings:
    return make_settings(tmp_path_factory.mktemp("gcsdata"), database_url, "gcs")


@pytest.fixture(scope="session", params=["local", "gcs"])
def backend(request) -> str:
    """Runs a test once per storage backend."""
    return request.param


@pytest.fixture(scope="session")
def settings(request, backend) -> Settings:
    return request.getfixturevalue(f"{backend}_settings")


@pytest.fixture(scope="session")
def app(settings, redis_client):
    from app.web import create_app

    return create_app(settings)


@pytest.fixture(scope="session")
def local_app(local_settings, redis_client):
    from app.web import create_app

    return create_app(local_settings)


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
    return app.app.extensions["instashare"].storage


class Account:
    """A registered, logged-in user for one test."""

    def __init__(self, client, email: str, password: str = PASSWORD):
        self.email = email
        self.password = password
        created = client.post("/api/v1/users/register", json={"email": email, "password": password})
        assert created.status_code == 201, created.text
        self.id = created.json()["id"]
        login = client.post("/api/v1/users/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        self.token = login.json()["access_token"]
        self.headers = {"Authorization": f"Bearer {self.token}"}


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
def make_account():
    def make(client) -> Account:
        return Account(client, new_email())

    return make


@pytest.fixture
def alice(client, make_account) -> Account:
    return make_account(client)


@pytest.fixture
def bob(client, make_account) -> Account:
    return make_account(client)


def upload(client, account: Account, content: bytes = b"hello", filename="hello.txt", **form):
    """POST /upload_files as `account`; the raw response."""
    return client.post(
        "/api/v1/upload_files",
        headers=account.headers,
        files={"file": (filename, content, "application/octet-stream")},
        data=form,
    )


class WorkerProcess:
    """A real `instashare-server worker --beat` process (Celery, prefork) for tests."""

    def __init__(self, settings: Settings, log_path: Path, concurrency: int = 2):
        self.settings = settings
        self.log_path = log_path
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--beat",
             "--concurrency", str(self.concurrency)],
            env=settings_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )  # fmt: skip
        return self

    def stop(self, sig: int = 15) -> None:
        """Signal the whole process group (the main process and its pool children)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def worker(request, settings, tmp_path_factory) -> Iterator[WorkerProcess]:
    """A worker for the current backend's settings, shared by the session."""
    proc = WorkerProcess(settings, tmp_path_factory.mktemp("worker") / "worker.log").start()
    yield proc
    proc.stop()


def wait_for_status(client, account: Account, file_id: str, statuses, timeout: float = 60.0):
    """Poll GET /files/{id} until its status is one of `statuses`; the final body."""
    statuses = {statuses} if isinstance(statuses, str) else set(statuses)
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/files/{file_id}", headers=account.headers).json()
        if body.get("status") in statuses:
            return body
        time.sleep(0.05)
    raise AssertionError(f"file {file_id} never reached {statuses}: {body}")
