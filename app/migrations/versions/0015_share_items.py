"""share items: links to a folder or a selection, and where each archive's entry lies

Revision ID: 0015_share_items
Revises: 0014_folders
Create Date: 2026-12-07

`shares` gains `kind` (`file`, `folder`, `selection`; every link so far is a `file` one)
and its `file_id` may be empty (a folder or selection link's items are `share_items`
rows). `files` gains `entry_offset` and `entry_compressed_size`, which the worker writes
with `ready` from now on; rows from before stay empty (app.services.stored_entries reads them
from the archive once and records them).

On PostgreSQL every change is a catalogue change under a lock taken patiently (a column
with a constant default is not a rewrite since PostgreSQL 11; dropping NOT NULL checks
nothing); the new table comes first, with no foreign key, and each key is added in a
transaction of its own, as 0007 does. On SQLite, `shares` is rebuilt (SQLite cannot drop
a NOT NULL in place) with foreign keys off for the rebuild, so that dropping the old table
does not cascade to `share_downloads`.
"""

import contextlib

import sqlalchemy as sa
from alembic import op

from app.migrations.locking import patiently

revision = "0015_share_items"
down_revision = "0014_folders"
branch_labels = None
depends_on = None

# (name, column, referred table): each ON DELETE CASCADE to the referred row's id.
FOREIGN_KEYS = (
    ("fk_share_items_share_id_shares", "share_id", "shares"),
    ("fk_share_items_file_id_files", "file_id", "files"),
    ("fk_share_items_folder_id_folders", "folder_id", "folders"),
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        with op.get_context().autocommit_block():
            patiently(
                "ALTER TABLE shares "
                "ADD COLUMN IF NOT EXISTS kind varchar(16) NOT NULL DEFAULT 'file', "
                "ALTER COLUMN file_id DROP NOT NULL"
            )
            patiently(
                "ALTER TABLE files "
                "ADD COLUMN IF NOT EXISTS entry_offset integer, "
                "ADD COLUMN IF NOT EXISTS entry_compressed_size bigint"
            )
    else:
        op.add_column("files", sa.Column("entry_offset", sa.Integer(), nullable=True))
        op.add_column("files", sa.Column("entry_compressed_size", sa.BigInteger(), nullable=True))
        with _sqlite_rebuild(), _shares_batch() as batch:
            batch.add_column(
                sa.Column("kind", sa.String(16), nullable=False, server_default="file")
            )
            batch.alter_column("file_id", existing_type=sa.Uuid(), nullable=True)
    keys = [
        sa.ForeignKeyConstraint([column], [f"{table}.id"], name=op.f(name), ondelete="CASCADE")
        for name, column, table in FOREIGN_KEYS
    ]
    with op.get_context().autocommit_block() if postgresql else contextlib.nullcontext():
        op.create_table(
            "share_items",
            sa.Column("share_id", sa.Uuid(), nullable=False),
            sa.Column("position", sa.Integer(), nullable=False),
            sa.Column("file_id", sa.Uuid(), nullable=True),
            sa.Column("folder_id", sa.Uuid(), nullable=True),
            sa.CheckConstraint(
                "(file_id IS NULL) <> (folder_id IS NULL)",
                name=op.f("ck_share_items_one_target"),
            ),
            *([] if postgresql else keys),  # SQLite adds no constraint to a table later
            sa.PrimaryKeyConstraint("share_id", "position", name=op.f("pk_share_items")),
            if_not_exists=True,  # a run cut short after it is run again
        )
        op.create_index("ix_share_items_file_id", "share_items", ["file_id"], if_not_exists=True)
        op.create_index(
            "ix_share_items_folder_id", "share_items", ["folder_id"], if_not_exists=True
        )
        if postgresql:
            for name, column, table in FOREIGN_KEYS:
                if not _constraint_exists(name):
                    patiently(
                        f"ALTER TABLE share_items ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
                        f"REFERENCES {table} (id) ON DELETE CASCADE"
                    )


@contextlib.contextmanager
def _sqlite_rebuild():
    """SQLite's way to change a table (its docs' twelve steps): foreign keys off (outside a
    transaction, where the pragma takes effect), the rebuild in one transaction, then on."""
    bind = op.get_bind()
    with op.get_context().autocommit_block():
        bind.exec_driver_sql("PRAGMA foreign_keys=OFF")
        bind.exec_driver_sql("BEGIN")
        try:
            yield
            bind.exec_driver_sql("COMMIT")
        except BaseException:
            bind.exec_driver_sql("ROLLBACK")
            raise
        finally:
            bind.exec_driver_sql("PRAGMA foreign_keys=ON")


def _shares_batch(*, kind: bool = False):
    """A batch rebuild of `shares` from its definition here (`kind`: with that column), not
    reflected: reflecting it would reflect `users` too, whose expression index SQLAlchemy
    cannot read."""
    metadata = sa.MetaData()
    for referred in ("files", "users"):
        sa.Table(referred, metadata, sa.Column("id", sa.Uuid(), primary_key=True))
    file_id = sa.Column("file_id", sa.Uuid(), nullable=kind)
    table = sa.Table(
        "shares",
        metadata,
        sa.Column("id", sa.Uuid(), nullable=False),
        *([sa.Column("kind", sa.String(16), nullable=False, server_default="file")] * kind),
        file_id,
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("serves", sa.String(length=8), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("max_downloads", sa.Integer(), nullable=True),
        sa.Column("downloads", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_downloaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_shares"),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name="fk_shares_file_id_files", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_shares_owner_id_users", ondelete="CASCADE"
        ),
        sa.Index("ix_shares_owner_id_created_at", "owner_id", "created_at", "id"),
        sa.Index("ix_shares_file_id_created_at", "file_id", "created_at", "id"),
    )
    return op.batch_alter_table("shares", copy_from=table, recreate="always")


def _constraint_exists(name: str) -> bool:
    found = op.get_bind().execute(
        sa.text("SELECT 1 FROM pg_constraint WHERE conname = :name"), {"name": name}
    )
    return found.first() is not None


def downgrade() -> None:
    op.drop_index("ix_share_items_folder_id", table_name="share_items")
    op.drop_index("ix_share_items_file_id", table_name="share_items")
    op.drop_table("share_items")
    # The links a one-file schema cannot hold go (their items went with the table above).
    op.execute("DELETE FROM shares WHERE file_id IS NULL")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE shares ALTER COLUMN file_id SET NOT NULL")
        op.drop_column("shares", "kind")
    else:
        with _sqlite_rebuild(), _shares_batch(kind=True) as batch:
            batch.alter_column("file_id", existing_type=sa.Uuid(), nullable=False)
            batch.drop_column("kind")
    op.drop_column("files", "entry_compressed_size")
    op.drop_column("files", "entry_offset")
