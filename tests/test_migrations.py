"""Alembic migrations: the only way the schema is made, and they run both ways."""

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
    engine.dispose()


def test_postgres_schema_is_at_head(database_url):
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config(database_url)).get_heads()
    assert [version] == heads


def test_email_uniqueness_ignores_case_in_the_database(database_url):
    engine = sa.create_engine(database_url)
    insert = sa.text(
        "INSERT INTO users (id, email, password_hash, created_at, updated_at) "
        "VALUES (gen_random_uuid(), :e, 'x', now(), now())"
    )
    with engine.begin() as conn:
        conn.execute(insert, {"e": "Case@Example.com"})
    try:
        with engine.begin() as conn:
            conn.execute(insert, {"e": "case@example.COM"})
    except sa.exc.IntegrityError:
        pass
    else:
        raise AssertionError("a second account with the same address in another case")
    finally:
        engine.dispose()
