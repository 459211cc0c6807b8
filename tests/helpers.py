"""Helpers the tests share: real processes, settings, accounts, uploads and checks.

Fixtures live in conftest.py and build on these; factories.py makes rows.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from app.db import make_engine
from app.migrate import upgrade
from app.models import User
from app.queue import FINISH_DELETIONS, SEND_MAIL
from app.queue.jobs import JobQueue
from app.runtime import Runtime
from app.services import deletions, tokens
from app.settings import Settings
from app.storage.gcs import GCSStorage
from tests.factories import PASSWORD, TEST_PASSWORD_COST, UserFactory
from tests.faultproxy import FaultProxy

ADMIN_DB_URL = os.environ.get(
    "INSTASHARE_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
# Set by the `redis_url` fixture: the run's private redis-server (see conftest.py).
REDIS_ENV = "INSTASHARE_TEST_REDIS_URL"
GCS_BUCKET = "instashare-test"
ROOT = Path(__file__).resolve().parent.parent
FILE_FIELDS = {
    "id",
    "name",
    "folder_id",
    "status",
    "size",
    "compressed_size",
    "content_type",
    "sha256",
    "error",
    "created_at",
    "updated_at",
    "processed_at",
    "has_preview",
}


# --- processes and ports -----------------------------------------------------------------


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
def listening(argv: Callable[[int], list[str]], cwd: Path | None = None) -> Iterator[int]:
    """A server process started with `argv(port)` on a free port, once it listens; its port."""
    port = free_port()
    proc = subprocess.Popen(
        argv(port), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wait_until(condition, timeout: float = 60.0, interval: float = 0.05, what: str = "condition"):
    """Poll `condition()` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout}s")
        time.sleep(interval)


# --- databases and settings --------------------------------------------------------------


def _database_url(name: str) -> str:
    return make_url(ADMIN_DB_URL).set(database=name).render_as_string(hide_password=False)


# The newest schema, migrated once per process and then copied: `CREATE DATABASE … TEMPLATE`
# takes milliseconds, running every migration on an empty database seconds. Nobody connects
# to it after its migration (PostgreSQL copies only a database nobody is connected to);
# `drop_template()` removes it when the run ends (tests/conftest.py).
_template: list[str] = []


def _head_template(admin: sa.Engine) -> str:
    if not _template:
        name = f"instashare_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        _template.append(name)
        upgrade(_database_url(name))
    return _template[0]


def drop_template() -> None:
    """Drop this process's migrated template (see `fresh_database`), if it made one."""
    if not _template:
        return
    admin = sa.create_engine(ADMIN_DB_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{_template.pop()}" WITH (FORCE)'))
    admin.dispose()


@contextlib.contextmanager
def fresh_database(prefix: str = "instashare_test", revision: str = "head") -> Iterator[str]:
    """A new PostgreSQL database, migrated with Alembic (to `revision`); its URL. Dropped
    afterwards. At "head" it is a copy of a database this process migrated once."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(ADMIN_DB_URL, isolation_level="AUTOCOMMIT")
    template = _head_template(admin) if revision == "head" else None
    with admin.connect() as conn:
        copy = f' TEMPLATE "{template}"' if template else ""
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
    url = _database_url(name)
    try:
        if template is None:
            upgrade(url, revision)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def redis_db(n: int) -> str:
    """Database `n` of this run's private Redis server."""
    return f"{os.environ[REDIS_ENV]}/{n}"


def make_settings(tmp: Path, database_url: str, backend: str = "local", **overrides) -> Settings:
    """Settings for a test app, worker or server: real PostgreSQL and Redis, storage in `tmp`."""
    values = dict(
        database_url=database_url,
        broker_url=redis_db(1),
        redis_url=redis_db(2),
        data_dir=tmp,
        storage_backend=backend,
        gcs_bucket=GCS_BUCKET,
        validate_responses=True,
        sweep_interval_seconds=1.0,
        job_lease_seconds=5,
        login_max_failures=5,
        login_max_failures_per_ip=1000,
        worker_metrics_port=0,  # several test workers run at once; a fixed port would clash
        signup="open",  # as `dev`; tests/handlers/test_admin.py tries the other modes
        **TEST_PASSWORD_COST,
    )
    values.update(overrides)
    return Settings.from_env({}, **values)


def committing_engine(request, tmp_path: Path) -> sa.Engine:
    """For a fixture parametrized over ["postgresql", "sqlite"]: this run's PostgreSQL
    engine, or one on a fresh, migrated SQLite file under `tmp_path` (sessions on either
    commit for real)."""
    if request.param == "postgresql":
        return request.getfixturevalue("engine")
    url = f"sqlite:///{tmp_path}/instashare.db"
    upgrade(url)
    return make_engine(url)


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for a subprocess (worker, server, CLI)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env.update({k: v for k, v in settings.masked().items() if v != ""})
    env["INSTASHARE_SECRET_KEY"] = settings.secret_key
    env["INSTASHARE_DATABASE_URL"] = settings.database_url
    env["INSTASHARE_BROKER_URL"] = settings.broker_url
    env["INSTASHARE_REDIS_URL"] = settings.redis_url
    return env


def proxied_env(proxy: FaultProxy) -> dict[str, str]:
    """Environment for a subprocess whose GCS client talks through the fault proxy."""
    return {"STORAGE_EMULATOR_HOST": proxy.url}


def proxied_gcs(proxy: FaultProxy, **options) -> GCSStorage:
    """A GCS backend on the test bucket whose every request passes through `proxy`.

    `options`: GCSStorage's (`deadline`, `timeout`).
    """
    # The client reads STORAGE_EMULATOR_HOST once, when it is made.
    saved = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = proxy.url
    try:
        return GCSStorage(GCS_BUCKET, **options)
    finally:
        if saved is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved


def start_server(
    settings: Settings,
    workers: int = 1,
    log=subprocess.DEVNULL,
    extra_env: dict[str, str] | None = None,
):
    """`instashare-server serve` on a free loopback port, answering; (process, base URL)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app.server", "serve", "--workers", str(workers),
         "--host", "127.0.0.1", "--port", str(port)],
        env=settings_env(settings) | (extra_env or {}), cwd=ROOT, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, timeout=30)
        # gunicorn listens before its workers have imported the app: wait for an answer
        # (from the spec, so that no test's count of /health requests includes these).
        wait_until(lambda: answers(f"{base}/api/v1/openapi.json"), 60, 0.1, what="the server up")
    except BaseException:
        server.kill()
        server.wait()
        raise
    return server, base


class Dev:
    """`instashare-server dev` as a person runs it: from some directory, Ctrl-C to stop."""

    def __init__(self, *args: str, env: dict[str, str], cwd):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.server", "dev", "--port", str(self.port), *args],
            env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_until(lambda: answers(f"{self.base}/api/v1/health"), 60, 0.1, what="dev up")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> tuple[int, str, str]:
        """Ctrl-C at the terminal (the whole process group); exit status, stdout, stderr."""
        os.killpg(self.proc.pid, signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, err


def answers(url: str) -> bool:
    """`url` answers 200 (a server that is up and has loaded the app)."""
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


class WorkerProcess:
    """A real `instashare-server worker --beat` process (Celery, prefork) for tests."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        concurrency: int = 2,
        extra_env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ):
        self.settings = settings
        self.log_path = log_path
        self.concurrency = concurrency
        self.extra_env = extra_env or {}
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.server", "worker", "--beat",
             "--concurrency", str(self.concurrency), *self.extra_args],
            env=settings_env(self.settings) | self.extra_env,
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

    def kill(self) -> None:
        """Stop at once (kill -9): a warm shutdown waits up to 5 s for the embedded beat.

        For tests that are done with the worker; tests/test_shutdown.py is about SIGTERM.
        """
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# --- the app under test ------------------------------------------------------------------


class InlineJobs(JobQueue):
    """The API's job queue without the broker: jobs wait here until a test runs them.

    `run()` runs each one in the test's process, through the worker's own job function
    (`worker.tasks.compress_file`) on the test's database session and real storage. Only
    the tests about the worker start Celery processes.
    """

    def __init__(self) -> None:
        self.waiting: list[str] = []
        self.drains = 0  # deletion jobs sent (a large folder delete's): `run` carries them out
        self.mails: list[list[str]] = []  # mail jobs' fields (app.services.mail.Mail), kept
        super().__init__(self._take, lambda: len(self.waiting))

    def _take(self, task: str, args: list[str], _queue: str) -> None:
        if task == FINISH_DELETIONS:
            self.drains += 1
        elif task == SEND_MAIL:
            self.mails.append(args)
        else:
            self.waiting.append(args[0])

    def run(self, rt: Runtime) -> list[str]:
        """Run every job sent so far (and any they send); their outcomes, in order.

        A deletion job sent meanwhile removes every recorded object, as the worker's does.
        """
        from worker.tasks import compress_file

        def retry(exc: Exception):
            raise exc

        outcomes = []
        while self.waiting:
            outcomes.append(compress_file(rt, uuid.UUID(self.waiting.pop(0)), retry))
        if self.drains:
            self.drains = 0
            with rt.sessions() as session:
                deletions.drain(session, rt.storage)
        return outcomes


def runtime(app) -> Runtime:
    """The Runtime a Connexion app was built with."""
    from app.web import runtime_of

    return runtime_of(app)


def run_jobs(app) -> list[str]:
    """Run the compression jobs the app has sent (see InlineJobs); their outcomes."""
    rt = runtime(app)
    assert isinstance(rt.jobs, InlineJobs), "this app sends its jobs to a real broker"
    return rt.jobs.run(rt)


@contextlib.contextmanager
def committing_app(settings: Settings) -> Iterator:
    """`create_app(settings)` as deployed: it commits, and sends its jobs to the broker.

    For the tests beside real processes (a worker, a server) that must see its rows; give
    it a database of its own (`fresh_database()`) when a worker with `--beat` sweeps it.
    """
    from app.web import create_app

    app = create_app(settings)
    try:
        yield app
    finally:
        runtime(app).sessions.kw["bind"].dispose()


# --- accounts and requests ---------------------------------------------------------------


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


class Account:
    """A user for one test: its id, credentials, access token and Authorization header."""

    def __init__(self, id: str, email: str, token: str, password: str = PASSWORD):
        self.id = id
        self.email = email
        self.password = password
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}

    @classmethod
    def register(cls, client, email: str | None = None, password: str = PASSWORD) -> Account:
        """Register and log in over HTTP, as a client would."""
        email = email or new_email()
        created = client.post("/api/v1/users/register", json={"email": email, "password": password})
        assert created.status_code == 201, created.text
        login = client.post("/api/v1/users/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        return cls(created.json()["id"], email, login.json()["access_token"], password)


def committed_account(sessions: sessionmaker, settings: Settings) -> Account:
    """A new user, committed through `sessions` (which must commit), with a token."""
    user = UserFactory.build()
    with sessions() as session:
        session.add(user)
        session.commit()
    token, _ = tokens.issue(settings, user.id)
    return Account(str(user.id), user.email, token)


def account_in(app) -> Account:
    """A committed account in the database of an app that commits."""
    rt = runtime(app)
    return committed_account(rt.sessions, rt.settings)


def remove_account(sessions: sessionmaker, account: Account) -> None:
    """Delete a committed user and (by cascade) its files and uploads."""
    with sessions() as session:
        session.execute(sa.delete(User).where(User.id == uuid.UUID(account.id)))
        session.commit()


def upload(client, account: Account, content: bytes = b"hello", filename="hello.txt", **form):
    """POST /upload_files as `account`; the raw response."""
    return client.post(
        "/api/v1/upload_files",
        headers=account.headers,
        files={"file": (filename, content, "application/octet-stream")},
        data=form,
    )


def upload_ready(client, app, account: Account, content: bytes, filename: str) -> str:
    """Upload `content` as `account` and run its compression job: the id of a ready file."""
    created = upload(client, account, content, filename)
    assert created.status_code == 202, created.text
    run_jobs(app)
    return created.json()["id"]


def wait_for_status(client, account: Account, file_id: str, statuses, timeout: float = 60.0):
    """Poll GET /files/{id} until its status is one of `statuses`; the final body."""
    statuses = {statuses} if isinstance(statuses, str) else set(statuses)
    seen: dict = {}

    def reached():
        seen.update(client.get(f"/api/v1/files/{file_id}", headers=account.headers).json())
        return seen.get("status") in statuses

    try:
        wait_until(reached, timeout, what=f"file {file_id} reaching {statuses}")
    except AssertionError:
        raise AssertionError(f"file {file_id} never reached {statuses}: {seen}") from None
    return seen


# --- checks ------------------------------------------------------------------------------


def assert_problem(response, status: int) -> dict:
    """`response` is an RFC 9457 problem with `status`; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def spooled_files(settings: Settings) -> list[Path]:
    """Files left in the spool directory (none once every request has finished)."""
    root = settings.spool_root
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def stored_keys(app, user_id: str) -> list[str]:
    """Every storage key of the user: in its folder, and under the temporary prefix."""
    storage = runtime(app).storage
    return sorted([*storage.list(f"{user_id}/"), *storage.list(f"tmp/{user_id}/")])


def started_download(response) -> str:
    """The download a share page's form post started: the page (200, "Download started")
    refreshes to the grant, relative to /s/{token}/grants."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "Download started." in response.text
    found = re.search(r'<meta http-equiv="refresh" content="0; url=([^"]+)">', response.text)
    assert found is not None, "the page starts no download"
    url = html.unescape(found[1])
    assert url.startswith("../../api/v1/downloads/")
    return url
