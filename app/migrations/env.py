"""Alembic environment: migrates the database the caller's config names."""

import contextlib
import time

from alembic import context
from sqlalchemy import text

from app import models  # noqa: F401 - registers the tables on Base.metadata
from app.db import Base, make_engine

config = context.config

# Several replicas may migrate at once: one waits while the other upgrades.
MIGRATION_LOCK = 727274


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


@contextlib.contextmanager
def _migration_lock(connection):
    """Hold PostgreSQL's advisory lock for the whole run, not one transaction.

    A migration that builds an index CONCURRENTLY commits as it goes, which would release
    a transaction's lock. The waiting replica polls outside any transaction: one blocked
    in a statement would hold a snapshot, and the concurrent build waits for every older
    snapshot to end, for ever.
    """
    level = connection.get_isolation_level()

    def autocommit(statement: str) -> bool:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            return bool(connection.execute(text(statement), {"key": MIGRATION_LOCK}).scalar())
        finally:
            connection.commit()
            connection.execution_options(isolation_level=level)

    while not autocommit("SELECT pg_try_advisory_lock(:key)"):
        time.sleep(0.2)
    try:
        yield
    finally:
        connection.rollback()
        autocommit("SELECT pg_advisory_unlock(:key)")


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # Each migration commits on its own: one that builds indexes outside a transaction
        # leaves those before it committed, and the version table says so.
        transaction_per_migration=True,
    )
    lock = (
        _migration_lock(connection)
        if connection.dialect.name == "postgresql"
        else contextlib.nullcontext()
    )
    with lock, context.begin_transaction():
        context.run_migrations()


run_migrations_online()
