"""`upload -r`: the files of directories, several at a time, with their structure kept.

Each file goes over tus with its path under the base folder as `relativePath` (its
directory's own name first, as a browser sends a dropped folder): the server makes the
folders as the files complete. A journal (config.TreeJournal) records each upload's URL
when it starts and its file id when it ends, so a rerun after an interruption skips what
arrived and resumes what was under way.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from instashare_cli import remote, transfer
from instashare_cli.api import Api, ApiError
from instashare_cli.config import TreeJournal
from instashare_cli.failures import failure
from instashare_cli.remote import Entry

T = TypeVar("T")
# Uploads at once: enough to keep the server busy while each waits on a round trip.
JOBS = 4


@dataclass(frozen=True)
class Item:
    """A local file and its path in the tree as uploaded (`photos/2024/a.jpg`)."""

    path: Path
    relative: str
    size: int
    mtime_ns: int


@dataclass
class Tree:
    """What `upload -r` sends: files, and folders with no file anywhere under them."""

    files: list[Item] = field(default_factory=list)
    empty_folders: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # neither a file nor a folder

    @property
    def size(self) -> int:
        return sum(item.size for item in self.files)


def _item(path: Path, relative: str) -> Item | None:
    info = path.stat()  # a link to a file is the file
    if not stat.S_ISREG(info.st_mode):
        return None
    return Item(path, relative, info.st_size, info.st_mtime_ns)


def walk(paths: list[Path]) -> Tree:
    """Each of `paths`: a file as itself, a directory with everything under it (links to
    directories are not followed: a loop would never end)."""
    tree = Tree()
    for top in paths:
        top = top.resolve()
        if not top.is_dir():
            item = _item(top, top.name)
            if item is None:
                tree.skipped.append(str(top))
            else:
                tree.files.append(item)
            continue
        for here, dirs, names in os.walk(top):
            dirs.sort()
            base = Path(here)
            relative_here = "/".join((top.name, *base.relative_to(top).parts))
            found = 0
            for name in sorted(names):
                try:
                    item = _item(base / name, f"{relative_here}/{name}")
                except OSError:
                    item = None  # a dangling link
                if item is None:
                    tree.skipped.append(str(base / name))
                else:
                    tree.files.append(item)
                    found += 1
            if not found and not dirs:
                tree.empty_folders.append(relative_here)
    return tree


class Report(Protocol):
    """How the upload of a tree is shown (output.Tally)."""

    def moved(self, n: int) -> None:
        """`n` more bytes went up (or had gone up in an earlier run)."""

    def finished(self) -> None:
        """One more file is up."""

    def refused(self, what: str, message: str) -> None:
        """The server refused the file `what`, saying `message`."""


@dataclass
class Outcome:
    uploaded: list[str] = field(default_factory=list)  # file ids, this run's and earlier ones'
    earlier: int = 0  # files an earlier run had already uploaded
    refused: list[tuple[Item, ApiError]] = field(default_factory=list)


def refusal(error: ApiError) -> bool:
    """A refusal of one file (name taken, too large, a bad name), after which the others
    can go on; anything else (the session, the server, the network) ends the run."""
    return error.status is not None and 400 <= error.status < 500 and error.status not in (401, 403)


def upload(
    api: Api,
    tree: Tree,
    base: Entry,
    journal: TreeJournal,
    report: Report,
    *,
    jobs: int = JOBS,
    chunk_size: int = transfer.CHUNK_SIZE,
) -> Outcome:
    """Upload `tree` into the folder `base`, `jobs` files at a time, telling `report` how
    it goes.

    The uploads run on daemon threads: Ctrl-C ends the command at once, and a chunk cut
    short is not kept (it had a checksum), so the rerun resumes cleanly.
    """
    outcome = Outcome()
    folder = {"folderId": base.id} if base.kind == "folder" else {}

    def send(item: Item) -> tuple[str, bool]:
        """The file's id, and whether an earlier run had uploaded it."""
        earlier = journal.finished(item.relative, item.size, item.mtime_ns)
        if earlier is not None:
            report.moved(item.size)
            return earlier, True
        slot = journal.slot(item.relative, item.size, item.mtime_ns)
        sent = 0

        def progress(done: int) -> None:
            nonlocal sent
            report.moved(done - sent)
            sent = done

        result = transfer.upload(
            api,
            item.path,
            name=item.relative.rsplit("/", 1)[-1],
            slot=slot,
            started=lambda done, _total: progress(done),
            progress=progress,
            metadata={"relativePath": item.relative, **folder},
            chunk_size=chunk_size,
        )
        slot.done(result.file_id)
        # Every byte had arrived, only the answer to the last one had not.
        return result.file_id, result.resumed_at == item.size

    for item, result in _pool(tree.files, send, jobs):
        if isinstance(result, tuple):
            outcome.uploaded.append(result[0])
            outcome.earlier += result[1]
            report.finished()
        elif isinstance(result, ApiError) and refusal(result):
            outcome.refused.append((item, result))
            report.refused(item.relative, failure(result).message)
        else:
            raise result
    for relative in tree.empty_folders:
        remote.make_folders(api, relative, base)
    return outcome


def _pool(
    items: list[Item], work: Callable[[Item], T], jobs: int
) -> Iterator[tuple[Item, T | BaseException]]:
    """`work(item)` for each item on `jobs` daemon threads: (item, its result or exception)
    as each ends. The caller stopping early (an exception) leaves the threads to die with
    the process; they take no new item once it has."""
    todo: queue.SimpleQueue[Item] = queue.SimpleQueue()
    for item in items:
        todo.put(item)
    done: queue.SimpleQueue[tuple[Item, T | BaseException]] = queue.SimpleQueue()
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((item, work(item)))
            except BaseException as exc:  # handed to the caller, who decides
                done.put((item, exc))

    for _ in range(min(jobs, len(items))):
        threading.Thread(target=worker, daemon=True).start()
    try:
        for _ in items:
            yield done.get()
    finally:
        stop.set()
