"""Migrating a table of a million files while it takes writes: no write waits over a second.

Run from the repository root:
    python bench/migrate_lock.py [--files 1000000] [--writers 4] [--to head]

It creates a scratch PostgreSQL database migrated to the revision before the listing
indexes (`0004_token_revocation`), loads one user with `--files` files and 100 others with a
tenth as many between them (as bench/scale.py does), and runs VACUUM ANALYZE. Then
`--writers` threads write as the service does, each in its own short transaction, one
after another: a new file (its owner's usage counters charged in the same transaction), a
status change (the worker), a deletion (counters discharged); half of them on the big
user's files. Meanwhile the migrations run up to `--to` (the newest by default): among
them the listing indexes built CONCURRENTLY (0005) and the files-by-status counters added
and started from the rows one account at a time (0006). It prints how long the migration
took, how many writes ran meanwhile and their latency (p50, p99, max: the longest any
write waited), and whether `instashare-server recount` finds every counter exact
afterwards; it exits 1 when a write took over a second, failed, or a counter is off.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from support.data import analyze, insert_files, insert_others, insert_user, set_counters
from support.processes import ROOT
from support.report import word
from support.stack import (
    arguments,
    clean_env,
    scratch_database,
    scratch_dir,
    server_command,
)

BEFORE = "0004_token_revocation"
MAX_WRITE_SECONDS = 1.0


def load(url: str, n_files: int) -> uuid.UUID:
    """The users and their files, at revision BEFORE; the big user's id."""
    engine = sa.create_engine(url)
    started = time.monotonic()
    with engine.begin() as conn:
        conn.execute(sa.text("SET synchronous_commit = off"))
        big = insert_user(conn, "big@bench.example.com")
        insert_others(conn, n_files // 10)
        insert_files(conn, big, n_files)
        set_counters(conn, by_status=False)  # the files-by-status counters come with 0006
    total = analyze(engine)
    engine.dispose()
    print(f"loaded {total:,} files in {time.monotonic() - started:.1f} s (with VACUUM ANALYZE)")
    return big


class Writers:
    """Threads writing as the service does; every write's latency, with when it started."""

    def __init__(self, url: str, big: uuid.UUID, count: int):
        self.engine = sa.create_engine(url, pool_size=count, isolation_level="READ COMMITTED")
        with self.engine.connect() as conn:
            self.owners = [big, *conn.scalars(sa.text("SELECT id FROM users WHERE id <> :b"), {
                "b": big})]  # fmt: skip
            self.files = {
                owner: list(
                    conn.scalars(
                        sa.text("SELECT id FROM files WHERE owner_id = :o LIMIT 2000"),
                        {"o": owner},
                    )
                )
                for owner in (big, *self.owners[1:10])
            }
        self.big = big
        self.stop = threading.Event()
        self.latencies: list[tuple[float, float, str]] = []  # (start, seconds, kind)
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self.run, args=(n,)) for n in range(count)]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.engine.dispose()

    def run(self, n: int) -> None:
        rng = random.Random(n)
        kinds = ("insert", "status", "delete")
        i = 0
        while not self.stop.is_set():
            i += 1
            owner = self.big if i % 2 else rng.choice(list(self.files))
            kind = kinds[i % 3]
            started = time.monotonic()
            try:
                with self.engine.begin() as conn:
                    getattr(self, kind)(conn, owner, rng, f"{n}-{i}")
            except Exception as exc:  # reported, and the run fails
                self.errors.append(f"{kind}: {exc}")
            self.latencies.append((started, time.monotonic() - started, kind))

    @staticmethod
    def insert(conn: sa.Connection, owner: uuid.UUID, _rng: random.Random, tag: str) -> None:
        conn.execute(
            sa.text(
                "UPDATE users SET file_count = file_count + 1, bytes_stored = bytes_stored + 10 "
                "WHERE id = :o"
            ),
            {"o": owner},
        )
        conn.execute(
            sa.text(
                "INSERT INTO files (id, owner_id, name, status, size, crc32, content_type, "
                "attempts, created_at, updated_at, version) VALUES (gen_random_uuid(), :o, "
                ":name, 'pending', 10, 0, 'text/plain', 0, now(), now(), 1)"
            ),
            {"o": owner, "name": f"written-during-migration-{tag}.txt"},
        )

    def status(self, conn: sa.Connection, owner: uuid.UUID, rng: random.Random, _tag) -> None:
        status = rng.choice(["pending", "processing", "ready", "failed"])
        conn.execute(
            sa.text("UPDATE files SET status = CAST(:s AS file_status), version = version + 1 "
                    "WHERE id = :f"),
            {"s": status, "f": rng.choice(self.files[owner])},
        )  # fmt: skip

    def delete(self, conn: sa.Connection, owner: uuid.UUID, rng: random.Random, _tag) -> None:
        candidates = self.files[owner]
        if len(candidates) < 100:
            return
        file_id = candidates.pop(rng.randrange(len(candidates)))
        size = conn.scalar(
            sa.text("DELETE FROM files WHERE id = :f RETURNING size"), {"f": file_id}
        )
        if size is not None:
            conn.execute(
                sa.text(
                    "UPDATE users SET file_count = file_count - 1, "
                    "bytes_stored = bytes_stored - :s WHERE id = :o"
                ),
                {"s": size, "o": owner},
            )


def run(args, work: Path, url: str) -> bool:
    env = clean_env(INSTASHARE_DATABASE_URL=url, INSTASHARE_DATA_DIR=str(work))
    sys.path.insert(0, str(ROOT))
    from app.migrate import upgrade

    upgrade(url, BEFORE)
    big = load(url, args.files)
    with Writers(url, big, args.writers) as writers:
        time.sleep(2.0)  # writes in full flow before the migration starts
        started = time.monotonic()
        # `instashare-server migrate`, with a target revision.
        upgrade_to = "import sys; from app.migrate import upgrade; upgrade(*sys.argv[1:])"
        migrated = subprocess.run(
            [sys.executable, "-c", upgrade_to, url, args.to], env=env, cwd=ROOT, capture_output=True
        )
        finished = time.monotonic()
        time.sleep(1.0)
    if migrated.returncode != 0:
        raise SystemExit(f"the migration failed:\n{migrated.stderr.decode()}")
    during = [(s, d, k) for s, d, k in writers.latencies if started <= s <= finished]
    seconds = [d for _, d, _ in during]
    worst = max(during, key=lambda w: w[1])
    recount = server_command(env, "recount")
    print(f"migration {BEFORE} -> {args.to} (indexes built concurrently, counters started "
          f"from the rows): {finished - started:.1f} s")  # fmt: skip
    rate = len(during) / (finished - started)
    print(f"{len(during):,} writes by {args.writers} threads meanwhile "
          f"({rate:.0f}/s), half on the big user's files")  # fmt: skip
    print(
        f"write latency: p50 {statistics.median(seconds) * 1000:.1f} ms, "
        f"p99 {sorted(seconds)[int(len(seconds) * 0.99)] * 1000:.1f} ms, "
        f"max {worst[1] * 1000:.0f} ms ({worst[2]}, {worst[0] - started:.1f} s into it)"
    )
    ok_latency = worst[1] <= MAX_WRITE_SECONDS and not writers.errors
    ok_counts = recount.returncode == 0
    if writers.errors:
        print(f"{len(writers.errors)} writes failed, e.g. {writers.errors[0]}")
    print(f"target: no write waits over {MAX_WRITE_SECONDS:g} s: {word(ok_latency)}")
    print(f"recount after the migration: {recount.stdout.strip().splitlines()[-1]}: "
          f"{word(ok_counts)}")  # fmt: skip
    return ok_latency and ok_counts


def main() -> int:
    parser = arguments(__doc__, keep=False)
    parser.add_argument("--files", type=int, default=1_000_000, help="the big user's files")
    parser.add_argument("--writers", type=int, default=4, help="writing threads")
    parser.add_argument("--to", default="head", help="the revision to migrate to")
    args = parser.parse_args()
    with scratch_dir("migrate") as work, scratch_database("instashare_migrate") as url:
        return 0 if run(args, work, url) else 1


if __name__ == "__main__":
    sys.exit(main())
