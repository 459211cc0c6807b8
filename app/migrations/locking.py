"""DDL that needs a strong lock on a busy table, taken without stalling its writes.

A statement waiting for a lock holds up every write that asks for one after it: a migration
that waited behind a long transaction would stop all writes to the table for as long. So a
statement here waits at most LOCK_WAIT_MS, gives up and tries again a little later.
Each runs in a transaction of its own (call it inside `autocommit_block()`): one that held
the lock of a second table while it waited for another's could deadlock with a write that
takes them the other way round.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

LOCK_WAIT_MS = 500
LOCK_ATTEMPTS = 60
LOCK_NOT_AVAILABLE = "55P03"


def patiently(statement: str) -> None:
    """Run one DDL statement (PostgreSQL, autocommit) without queueing writes behind it long."""
    bind = op.get_bind()
    for attempt in range(LOCK_ATTEMPTS):
        try:
            bind.exec_driver_sql(f"SET lock_timeout = {LOCK_WAIT_MS}")
            bind.exec_driver_sql(statement)
            return
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != LOCK_NOT_AVAILABLE:
                raise
            time.sleep(min(0.1 * 2**attempt, 2.0))
        finally:
            bind.exec_driver_sql("RESET lock_timeout")
    raise RuntimeError(f"no lock for {statement.split()[:3]} after {LOCK_ATTEMPTS} tries")


def invalid_index(name: str) -> bool:
    """Whether an index of that name exists but is invalid: a CREATE INDEX CONCURRENTLY
    that was interrupted left it (PostgreSQL); drop it and build it again."""
    return bool(
        op.get_bind().scalar(
            sa.text(
                "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :name"
            ),
            {"name": name},
        )
    )
