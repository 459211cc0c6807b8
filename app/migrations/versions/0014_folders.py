"""folders: an account's files live in a tree of folders (the root is NULL)

Revision ID: 0014_folders
Revises: 0013_status_counts_per_statement
Create Date: 2026-12-07

A `folders` table (its parent NULL at the root) and `files.folder_id` (NULL: the root).
Names are unique within a folder rather than per owner: two partial unique indexes per
table, one for the root (keyed by owner, since NULL parents never clash in an index) and
one for the folders (keyed by folder). A file and a folder of one folder may not share a
name either; no index spans two tables, so app.services.folders checks that under the
owner's row lock, which every write placing a name takes.

`GET /files` orders by name over all of an owner's folders, where names repeat, so its
name orders now carry the id as a tie-breaker: (owner_id, name, id) and (owner_id,
status, name, id) replace (owner_id, name) and (owner_id, status, name). A folder's
listing walks the per-folder indexes by name or by date: each partial, one for the
root (by owner) and one for the folders (by folder), since an index cannot order by a
NULL it is only compared with.

`uploads.folder_id` is where a resumable upload goes (its base folder) and
`uploads.relative_dir` the folders under it to make when it completes; deleting a folder
deletes the uploads bound for it (app.services.folders frees their reservations).

On PostgreSQL the new columns are added under a lock taken patiently, their foreign keys
NOT VALID then validated (no write waits for the scan), and the indexes on `files` built
CONCURRENTLY outside a transaction, as 0005 does (an interrupted build is dropped and
built again).
"""

import sqlalchemy as sa
from alembic import op

from app.migrations.locking import invalid_index, patiently

revision = "0014_folders"
down_revision = "0013_status_counts_per_statement"
branch_labels = None
depends_on = None


def _per_folder(table: str, parent: str, kind: str) -> dict[str, tuple[list[str], bool, str]]:
    """name: (columns, unique, partial condition) of a folder's listing and unique names,
    for its files or its folders (app.models.per_folder says the same)."""
    return {
        f"uq_{table}_root_name": (["owner_id", "name"], True, f"{parent} IS NULL"),
        f"uq_{table}_{kind}_name": ([parent, "name"], True, f"{parent} IS NOT NULL"),
        f"ix_{table}_root_created_at": (
            ["owner_id", "created_at", "id"],
            False,
            f"{parent} IS NULL",
        ),
        f"ix_{table}_{kind}_created_at": (
            [parent, "created_at", "id"],
            False,
            f"{parent} IS NOT NULL",
        ),
    }


FOLDER_INDEXES = _per_folder("folders", "parent_id", "parent")
FILE_INDEXES: dict[str, tuple[list[str], bool, str | None]] = {
    **_per_folder("files", "folder_id", "folder"),
    "ix_files_owner_id_name_id": (["owner_id", "name", "id"], False, None),
    "ix_files_owner_id_status_name_id": (["owner_id", "status", "name", "id"], False, None),
}
# Replaced by the above: names are no longer unique per owner.
OLD_FILE_INDEXES: dict[str, tuple[list[str], bool]] = {
    "uq_files_owner_id_name": (["owner_id", "name"], True),
    "ix_files_owner_id_status_name": (["owner_id", "status", "name"], False),
}


def _create_folders() -> None:
    op.create_table(
        "folders",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "owner_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "parent_id", sa.Uuid(), sa.ForeignKey("folders.id", ondelete="CASCADE"), nullable=True
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_folders"),
    )
    for name, (columns, unique, where) in FOLDER_INDEXES.items():
        condition = sa.text(where)
        op.create_index(
            name,
            "folders",
            columns,
            unique=unique,
            postgresql_where=condition,
            sqlite_where=condition,
        )


def _create_file_index(name: str, columns: list[str], unique: bool, where: str | None) -> None:
    condition = sa.text(where) if where else None
    op.create_index(
        name,
        "files",
        columns,
        unique=unique,
        postgresql_where=condition,
        sqlite_where=condition,
        postgresql_concurrently=op.get_bind().dialect.name == "postgresql",
        if_not_exists=True,
    )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _create_folders()
    _add_columns(postgres)


def _add_columns(postgres: bool) -> None:
    if not postgres:
        # Plain ADD COLUMN (see 0003): a batch would rebuild the tables (and drop the
        # triggers of 0006 on `files`). Without a foreign key: SQLite cannot drop a column
        # one names short of a rebuild, so the downgrade could not either. The service
        # removes a folder's files and uploads itself (app.services.folders), on both.
        op.add_column("files", sa.Column("folder_id", sa.Uuid(), nullable=True))
        op.add_column("uploads", sa.Column("folder_id", sa.Uuid(), nullable=True))
        op.add_column("uploads", sa.Column("relative_dir", sa.Text(), nullable=True))
        op.create_index("ix_uploads_folder_id", "uploads", ["folder_id"])
        for name, (columns, unique, where) in FILE_INDEXES.items():
            _create_file_index(name, columns, unique, where)
        for name in OLD_FILE_INDEXES:
            op.drop_index(name, table_name="files", if_exists=True)
        return
    with op.get_context().autocommit_block():
        patiently(
            "ALTER TABLE files ADD COLUMN IF NOT EXISTS folder_id uuid, "
            "DROP CONSTRAINT IF EXISTS fk_files_folder_id_folders, "
            "ADD CONSTRAINT fk_files_folder_id_folders FOREIGN KEY (folder_id) "
            "REFERENCES folders (id) ON DELETE CASCADE NOT VALID"
        )
        patiently(
            "ALTER TABLE uploads ADD COLUMN IF NOT EXISTS folder_id uuid, "
            "ADD COLUMN IF NOT EXISTS relative_dir text, "
            "DROP CONSTRAINT IF EXISTS fk_uploads_folder_id_folders, "
            "ADD CONSTRAINT fk_uploads_folder_id_folders FOREIGN KEY (folder_id) "
            "REFERENCES folders (id) ON DELETE CASCADE NOT VALID"
        )
        # Every row is NULL: the scans find nothing, and take no lock writes wait for.
        op.execute("ALTER TABLE files VALIDATE CONSTRAINT fk_files_folder_id_folders")
        op.execute("ALTER TABLE uploads VALIDATE CONSTRAINT fk_uploads_folder_id_folders")
        op.create_index(
            "ix_uploads_folder_id",
            "uploads",
            ["folder_id"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        for name, (columns, unique, where) in FILE_INDEXES.items():
            if invalid_index(name):
                op.drop_index(name, table_name="files", postgresql_concurrently=True)
            _create_file_index(name, columns, unique, where)
        for name in OLD_FILE_INDEXES:
            op.drop_index(name, table_name="files", postgresql_concurrently=True, if_exists=True)


def downgrade() -> None:
    # Names unique per owner again: a downgrade with the same name in two folders fails
    # on the first index below, and says so, rather than dropping a file.
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_index("ix_uploads_folder_id", table_name="uploads", if_exists=True)
    if postgres:
        with op.get_context().autocommit_block():
            for name, (columns, unique) in OLD_FILE_INDEXES.items():
                if invalid_index(name):
                    op.drop_index(name, table_name="files", postgresql_concurrently=True)
                op.create_index(
                    name,
                    "files",
                    columns,
                    unique=unique,
                    postgresql_concurrently=True,
                    if_not_exists=True,
                )
            for name in FILE_INDEXES:
                op.drop_index(
                    name, table_name="files", postgresql_concurrently=True, if_exists=True
                )
            patiently(
                "ALTER TABLE uploads DROP COLUMN IF EXISTS folder_id, "
                "DROP COLUMN IF EXISTS relative_dir"
            )
            patiently("ALTER TABLE files DROP COLUMN IF EXISTS folder_id")
    else:
        for name, (columns, unique) in OLD_FILE_INDEXES.items():
            op.create_index(name, "files", columns, unique=unique, if_not_exists=True)
        for name in FILE_INDEXES:
            op.drop_index(name, table_name="files", if_exists=True)
        op.drop_column("uploads", "relative_dir")
        op.drop_column("uploads", "folder_id")
        op.drop_column("files", "folder_id")
    for name in FOLDER_INDEXES:
        op.drop_index(name, table_name="folders")
    op.drop_table("folders")
