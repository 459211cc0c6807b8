"""One statement over many files of one account: does it cost in proportion?

Run from the repository root:  python bench/bulk.py [--sizes 5000,10000,20000,100000]

The files-by-status counters on `users` are kept by triggers on `files`. Up to migration
0012 they ran once per row, each updating the owner's row again: within one statement the
cost grew with the square of the rows. From 0013 they run once per statement. On two
scratch databases, one at 0012 (the baseline, in the same run) and one at the newest
revision, each size N is inserted in one statement for one account (a quarter `ready`),
moved `pending` → `processing` in one, and deleted in one, with the triggers on. Prints
seconds and microseconds per row; the verdict: at the newest revision the cost per row of
the largest size is within 2x of the smallest's, and the counters end exact. The baseline
skips sizes above 20,000 (it would take minutes to hours).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

import sqlalchemy as sa
from support.processes import ROOT
from support.report import word
from support.stack import scratch_database

sys.path.insert(0, str(ROOT))
from app.migrate import upgrade

BASELINE = "0012_archive_per_attempt"
BASELINE_MAX_ROWS = 20_000
INSERT = sa.text(
    "INSERT INTO files (id, owner_id, name, status, size, crc32, content_type, attempts,"
    " version, created_at, updated_at)"
    " SELECT gen_random_uuid(), :owner, 'f' || n, CASE WHEN n % 4 = 0 THEN"
    " 'ready'::file_status ELSE 'pending'::file_status END, 1, 0, 'text/plain', 0, 1, now(),"
    " now() FROM generate_series(1, :count) AS n"
)
PROCESS = sa.text(
    "UPDATE files SET status = 'processing' WHERE owner_id = :owner AND status = 'pending'"
)
DELETE = sa.text("DELETE FROM files WHERE owner_id = :owner")
COUNTERS = sa.text(
    "SELECT files_pending, files_processing, files_ready, files_failed FROM users WHERE id = :owner"
)


def _owner(conn) -> uuid.UUID:
    owner = uuid.uuid4()
    conn.execute(
        sa.text(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at)"
            " VALUES (:id, :email, '-', now(), now())"
        ),
        {"id": owner, "email": f"{owner.hex}@example.com"},
    )
    return owner


def measure(url: str, count: int) -> tuple[dict[str, float], bool]:
    """Seconds per statement (insert, process, delete) for `count` files; counters exact."""
    engine = sa.create_engine(url)
    times: dict[str, float] = {}
    exact = True
    with engine.begin() as conn:
        owner = _owner(conn)
    expected = {
        "insert": (count - count // 4, 0, count // 4, 0),
        "process": (0, count - count // 4, count // 4, 0),
        "delete": (0, 0, 0, 0),
    }
    for step, statement in (("insert", INSERT), ("process", PROCESS), ("delete", DELETE)):
        with engine.begin() as conn:
            started = time.perf_counter()
            conn.execute(statement, {"owner": owner, "count": count})
            times[step] = time.perf_counter() - started
            exact &= tuple(conn.execute(COUNTERS, {"owner": owner}).one()) == expected[step]
    engine.dispose()
    return times, exact


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,10000,20000,100000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"{'revision':<10} {'files':>8} {'insert s':>9} {'process s':>9} {'delete s':>9} "
          f"{'µs/row':>8} exact")  # fmt: skip
    per_row: dict[int, float] = {}
    all_exact = True
    for label, revision in (("0012", BASELINE), ("newest", "head")):
        with scratch_database("instashare_bench_bulk") as url:
            upgrade(url, revision)
            for count in sizes:
                if revision == BASELINE and count > BASELINE_MAX_ROWS:
                    continue
                times, exact = measure(url, count)
                micros = sum(times.values()) / (3 * count) * 1e6
                if revision == "head":
                    per_row[count] = micros
                    all_exact &= exact
                steps = " ".join(f"{times[s]:>9.2f}" for s in ("insert", "process", "delete"))
                print(f"{label:<10} {count:>8,} {steps} {micros:>8.1f} {'yes' if exact else 'NO'}")
    smallest, largest = min(per_row), max(per_row)
    ratio = per_row[largest] / per_row[smallest]
    linear = ratio <= 2.0
    print()
    print(f"{word(linear)}  per-row cost at {largest:,} files is {ratio:.2f}x "
          f"that at {smallest:,} (target <= 2x)")  # fmt: skip
    print(f"{word(all_exact)}  the counters are exact after every statement")
    return 0 if linear and all_exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
