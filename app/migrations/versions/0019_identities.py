"""user identities: the accounts people sign in to through an OpenID provider

Revision ID: 0019_identities
Revises: 0017_upload_replaces
Create Date: 2026-12-08

A new table keyed by the provider (its issuer) and the person's subject there
(app.services.sso); each row names the account it signs in to, and goes with it. An account
made by single sign-on has no password: its hash is the mark no password matches
(app.services.passwords.NO_PASSWORD), so `users` is not altered (on SQLite that would
rebuild it). Nothing else is locked.
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_identities"
down_revision = "0018_administration"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_identities",
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_identities_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("issuer", "subject", name=op.f("pk_user_identities")),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_user_identities_user_id"), "user_identities", ["user_id"], if_not_exists=True
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_user_identities_user_id"), table_name="user_identities")
    op.drop_table("user_identities")
