"""Upload-to-ready latency through the production setup: gunicorn, Redis, Celery, PostgreSQL.

Run from the repository root:  python bench/pipeline.py [--uploads 200]

It creates a scratch PostgreSQL database (migrated with `instashare-server migrate`),
starts `instashare-server serve --workers 2` and `instashare-server worker --concurrency 2
--beat` in production mode, registers a user, then uploads small files one after another.
For each it takes the time from the 202 response until GET /files/{id} says `ready`,
polling every few milliseconds; it also reports the server's own view (the file's
`processed_at` minus the moment the 202 arrived), which no polling interval blurs.
Everything it started is stopped by PID, and the scratch database dropped.

Redis: by default a private redis-server on a free port (databases 9 and 10 on it), so
nothing else using Redis here is disturbed; `--redis-url redis://127.0.0.1:6379` uses an
existing server's databases 9 (throttling) and 10 (broker) instead, flushing both first.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DB_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
P50_TARGET_MS = 100
P99_TARGET_MS = 500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, round(p / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


class Processes:
    """Child processes in their own sessions, stopped (by PID) in reverse order."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        out = open(log, "wb")  # noqa: SIM115 - the child writes to it for its whole life
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for _name, proc in reversed(self.started):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in reversed(self.started):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def run(args: argparse.Namespace, work: Path, procs: Processes) -> bool:
    if args.redis_url:
        redis_base = args.redis_url.rstrip("/")
    else:
        port = free_port()
        procs.start(
            "redis",
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(work)],
            dict(os.environ),
            work / "redis.log",
        )  # fmt: skip
        wait_for_port(port)
        redis_base = f"redis://127.0.0.1:{port}"
    for db in (9, 10):
        redis.Redis.from_url(f"{redis_base}/{db}").flushdb()

    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env.update(
        INSTASHARE_ENV="production",
        INSTASHARE_SECRET_KEY=secrets.token_urlsafe(48),
        INSTASHARE_DATABASE_URL=args.database_url,
        INSTASHARE_REDIS_URL=f"{redis_base}/9",
        INSTASHARE_BROKER_URL=f"{redis_base}/10",
        INSTASHARE_DATA_DIR=str(work / "data"),
        INSTASHARE_STORAGE_BACKEND="local",
        INSTASHARE_LOG_LEVEL="WARNING",
        # One bench user sends everything: the per-address login limit is not under test.
        INSTASHARE_LOGIN_MAX_FAILURES_PER_IP="1000",
    )
    cli = [sys.executable, "-m", "app.server"]
    subprocess.run([*cli, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)

    port = free_port()
    procs.start(
        "server",
        [*cli, "serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)],
        env,
        work / "server.log",
    )
    procs.start(
        "worker", [*cli, "worker", "--concurrency", "2", "--beat"], env, work / "worker.log"
    )
    wait_for_port(port)
    base = f"http://127.0.0.1:{port}/api/v1"

    with httpx.Client(base_url=base, timeout=30) as http:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        password = secrets.token_urlsafe(16)
        http.post("/users/register", json={"email": email, "password": password})
        login = http.post("/users/login", json={"email": email, "password": password})
        login.raise_for_status()
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}

        # Warm-up: the first jobs pay for imports and connections in each pool process.
        content = CONTENT[: min(args.size_kib, 128) * 1024]
        for i in range(args.warmup):
            once(http, auth, f"warmup-{i}.txt", content, args.poll_ms)

        observed: list[float] = []
        server_side: list[float] = []
        polls: list[int] = []
        started = time.monotonic()
        for i in range(args.uploads):
            seen, by_server, n = once(http, auth, f"file-{i:04d}.txt", content, args.poll_ms)
            observed.append(seen)
            server_side.append(by_server)
            polls.append(n)
        elapsed = time.monotonic() - started

    print(f"{args.uploads} sequential uploads of {args.size_kib} KiB in {elapsed:.1f} s "
          f"(after {args.warmup} warm-up); polling every {args.poll_ms} ms, "
          f"{statistics.mean(polls):.1f} GETs per upload on average")  # fmt: skip
    print()
    print(f"{'upload 202 -> ready, ms':<34} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}")
    for label, values in (
        ("observed by polling GET /files/{id}", observed),
        ("server: processed_at - 202 receipt", server_side),
    ):
        p50, p90, p99 = (percentile(values, p) for p in (50, 90, 99))
        print(f"{label:<34} {p50:>7.1f} {p90:>7.1f} {p99:>7.1f} {max(values):>7.1f}")
    p50, p99 = percentile(observed, 50), percentile(observed, 99)
    print()
    print(f"target p50 <= {P50_TARGET_MS} ms (observed): {p50:.1f} ms  "
          f"{'PASS' if p50 <= P50_TARGET_MS else 'FAIL'}")  # fmt: skip
    print(f"target p99 <= {P99_TARGET_MS} ms (observed): {p99:.1f} ms  "
          f"{'PASS' if p99 <= P99_TARGET_MS else 'FAIL'}")  # fmt: skip
    return p50 <= P50_TARGET_MS and p99 <= P99_TARGET_MS


CONTENT = b"".join(b"line %05d of a small text file\n" % i for i in range(4096))


def once(
    http: httpx.Client, auth: dict, name: str, content: bytes, poll_ms: float
) -> tuple[float, float, int]:
    """Upload one file; (ms until a GET saw it ready, ms until the server marked it, GETs)."""
    created = http.post(
        "/upload_files", headers=auth, files={"file": (name, content, "text/plain")}
    )
    t202 = time.monotonic()
    wall202 = dt.datetime.now(dt.UTC)
    if created.status_code != 202:
        raise SystemExit(f"upload answered {created.status_code}: {created.text}")
    file_id = created.json()["id"]
    polls = 0
    while True:
        body = http.get(f"/files/{file_id}", headers=auth).json()
        polls += 1
        if body["status"] == "ready":
            seen = (time.monotonic() - t202) * 1000
            break
        if body["status"] == "failed":
            raise SystemExit(f"the job failed: {body['error']}")
        if time.monotonic() - t202 > 60:
            raise SystemExit(f"{file_id} not ready after 60 s: {body}")
        time.sleep(poll_ms / 1000)
    processed = dt.datetime.fromisoformat(body["processed_at"])
    return seen, (processed - wall202).total_seconds() * 1000, polls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--size-kib", type=int, default=4, help="each upload's size (<= 128)")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="pause between two GETs")
    parser.add_argument("--redis-url", default="", help="use this Redis (dbs 9 and 10)")
    parser.add_argument("--admin-db-url", default=ADMIN_DB_URL)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()

    name = f"instashare_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(args.admin_db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    args.database_url = (
        make_url(args.admin_db_url).set(database=name).render_as_string(hide_password=False)
    )
    work = Path(tempfile.mkdtemp(prefix="instashare-pipeline-"))
    procs = Processes()
    try:
        return 0 if run(args, work, procs) else 1
    finally:
        procs.stop_all()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if args.keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
