"""Your files and folders by path: `photos/2024/a.jpg` (or an id) to what it names.

The API knows folders by id only; paths are this client's. A path is walked from the root,
one lookup by name (GET /entries?name=) per folder on the way, however many entries each
holds; an id is looked up directly, and its
path read from the folder's breadcrumb (GET /folders/{id}).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from instashare_cli.api import Api, ApiError
from instashare_cli.failures import EXIT_NOT_FOUND, EXIT_USAGE, Failure
from instashare_cli.session import UUID


@dataclass(frozen=True)
class Entry:
    """A file, a folder or the root, with the API's record of it and its path."""

    kind: str  # "file", "folder" or "root"
    path: str  # "photos/2024/a.jpg"; "" for the root
    record: dict = field(default_factory=dict)  # the API's File or Folder; {} for the root

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def name(self) -> str:
        return self.record.get("name", "/")

    @property
    def folder_id(self) -> str | None:
        """This folder's id as the API takes it (None: the root); only for folders."""
        assert self.kind != "file"
        return self.record.get("id")

    @property
    def is_folder(self) -> bool:
        return self.kind != "file"

    @property
    def shown(self) -> str:
        """How a message names it: `photos/2024/` for a folder, `/` for the root."""
        if self.kind == "root":
            return "/"
        return self.path + "/" if self.kind == "folder" else self.path

    def child(self, record: dict) -> Entry:
        return Entry(record["kind"], join(self.path, record["name"]), record)


ROOT = Entry("root", "")


def join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def split(path: str) -> list[str]:
    """A path's names, in NFC as the server keeps them; `.` and empty parts are dropped and
    `..` goes up (never above the root)."""
    names: list[str] = []
    for part in unicodedata.normalize("NFC", path).split("/"):
        if part == "..":
            if names:
                names.pop()
        elif part not in ("", "."):
            names.append(part)
    return names


def child(api: Api, folder: Entry, name: str) -> Entry | None:
    """The file or folder named `name` in `folder`, if there is one (one request)."""
    for record in api.entries(folder.folder_id, name=name, page_size=1):
        if record["name"] == name:
            return folder.child(record)
    return None


def _by_id(api: Api, ref: str) -> Entry | None:
    """The file or folder whose id is `ref`, with its path."""
    for kind in ("file", "folder"):
        try:
            record = api.file(ref)[0] if kind == "file" else api.folder(ref)
        except ApiError as exc:
            if exc.status != 404:
                raise
            continue
        if kind == "file":
            parent = api.folder(record["folder_id"]) if record.get("folder_id") else None
        else:
            parent = record
        names = [] if parent is None else [a["name"] for a in parent.get("ancestors", [])]
        if kind == "file" and parent is not None:
            names.append(parent["name"])
        return Entry(kind, join(*names, record["name"]), {"kind": kind, **record})
    return None


def find(api: Api, ref: str) -> Entry | None:
    """What `ref` names: an id, else a path from the root; None if nothing is there."""
    if UUID.match(ref):
        found = _by_id(api, ref)
        if found is not None:
            return found
    entry = ROOT
    for name in split(ref):
        if entry.kind == "file":
            return None
        found = child(api, entry, name)
        if found is None:
            return None
        entry = found
    return entry


def locate(api: Api, ref: str, want: str | None = None) -> Entry:
    """What `ref` names (`want`: only a "file" or a "folder"); Failure if nothing, or not
    that, is there."""
    entry = find(api, ref)
    what = {"file": "file", "folder": "folder"}.get(want or "", "file or folder")
    if entry is None:
        named = f"with the id {ref}" if UUID.match(ref) else f"named {ref!r}"
        raise Failure(f"you have no {what} {named}", EXIT_NOT_FOUND)
    if want == "file" and entry.is_folder:
        raise Failure(f"{entry.shown} is a folder, not a file")
    if want == "folder" and not entry.is_folder:
        raise Failure(f"{entry.shown} is a file, not a folder")
    return entry


def make_folders(api: Api, path: str, base: Entry = ROOT) -> tuple[Entry, list[Entry]]:
    """The folder at `path` under `base`, made with every missing folder on the way (as
    `mkdir -p` does); and the folders it made, outermost first."""
    folder, made = base, []
    for name in split(path):
        # Under a folder just made, nothing is there yet: no need to look.
        found = None if made else child(api, folder, name)
        if found is None:
            try:
                record = api.create_folder(name, folder.folder_id)
            except ApiError as exc:
                if exc.status != 409:
                    raise
                found = child(api, folder, name)  # made meanwhile by someone else?
                if found is None or not found.is_folder:
                    raise
            else:
                found = folder.child({"kind": "folder", **record})
                made.append(found)
        if not found.is_folder:
            raise Failure(f"{found.shown} is a file, not a folder")
        folder = found
    return folder, made


def not_root(entry: Entry, action: str) -> Entry:
    """`entry`, unless it is the root, which nobody may `action`."""
    if entry.kind == "root":
        raise Failure(f"cannot {action} your root folder", EXIT_USAGE)
    return entry
