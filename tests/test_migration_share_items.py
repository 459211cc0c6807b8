"""Migration 0015 (share items) both ways, on SQLite and PostgreSQL: the links and their
downloads from before keep working, and a downgrade drops only what it cannot hold."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command

from app.migrate import alembic_config, upgrade
from tests.helpers import fresh_database

BEFORE = "0014_folders"


@pytest.fixture(params=["sqlite", "postgresql"])
def before_items(request, tmp_path) -> Iterator[str]:
    """A database migrated up to the revision before share items; its URL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/items.db"
        upgrade(url, BEFORE)
        yield url
    else:
        with fresh_database("instashare_items", BEFORE) as url:
            yield url


def _ids(engine: sa.Engine) -> dict[str, str]:
    """A user, a file and a link to it with one counted download: their ids (as stored)."""
    now = dt.datetime.now(dt.UTC)
    ids = {name: uuid.uuid4() for name in ("user", "file", "share")}
    # SQLite stores a UUID as 32 hex digits (SQLAlchemy's Uuid there), PostgreSQL as uuid.
    text = {k: (v.hex if engine.dialect.name == "sqlite" else str(v)) for k, v in ids.items()}
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (id, email, password_hash, created_at, updated_at) "
                "VALUES (:user, :email, '-', :now, :now)"
            ),
            {**text, "email": f"{ids['user'].hex}@example.com", "now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO files (id, owner_id, name, status, size, crc32, content_type, "
                "attempts, version, created_at, updated_at) VALUES (:file, :user, 'a.txt', "
                "'ready', 1, 0, 'text/plain', 0, 1, :now, :now)"
            ),
            {**text, "now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO shares (id, file_id, owner_id, serves, downloads, created_at) "
                "VALUES (:share, :file, :user, 'zip', 1, :now)"
            ),
            {**text, "now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO share_downloads (share_id, number, began_at, resumed_bytes) "
                "VALUES (:share, 1, :now, 0)"
            ),
            {**text, "now": now},
        )
    return text


def test_links_from_before_keep_working_both_ways(before_items):
    engine = sa.create_engine(before_items)
    ids = _ids(engine)
    upgrade(before_items)
    with engine.begin() as conn:
        kind = conn.execute(sa.text("SELECT kind FROM shares WHERE id = :share"), ids).scalar()
        assert kind == "file"
        # The rebuild of `shares` (SQLite) did not cascade to the downloads of its links.
        downloads = conn.execute(sa.text("SELECT count(*) FROM share_downloads")).scalar()
        assert downloads == 1
        columns = {c["name"] for c in sa.inspect(conn).get_columns("files")}
        assert {"entry_offset", "entry_compressed_size"} <= columns
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("shares")}
        assert {"ix_shares_owner_id_created_at", "ix_shares_file_id_created_at"} <= indexes
        # A folder link: no file, its items apart; an item is a file or a folder, not both.
        folder_link = uuid.uuid4().hex if engine.dialect.name == "sqlite" else str(uuid.uuid4())
        conn.execute(
            sa.text(
                "INSERT INTO shares (id, kind, owner_id, serves, downloads, created_at) "
                "VALUES (:id, 'selection', :user, 'zip', 0, :now)"
            ),
            {"id": folder_link, "user": ids["user"], "now": dt.datetime.now(dt.UTC)},
        )
        conn.execute(
            sa.text("INSERT INTO share_items (share_id, position, file_id) VALUES (:id, 0, :f)"),
            {"id": folder_link, "f": ids["file"]},
        )
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO share_items (share_id, position) VALUES (:id, 1)"),
            {"id": folder_link},
        )
    command.downgrade(alembic_config(before_items), BEFORE)
    with engine.begin() as conn:
        left = conn.execute(sa.text("SELECT id FROM shares")).scalars().all()
        assert [str(v).replace("-", "") for v in left] == [ids["share"].replace("-", "")]
        assert conn.execute(sa.text("SELECT count(*) FROM share_downloads")).scalar() == 1
    upgrade(before_items)
    engine.dispose()
