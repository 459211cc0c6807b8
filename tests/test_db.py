"""The engine's pool: no round trip before each use, a dropped connection replaced."""

from __future__ import annotations

import time

import sqlalchemy as sa

from app import db


def _last_statement(admin: sa.Engine, pid: int) -> str:
    with admin.connect() as conn:  # a new transaction: a fresh view of pg_stat_activity
        return conn.execute(
            sa.text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar_one()


def test_a_connection_in_steady_use_is_handed_out_without_a_ping(database_url):
    engine, admin = db.make_engine(database_url), sa.create_engine(database_url)
    with engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    before = _last_statement(admin, pid)
    with engine.connect() as conn:
        # Checked out, used for nothing yet: nothing was sent (a pre-ping sends SELECT 1).
        assert _last_statement(admin, pid) == before
        assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() == pid
    engine.dispose()
    admin.dispose()


def test_a_connection_dropped_while_idle_is_replaced_before_use(database_url, monkeypatch):
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.05)
    engine, admin = db.make_engine(database_url), sa.create_engine(database_url)
    with engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    # As a database restart or a firewall would: the pooled connection is gone.
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    time.sleep(0.1)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() != pid
    engine.dispose()
    admin.dispose()
