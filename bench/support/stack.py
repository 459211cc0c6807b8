"""The service under test and what it stands on: a scratch PostgreSQL database, Redis, the
environment of production or dev mode, `instashare-server serve` and its worker."""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from support.processes import ROOT, Processes, free_port, wait_for_port

ADMIN_DB_URL = os.environ.get(
    "INSTASHARE_BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
SHARED_REDIS = os.environ.get("INSTASHARE_BENCH_REDIS", "redis://127.0.0.1:6379")
CLI = [sys.executable, "-m", "app.server"]
API = "/api/v1"


def arguments(doc: str, *, keep: bool = True) -> argparse.ArgumentParser:
    """A bench's parser: its description the first paragraph of `doc`, and `--keep`."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if keep:
        parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    return parser


def need(bench: str, *tools: str) -> None:
    """SystemExit unless every one of `tools` is on PATH."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise SystemExit(f"bench/{bench}.py needs {tool}")


# --- PostgreSQL -------------------------------------------------------------------------------


def _admin(statement: str) -> None:
    engine = sa.create_engine(ADMIN_DB_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


@contextlib.contextmanager
def scratch_database(prefix: str = "instashare_bench") -> Iterator[str]:
    """A new PostgreSQL database's URL (not yet migrated), dropped on the way out."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(ADMIN_DB_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_connections(database_url: str) -> str:
    """The connections to a database, by state: `3 idle, 1 active`."""
    engine = sa.create_engine(ADMIN_DB_URL)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT coalesce(state, '?'), count(*) FROM pg_stat_activity "
                "WHERE datname = :n GROUP BY 1 ORDER BY 1"
            ),
            {"n": make_url(database_url).database},
        ).all()
    engine.dispose()
    return ", ".join(f"{n} {state}" for state, n in rows) or "none"


# The server's log (Debian's postgresql-common): `%m [%p] %q%u@%d ` before each line.
LOG_FILE = Path(
    os.environ.get("INSTASHARE_BENCH_PG_LOG", "/var/log/postgresql/postgresql-15-main.log")
)


def log_statements(database_url: str) -> None:
    """Have PostgreSQL log every statement run in this database (its sessions from now on)."""
    _admin(f"ALTER DATABASE \"{make_url(database_url).database}\" SET log_statement = 'all'")


def statements_logged(database_url: str, offset: int) -> collections.Counter[str]:
    """The statements logged for this database after `offset` of the log, by first word
    (`SELECT`, `COMMIT`, ...; see `log_statements`)."""
    marker = f"@{make_url(database_url).database} LOG:  statement: "
    counted: collections.Counter[str] = collections.Counter()
    with LOG_FILE.open("rb") as log:
        log.seek(offset)
        for line in log:
            text = line.decode("utf-8", "replace")
            if marker in text:
                words = text.split(marker, 1)[1].split(None, 1)
                counted[words[0].upper() if words else "?"] += 1
    return counted


def backend_pids(database_url: str) -> list[int]:
    """The PostgreSQL backends serving a database."""
    engine = sa.create_engine(ADMIN_DB_URL)
    with engine.connect() as conn:
        pids = conn.scalars(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d"),
            {"d": make_url(database_url).database},
        ).all()
    engine.dispose()
    return list(pids)


@contextlib.contextmanager
def scratch_dir(name: str, keep: bool = False) -> Iterator[Path]:
    """A temp dir, removed afterwards (kept, and said so, with `keep`)."""
    work = Path(tempfile.mkdtemp(prefix=f"instashare-{name}-"))
    try:
        yield work
    finally:
        if keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def scratch_main(name: str, parser: argparse.ArgumentParser, run, needs: tuple[str, ...] = ()):
    """A bench's `main`: its arguments parsed, the tools it `needs` checked, and
    `run(args, work dir, processes, database URL)` in scratch (see `run_in_scratch`)."""
    args = parser.parse_args()
    need(name, *needs)
    return run_in_scratch(name, args.keep, lambda *held: run(args, *held))


def run_in_scratch(name: str, keep: bool, run: Callable[[Path, Processes, str], bool]) -> int:
    """`run(work dir, processes, database URL)` with a temp dir and a scratch database, both
    gone afterwards (the dir kept with `keep`), every process stopped before the database;
    the exit status: 0 when `run` says every target held."""
    procs = Processes()
    with scratch_dir(name, keep) as work, scratch_database(f"instashare_bench_{name}") as url:
        try:
            return 0 if run(work, procs, url) else 1
        finally:
            procs.stop_all()  # before the database goes


# --- Redis ------------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of this run's own on a free port (no disk), to stop and start again."""

    def __init__(self, procs: Processes, work: Path):
        self.procs, self.work = procs, work
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.start()

    def start(self) -> None:
        """Start it (again, empty, on the same port)."""
        self.proc = self.procs.start(
            "redis",
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.work)],
            dict(os.environ),
            self.work / "redis.log",
        )  # fmt: skip
        wait_for_port(self.port)

    def kill(self) -> None:
        """SIGKILL: gone at once, as a crash would leave it."""
        self.proc.kill()
        self.proc.wait(timeout=10)


def private_redis(procs: Processes, work: Path) -> str:
    """A `PrivateRedis`'s base URL."""
    return PrivateRedis(procs, work).url


@contextlib.contextmanager
def shared_redis(dbs: tuple[int, ...], base: str = SHARED_REDIS) -> Iterator[str]:
    """An existing Redis whose databases `dbs` this run may use: flushed before and after."""
    base = base.rstrip("/")
    for db in dbs:
        redis.Redis.from_url(f"{base}/{db}").flushdb()
    try:
        yield base
    finally:
        for db in dbs:
            redis.Redis.from_url(f"{base}/{db}").flushdb()


# --- the service ------------------------------------------------------------------------------


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any INSTASHARE_ variable, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env.update(settings)
    return env


def production_env(
    database_url: str, redis_base: str, work: Path, dbs: tuple[int, int] = (0, 1), **settings: str
) -> dict[str, str]:
    """The environment of `instashare-server` in production mode, local storage in `work`,
    Redis databases `dbs` for throttling and the broker (`settings`: more INSTASHARE_
    variables, or other values for these)."""
    production = {
        "INSTASHARE_ENV": "production",
        "INSTASHARE_SECRET_KEY": secrets.token_urlsafe(48),
        "INSTASHARE_DATABASE_URL": database_url,
        "INSTASHARE_REDIS_URL": f"{redis_base}/{dbs[0]}",
        "INSTASHARE_BROKER_URL": f"{redis_base}/{dbs[1]}",
        "INSTASHARE_DATA_DIR": str(work / "data"),
        "INSTASHARE_STORAGE_BACKEND": "local",
        "INSTASHARE_LOG_LEVEL": "WARNING",
        "INSTASHARE_WORKER_METRICS_PORT": "0",
        "INSTASHARE_SIGNUP": "open",  # the benches register their own accounts
    }
    return clean_env(**{**production, **settings})


def dev_env(data: Path, **settings: str) -> dict[str, str]:
    """The environment of the embedded default: SQLite, local storage and the filesystem
    broker, all in `data`."""
    dev = {
        "INSTASHARE_DATA_DIR": str(data),
        "INSTASHARE_DATABASE_URL": f"sqlite:///{data / 'instashare.db'}",
        "INSTASHARE_LOG_LEVEL": "WARNING",
    }
    return clean_env(**{**dev, **settings})


def server_command(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    """`instashare-server *argv` run to its end, its output captured."""
    return subprocess.run([*CLI, *argv], env=env, cwd=ROOT, capture_output=True, text=True)


def migrate(env: dict[str, str]) -> None:
    """`instashare-server migrate` on the environment's database."""
    done = server_command(env, "migrate")
    if done.returncode:
        raise SystemExit(f"instashare-server migrate failed:\n{done.stderr}")


def start_worker(
    procs: Processes, env: dict[str, str], work: Path, *argv: str, log: str = "worker.log"
):
    """`instashare-server worker *argv` (`--concurrency 2` unless said)."""
    argv = argv or ("--concurrency", "2")
    return procs.start("worker", [*CLI, "worker", *argv], env, work / log)


def start_dev(procs: Processes, env: dict[str, str], work: Path, *argv: str):
    """`instashare-server dev *argv` on a free port, once it listens: (process, port)."""
    port = free_port()
    argv = ("dev", "--host", "127.0.0.1", "--port", str(port), *argv)
    proc = procs.start("dev", [*CLI, *argv], env, work / "dev.out")
    wait_for_port(port, timeout=60)
    return proc, port


def start_serve(
    procs: Processes, env: dict[str, str], work: Path, tag: str, workers: int | None = None
):
    """`instashare-server serve` (its default workers, or `workers`), once every worker answers."""
    port = free_port()
    argv = [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)]
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


@dataclass
class Service:
    """`instashare-server serve` in production mode, and what it stands on."""

    env: dict[str, str]
    server: subprocess.Popen
    port: int
    redis: PrivateRedis | None  # None: a shared Redis
    worker: subprocess.Popen | None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_service(
    procs: Processes,
    work: Path,
    database_url: str,
    *,
    workers: int | None = 2,
    worker: tuple[str, ...] | None = None,
    redis_base: str = "",
    dbs: tuple[int, int] = (0, 1),
    tag: str = "api",
    **settings: str,
) -> Service:
    """The database migrated, `serve` with `workers` (None: its default) and, given its
    arguments, `worker`; on a private Redis unless `redis_base` names another
    (`dbs`, `settings`: see `production_env`)."""
    redis = None if redis_base else PrivateRedis(procs, work)
    if redis is not None:
        redis_base = redis.url
    env = production_env(database_url, redis_base, work, dbs, **settings)
    migrate(env)
    server, port = start_serve(procs, env, work, tag, workers)
    running = None if worker is None else start_worker(procs, env, work, *worker)
    return Service(env, server, port, redis, running)
