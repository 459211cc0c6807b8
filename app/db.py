"""Engine and session factory; the one place that knows how to reach the database."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, cast

from sqlalchemy import CursorResult, DateTime, MetaData, Result, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so Alembic migrations can name what they drop.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


def utcnow() -> dt.datetime:
    """Now, in UTC, to the microsecond."""
    return dt.datetime.now(dt.UTC)


def rowcount(result: Result[Any]) -> int:
    """Rows a DML statement matched (Session.execute returns a CursorResult for those)."""
    return cast(CursorResult[Any], result).rowcount


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL and foreign keys so it behaves like production."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=10, pool_recycle=RECYCLE_SECONDS)
    ping_after_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


# A pooled connection is tested (`SELECT 1`) before use only when it sat idle this long:
# that is when a database restart, a failover or a firewall may have dropped it unseen.
# One in steady use is not, which saves a round trip per request (`pool_pre_ping` would
# ping at every checkout); if it did break, the error invalidates the whole pool, so the
# connections opened before it are replaced rather than each failing a request in turn.
PING_AFTER_IDLE_SECONDS = 10.0
RECYCLE_SECONDS = 3600


# psycopg2's TRANSACTION_STATUS_IDLE: connected, and no transaction begun.
_IDLE = 0


def without_transaction(session: Session) -> None:
    """Let a session run each statement on its own (PostgreSQL): reads, or one write.

    psycopg2's autocommit: no BEGIN before the first statement, no ROLLBACK at the end,
    and nothing sent to switch it on or off (SQLAlchemy's AUTOCOMMIT isolation level
    would send a SET to undo it at every return to the pool). The connection is back in
    transactions when it returns to the pool (`_transactions_again`). A session on
    anything but an Engine (the tests' savepoints) is left as it is.
    A session already in a transaction stays in it (its statements join it).
    """
    bind = session.get_bind()
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        dbapi = session.connection().connection.dbapi_connection
        if dbapi.info.transaction_status == _IDLE:  # type: ignore[union-attr]
            dbapi.autocommit = True  # type: ignore[union-attr]


def ping_after_idle(engine: Engine, seconds: float) -> None:
    """Test a connection at checkout when it was idle in the pool for `seconds` or more."""

    @event.listens_for(engine, "checkin")
    def _idle_since(dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()
        if dbapi_connection is not None and dbapi_connection.autocommit:
            dbapi_connection.autocommit = False  # see without_transaction

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < seconds:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.rollback()
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection and checks out another (or a new one).
            raise DisconnectionError(f"a pooled connection was dropped: {exc}") from exc


def make_session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False)
