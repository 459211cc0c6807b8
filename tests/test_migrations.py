"""Alembic migrations: the only way the schema is made, and they run both ways."""

import uuid

import sqlalchemy as sa
from alembic import command

from app.migrate import alembic_config, upgrade


def test_upgrade_downgrade_upgrade_on_a_fresh_database(tmp_path):
    url = f"sqlite:///{tmp_path}/m.db"
    upgrade(url)
    engine = sa.create_engine(url)
    assert {"users", "files", "alembic_version"} <= set(sa.inspect(engine).get_table_names())
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
