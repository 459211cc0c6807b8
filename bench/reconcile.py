"""`reconcile` at growing sizes: its time, and a peak memory that must not grow with them.

    python bench/reconcile.py                      # 20,000 and 200,000 objects
    python bench/reconcile.py --sizes 10000 50000  # a quick run

For each size N, in a scratch directory: a SQLite database at the newest schema with N
ready files spread over N / 1000 accounts, and a local storage directory with their N
archives (empty files: reconcile reads names and dates, never bytes), less 0.1 % of them
(rows without objects), plus 0.1 % archives of no file (objects without rows). A fresh
interpreter runs `app.services.reconcile.reconcile` (listing only) over it and reports
the findings, the wall time and its peak RSS (VmHWM). Targets: the findings are exactly
the drift laid out; the peak RSS at the largest size is within 16 MiB of the smallest's.
The GCS backend lists 1,000 objects a page and is not measured here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from support.processes import ROOT, status_kib
from support.report import word
from support.stack import arguments

sys.path.insert(0, str(ROOT))

PER_OWNER = 1000
RSS_SLACK_MIB = 16


def build(work: Path, size: int) -> tuple[str, Path, int, int]:
    """The database URL and storage root for `size` files; (…, rows missing, orphans)."""
    import sqlalchemy as sa

    from app.migrate import upgrade

    url = f"sqlite:///{work}/reconcile.db"
    upgrade(url)
    storage = work / "storage"
    engine = sa.create_engine(url)
    now = dt.datetime.now(dt.UTC).isoformat()
    every = 1000  # one in a thousand: a missing archive, and an orphan
    missing = orphans = 0
    with engine.begin() as conn:
        for start in range(0, size, PER_OWNER):
            owner = uuid.uuid4()
            conn.execute(
                sa.text(
                    "INSERT INTO users (id, email, password_hash, created_at, updated_at) "
                    "VALUES (:id, :email, '-', :now, :now)"
                ),
                {"id": owner.hex, "email": f"{owner}@example.com", "now": now},
            )
            folder = storage / str(owner)
            folder.mkdir(parents=True)
            rows = []
            for i in range(start, min(start + PER_OWNER, size)):
                file_id = uuid.uuid4()
                rows.append(
                    {"id": file_id.hex, "owner": owner.hex, "name": f"f{i}.txt", "now": now}
                )
                if i % every == every // 2:
                    missing += 1
                else:
                    (folder / f"{file_id}.zip").touch()
                if i % every == 0:
                    (folder / f"{uuid.uuid4()}.zip").touch()
                    orphans += 1
            conn.execute(
                sa.text(
                    "INSERT INTO files (id, owner_id, name, status, size, crc32, content_type, "
                    "attempts, created_at, updated_at, version) VALUES "
                    "(:id, :owner, :name, 'ready', 1, 0, 'text/plain', 1, :now, :now, 1)"
                ),
                rows,
            )
    engine.dispose()
    return url, storage, missing, orphans


def child(url: str, storage_root: str) -> None:
    """Run reconcile (listing only) and print what it found, its time and VmHWM."""
    from app.db import make_engine, make_session_factory
    from app.services import reconcile
    from app.storage.local import LocalStorage

    storage = LocalStorage(Path(storage_root))
    sessions = make_session_factory(make_engine(url))
    started = time.perf_counter()
    counts = {"orphan": 0, "missing": 0, "other": 0}
    with sessions() as session:
        for finding in reconcile.reconcile(session, storage, repair=False, grace_seconds=0):
            if isinstance(finding, reconcile.Orphan):
                counts["orphan"] += 1
            elif isinstance(finding, reconcile.Missing):
                counts["missing"] += 1
            else:
                counts["other"] += 1
    seconds = time.perf_counter() - started
    hwm = status_kib("self", "VmHWM")
    print(json.dumps({**counts, "seconds": seconds, "vmhwm_kib": hwm}))


def main() -> int:
    parser = arguments(__doc__, keep=False)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    header = ("objects", 9), ("rows", 9), ("found", 15), ("seconds", 8), ("objects/s", 10)
    print(" ".join(f"{name:>{width}}" for name, width in header), f"{'peak RSS':>9}")
    results = []
    ok = True
    for size in sorted(args.sizes):
        with tempfile.TemporaryDirectory(prefix="instashare-reconcile-") as tmp:
            url, storage, missing, orphans = build(Path(tmp), size)
            done = subprocess.run(
                [sys.executable, __file__, "--child", url, str(storage)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
        out = json.loads(done.stdout.strip().splitlines()[-1])
        objects = size - missing + orphans
        exact = (out["missing"], out["orphan"], out["other"]) == (missing, orphans, 0)
        ok &= exact
        results.append(out["vmhwm_kib"])
        print(
            f"{objects:>9,} {size:>9,} {out['missing']:>6} missing "
            f"{out['orphan']:>4} orph {out['seconds']:>8.1f} "
            f"{objects / out['seconds']:>10,.0f} {out['vmhwm_kib'] / 1024:>7.1f} MiB"
            + ("" if exact else "  (findings differ from the drift laid out)")
        )
    growth = (results[-1] - results[0]) / 1024
    flat = growth <= RSS_SLACK_MIB
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"{word(ok)}: every finding is the drift laid out, and only it")
    print(
        f"{word(flat)}: peak RSS grew {growth:.1f} MiB from "
        f"{min(args.sizes):,} to {max(args.sizes):,} files (target ≤ {RSS_SLACK_MIB} MiB)"
    )
    return 0 if ok and flat else 1


if __name__ == "__main__":
    sys.exit(main())
