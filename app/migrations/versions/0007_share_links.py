"""share links: a link per file that anyone who has it may download from

Revision ID: 0007_share_links
Revises: 0006_file_status_counts
Create Date: 2026-12-10

On PostgreSQL the table and its indexes come first, with no foreign key: a new, empty
table, so nothing else is locked. Each foreign key is then added in a transaction of its
own, with `app.migrations.locking.patiently`: adding one locks the table it refers to
against writes, and had one transaction taken `files` and then `users` (as one CREATE
TABLE with both keys does), a write taking them the other way round would deadlock with it.
"""

import contextlib

import sqlalchemy as sa
from alembic import op

from app.migrations.locking import patiently

revision = "0007_share_links"
down_revision = "0006_file_status_counts"
branch_labels = None
depends_on = None

# (name, column, referred table): each ON DELETE CASCADE to the referred row's id.
FOREIGN_KEYS = (
    ("fk_shares_file_id_files", "file_id", "files"),
    ("fk_shares_owner_id_users", "owner_id", "users"),
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    keys = [
        sa.ForeignKeyConstraint([column], [f"{table}.id"], name=op.f(name), ondelete="CASCADE")
        for name, column, table in FOREIGN_KEYS
    ]
    # Each statement commits on its own on PostgreSQL (see above).
    with op.get_context().autocommit_block() if postgresql else contextlib.nullcontext():
        op.create_table(
            "shares",
            sa.Column("id", sa.Uuid(), nullable=False),
            sa.Column("file_id", sa.Uuid(), nullable=False),
            sa.Column("owner_id", sa.Uuid(), nullable=False),
            sa.Column("serves", sa.String(length=8), nullable=False),
            sa.Column("password_hash", sa.String(length=255), nullable=True),
            sa.Column("max_downloads", sa.Integer(), nullable=True),
            sa.Column("downloads", sa.Integer(), nullable=False, server_default="0"),
            sa.Column("last_downloaded_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            *([] if postgresql else keys),  # SQLite adds no constraint to a table later
            sa.PrimaryKeyConstraint("id", name=op.f("pk_shares")),
            if_not_exists=True,  # a run cut short after it is run again
        )
        op.create_index(
            "ix_shares_owner_id_created_at",
            "shares",
            ["owner_id", "created_at", "id"],
            if_not_exists=True,
        )
        op.create_index(
            "ix_shares_file_id_created_at",
            "shares",
            ["file_id", "created_at", "id"],
            if_not_exists=True,
        )
        if postgresql:
            for name, column, table in FOREIGN_KEYS:
                if not _constraint_exists(name):
                    patiently(
                        f"ALTER TABLE shares ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
                        f"REFERENCES {table} (id) ON DELETE CASCADE"
                    )


def _constraint_exists(name: str) -> bool:
    found = op.get_bind().execute(
        sa.text("SELECT 1 FROM pg_constraint WHERE conname = :name"), {"name": name}
    )
    return found.first() is not None


def downgrade() -> None:
    op.drop_index("ix_shares_file_id_created_at", table_name="shares")
    op.drop_index("ix_shares_owner_id_created_at", table_name="shares")
    op.drop_table("shares")
