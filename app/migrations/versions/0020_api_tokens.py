"""api tokens: personal access tokens with scopes, stored as the SHA-256 of their secret

Revision ID: 0020_api_tokens
Revises: 0018_administration
Create Date: 2026-12-08

A new table only: nothing existing is rewritten or locked.
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_api_tokens"
down_revision = "0019_identities"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("scopes", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_api_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_tokens_secret_hash")),
    )
    op.create_index(
        "uq_api_tokens_user_id_name",
        "api_tokens",
        ["user_id", sa.text("lower(name)")],
        unique=True,
    )
    op.create_index(
        "ix_api_tokens_user_id_created_at", "api_tokens", ["user_id", "created_at", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_api_tokens_user_id_created_at", table_name="api_tokens")
    op.drop_index("uq_api_tokens_user_id_name", table_name="api_tokens")
    op.drop_table("api_tokens")
