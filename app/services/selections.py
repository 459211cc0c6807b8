"""Links to a folder or a selection of files and folders: what one holds, and its archive.

A folder link (`kind` `folder`) holds its folder and everything under it at the moment it
is asked: a file added, moved in or out, renamed, or made ready later is shared (or not)
from the next request on. A selection (`selection`) holds a fixed set of items (its
`share_items` rows, in the owner's order), each a file, or a folder that is live as a
folder link is. Each item goes with its file or folder.

Paths are what the archive and the listing show: a folder item's name, then the folders
under it down to each file (`photos/2024/a.jpg`); a file item's name alone. Names are
unique within a folder, so only the items at the top of a selection can clash (two files
named alike from two folders): the later one is called `a (2).txt`, in the owner's order.

"Download all" is the ZIP of the ready files (app.archive.bundle): each file's entry is
copied as the worker stored it (or, for a link serving originals, stored uncompressed and
inflated on the way, under the CRC-32 the upload measured), so the archive's size, its
ETag and every byte are known before the first is sent. Files not ready are listed and
left out. Its ETag names every member's path, bytes and time; a change to what the link
holds (a file added, made ready, renamed, moved or deleted) is a new ETag.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import posixpath
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import literal, select, union_all
from sqlalchemy.orm import Session, aliased, undefer

from app.archive.bundle import Bundle, Member, folder
from app.archive.layout import STORED
from app.archive.reader import ArchiveReader
from app.errors import InvalidInput, NotFound
from app.models import File, FileStatus, Folder, Share, ShareItem, ShareKind
from app.services import files, names, shares, stored_entries
from app.storage import Storage
from app.storage.base import CHUNK_SIZE

MAX_ITEMS = 1000
# Chunks smaller than this are sent joined to what follows them (`coalesced`).
SMALL = 64 * 1024
# A folder tree deeper than this is not walked further (folders cannot form a cycle: a move
# into a descendant is refused; this only bounds a walk over a corrupted tree).
MAX_DEPTH = 256


# A name as archives carry it (`names.archive_name`, which checks every character), kept:
# a folder's names are the same at every download of its link.
_archive_name = functools.lru_cache(maxsize=16_384)(names.archive_name)


@dataclass(frozen=True)
class Item:
    """One item the owner asked to share."""

    kind: str  # "file" or "folder"
    id: uuid.UUID


@dataclass(frozen=True)
class Entry:
    """One file a link holds, under its path."""

    path: str
    file: File

    @property
    def ready(self) -> bool:
        return self.file.status == FileStatus.READY


@dataclass(frozen=True)
class FolderEntry:
    path: str  # without a trailing slash
    created_at: dt.datetime


@dataclass(frozen=True)
class Listing:
    """What a multi-file link (or the owner's selection) holds now: its name, its files
    and folders by path."""

    share: Share | None  # None: the owner's own selection
    name: str
    entries: list[Entry]
    folders: list[FolderEntry]

    @property
    def ready(self) -> list[Entry]:
        return [entry for entry in self.entries if entry.ready]


# --- the owner's side -----------------------------------------------------------------------


def parse_items(raw: object, *, most: int = MAX_ITEMS, what: str = "A link") -> list[Item]:
    """The body's `items`, checked: 1 to `most` of {kind, id}, none twice (`what` takes
    them, in the sentence that says so)."""
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(f"{what} needs at least one file or folder: the items are empty.")
    if len(raw) > most:
        raise InvalidInput(f"{what} takes at most {most:,} items; {len(raw):,} were given.")
    items: list[Item] = []
    for value in raw:
        if not isinstance(value, dict) or value.get("kind") not in ("file", "folder"):
            raise InvalidInput('Each item is {"kind": "file" or "folder", "id": its id}.')
        try:
            item = Item(value["kind"], uuid.UUID(str(value.get("id"))))
        except ValueError:
            raise InvalidInput("Each item's id is a file's or a folder's id (a UUID).") from None
        if item in items:
            raise InvalidInput(f"The {item.kind} {item.id} is given twice.")
        items.append(item)
    return items


def create(session: Session, owner_id: uuid.UUID, items: Sequence[Item], **options) -> Share:
    """A new link to the owner's files and folders: one file is a file link (as
    `shares.create` makes), one folder a folder link, anything else a selection.
    NotFound names the first item that is not the owner's."""
    check_owned(session, owner_id, items)
    if len(items) == 1 and items[0].kind == "file":
        return shares.create(session, owner_id, items[0].id, **options)
    kind = ShareKind.FOLDER if len(items) == 1 else ShareKind.SELECTION
    share = shares.build(owner_id, kind=kind, **options)
    session.add(share)
    session.flush()
    session.add_all(
        ShareItem(
            share_id=share.id,
            position=position,
            file_id=item.id if item.kind == "file" else None,
            folder_id=item.id if item.kind == "folder" else None,
        )
        for position, item in enumerate(items)
    )
    session.commit()
    return share


def check_owned(session: Session, owner_id: uuid.UUID, items: Sequence[Item]) -> None:
    """NotFound naming the first of `items` that is not the owner's."""
    for kind, model in (("file", File), ("folder", Folder)):
        wanted = [item.id for item in items if item.kind == kind]
        if not wanted:
            continue
        owned = select(model.id).where(model.owner_id == owner_id, model.id.in_(wanted))
        found = set(session.scalars(owned))
        for item_id in wanted:
            if item_id not in found:
                # Someone else's is as absent as one that never existed.
                raise NotFound(f"There is no {kind} {item_id}.")


@dataclass(frozen=True)
class Shown:
    """An item of a link as its owner sees it."""

    kind: str
    id: uuid.UUID
    name: str


def items_of(session: Session, links: Sequence[Share]) -> dict[uuid.UUID, list[Shown]]:
    """The items of each of `links` (a one-file link's file too), in order: one query."""
    ids = [share.id for share in links]
    shown: dict[uuid.UUID, list[Shown]] = {share_id: [] for share_id in ids}
    if not ids:
        return shown
    singles = (
        select(
            Share.id.label("share_id"),
            literal(-1).label("position"),
            literal("file").label("kind"),
            File.id.label("id"),
            File.name.label("name"),
        )
        .join(File, File.id == Share.file_id)
        .where(Share.id.in_(ids))
    )
    of_files = (
        select(ShareItem.share_id, ShareItem.position, literal("file"), File.id, File.name)
        .join(File, File.id == ShareItem.file_id)
        .where(ShareItem.share_id.in_(ids))
    )
    of_folders = (
        select(ShareItem.share_id, ShareItem.position, literal("folder"), Folder.id, Folder.name)
        .join(Folder, Folder.id == ShareItem.folder_id)
        .where(ShareItem.share_id.in_(ids))
    )
    rows = session.execute(union_all(singles, of_files, of_folders)).all()
    for row in sorted(rows, key=lambda r: (r.share_id, r.position)):
        shown[row.share_id].append(Shown(row.kind, row.id, row.name))
    return shown


# --- what a link holds ----------------------------------------------------------------------


def listing(session: Session, share: Share, *, original: bool = False) -> Listing:
    """Every file and folder a folder or selection link holds now, by path; NotFound once
    nothing is left of a folder link (its folder was deleted). `original`: load what
    reading the originals needs (each deflated file's seek index)."""
    items = session.execute(
        select(ShareItem.file_id, ShareItem.folder_id)
        .where(ShareItem.share_id == share.id)
        .order_by(ShareItem.position)
    ).all()
    if not items and share.kind == ShareKind.FOLDER:
        raise NotFound("There is no such link: its folder was deleted.")
    pairs = [(row.file_id, row.folder_id) for row in items]
    return _gathered(session, share.owner_id, pairs, original=original, share=share)


def owned(
    session: Session, owner_id: uuid.UUID, items: Sequence[Item], *, original: bool = False
) -> Listing:
    """What the owner's `items` hold now, by path, as a link to them would list it (the
    owner's own ZIP of a selection); NotFound when none of them is left."""
    pairs = [(i.id, None) if i.kind == "file" else (None, i.id) for i in items]
    found = _gathered(session, owner_id, pairs, original=original, share=None)
    if not found.entries and not found.folders:
        raise NotFound("Nothing of this download is left: its files and folders were deleted.")
    return found


def _gathered(
    session: Session,
    owner_id: uuid.UUID,
    items: Sequence[tuple[uuid.UUID | None, uuid.UUID | None]],
    *,
    original: bool,
    share: Share | None,
) -> Listing:
    """What `items` ((file id, None) or (None, folder id), in order) of `owner_id` hold."""
    options = [undefer(File.seek_index)] if original else []
    file_ids = [file_id for file_id, _ in items if file_id is not None]
    folder_ids = [folder_id for _, folder_id in items if folder_id is not None]
    top_files = {
        f.id: f
        for f in session.scalars(
            select(File).options(*options).where(File.owner_id == owner_id, File.id.in_(file_ids))
        )
    }
    top_folders = {
        f.id: f
        for f in session.scalars(
            select(Folder).where(Folder.owner_id == owner_id, Folder.id.in_(folder_ids))
        )
    }
    # Each item's name at the top, the later of two alike renamed, in the owner's order.
    top: dict[uuid.UUID, str] = {}
    taken: set[str] = set()
    for file_id, folder_id in items:
        named = top_files.get(file_id) or top_folders.get(folder_id)  # type: ignore[arg-type]
        if named is not None:
            top[named.id] = _unclashed(_archive_name(named.name), taken)
    found_entries = [Entry(top[f.id], f) for f in top_files.values()]
    found_folders = [FolderEntry(top[f.id], f.created_at) for f in top_folders.values()]
    if top_folders:
        sub_folders, sub_files = _trees(session, owner_id, list(top_folders), options)
        for root, path, created in sub_folders:
            found_folders.append(FolderEntry(f"{top[root]}/{path}", created))
        for root, path, file in sub_files:
            found_entries.append(
                Entry(posixpath.join(top[root], path, _archive_name(file.name)), file)
            )
    # A folder link is called after its folder; a selection after its one item, if one.
    name = next(iter(top.values())) if len(top) == 1 else f"{len(top)} items"
    return Listing(
        share,
        name,
        sorted(found_entries, key=lambda e: e.path),
        sorted(found_folders, key=lambda f: f.path),
    )


def _unclashed(name: str, taken: set[str]) -> str:
    """`name`, or `name (2)` (before its extension), `name (3)`, … if taken; now taken."""
    candidate, number = name, 1
    stem, dot, extension = name.rpartition(".")
    if not stem:  # no extension (or a name that starts with its only dot)
        stem, dot, extension = name, "", ""
    while candidate in taken:
        number += 1
        candidate = f"{stem} ({number}){dot}{extension}"
    taken.add(candidate)
    return candidate


def _trees(session: Session, owner_id: uuid.UUID, roots: list[uuid.UUID], options: list):
    """The folders under `roots` (root, path below it, created_at) and their files (root,
    folder path below it, File): one recursive query each way, by index per folder."""
    child = aliased(Folder)
    seed = select(
        Folder.id.label("id"),
        Folder.id.label("root"),
        literal("").label("path"),
        literal(0).label("depth"),
    ).where(Folder.owner_id == owner_id, Folder.id.in_(roots))
    tree = seed.cte("tree", recursive=True)
    tree = tree.union_all(
        select(
            child.id,
            tree.c.root,
            tree.c.path + child.name + "/",
            tree.c.depth + 1,
        ).where(child.owner_id == owner_id, child.parent_id == tree.c.id, tree.c.depth < MAX_DEPTH)
    )
    under = session.execute(
        select(tree.c.id, tree.c.root, tree.c.path, Folder.created_at, Folder.name)
        .join(Folder, Folder.id == tree.c.id)
        .where(tree.c.depth > 0)
    ).all()
    folders = [(row.root, _folder_path(row.path), row.created_at) for row in under]
    rows = session.execute(
        select(tree.c.root, tree.c.path, File)
        .options(*options)
        .join(File, File.folder_id == tree.c.id)
        .where(File.owner_id == owner_id)
    ).all()
    return folders, [(row.root, _folder_path(row.path), row.File) for row in rows]


def _folder_path(path: str) -> str:
    """A path the tree built (`a/b/`) as entries name it (`a/b`), each name as archives
    carry it."""
    return "/".join(_archive_name(part) for part in path.split("/") if part)


def member(session: Session, share: Share, file_id: uuid.UUID, *, original: bool) -> File:
    """One file the link holds now; NotFound for any other (someone else's, or the owner's
    outside the link: as absent as one that never existed)."""
    missing = NotFound(f"This link holds no file {file_id}.")
    query = select(File).where(File.id == file_id, File.owner_id == share.owner_id)
    if original:
        query = query.options(undefer(File.seek_index))
    file = session.scalars(query).one_or_none()
    if file is None:
        raise missing
    if share.kind == ShareKind.FILE:
        if share.file_id != file.id:
            raise missing
        return file
    items = session.execute(
        select(ShareItem.file_id, ShareItem.folder_id).where(ShareItem.share_id == share.id)
    ).all()
    if any(row.file_id == file.id for row in items):
        return file
    shared_folders = {row.folder_id for row in items if row.folder_id is not None}
    if file.folder_id is None or not shared_folders:
        raise missing
    if shared_folders.intersection(_ancestors(session, share.owner_id, file.folder_id)):
        return file
    raise missing


def _ancestors(session: Session, owner_id: uuid.UUID, folder_id: uuid.UUID) -> list[uuid.UUID]:
    """The folder and every folder above it (one recursive query)."""
    parent = aliased(Folder)
    seed = select(Folder.id, Folder.parent_id, literal(0).label("depth")).where(
        Folder.id == folder_id, Folder.owner_id == owner_id
    )
    up = seed.cte("up", recursive=True)
    up = up.union_all(
        select(parent.id, parent.parent_id, up.c.depth + 1).where(
            parent.id == up.c.parent_id, parent.owner_id == owner_id, up.c.depth < MAX_DEPTH
        )
    )
    return list(session.scalars(select(up.c.id)))


# --- Download all ---------------------------------------------------------------------------


def locate_all(session: Session, storage: Storage, found: Listing) -> None:
    """Make sure every ready file's entry is located (read and recorded for rows from
    before migration 0015: app.services.stored_entries), so the archive reads nothing first."""
    for entry in found.ready:
        stored_entries.locate(session, storage, entry.file)


def archive(storage: Storage, found: Listing, *, original: bool) -> files.Download:
    """The ZIP of the link's ready files and all its folders (`locate_all` first)."""
    members: list[tuple[str, Member]] = []
    for entry in found.ready:
        members.append((entry.path, _member(storage, entry, original=original)))
    for place in found.folders:
        members.append((place.path + "/", folder(place.path, place.created_at)))
    members.sort(key=lambda pair: pair[0])
    ordered = [m for _, m in members]
    bundle = Bundle(ordered)

    def read(start: int, length: int | None) -> Iterator[bytes]:
        return coalesced(bundle.read_range(start, length))

    return files.Download(
        read=read,
        size=bundle.size,
        content_type="application/zip",
        filename=f"{found.name}.zip",
        etag=_etag(found, ordered, original),
    )


def coalesced(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """`chunks` with the small ones joined: the archive's headers (a few dozen bytes each,
    two per file) go out with what follows them, not each on its own (a download sends
    each chunk with a trip to a worker thread). At most SMALL + CHUNK_SIZE held."""
    held: list[bytes] = []
    size = 0
    for chunk in chunks:
        if size and size + len(chunk) > SMALL + CHUNK_SIZE:
            yield b"".join(held)
            held, size = [], 0
        if not size and len(chunk) >= SMALL:
            yield chunk  # a whole chunk of data, as read: no copy
            continue
        held.append(chunk)
        size += len(chunk)
        if size >= SMALL:
            yield b"".join(held)
            held, size = [], 0
    if size:
        yield b"".join(held)


def _member(storage: Storage, entry: Entry, *, original: bool) -> Member:
    file = entry.file
    at = stored_entries.recorded(file)
    if at is None:
        raise AssertionError(f"{file.id}: not located (call locate_all first)")
    reader = files.archive_reader(storage, file, original=original, entry_at=at)
    if original:
        # Stored, as the original's bytes: inflated on the way from the nearest seek point.
        return Member(entry.path, STORED, file.crc32, file.size, file.size, file.created_at,
                      _original_reader(reader))  # fmt: skip
    return Member(entry.path, at.method, file.crc32, file.size, at.compressed_size,
                  file.created_at, reader.read_stored)  # fmt: skip


def _original_reader(reader: ArchiveReader):
    def read(start: int, length: int) -> Iterator[bytes]:
        return reader.read_original(start, length)

    return read


def _etag(found: Listing, members: Sequence[Member], original: bool) -> str:
    """A strong ETag of the archive: what each member is, where its bytes come from."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(b"original" if original else b"zip")
    by_path = {entry.path: entry.file for entry in found.ready}
    for m in members:
        file = by_path.get(m.path)
        source = (
            f"{file.id}:{file.archive_key}:{file.archive_generation}:{file.entry_offset}"
            if file is not None
            else "folder"
        )
        line = f"\0{m.path}\0{m.method}:{m.crc32:08x}:{m.size}:{m.compressed_size}:"
        digest.update((line + f"{m.modified.isoformat()}:{source}").encode())
    return f'"all.{digest.hexdigest()}"'


def download(
    session: Session, storage: Storage, share: Share, file_id: uuid.UUID | None = None
) -> files.Download:
    """What a download through the link sends: its Download all, or its file `file_id`
    (NotFound unless the link holds it; NotReady until it is ready). Download all before
    any file is ready: NotReady while some are still being prepared."""
    original = share.serves == "original"
    if file_id is not None:
        return files.download_of(
            storage, member(session, share, file_id, original=original), original=original
        )
    found = listing(session, share, original=original)
    ensure_some_ready(found)
    locate_all(session, storage, found)
    return archive(storage, found, original=original)


def of_owner(
    session: Session,
    storage: Storage,
    owner_id: uuid.UUID,
    items: Sequence[Item],
    *,
    original: bool,
) -> files.Download:
    """The owner's own ZIP of `items` as they are now, made as a link's Download all is
    (the same bytes for the same members): NotReady while nothing in it is ready yet."""
    found = owned(session, owner_id, items, original=original)
    ensure_some_ready(found)
    locate_all(session, storage, found)
    return archive(storage, found, original=original)


def ensure_some_ready(found: Listing) -> None:
    """NotReady when files are listed and none is ready (Retry-After unless all failed)."""
    if found.entries and not found.ready:
        waiting = min(found.entries, key=lambda e: e.file.status == FileStatus.FAILED)
        files.ensure_ready(waiting.file)


def listed(session: Session, storage: Storage, share: Share) -> tuple[Listing, files.Download]:
    """What the link holds now and its Download all (for the listing and the page)."""
    original = share.serves == "original"
    found = listing(session, share, original=original)
    locate_all(session, storage, found)
    return found, archive(storage, found, original=original)
