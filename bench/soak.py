"""A soak under faults: users at work while the worker, Redis and the database misbehave.

Run from the repository root:  python bench/soak.py [--minutes 3] [--users 8]

It starts, on loopback, a scratch PostgreSQL database, a private redis-server, `instashare-
server serve --workers 2` and `instashare-server worker --concurrency 2 --beat`, all in
production mode with local storage in a temp dir. `--users` accounts then upload (1 KiB
to 2 MiB, now and then 12 MiB; text and random bytes), download originals (checked byte
for byte), rename, delete, list and share (the link's download checked too), without
pause, for `--minutes`. Every 20 s of calm brings the next of these faults, in turn:

- `kill -9` of the worker's main process (its pool, lane and beat must end with it), and
  a new worker 5 s later;
- Redis stopped for 8 s, then started again on the same port, empty;
- every database connection dropped (`pg_terminate_backend`), twice, 2 s apart.

It prints each operation's p50/p99 latency and failure count in calm and fault windows
(a fault window runs from the fault until 10 s after it was repaired), then the end-state
checks, once every file has settled: every file ready and byte-identical, nothing lost or
extra, usage counters exact (`instashare-server recount`), storage and rows matching, the
worker processes gone after each `kill -9`, every job's outcome logged with its request
id, and the worker never stopping on its own (should it, the soak starts it again, as a
supervisor would, and says so). Exit status 0 when every end-state check holds.
Everything it started is stopped by PID; the scratch database and temp dir are removed
(`--keep` keeps the dir).
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import sqlalchemy as sa
from support.client import API, account
from support.processes import Processes, alive, descendants, stop
from support.report import percentile, word
from support.stack import (
    PrivateRedis,
    arguments,
    migrate,
    production_env,
    run_in_scratch,
    server_command,
    start_serve,
    start_worker,
)

KIB, MIB = 1024, 1024 * 1024
SIZES = [KIB, 16 * KIB, 64 * KIB, 512 * KIB, 2 * MIB]
FAULT_WINDOW_AFTER_REPAIR = 10.0
CALM_SECONDS = 20.0  # between two faults (and before the first, and after the last)


def content(seed: int, size: int) -> bytes:
    """The bytes of upload `seed`: log text for even seeds, random bytes for odd ones."""
    rng = random.Random(seed)
    if seed % 2:
        return rng.randbytes(size)
    line = b"%d INFO soak worker=%d req=%08x status=200 took=%dms\n"
    out = bytearray()
    while len(out) < size:
        out += line % (seed, rng.randrange(16), rng.getrandbits(32), rng.randrange(900))
    return bytes(out[:size])


@dataclass
class Expected:
    seed: int
    size: int
    sha256: str


@dataclass
class Record:
    op: str
    started: float
    seconds: float
    ok: bool


@dataclass
class Soak:
    base: str
    deadline: float
    started: float = 0.0
    records: list[Record] = field(default_factory=list)
    faults: list[tuple[str, float, float]] = field(default_factory=list)  # name, from, to
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: str, started: float, ok: bool) -> None:
        with self.lock:
            self.records.append(Record(op, started, time.monotonic() - started, ok))


class User:
    """One account at work: its files as it believes them to be."""

    def __init__(self, soak: Soak, number: int):
        self.soak = soak
        self.number = number
        self.auth = account(soak.base)
        self.files: dict[str, Expected] = {}  # id -> what it holds
        self.unsure: dict[str, Expected] = {}  # name -> an upload whose answer was lost
        self.mismatches: list[str] = []
        self.rng = random.Random(number)
        self.seeds = iter(range(number * 10**6, (number + 1) * 10**6))

    def run(self) -> None:
        with httpx.Client(base_url=self.soak.base + API, headers=self.auth, timeout=60) as http:
            while time.monotonic() < self.soak.deadline:
                op = self.rng.choices(
                    ["upload", "download", "rename", "delete", "share", "list"],
                    [35, 25, 10, 8, 10, 12],
                )[0]
                if op != "upload" and not self.files:
                    op = "upload"
                started = time.monotonic()
                try:
                    ok = getattr(self, op)(http)
                except httpx.HTTPError:
                    ok = False
                self.soak.record(op, started, ok)

    def upload(self, http: httpx.Client) -> bool:
        seed = next(self.seeds)
        size = 12 * MIB if self.rng.random() < 0.02 else self.rng.choice(SIZES)
        body = content(seed, size)
        name = f"f-{seed}.{'bin' if seed % 2 else 'log'}"
        expected = Expected(seed, size, hashlib.sha256(body).hexdigest())
        try:
            got = http.post("/upload_files", files={"file": (name, body, "text/plain")})
        except httpx.HTTPError:
            self.unsure[name] = expected
            raise
        if got.status_code == 202:
            self.files[got.json()["id"]] = expected
            return True
        if got.status_code >= 500:
            self.unsure[name] = expected
        return False

    def pick(self) -> str:
        return self.rng.choice(list(self.files))

    def download(self, http: httpx.Client) -> bool:
        file_id = self.pick()
        got = http.get(f"/files/{file_id}/content", params={"format": "original"})
        if got.status_code == 409:  # not ready yet: an answer, not a failure
            return True
        if got.status_code != 200:
            return got.status_code == 404 and file_id not in self.files
        if hashlib.sha256(got.content).hexdigest() != self.files[file_id].sha256:
            self.mismatches.append(file_id)
        return True

    def rename(self, http: httpx.Client) -> bool:
        file_id = self.pick()
        got = http.patch(f"/files/{file_id}", json={"name": f"r-{uuid.uuid4().hex[:10]}.dat"})
        return got.status_code == 200

    def delete(self, http: httpx.Client) -> bool:
        file_id = self.pick()
        got = http.delete(f"/files/{file_id}")
        if got.status_code in (204, 404):
            self.files.pop(file_id, None)
            return True
        return False

    def share(self, http: httpx.Client) -> bool:
        file_id = self.pick()
        made = http.post(f"/files/{file_id}/shares", json={"expires_in_days": 1})
        if made.status_code != 201:
            return False
        path = urlparse(made.json()["url"]).path
        got = http.get(f"{self.soak.base}{path}/content", headers={"Authorization": ""})
        if got.status_code == 409:
            return True
        if got.status_code != 200:
            return False
        if hashlib.sha256(got.content).hexdigest() != self.files[file_id].sha256:
            # A link to a ZIP serves the archive: compare its entry instead.
            import io
            import zipfile

            with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
                (entry,) = archive.infolist()
                if hashlib.sha256(archive.read(entry)).hexdigest() != self.files[file_id].sha256:
                    self.mismatches.append(file_id)
        return True

    def list(self, http: httpx.Client) -> bool:
        return http.get("/files", params={"limit": 50}).status_code == 200


class Services:
    """The processes under test, and the faults done to them."""

    def __init__(self, work: Path, procs: Processes, database_url: str):
        self.work, self.procs, self.database_url = work, procs, database_url
        self.redis = PrivateRedis(procs, work)
        self.env = production_env(
            database_url,
            self.redis.url,
            work,
            INSTASHARE_LOGIN_MAX_FAILURES_PER_IP="1000",
            INSTASHARE_JOB_LEASE_SECONDS="60",
            INSTASHARE_SWEEP_INTERVAL_SECONDS="10",
        )
        self.worker_env = {**self.env, "INSTASHARE_LOG_LEVEL": "INFO"}
        migrate(self.env)
        self.workers = 0
        self.worker_lock = threading.Lock()  # a fault and the supervisor, one at a time
        self.worker = self.start_worker()
        self.orphans: list[int] = []
        self.exits: list[int] = []  # exit statuses of workers that stopped on their own
        self.done = threading.Event()  # set before the processes are stopped
        _, self.port = start_serve(procs, self.env, work, "api", workers=2)

    def start_worker(self) -> subprocess.Popen:
        self.workers += 1
        log = self.worker_log(self.workers).name
        argv = ("--concurrency", "2", "--beat")
        return start_worker(self.procs, self.worker_env, self.work, *argv, log=log)

    def worker_log(self, n: int) -> Path:
        return self.work / f"worker-{n}.log"

    def kill_worker(self) -> None:
        """kill -9 of the worker's main process; a new worker 5 s later."""
        with self.worker_lock:
            below = descendants(self.worker.pid)
            os.kill(self.worker.pid, signal.SIGKILL)
            self.worker.wait()
            time.sleep(5)
            self.orphans += [pid for pid in below if alive(pid)]
            for pid in below:  # whatever outlived it: this soak started it
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
            self.worker = self.start_worker()

    def supervise(self) -> None:
        """Start the worker again when it exits on its own, as systemd or Docker would."""
        while not self.done.wait(1):
            with self.worker_lock:
                status = self.worker.poll()
                if status is not None:
                    self.exits.append(status)
                    print(f"  the worker exited on its own (status {status}); restarted")
                    self.worker = self.start_worker()

    def stop_redis(self) -> None:
        stop(self.redis.proc)
        time.sleep(8)
        self.redis.start()

    def drop_connections(self) -> None:
        admin = sa.create_engine(self.database_url, isolation_level="AUTOCOMMIT")
        for _ in range(2):
            with admin.connect() as conn:
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            time.sleep(2)
        admin.dispose()


def inject_faults(soak: Soak, services: Services) -> None:
    faults = [
        ("kill -9 worker", services.kill_worker),
        ("redis down 8 s", services.stop_redis),
        ("db connections dropped", services.drop_connections),
    ]
    turn = 0
    while True:
        wake = time.monotonic() + CALM_SECONDS
        if wake + CALM_SECONDS > soak.deadline:
            return
        time.sleep(wake - time.monotonic())
        name, fault = faults[turn % len(faults)]
        started = time.monotonic()
        print(f"  at {started - soak.started:.0f} s: {name}", flush=True)
        fault()
        with soak.lock:
            soak.faults.append((name, started, time.monotonic() + FAULT_WINDOW_AFTER_REPAIR))
        turn += 1


def in_fault(soak: Soak, at: float) -> bool:
    return any(start <= at <= end for _, start, end in soak.faults)


def report_latency(soak: Soak) -> None:
    print()
    print(f"{'operation':<10} {'window':<6} {'count':>6} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8}")
    groups: dict[tuple[str, str], list[Record]] = collections.defaultdict(list)
    for r in soak.records:
        groups[(r.op, "fault" if in_fault(soak, r.started) else "calm")].append(r)
    for (op, window), records in sorted(groups.items()):
        ms = [r.seconds * 1000 for r in records]
        failed = sum(not r.ok for r in records)
        print(
            f"{op:<10} {window:<6} {len(records):>6} {failed:>6} "
            f"{percentile(ms, 50):>8.0f} {percentile(ms, 99):>8.0f}"
        )


def settle(http: httpx.Client, users: list[User], timeout: float) -> bool:
    """Wait until no file of any user is pending or processing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = 0
        for user in users:
            for status in ("pending", "processing"):
                got = http.get(f"{API}/files", headers=user.auth, params={"status": status})
                busy += got.json()["total"] if got.status_code == 200 else 1
        if not busy:
            return True
        time.sleep(1)
    return False


def end_state(soak: Soak, services: Services, users: list[User]) -> bool:
    checks: list[tuple[str, bool, str]] = []
    with httpx.Client(base_url=soak.base, timeout=120) as http:
        settled = settle(http, users, 300)
        checks.append(("every file settled within 5 min", settled, ""))
        lost = extra = not_ready = differ = 0
        why: list[str] = []  # what the files not ready say
        for user in users:
            listed: dict[str, dict] = {}
            cursor = None
            while True:
                params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
                page = http.get(f"{API}/files", headers=user.auth, params=params).json()
                listed.update({item["id"]: item for item in page["items"]})
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            by_name = {item["name"]: item["id"] for item in listed.values()}
            for name, expected in user.unsure.items():  # the upload did land after all
                if name in by_name and by_name[name] not in user.files:
                    user.files[by_name[name]] = expected
            lost += len(set(user.files) - set(listed))
            extra += len(set(listed) - set(user.files))
            for file_id, item in listed.items():
                if item["status"] != "ready":
                    not_ready += 1
                    why.append(f"{item['status']}: {item['error']}")
                if file_id not in user.files:
                    continue
                try:
                    got = http.get(
                        f"{API}/files/{file_id}/content",
                        headers=user.auth,
                        params={"format": "original"},
                    )
                except httpx.HTTPError:  # cut off midway (its archive missing, say)
                    differ += 1
                    continue
                ok = got.status_code == 200
                differ += not ok or hashlib.sha256(got.content).hexdigest() != (
                    user.files[file_id].sha256
                )
            differ += len(user.mismatches)
        files = sum(len(u.files) for u in users)
        checks.append(
            (f"every file ready ({files} files)", not_ready == 0, f"{not_ready} not {why[:3]}")
        )
        checks.append(
            ("no file lost, none extra", lost == extra == 0, f"{lost} lost, {extra} extra")
        )
        checks.append(("every download byte-identical", differ == 0, f"{differ} differ"))

    recount = server_command(services.env, "recount")
    checks.append(
        ("usage counters exact (recount)", recount.returncode == 0, recount.stdout[-300:])
    )

    engine = sa.create_engine(services.database_url)
    with engine.connect() as conn:
        # A file's archive is the object its row records (a job that took over a dead
        # one's lease writes `<id>.<attempt>.zip`), else `<owner>/<id>.zip` as before.
        rows = {key or f"{owner}/{fid}.zip" for owner, fid, key in conn.execute(sa.text(
            "SELECT owner_id, id, archive_object FROM files"))}  # fmt: skip
        # A delete cut short after its commit (the database dropped its connection) leaves
        # its objects recorded for the worker's sweep, which removes them a minute or two
        # later: recorded, they are on their way out, not orphans.
        recorded = set(conn.execute(sa.text("SELECT key FROM pending_deletions")).scalars())
    engine.dispose()
    root = services.work / "data" / "storage"
    stored = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    missing, orphaned = rows - stored, stored - rows - recorded
    checks.append((
        "storage matches rows", not missing and not orphaned,
        f"{len(missing)} archives missing, {len(orphaned)} objects without a row "
        f"{sorted(orphaned)[:3]}, {len(stored & recorded)} recorded for the deletion sweep",
    ))  # fmt: skip
    checks.append((
        "no worker process outlived kill -9", not services.orphans,
        f"{len(services.orphans)} outlived it",
    ))  # fmt: skip

    outcomes = without = 0
    for n in range(1, services.workers + 1):
        for line in services.worker_log(n).read_text(errors="replace").splitlines():
            if "compress_upload[" in line and " succeeded in " in line:
                outcomes += 1
                without += json.loads(line).get("request_id") is None
    checks.append((
        f"every job outcome logged with its request id ({outcomes} outcomes)", without == 0,
        f"{without} without",
    ))  # fmt: skip
    checks.append((
        "the worker never exited on its own", not services.exits,
        f"it did {len(services.exits)} time(s), status {services.exits} (see the worker logs)",
    ))  # fmt: skip

    print()
    for name, ok, detail in checks:
        print(f"{word(ok)}  {name}{'' if ok else ': ' + detail.strip()}")
    return all(ok for _, ok, _ in checks)


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--minutes", type=float, default=3.0, help="how long the users work")
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()

    def run(work: Path, procs: Processes, database_url: str) -> bool:
        services = Services(work, procs, database_url)
        base = f"http://127.0.0.1:{services.port}"
        soak = Soak(base, deadline=0.0)
        users = [User(soak, n) for n in range(args.users)]
        soak.started = time.monotonic()
        soak.deadline = soak.started + args.minutes * 60
        print(f"{args.users} users for {args.minutes:g} min; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; faults:")  # fmt: skip
        threads = [threading.Thread(target=u.run, daemon=True) for u in users]
        faults = threading.Thread(target=inject_faults, args=(soak, services), daemon=True)
        # Until the end-state checks are done: files still settling need a worker.
        supervisor = threading.Thread(target=services.supervise, daemon=True)
        supervisor.start()
        for thread in [*threads, faults]:
            thread.start()
        for thread in [*threads, faults]:
            thread.join()
        print(f"{len(soak.records)} requests; load average {os.getloadavg()[0]:.1f}")
        report_latency(soak)
        try:
            return end_state(soak, services, users)
        finally:
            services.done.set()  # before the processes are stopped: no restart then
            supervisor.join()

    return run_in_scratch("soak", args.keep, run)


if __name__ == "__main__":
    sys.exit(main())
