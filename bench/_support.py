"""What several benchmarks share: a scratch database, a private Redis, `serve` in production
mode, a bench account, and a keep-alive load generator on asyncio.

The process helpers (`Processes`, `free_port`, `wait_for_port`, `percentile`) live in
bench/pipeline.py, the first benchmark, and are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import sqlalchemy as sa
from pipeline import Processes, free_port, percentile, wait_for_port
from sqlalchemy.engine import make_url

__all__ = [
    "API",
    "ROOT",
    "Client",
    "Processes",
    "account",
    "free_port",
    "percentile",
    "private_redis",
    "production_env",
    "scratch_database",
    "start_serve",
    "stop",
    "wait_for_port",
]

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DB_URL = os.environ.get(
    "INSTASHARE_BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
API = "/api/v1"


@contextlib.contextmanager
def scratch_database(prefix: str = "instashare_bench") -> Iterator[str]:
    """A new PostgreSQL database's URL (not yet migrated), dropped on the way out."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(ADMIN_DB_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_DB_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def private_redis(procs: Processes, work: Path) -> str:
    """A redis-server of this run's own on a free port (no disk); its base URL."""
    port = free_port()
    procs.start(
        "redis",
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(work)],
        dict(os.environ),
        work / "redis.log",
    )  # fmt: skip
    wait_for_port(port)
    return f"redis://127.0.0.1:{port}"


def production_env(
    database_url: str, redis_base: str, work: Path, **settings: str
) -> dict[str, str]:
    """The environment of `instashare-server` in production mode, local storage in `work`
    (`settings`: more INSTASHARE_ variables, or other values for these)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env.update(
        INSTASHARE_ENV="production",
        INSTASHARE_SECRET_KEY=secrets.token_urlsafe(48),
        INSTASHARE_DATABASE_URL=database_url,
        INSTASHARE_REDIS_URL=f"{redis_base}/0",
        INSTASHARE_BROKER_URL=f"{redis_base}/1",
        INSTASHARE_DATA_DIR=str(work / "data"),
        INSTASHARE_STORAGE_BACKEND="local",
        INSTASHARE_LOG_LEVEL="WARNING",
        INSTASHARE_WORKER_METRICS_PORT="0",
    )
    env.update(settings)
    return env


def start_serve(
    procs: Processes, env: dict[str, str], work: Path, tag: str, workers: int | None = None
):
    """`instashare-server serve` (its default workers, or `workers`), once every worker answers."""
    port = free_port()
    argv = [sys.executable, "-m", "app.server", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    proc = procs.start(f"serve-{tag}", argv, env, work / f"serve-{tag}.log")
    wait_for_port(port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a run of answers on fresh connections
        with contextlib.suppress(httpx.HTTPError):
            if all(httpx.get(f"http://127.0.0.1:{port}{API}/health").is_success for _ in range(8)):
                break
        time.sleep(0.2)
    time.sleep(1.0)
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    """Stop one of `Processes`' children (its own process group), by PID."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def register(base: str) -> tuple[str, str, str]:
    """A new account: (email, password, access token)."""
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    password = secrets.token_urlsafe(16)
    with httpx.Client(base_url=base, timeout=30) as http:
        http.post(f"{API}/users/register", json={"email": email, "password": password})
        login = http.post(f"{API}/users/login", json={"email": email, "password": password})
        login.raise_for_status()
        return email, password, login.json()["access_token"]


def account(base: str) -> dict[str, str]:
    """The Authorization header of a new account."""
    return {"Authorization": f"Bearer {register(base)[2]}"}


def run_in_scratch(name: str, keep: bool, run: Callable[[Path, Processes, str], bool]) -> int:
    """`run(work dir, processes, database URL)` with a temp dir and a scratch database, both
    gone afterwards (the dir kept with `keep`), every process stopped before the database;
    the exit status: 0 when `run` says every target held."""
    work = Path(tempfile.mkdtemp(prefix=f"instashare-{name}-"))
    procs = Processes()
    try:
        with scratch_database(f"instashare_bench_{name}") as database_url:
            try:
                return 0 if run(work, procs, database_url) else 1
            finally:
                procs.stop_all()  # before the database goes
    finally:
        if keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


class Client(asyncio.Protocol):
    """One keep-alive connection sending the same request again as each answer completes.

    With `latencies`, each answer's time from the request's write to its last byte (s).
    """

    def __init__(
        self,
        request: bytes,
        counts: list[int],
        failures: list[bytes],
        latencies: list[float] | None = None,
        ok: bytes = b"HTTP/1.1 200",
    ):
        self.request = request
        self.ok = ok  # how an answer that is not a failure begins
        self.counts = counts
        self.failures = failures
        self.latencies = latencies
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.stopped = False
        self.sent_at = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            if self.latencies is not None:
                self.latencies.append(time.perf_counter() - self.sent_at)
            if not head.startswith(self.ok):
                self.failures.append(head.split(b"\r\n", 1)[0])
            self.buffer = self.buffer[end:]
            self.counts[0] += 1
            if self.stopped:
                assert self.transport is not None
                self.transport.close()
                return
            self._send()
