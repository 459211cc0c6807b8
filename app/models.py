"""The tables: accounts (their sessions, and ended tokens), the files they own, their resumable
uploads in progress, and the share links to their files."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Uuid,
    exists,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow

# Every object that is not yet (or no longer) part of a file lives under this one top-level
# prefix: the parts of resumable uploads, compose intermediates and staged uploads waiting
# for the worker. One lifecycle rule can target it (README, "Google Cloud Storage"). Files'
# archives live in their owner's folder, `<owner_id>/<file_id>.zip`.
TEMP_PREFIX = "tmp/"


def staged_key(owner_id: uuid.UUID, upload_id: uuid.UUID) -> str:
    """Where an upload's bytes wait for the worker (the file has the upload's id)."""
    return f"{TEMP_PREFIX}{owner_id}/uploads/{upload_id}"


def legacy_staged_key(owner_id: uuid.UUID, upload_id: uuid.UUID) -> str:
    """The staged key before the temporary prefix: in the owner's folder.

    Uploads and staged files of a deployment before it are still read and removed there;
    `instashare-server reconcile` finds anything left behind under it.
    """
    return f"{owner_id}/uploads/{upload_id}"


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    # Usage, kept exact by the same transactions that add and remove files and uploads
    # (app.services.quota); `instashare-server recount` rebuilds them from the rows.
    file_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    bytes_stored: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    bytes_reserved: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Files by status, kept by triggers on `files` (migration 0006): every insert, delete
    # and status change, the worker's bulk sweeps included, moves them in its own
    # transaction. Listing totals and /metrics read them instead of counting rows.
    files_pending: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    files_processing: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    files_ready: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    files_failed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Every access token carries the generation it was issued in; changing the password
    # moves it on, and the tokens of earlier generations stop working (app.http.security).
    token_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Administration (migration 0018, app.services.admin): `admin` reaches /api/v1/admin.
    role: Mapped[str] = mapped_column(String(16), default="user", server_default="user")
    # Set while the account is disabled: its login is refused, its links answer as revoked.
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The account's own quota; None: the server's `quota_bytes` (app.services.quota).
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # Moved at login, and by requests at most once a minute per process (app.http.streaming).
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    files: Mapped[list[File]] = relationship(back_populates="owner", passive_deletes=True)

    __table_args__ = (
        # One account per address, whatever its case; also the `email` order of the
        # administrators' listing (app.services.admin).
        Index("uq_users_email_lower", func.lower(email), unique=True),
        # The other keyset orders of that listing (migration 0018).
        Index("ix_users_created_at_id", "created_at", "id"),
        Index("ix_users_bytes_stored_id", "bytes_stored", "id"),
    )

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Invitation(Base):
    """A one-use invitation to register while sign-up is by invitation (app.services.invitations).

    Only the token's SHA-256 is kept: it is shown once, to the administrator who made it.
    """

    __tablename__ = "invitations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Only this address may use it (any case); None: whoever has the link.
    email: Mapped[str | None] = mapped_column(String(254))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    used_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_invitations_created_at_id", "created_at", "id"),)


class AuditEvent(Base):
    """One administrative action (app.services.audit), written in its transaction.

    The actor's address is copied: the record outlives the account. No secret goes in.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_email: Mapped[str | None] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    target_label: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict] = mapped_column(JSON().with_variant(JSONB(), "postgresql"), default=dict)

    __table_args__ = (
        Index("ix_audit_events_action_id", "action", "id"),
        Index("ix_audit_events_actor_id_id", "actor_id", "id"),
    )


class UserIdentity(Base):
    """An account's identity at an OpenID provider: the provider's subject, which stays the
    same when the person's address there changes (app.services.sso)."""

    __tablename__ = "user_identities"

    issuer: Mapped[str] = mapped_column(String(255), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # The address the provider gave at the last sign-in (the account's own may differ).
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RevokedToken(Base):
    """A token ended by logout, remembered until it would have expired anyway."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class ApiToken(Base):
    """A personal access token for scripts and CI (app.services.api_tokens).

    Only the SHA-256 of its secret is kept: the secret is shown once, when it is made.
    It belongs to the account's token generation it was made in: a password change ends it
    as it ends every session.
    """

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # The scopes it holds, space-separated in a fixed order (`read upload`): one column
    # both PostgreSQL and SQLite hold alike.
    scopes: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Written at most once a minute per token (app.services.api_tokens.LAST_USED_STEP).
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # One token of a name per account, whatever its case; its listing by creation.
        Index("uq_api_tokens_user_id_name", "user_id", func.lower(name), unique=True),
        Index("ix_api_tokens_user_id_created_at", "user_id", "created_at", "id"),
    )


class SessionKind(enum.StrEnum):
    """How a session was started: which kind of client holds it, and whether it is kept."""

    KEPT = "kept"  # a browser's "Keep me signed in": refreshed through its cookie
    PLAIN = "plain"  # one access token, over when it expires
    CLI = "cli"  # the command-line client's log-in (one access token, as plain)


class SignedInSession(Base):
    """One signed-in device: what every access token it was given names as its `sid`.

    Ended (`ended_at`) by logout or from "Your sessions": its access tokens are refused
    from the next request on. A kept session's refresh token is the `refresh_counter`-th
    of its family (app.services.sessions); `token_generation` is the account's when it
    was last refreshed, so a password change or a disabled account refuses the refresh.
    """

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    device: Mapped[str] = mapped_column(String(80))
    address: Mapped[str] = mapped_column(String(64))
    token_generation: Mapped[int] = mapped_column(Integer)
    refresh_counter: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    refreshed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When it ends by itself: a plain one with its access token, a kept one unless refreshed.
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        # "Your sessions", newest first, a keyset page at a time.
        Index("ix_sessions_user_id_created_at", "user_id", "created_at", "id"),
        # The worker's sweep of sessions that are over (ended ones expire as they end).
        Index("ix_sessions_expires_at", "expires_at"),
    )


class SchedulerLock(Base):
    """Who sends the periodic sweeps: one scheduler holds the row, renewing it as it ticks."""

    __tablename__ = "scheduler_locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class FileStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


def archive_key_for(owner_id: uuid.UUID, file_id: uuid.UUID, attempt: int) -> str:
    """The key a compression job's `attempt` writes its archive to, create-only.

    One key per attempt: a job whose lease ran out while it wrote cannot replace (or mix
    its bytes into) the archive its successor verified and recorded; it removes its own
    when it finds the lease gone. The first attempt, by far the common case, keeps the
    name archives always had.
    """
    if attempt <= 1:
        return f"{owner_id}/{file_id}.zip"
    return f"{owner_id}/{file_id}.{attempt}.zip"


def per_folder(table: str, parent: str, kind: str) -> tuple[Index, ...]:
    """A folder's listing and its unique names (migration 0014), for its files or its
    folders: a NULL parent (the root) is no key an index can order by or keep unique, so
    each has a partial index for the root (by owner) and one for the folders (by folder)."""

    def partial(name: str, columns: tuple[str, ...], where: str, unique: bool) -> Index:
        condition = text(f"{parent} {where}")
        return Index(
            name, *columns, unique=unique, postgresql_where=condition, sqlite_where=condition
        )

    return (
        partial(f"uq_{table}_root_name", ("owner_id", "name"), "IS NULL", True),
        partial(f"uq_{table}_{kind}_name", (parent, "name"), "IS NOT NULL", True),
        partial(f"ix_{table}_root_created_at", ("owner_id", "created_at", "id"), "IS NULL", False),
        partial(
            f"ix_{table}_{kind}_created_at", (parent, "created_at", "id"), "IS NOT NULL", False
        ),
    )


class Folder(Base):
    """A folder of an account's files (app.services.folders); `parent_id` None: the root.

    Names are unique within a folder, across its files and folders together (migration
    0014; the file-against-folder half is checked under the owner's row lock). A move
    changes `parent_id` alone: nothing under the folder is rewritten.
    """

    __tablename__ = "folders"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (*per_folder("folders", "parent_id", "parent"),)


class FilePreview(Base):
    """A file's thumbnail (app.services.previews), made by the worker with `ready`."""

    __tablename__ = "file_previews"

    file_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    media_type: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class File(Base):
    __tablename__ = "files"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The folder it is in; None: the root (migration 0014).
    folder_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[FileStatus] = mapped_column(
        Enum(FileStatus, name="file_status", values_callable=lambda e: [m.value for m in e]),
        default=FileStatus.PENDING,
    )
    size: Mapped[int] = mapped_column(BigInteger)
    # Known at once for multipart uploads; for resumable ones, once the worker read them.
    sha256: Mapped[str | None] = mapped_column(String(64))
    crc32: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(255))
    compressed_size: Mapped[int | None] = mapped_column(BigInteger)
    compression: Mapped[str | None] = mapped_column(String(16))
    # Where a range of a deflated original can start inflating (app.archive.seek_index):
    # written with `ready`; None for a stored entry, or an archive not indexed yet. Loaded
    # only when read (a download of the original), never by a page or the worker's claim.
    seek_index: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the job was last handed to the broker (None: never, or the broker was down).
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # A worker holds the job until then and renews it while it works.
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Which delivery holds the lease (app.services.leases.Delivery), so that the same
    # message redelivered after its worker process died may take it over at once. It
    # means something only while the file is `processing` (the last holder stays after).
    lease_holder: Mapped[str | None] = mapped_column(String(255))
    # The request that uploaded the file: a job sent again by the sweep carries its id.
    request_id: Mapped[str | None] = mapped_column(String(128))
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The archive the job that completed verified: its key (see `archive_key_for`; None
    # for rows from before, whose archive is the first attempt's) and, on GCS, its
    # generation, which every read names.
    archive_object: Mapped[str | None] = mapped_column(String(300))
    archive_generation: Mapped[int | None] = mapped_column(BigInteger)
    # Where the entry's data starts in the archive and how long it is (both written with
    # `ready`, migration 0015): a multi-file link's archive copies those bytes with no read
    # of the archive's headers. None for rows from before (app.services.stored_entries).
    entry_offset: Mapped[int | None] = mapped_column(Integer)
    entry_compressed_size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Bumped on every UPDATE; the ETag, and SQLAlchemy's optimistic lock.
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    # Whether the worker made it a thumbnail (the owner's list shows it): an index probe
    # per row a page lists (app.services.files.LISTED), loaded only when asked for.
    has_preview: Mapped[bool] = column_property(
        exists().where(FilePreview.file_id == id), deferred=True
    )

    owner: Mapped[User] = relationship(back_populates="files")

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        # Names are unique within a folder, and its listing walks an index (migration 0014).
        *per_folder("files", "folder_id", "folder"),
        # One index per keyset order of `GET /files` (app.services.files.list_files), and
        # of a folder's listing (app.services.folders); a name repeats across folders, so
        # the name orders carry the id.
        Index("ix_files_owner_id_created_at", "owner_id", "created_at", "id"),
        Index("ix_files_owner_id_name_id", "owner_id", "name", "id"),
        Index("ix_files_owner_id_status_created_at", "owner_id", "status", "created_at", "id"),
        Index("ix_files_owner_id_status_name_id", "owner_id", "status", "name", "id"),
        Index("ix_files_status_updated_at", "status", "updated_at"),
    )

    @property
    def staged_key(self) -> str:
        """Where the raw upload waits for the worker: under the temporary prefix."""
        return staged_key(self.owner_id, self.id)

    @property
    def legacy_staged_key(self) -> str:
        """Where an upload staged before the temporary prefix existed waits (read as fallback)."""
        return legacy_staged_key(self.owner_id, self.id)

    @property
    def archive_key(self) -> str:
        """Where the ZIP lives, in its owner's folder."""
        return self.archive_object or archive_key_for(self.owner_id, self.id, 1)


class Upload(Base):
    """A resumable (tus) upload in progress: its bytes are part objects until the last lands."""

    __tablename__ = "uploads"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    # Where the file goes: the base folder (None: the root), and the folders under it to
    # make when the last byte lands ("photos/2024", from tus `relativePath`), if any.
    # Deleting the base folder deletes the upload (app.services.folders).
    folder_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE")
    )
    relative_dir: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255))
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    # CRC-32 of the bytes received so far, combined part by part.
    crc32: Mapped[int] = mapped_column(BigInteger, default=0)
    parts: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Set, by versions before migration 0010, when the last byte landed and the upload became
    # the file with the same id; the row now goes in that transaction. Expiry removes such
    # rows (without touching their files).
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # tus `onConflict: replace`: the file holding the name where this upload lands is
    # deleted in the transaction that makes the new one (app.services.files.displace).
    replaces: Mapped[bool | None] = mapped_column(Boolean)
    # A direct upload (app.services.direct_uploads): the client sends the bytes straight to
    # a GCS resumable session for `direct_key`. Only the session URL's SHA-256 is kept (the
    # URL is the client's capability), and the checksums the client declared, if any.
    direct: Mapped[bool | None] = mapped_column(Boolean)
    session_sha256: Mapped[str | None] = mapped_column(String(64))
    declared_crc32c: Mapped[str | None] = mapped_column(String(8))
    declared_md5: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_uploads_owner_id_name", "owner_id", "name"),
        Index("ix_uploads_expires_at", "expires_at"),
        Index("ix_uploads_folder_id", "folder_id"),
    )

    @property
    def parts_prefix(self) -> str:
        """Where the part objects (and compose intermediates) live; beside the staged key."""
        return f"{staged_key(self.owner_id, self.id)}.parts/"

    @property
    def legacy_parts_prefix(self) -> str:
        """Where an upload begun before the temporary prefix existed keeps its parts."""
        return f"{legacy_staged_key(self.owner_id, self.id)}.parts/"

    @property
    def data_key(self) -> str:
        """The one part a backend that appends in place extends with every PATCH."""
        return f"{self.parts_prefix}data"

    @property
    def legacy_data_key(self) -> str:
        return f"{self.legacy_parts_prefix}data"

    @property
    def direct_key(self) -> str:
        """Where a direct upload's session writes: its quarantine, under the parts prefix
        (so expiry and cancelling remove it as they remove parts) until it is checked."""
        return f"{self.parts_prefix}direct"

    @property
    def staged_key(self) -> str:
        """The concatenated upload: the staged key of the file it becomes (same id)."""
        return staged_key(self.owner_id, self.id)

    @property
    def temporary_keys(self) -> tuple[str, ...]:
        """Everything an unfinished upload may have stored (prefixes end with `/`)."""
        return (
            self.parts_prefix,
            self.staged_key,
            self.legacy_parts_prefix,
            legacy_staged_key(self.owner_id, self.id),
        )


class UploadPart(Base):
    """One PATCH's bytes, stored as its own object, in offset order."""

    __tablename__ = "upload_parts"

    upload_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True
    )
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[str] = mapped_column(String(512))


class PendingDeletion(Base):
    """Objects to remove, written in the transaction that drops what they belonged to.

    The row goes first, then its objects, then this record: a process that dies in between
    leaves this record, and the worker's sweep (`finish_deletions`) removes the objects. A
    key ending in `/` is a prefix: everything under it goes.
    """

    __tablename__ = "pending_deletions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ShareKind(enum.StrEnum):
    FILE = "file"  # one file (`Share.file_id`)
    FOLDER = "folder"  # one folder, live (its one `ShareItem`)
    SELECTION = "selection"  # a fixed set of files and folders (its `ShareItem`s)


class Share(Base):
    """A link that lets anyone who has it download one file, or a folder or a selection of
    files and folders (app.services.shares, app.services.selections).

    The token in the URL is not stored: it is derived from the id and the server's secret,
    so the owner can be shown the URL again and a copy of this table alone opens nothing.
    """

    __tablename__ = "shares"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(16), default=ShareKind.FILE, server_default="file")
    # The one file of a `file` link; None for the others, whose items are `ShareItem`s.
    file_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # What the link serves: the ZIP ("zip") or the original bytes ("original").
    serves: Mapped[str] = mapped_column(String(8), default="zip")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    max_downloads: Mapped[int | None] = mapped_column(Integer)
    downloads: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_downloaded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        # The keyset orders of `GET /shares` and `GET /files/{id}/shares`.
        Index("ix_shares_owner_id_created_at", "owner_id", "created_at", "id"),
        Index("ix_shares_file_id_created_at", "file_id", "created_at", "id"),
    )


class ShareDownload(Base):
    """A counted download of a link with a limit, and what its resumes have sent
    (app.services.shares): its ticket (the ETag it answered with) resumes it for a while
    after it began and for about one more copy of the file, counted here so that every API
    process spends the same budget."""

    __tablename__ = "share_downloads"

    share_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("shares.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)  # the link's 1st, 2nd, …
    began_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bytes reserved by resumes: a resume's range before it is sent, less what a cut one
    # did not send.
    resumed_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    # The worker's hourly sweep of rows past every ticket's hours (`forget_downloads`).
    __table_args__ = (Index("ix_share_downloads_began_at", "began_at"),)


class ShareItem(Base):
    """One item of a folder or selection link: a file, or a folder with all it holds (now
    and later). The item goes with its file or folder."""

    __tablename__ = "share_items"

    share_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("shares.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # as the owner gave them
    file_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    folder_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE")
    )

    __table_args__ = (
        CheckConstraint("(file_id IS NULL) <> (folder_id IS NULL)", name="one_target"),
        # A file or folder deleted cascades here: each such delete finds its items by index.
        Index("ix_share_items_file_id", "file_id"),
        Index("ix_share_items_folder_id", "folder_id"),
    )
