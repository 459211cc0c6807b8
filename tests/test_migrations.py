"""Alembic migrations: the only way the schema is made, and they run both ways."""

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from app.migrate import alembic_config, upgrade
from tests.helpers import ROOT, fresh_database, wait_until


def test_upgrade_downgrade_upgrade_on_a_fresh_database(tmp_path):
    url = f"sqlite:///{tmp_path}/m.db"
    upgrade(url)
    engine = sa.create_engine(url)
    tables = {"users", "files", "revoked_tokens", "alembic_version"}
    assert tables <= set(sa.inspect(engine).get_table_names())
    assert "token_generation" in {c["name"] for c in sa.inspect(engine).get_columns("users")}
    command.downgrade(alembic_config(url), "base")
    assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    upgrade(url)
    assert {"users", "files"} <= set(sa.inspect(engine).get_table_names())
    # No migration rebuilt `users` on SQLite: the rebuild would drop this expression index.
    with engine.connect() as conn:
        indexes = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'index'"))
        assert "uq_users_email_lower" in set(indexes.scalars())
    engine.dispose()


def test_postgres_schema_is_at_head(session, database_url):
    version = session.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config(database_url)).get_heads()
    assert [version] == heads


def test_email_uniqueness_ignores_case_in_the_database(session):
    # In this test's transaction (rolled back at its end); the second insert in a savepoint.
    insert = sa.text(
        "INSERT INTO users (id, email, password_hash, created_at, updated_at) "
        "VALUES (gen_random_uuid(), :e, 'x', now(), now())"
    )
    local = f"Case-{uuid.uuid4().hex[:8]}"
    session.execute(insert, {"e": f"{local}@Example.com"})
    try:
        with session.begin_nested():
            session.execute(insert, {"e": f"{local.lower()}@example.COM"})
    except sa.exc.IntegrityError:
        pass
    else:
        raise AssertionError("a second account with the same address in another case")


# --- 0005 and 0006: the listing indexes and the files-by-status counters --------------------

USERS = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    sa.column("email"),
    sa.column("password_hash"),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
FILES = sa.table(
    "files",
    *(sa.column(c) for c in ("name", "status", "size", "crc32", "content_type", "attempts")),
    sa.column("version"),
    sa.column("id", sa.Uuid()),
    sa.column("owner_id", sa.Uuid()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
COUNTERS = ("files_pending", "files_processing", "files_ready", "files_failed")
BEFORE_COUNTERS = "0005_list_indexes"


@pytest.fixture(params=["sqlite", "postgresql"])
def before_counters(request, tmp_path) -> Iterator[str]:
    """A database migrated up to the revision before the status counters; its URL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/counters.db"
        upgrade(url, BEFORE_COUNTERS)
        yield url
    else:
        with fresh_database("instashare_counters", BEFORE_COUNTERS) as url:
            yield url


def _add_user(conn) -> uuid.UUID:
    user_id = uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    email = f"{user_id.hex}@example.com"
    conn.execute(
        USERS.insert().values(
            id=user_id, email=email, password_hash="-", created_at=now, updated_at=now
        )
    )
    return user_id


def _add_file(conn, owner: uuid.UUID, status: str) -> uuid.UUID:
    file_id = uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    row = dict(owner_id=owner, name=f"{file_id.hex}.txt", status=status, size=1, crc32=0)
    row.update(content_type="text/plain", attempts=0, version=1, created_at=now, updated_at=now)
    conn.execute(FILES.insert().values(id=file_id, **row))
    return file_id


def _waits_for_a_lock_of(engine: sa.Engine, holder: int) -> bool:
    """Some backend asks for a lock that backend `holder` holds (not granted, in pg_locks)."""
    query = sa.text(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted"
        " AND CAST(:holder AS integer) = ANY(pg_blocking_pids(pid)))"
    )
    with engine.connect() as conn:
        return conn.execute(query, {"holder": holder}).scalar_one()


def _counters(conn, owner: uuid.UUID) -> tuple[int, ...]:
    columns = ", ".join(COUNTERS)
    return tuple(
        conn.execute(
            sa.select(sa.text(columns)).select_from(USERS).where(USERS.c.id == owner)
        ).one()
    )


def test_status_counters_start_from_the_rows_and_follow_every_change(before_counters):
    engine = sa.create_engine(before_counters)
    with engine.begin() as conn:
        alice, bob, carol = _add_user(conn), _add_user(conn), _add_user(conn)
        first = _add_file(conn, alice, "pending")
        _add_file(conn, alice, "pending")
        _add_file(conn, alice, "ready")
        _add_file(conn, bob, "failed")
    upgrade(before_counters)
    with engine.begin() as conn:
        assert _counters(conn, alice) == (2, 0, 1, 0)
        assert _counters(conn, bob) == (0, 0, 0, 1)
        assert _counters(conn, carol) == (0, 0, 0, 0)

        conn.execute(FILES.update().where(FILES.c.id == first).values(status="processing"))
        assert _counters(conn, alice) == (1, 1, 1, 0)
        conn.execute(FILES.update().where(FILES.c.id == first).values(status="processing"))
        assert _counters(conn, alice) == (1, 1, 1, 0)  # no change, nothing counted
        # A bulk change, as the worker's sweeps make them.
        conn.execute(FILES.update().where(FILES.c.owner_id == alice).values(status="failed"))
        assert _counters(conn, alice) == (0, 0, 0, 3)
        conn.execute(FILES.delete().where(FILES.c.id == first))
        _add_file(conn, carol, "pending")
        assert _counters(conn, alice) == (0, 0, 0, 2)
        assert _counters(conn, carol) == (1, 0, 0, 0)
        conn.execute(USERS.delete().where(USERS.c.id == alice))  # cascades to the files
    # Both ways again: the downgrade takes the triggers away with the counters.
    command.downgrade(alembic_config(before_counters), BEFORE_COUNTERS)
    upgrade(before_counters)
    with engine.begin() as conn:
        assert _counters(conn, bob) == (0, 0, 0, 1)
        assert _counters(conn, carol) == (1, 0, 0, 0)
    engine.dispose()


def test_an_index_build_that_was_interrupted_is_built_again():
    # CREATE INDEX CONCURRENTLY that fails (a cancelled migration) leaves an invalid index.
    with fresh_database("instashare_invalid", "0004_token_revocation") as url:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE INDEX ix_files_owner_id_status_name ON files (owner_id, status, name)"
                )
            )
            invalidate = (
                "UPDATE pg_index SET indisvalid = false WHERE indexrelid = CAST(:index AS regclass)"
            )
            conn.execute(sa.text(invalidate), {"index": "ix_files_owner_id_status_name"})
        upgrade(url, "0005_list_indexes")
        assert _file_indexes(engine) == {
            "ix_files_owner_id_created_at": True,
            "ix_files_owner_id_status_created_at": True,
            "ix_files_owner_id_status_name": True,
        }
        # 0014 leaves an invalid index of its own too: it is built again.
        upgrade(url, "0013_status_counts_per_statement")
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE INDEX ix_files_owner_id_name_id ON files (owner_id)"))
            conn.execute(sa.text(invalidate), {"index": "ix_files_owner_id_name_id"})
        upgrade(url)
        assert _file_indexes(engine) == {
            "ix_files_owner_id_created_at": True,
            "ix_files_owner_id_status_created_at": True,
            "ix_files_owner_id_name_id": True,
            "ix_files_owner_id_status_name_id": True,
        }
        with engine.connect() as conn:
            columns = conn.execute(
                sa.text(
                    "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                    "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                    "WHERE i.indexrelid = CAST('ix_files_owner_id_name_id' AS regclass)"
                )
            )
            assert set(columns.scalars()) == {"owner_id", "name", "id"}
        engine.dispose()


def _file_indexes(engine: sa.Engine) -> dict[str, bool]:
    with engine.connect() as conn:
        valid = conn.execute(
            sa.text(
                "SELECT c.relname, i.indisvalid FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE 'ix_files_owner%'"
            )
        )
        return dict(valid.all())


@pytest.mark.slow  # three `instashare-server migrate`
def test_replicas_that_migrate_at_once_all_succeed():
    # The index builds commit as they go: the lock that makes replicas take turns is held
    # for the whole run, and a waiting replica holds no snapshot the builds would wait on.
    with fresh_database("instashare_replicas", "base") as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
        env["INSTASHARE_DATABASE_URL"] = url
        argv = [sys.executable, "-m", "app.server", "migrate"]
        replicas = [
            subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        try:
            for replica in replicas:
                output, _ = replica.communicate(timeout=120)
                assert replica.returncode == 0
                assert "newest schema" in output
        finally:
            for replica in replicas:
                if replica.poll() is None:
                    replica.kill()
                replica.communicate()
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        engine.dispose()
        assert version == ScriptDirectory.from_config(alembic_config(url)).get_current_head()


# --- 0007: a new table with foreign keys to busy ones -------------------------------------


def test_writes_do_not_queue_long_behind_a_migration_waiting_for_a_lock():
    # A long transaction that wrote `files` (a worker's, say) keeps the migration from
    # adding the share links' key to it; writes that come meanwhile must not wait behind it.
    with fresh_database("instashare_lockwait", "0006_file_status_counts") as url:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            worked_on, owner = _add_user(conn), _add_user(conn)
        with engine.connect() as long_running, ThreadPoolExecutor(1) as pool:
            _add_file(long_running, worked_on, "pending")  # its transaction stays open
            holder = long_running.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            migration = pool.submit(upgrade, url)
            wait_until(
                lambda: migration.done() or _waits_for_a_lock_of(engine, holder),
                timeout=60,
                interval=0.02,
                what="the migration waiting for the lock the long transaction holds",
            )
            assert not migration.done(), f"the migration never waited: {migration.result()}"
            started = time.monotonic()
            with engine.begin() as conn:
                # An upload as the service writes it (counters, then the row), with a
                # limit so that a write stuck behind the migration fails instead of hanging.
                conn.execute(sa.text("SET LOCAL statement_timeout = '5s'"))
                charge = "UPDATE users SET file_count = file_count + 1 WHERE id = :o"
                conn.execute(sa.text(charge), {"o": owner})
                _add_file(conn, owner, "pending")
            waited = time.monotonic() - started
            long_running.commit()
            migration.result(timeout=120)
        assert waited < 1.0, f"a write waited {waited:.1f} s"
        with engine.connect() as conn:
            keys = conn.execute(
                sa.text("SELECT conname FROM pg_constraint WHERE conrelid = 'shares'::regclass")
            )
            assert {"fk_shares_file_id_files", "fk_shares_owner_id_users"} <= set(keys.scalars())
        engine.dispose()


# --- 0013: the counters move once per statement -------------------------------------------

BULK_FILES = 100_000
# Generous for a loaded machine; with the row triggers of 0006 this took hours, not seconds.
BULK_STATEMENT_TIMEOUT = "60s"


def test_one_statement_over_100000_files_of_one_account_takes_seconds_and_counts_exactly():
    # A folder deleted, an account imported: one statement over many rows of one owner.
    with fresh_database("instashare_bulk") as url:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            alice, bob = _add_user(conn), _add_user(conn)
            _add_file(conn, bob, "ready")
        with engine.begin() as conn:
            conn.execute(sa.text(f"SET LOCAL statement_timeout = '{BULK_STATEMENT_TIMEOUT}'"))
            conn.execute(
                sa.text(
                    "INSERT INTO files (id, owner_id, name, status, size, crc32, content_type,"
                    " attempts, version, created_at, updated_at)"
                    " SELECT gen_random_uuid(), :owner, 'f' || n, CASE WHEN n % 4 = 0"
                    " THEN 'ready'::file_status ELSE 'pending'::file_status END, 1, 0,"
                    " 'text/plain', 0, 1, now(), now() FROM generate_series(1, :count) AS n"
                ),
                {"owner": alice, "count": BULK_FILES},
            )
            assert _counters(conn, alice) == (75_000, 0, 25_000, 0)
            conn.execute(
                FILES.update()
                .where(FILES.c.owner_id == alice, FILES.c.status == "pending")
                .values(status="processing")
            )
            assert _counters(conn, alice) == (0, 75_000, 25_000, 0)
            conn.execute(FILES.delete().where(FILES.c.owner_id == alice))
            assert _counters(conn, alice) == (0, 0, 0, 0)
            assert _counters(conn, bob) == (0, 0, 1, 0)
        engine.dispose()


# --- 0014: folders ------------------------------------------------------------------------


def test_folders_migrate_down_and_up_on_postgres():
    with fresh_database("instashare_folders_mig") as url:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            owner = _add_user(conn)
            _add_file(conn, owner, "ready")
        command.downgrade(alembic_config(url), "0013_status_counts_per_statement")
        inspector = sa.inspect(engine)
        assert "folders" not in inspector.get_table_names()
        assert "folder_id" not in {c["name"] for c in inspector.get_columns("files")}
        assert "uq_files_owner_id_name" in {i["name"] for i in inspector.get_indexes("files")}
        upgrade(url)
        inspector = sa.inspect(engine)
        assert "folders" in inspector.get_table_names()
        indexes = {i["name"] for i in inspector.get_indexes("files")}
        assert {"uq_files_root_name", "uq_files_folder_name"} <= indexes
        assert "uq_files_owner_id_name" not in indexes
        with engine.connect() as conn:
            counted = conn.execute(sa.text("SELECT count(*) FROM files WHERE folder_id IS NULL"))
            assert counted.scalar_one() == 1  # the files of before are at the root
        engine.dispose()
