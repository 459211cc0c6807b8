"""administration: roles, disabled accounts, own quotas, invitations and the audit log

Revision ID: 0018_administration
Revises: 0017_upload_replaces
Create Date: 2026-12-08

Four columns on `users` (a constant default and nullable ones: no table rewrite), the
indexes of the administrators' listing of users (app.services.admin: one per keyset order,
and a trigram index for the substring search on PostgreSQL, built CONCURRENTLY as in
0005), and two new tables, `invitations` and `audit_events`.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from app.migrations.locking import invalid_index, patiently

revision = "0018_administration"
down_revision = "0017_upload_replaces"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_users_created_at_id": ["created_at", "id"],
    "ix_users_bytes_stored_id": ["bytes_stored", "id"],
}
TRIGRAMS = "ix_users_email_trgm"
COLUMNS = ("role", "disabled_at", "quota_bytes", "last_seen_at")


def _columns() -> list[sa.Column]:
    return [
        sa.Column("role", sa.String(length=16), nullable=False, server_default="user"),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("users")}
    for column in _columns():
        if column.name in existing:
            continue
        if postgres:
            with op.get_context().autocommit_block():
                patiently(
                    f"ALTER TABLE users ADD COLUMN IF NOT EXISTS "
                    f"{column.name} {column.type.compile(op.get_bind().dialect)}"
                    + (" NOT NULL DEFAULT 'user'" if column.name == "role" else "")
                )
        else:
            op.add_column("users", column)
    op.create_table(
        "invitations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.Uuid(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_invitations_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["used_by"],
            ["users.id"],
            name=op.f("fk_invitations_used_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitations_token_hash")),
        if_not_exists=True,
    )
    op.create_index(
        "ix_invitations_created_at_id", "invitations", ["created_at", "id"], if_not_exists=True
    )
    op.create_table(
        "audit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_email", sa.String(length=254), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_kind", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("target_label", sa.String(length=254), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column(
            "details", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        if_not_exists=True,
    )
    op.create_index(
        "ix_audit_events_action_id", "audit_events", ["action", "id"], if_not_exists=True
    )
    op.create_index(
        "ix_audit_events_actor_id_id", "audit_events", ["actor_id", "id"], if_not_exists=True
    )
    if not postgres:
        for name, columns in INDEXES.items():
            op.create_index(name, "users", columns, if_not_exists=True)
        return
    with op.get_context().autocommit_block():
        for name, columns in INDEXES.items():
            if invalid_index(name):
                op.drop_index(name, table_name="users", postgresql_concurrently=True)
            op.create_index(
                name, "users", columns, postgresql_concurrently=True, if_not_exists=True
            )
        # The search of the users' listing: a substring of the address, any case.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        if invalid_index(TRIGRAMS):
            op.drop_index(TRIGRAMS, table_name="users", postgresql_concurrently=True)
        op.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {TRIGRAMS} "
            "ON users USING gin (lower(email) gin_trgm_ops)"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        with op.get_context().autocommit_block():
            for name in (*INDEXES, TRIGRAMS):
                op.drop_index(
                    name, table_name="users", postgresql_concurrently=True, if_exists=True
                )
    else:
        for name in INDEXES:
            op.drop_index(name, table_name="users", if_exists=True)
    op.drop_table("audit_events")
    op.drop_table("invitations")
    # Not a batch (a table rebuild on SQLite would lose what 0006 added): SQLite drops a
    # column in place since 3.35.
    for name in COLUMNS:
        op.drop_column("users", name)
