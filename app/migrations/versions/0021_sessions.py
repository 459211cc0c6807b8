"""sessions: one row per signed-in device, named by every access token it was given

Revision ID: 0021_sessions
Revises: 0018_administration
Create Date: 2026-12-08

A new table; on PostgreSQL its foreign key to `users` comes after, in a statement of its
own that waits for its lock patiently (as 0007 does), so nothing else queues behind it.
"""

import contextlib

import sqlalchemy as sa
from alembic import op

from app.migrations.locking import patiently

revision = "0021_sessions"
down_revision = "0020_api_tokens"
branch_labels = None
depends_on = None

FOREIGN_KEY = "fk_sessions_user_id_users"


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    key = sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=FOREIGN_KEY, ondelete="CASCADE")
    with op.get_context().autocommit_block() if postgresql else contextlib.nullcontext():
        op.create_table(
            "sessions",
            sa.Column("id", sa.Uuid(), nullable=False),
            sa.Column("user_id", sa.Uuid(), nullable=False),
            sa.Column("kind", sa.String(length=8), nullable=False),
            sa.Column("device", sa.String(length=80), nullable=False),
            sa.Column("address", sa.String(length=64), nullable=False),
            sa.Column("token_generation", sa.Integer(), nullable=False),
            sa.Column("refresh_counter", sa.Integer(), nullable=False, server_default="0"),
            sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
            *([] if postgresql else [key]),  # SQLite adds no constraint to a table later
            sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
            if_not_exists=True,  # a run cut short after it is run again
        )
        op.create_index(
            "ix_sessions_user_id_created_at",
            "sessions",
            ["user_id", "created_at", "id"],
            if_not_exists=True,
        )
        op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"], if_not_exists=True)
        if postgresql:
            found = op.get_bind().execute(
                sa.text("SELECT 1 FROM pg_constraint WHERE conname = :name"),
                {"name": FOREIGN_KEY},
            )
            if found.first() is None:
                patiently(
                    f"ALTER TABLE sessions ADD CONSTRAINT {FOREIGN_KEY} FOREIGN KEY (user_id) "
                    "REFERENCES users (id) ON DELETE CASCADE"
                )


def downgrade() -> None:
    op.drop_index("ix_sessions_expires_at", table_name="sessions")
    op.drop_index("ix_sessions_user_id_created_at", table_name="sessions")
    op.drop_table("sessions")
