"""Generated inputs: random bytes, a server log that compresses as real ones do, and a large
account's files written straight into PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import random
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

MIB = 1024 * 1024
OTHER_USERS = 100  # the other accounts of a large data set


def write_random_file(path: Path, size: int) -> None:
    """`size` random bytes at `path`, a MiB at a time."""
    with open(path, "wb") as out:
        for start in range(0, size, MIB):
            out.write(os.urandom(min(MIB, size - start)))


# --- a server log ------------------------------------------------------------------------------

LEVELS = ["INFO"] * 70 + ["DEBUG"] * 15 + ["WARN"] * 10 + ["ERROR"] * 5
METHODS = ["GET"] * 6 + ["POST"] * 2 + ["PUT", "DELETE", "PATCH"]
PATHS = [
    "/api/v1/files",
    "/api/v1/files/{id}",
    "/api/v1/files/{id}/content",
    "/api/v1/upload_files",
    "/api/v1/users/login",
    "/api/v1/users/me",
    "/api/v1/uploads/{id}",
    "/health",
    "/metrics",
]
AGENTS = [
    "curl/8.5.0",
    "python-httpx/0.28.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "instashare-cli/0.1.0",
    "tusd-client/2.1",
]
MESSAGES = [
    "request completed",
    "upload stored",
    "compression queued",
    "token issued",
    "cache miss",
    "slow query",
    "retrying after a transient error",
    "lease renewed",
]
STATUSES = [200] * 12 + [201, 202, 204, 206, 304, 400, 401, 404, 409, 413, 500, 503]


def log_segment(size: int, seed: int = 2024) -> bytes:
    """`size` bytes of an access/application log: no two lines alike."""
    rnd = random.Random(seed)
    clock = 1_715_900_000.0
    parts: list[bytes] = []
    total = 0
    while total < size:
        clock += rnd.expovariate(200)
        t = time.gmtime(clock)
        path = rnd.choice(PATHS).replace("{id}", str(uuid4(rnd)))
        line = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d}.{int(clock % 1 * 1000):03d}Z {rnd.choice(LEVELS):<5} "
            f"[worker-{rnd.randrange(8)}] req={rnd.getrandbits(64):016x} "
            f"{rnd.choice(METHODS)} {path} status={rnd.choice(STATUSES)} "
            f"bytes={int(rnd.lognormvariate(8, 2))} dur_ms={rnd.lognormvariate(2, 1):.1f} "
            f'ua="{rnd.choice(AGENTS)}" msg="{rnd.choice(MESSAGES)}"\n'
        ).encode()
        parts.append(line)
        total += len(line)
    return b"".join(parts)[:size]


def uuid4(rnd: random.Random) -> str:
    h = f"{rnd.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class Input:
    path: Path
    size: int
    crc32: int
    sha256: str


def write_input(path: Path, size: int, block_source, digest: bool = True) -> Input:
    """Write `size` bytes, block by block, measuring them as an upload would."""
    crc, sha, written = 0, hashlib.sha256(), 0
    with open(path, "wb") as sink:
        while written < size:
            block = block_source(min(size - written, 8 * MIB))
            sink.write(block)
            crc = zlib.crc32(block, crc)
            if digest:
                sha.update(block)
            written += len(block)
    return Input(path, size, crc, sha.hexdigest())


def tiled(segment: bytes):
    """Blocks cut from `segment` repeated: a long log from a unique part of it.

    The unique part (32 MiB by default) is far longer than deflate's 32 KiB window, so
    neither compressor can tell the repetition.
    """
    offset = 0

    def take(n: int) -> bytes:
        nonlocal offset
        out = bytearray()
        while len(out) < n:
            piece = segment[offset : offset + n - len(out)]
            out += piece
            offset = (offset + len(piece)) % len(segment)
        return bytes(out)

    return take


# --- a large data set, in SQL ---------------------------------------------------------------


def insert_user(conn: sa.Connection, email: str) -> uuid.UUID:
    user_id = uuid.uuid4()
    conn.execute(
        sa.text(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at) "
            "VALUES (:id, :email, '-', now(), now())"
        ),
        {"id": user_id, "email": email},
    )
    return user_id


def insert_folders(conn: sa.Connection, owner: uuid.UUID, n: int) -> None:
    """`n` folders for `owner`, two levels deep: about √n at the root, the rest under them
    (the leaves, which `insert_files(..., in_folders=True)` fills)."""
    top = max(1, min(n, round(n**0.5)))
    folder = (
        "INSERT INTO folders (id, owner_id, parent_id, name, created_at, updated_at, version) "
        "SELECT gen_random_uuid(), :owner, {parent}, '{prefix}-' || i, now(), now(), 1 "
        "FROM generate_series(1, :n) AS i{source}"
    )
    conn.execute(
        sa.text(folder.format(parent="NULL", prefix="top", source="")), {"owner": owner, "n": top}
    )
    tops = (
        ", (SELECT array_agg(id ORDER BY id) AS ids FROM folders"
        " WHERE owner_id = :owner AND parent_id IS NULL) AS tops"
    )
    conn.execute(
        sa.text(folder.format(parent=f"(tops.ids)[1 + i % {top}]", prefix="leaf", source=tops)),
        {"owner": owner, "n": max(1, n - top)},
    )


def insert_files(
    conn: sa.Connection, owner: uuid.UUID | None, n: int, *, in_folders: bool = False
) -> None:
    """`n` ready files for `owner` (spread over its leaf folders with `in_folders`); with no
    owner, files in every status for the others."""
    # The column only when asked: bench/migrate_lock.py loads a schema from before folders.
    folder_column = folder_sql = leaves = ""
    if owner is None:
        status = "(ARRAY['pending','processing','ready','failed']::file_status[])[1 + i % 4]"
        owner_sql = f"(others.ids)[1 + i % {OTHER_USERS}]"
        others = ", (SELECT array_agg(id) AS ids FROM users WHERE email LIKE 'other-%') AS others"
    else:
        status, owner_sql, others = "'ready'::file_status", ":owner", ""
        if in_folders:
            folder_column, folder_sql = " folder_id,", " (leaves.ids)[1 + i % leaves.n],"
            leaves = (
                ", (SELECT array_agg(id ORDER BY id) AS ids, count(*)::int AS n FROM folders"
                " WHERE owner_id = :owner AND parent_id IS NOT NULL) AS leaves"
            )
    conn.execute(
        sa.text(
            f"""
            INSERT INTO files (id, owner_id,{folder_column} name, status, size, sha256, crc32,
                content_type, compressed_size, compression, attempts, processed_at,
                created_at, updated_at, version)
            SELECT gen_random_uuid(), {owner_sql},{folder_sql}
                -- md5 first: the order by name has nothing to do with the order by date
                substr(md5(i::text), 1, 12) || '-' || i || '.txt',
                {status}, 1000 + i % 5000, md5(i::text) || md5(i::text), 0, 'text/plain',
                500 + i % 2500, 'deflate', 1,
                now() - make_interval(secs => i), now() - make_interval(secs => i),
                now() - make_interval(secs => i), 2
            FROM generate_series(1, :n) AS i {others}{leaves}
            """  # noqa: S608 - the script's own constants, no input
        ),
        {"owner": owner, "n": n},
    )


def insert_others(conn: sa.Connection, n_files: int) -> None:
    """OTHER_USERS accounts owning `n_files` files between them, in every status."""
    for i in range(OTHER_USERS):
        insert_user(conn, f"other-{i:03d}@bench.example.com")
    insert_files(conn, None, n_files)


def set_counters(conn: sa.Connection, by_status: bool = True) -> None:
    """Every account's usage counters from its rows (`by_status`: the files-by-status ones
    too, which the schema has from 0006 on)."""
    statuses = ("pending", "processing", "ready", "failed") if by_status else ()
    columns = "".join(f", files_{s} = c.{s}" for s in statuses)
    counts = "".join(f", count(*) FILTER (WHERE status = '{s}') AS {s}" for s in statuses)
    conn.execute(
        sa.text(
            f"UPDATE users SET file_count = c.n, bytes_stored = c.size{columns} "  # noqa: S608
            f"FROM (SELECT owner_id, count(*) AS n, sum(size) AS size{counts} "
            "FROM files GROUP BY owner_id) AS c WHERE users.id = c.owner_id"
        )
    )


def analyze(engine: sa.Engine) -> int:
    """VACUUM ANALYZE the loaded tables; how many files there are."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE files"))
        conn.execute(sa.text("VACUUM ANALYZE users"))
        return conn.scalar(sa.text("SELECT count(*) FROM files"))
