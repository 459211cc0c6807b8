"""indexes for listing files by status: each keyset order has an index to walk

Revision ID: 0005_list_indexes
Revises: 0004_token_revocation
Create Date: 2026-12-08

`GET /files` pages in four orders, with or without a status filter. Without one, the
unique (owner_id, name) index and (owner_id, created_at, id) already give both orders
(names are unique per owner, so a name needs no id beside it). With a status filter the
index must lead with (owner_id, status) too, or a deep page walks every file before it.

On PostgreSQL the indexes are built CONCURRENTLY, outside the migration's transaction: a
table of a million files keeps taking writes while they build (bench/migrate_lock.py times
it). A build that was interrupted leaves an invalid index behind; running the migration
again drops it and builds it afresh.
"""

from alembic import op

from app.migrations.locking import invalid_index

revision = "0005_list_indexes"
down_revision = "0004_token_revocation"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_files_owner_id_status_created_at": ["owner_id", "status", "created_at", "id"],
    "ix_files_owner_id_status_name": ["owner_id", "status", "name"],
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, columns in INDEXES.items():
            op.create_index(name, "files", columns, if_not_exists=True)
        return
    with op.get_context().autocommit_block():
        for name, columns in INDEXES.items():
            if invalid_index(name):
                op.drop_index(name, table_name="files", postgresql_concurrently=True)
            op.create_index(
                name, "files", columns, postgresql_concurrently=True, if_not_exists=True
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name in INDEXES:
            op.drop_index(name, table_name="files", if_exists=True)
        return
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.drop_index(name, table_name="files", postgresql_concurrently=True, if_exists=True)
