"""Commands for your files and folders by path: mkdir, ls, mv, rm."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from app.services.sizes import iec
from instashare_cli import remote
from instashare_cli.api import Api
from instashare_cli.failures import EXIT_NOT_FOUND, EXIT_USAGE, Failure
from instashare_cli.output import plainly, stdout, when
from instashare_cli.remote import Entry
from instashare_cli.session import Session, pass_session

STATUS_STYLE = {
    "ready": "green",
    "failed": "red",
    "processing": "yellow",
    "pending": "cyan",
    "unfinished": "magenta",
}
SORTS = ["created_at", "-created_at", "name", "-name"]
STATUSES = ["pending", "processing", "ready", "failed"]


@click.command(epilog="Example: instashare mkdir photos/2024/summer")
@click.argument("path")
@pass_session
def mkdir(session: Session, path: str) -> None:
    """Make a folder, and every folder on its path that is missing (as mkdir -p does).

    PATH goes from your root folder: `photos/2024` is the folder 2024 in photos. A folder
    that is already there is left as it is.
    """
    if not remote.split(path):
        raise Failure("give the path of a folder to make, such as photos/2024", EXIT_USAGE)
    with session.api() as api:
        folder, made = remote.make_folders(api, path)
    if not made:
        stdout.print(f"{folder.shown} is already there")
    for entry in made:
        stdout.print(f"made {entry.shown}")


def _listing(api: Api, entry: Entry, sort: str, status: str | None) -> list[dict]:
    """What `ls` shows of `entry`: a folder's entries (only its files in `status`, if
    given), or a file itself."""
    if entry.kind == "file":
        return [entry.record] if status in (None, entry.record["status"]) else []
    if status:
        files = api.files(status=status, sort=sort, folder=entry.folder_id or "root")
        return [{"kind": "file", **f} for f in files]
    return list(api.entries(entry.folder_id, sort=sort))


@click.command("ls", epilog="Example: instashare ls photos/2024 --sort -size")
@click.argument("path", required=False, default="")
@click.option("--status", type=click.Choice(STATUSES), help="Only files in this state.")
@click.option("--sort", type=click.Choice(SORTS), default="-created_at", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print every entry as a JSON array.")
@click.option("--count", is_flag=True, help="Print only how many entries there are.")
@pass_session
def list_files(
    session: Session, path: str, status: str | None, sort: str, as_json: bool, count: bool
) -> None:
    """List a folder: its folders, then its files (your root folder if no PATH is given).

    Shows each file's name, status, size, compressed size and when it was uploaded, and
    each folder's name (ending in /); --json prints every field of every entry for scripts
    (`kind` says which is which); --count prints how many there are (with --status, how
    many files in that state).
    """
    with session.api() as api:
        entry = remote.locate(api, path)
        if count and entry.kind != "file":  # one request, however many there are
            if status:
                click.echo(api.count_files(status=status, folder=entry.folder_id or "root"))
            else:
                click.echo(api.count_entries(entry.folder_id))
            return
        items = _listing(api, entry, sort, status)
        # Uploads into this folder that were cut short: listed too, so none is forgotten.
        unfinished = (
            []
            if entry.kind == "file" or status or as_json or count
            else [u for u in api.unfinished_uploads() if u["folder_id"] == entry.folder_id]
        )
    if count:
        click.echo(len(items))
        return
    where = f" in {entry.shown}" if entry.kind != "root" else ""
    empty = ("no files with status " + status if status else "no files or folders") + where
    if not unfinished and plainly(items, as_json, empty):
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("NAME", overflow="fold")
    table.add_column("STATUS")
    table.add_column("SIZE", justify="right")
    table.add_column("COMPRESSED", justify="right")
    table.add_column("CREATED")
    for item in items:
        if item["kind"] == "folder":
            table.add_row(item["name"] + "/", "", "-", "-", when(item["created_at"]))
            continue
        compressed = item["compressed_size"]
        table.add_row(
            item["name"],
            Text(item["status"], style=STATUS_STYLE.get(item["status"], "")),
            iec(item["size"]),
            "-" if compressed is None else iec(compressed),
            when(item["created_at"]),
        )
    for upload in unfinished:  # "unfinished: 3.0 MB of 8.0 MB": run the upload again to resume
        path = "/".join(filter(None, [upload["relative_dir"], upload["name"]]))
        table.add_row(
            path,
            Text("unfinished", style=STATUS_STYLE["unfinished"]),
            f"{iec(upload['offset'])} of {iec(upload['length'])}",
            "-",
            when(upload["created_at"]),
        )
    stdout.print(table)


MV_EPILOG = """\b
Examples:
  instashare mv notes.txt notes-2024.txt     # rename
  instashare mv notes.txt archive/           # move into the folder archive
  instashare mv photos archive/photos-2024   # move and rename a folder
"""


def _destination(api: Api, source: Entry, target: str) -> tuple[Entry, str]:
    """Where `mv` puts `source`: (the folder, the name), as Unix mv reads DST."""
    into = remote.find(api, target)
    if into is not None and into.is_folder:
        return into, source.name  # into an existing folder, keeping the name
    if target.rstrip().endswith("/"):
        raise Failure(f"you have no folder named {target!r}", EXIT_NOT_FOUND)
    names = remote.split(target)
    if not names:
        return remote.ROOT, source.name
    parent = remote.locate(api, "/".join(names[:-1]), want="folder")
    return parent, names[-1]


@click.command(epilog=MV_EPILOG)
@click.argument("source", metavar="SRC")
@click.argument("target", metavar="DST")
@pass_session
def mv(session: Session, source: str, target: str) -> None:
    """Rename or move a file or a folder (with everything in it).

    SRC is a path (or an id). If DST is a folder, SRC goes into it under its own name;
    otherwise DST is SRC's new path: its last name the new name, what comes before it the
    folder it goes to. A folder cannot go into itself or into a folder inside it.
    """
    with session.api() as api:
        found = remote.not_root(remote.locate(api, source), "move")
        folder, name = _destination(api, found, target)
        changes: dict = {}
        if name != found.name:
            changes["name"] = name
        current_parent = remote.split(found.path)[:-1]
        if remote.split(folder.path) != current_parent:
            changes["parent_id" if found.is_folder else "folder_id"] = folder.folder_id
        if not changes:
            stdout.print(f"{found.shown} is already there")
            return
        if found.is_folder:
            api.update_folder(found.id, changes)
        else:
            api.update_file(found.id, changes)
    moved = Entry(found.kind, remote.join(folder.path, name), found.record)
    verb = "renamed" if set(changes) == {"name"} else "moved"
    stdout.print(f"{verb} {found.shown} to {moved.shown}")


RM_EPILOG = """\b
Examples:
  instashare rm old-backup.tar --yes
  instashare rm -r photos/2019
"""


@click.command(epilog=RM_EPILOG)
@click.argument("path")
@click.option("-r", "--recursive", is_flag=True, help="Delete a folder and everything in it.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_session
def rm(session: Session, path: str, recursive: bool, yes: bool) -> None:
    """Delete a file, or with -r a folder and everything in it.

    PATH is the file's or folder's path (or its id). Asks first unless --yes is given.
    """
    with session.api() as api:
        found = remote.not_root(remote.locate(api, path), "delete")
        if found.is_folder:
            if not recursive:
                raise Failure(
                    f"{found.shown} is a folder; to delete it and everything in it, "
                    f"use: instashare rm -r {path}"
                )
            if not yes:
                click.confirm(
                    f"Delete the folder {found.shown} and everything in it?", abort=True, err=True
                )
            api.delete_folder(found.id)
        else:
            if not yes:
                click.confirm(
                    f"Delete {found.shown} ({iec(found.record['size'])})?",
                    abort=True,
                    err=True,
                )
            api.delete(found.id)
    stdout.print(f"deleted {found.shown}")
