"""Alembic environment: migrates the database the caller's config names."""

from alembic import context
from sqlalchemy import text

from app import models  # noqa: F401 - registers the tables on Base.metadata
from app.db import Base, make_engine

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several replicas may migrate at once: one waits while the other upgrades.
            connection.execute(text("SELECT pg_advisory_xact_lock(727274)"))
        context.run_migrations()


run_migrations_online()
