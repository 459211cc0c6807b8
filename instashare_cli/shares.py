"""Commands for share links: share, shares, unshare; and `get URL`, which downloads what
a link shares, without an account."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from app.services.sizes import iec
from instashare_cli import archives, remote, transfer
from instashare_cli.api import ApiError, ShareLink, share_link
from instashare_cli.config import DownloadState
from instashare_cli.failures import EXIT_NOT_FOUND, EXIT_USAGE, Failure, failure, resumable
from instashare_cli.output import Bars, count, destination, plainly, stderr, stdout, when
from instashare_cli.session import UUID, Session, pass_session

T = TypeVar("T")
STATE_STYLE = {"active": "green", "expired": "yellow", "revoked": "red", "exhausted": "red"}
# A link's lifetime: `7d`, `2w`, `12h`, or `never`.
LIFETIME = re.compile(r"(?P<count>[1-9][0-9]{0,5})(?P<unit>[hdw])")
SHARE_PASSWORD_ENV = "INSTASHARE_SHARE_PASSWORD"  # noqa: S105 - the variable's name


def _safe_filename(name: str) -> str:
    """The last part of a name a server sent, fit to save under here (never a path)."""
    name = "".join(c for c in name if c.isprintable()).replace("\\", "/")
    base = name.rsplit("/", 1)[-1].strip()
    return base if base not in ("", ".", "..") else "download"


def _unlocked(link: ShareLink, action: Callable[[], T]) -> T:
    """What `action` returns, after asking for the link's password if the server wants it."""
    try:
        return action()
    except ApiError as exc:
        if exc.status != 401 or link.password is not None:
            raise
    link.password = os.environ.get(SHARE_PASSWORD_ENV) or click.prompt(
        "Password for this link", hide_input=True, err=True
    )
    return action()


def _unfinished(state: DownloadState, url: str, output: Path | None) -> tuple[Path, bool] | None:
    """Where a run of the same command left this link's download partial, if it did, and
    whether it was the ZIP of everything."""
    saved = state.get(url)
    if saved is None or not transfer.part_paths(saved[0])[0].exists():
        return None
    return saved if (output or Path()).resolve() in (saved[0], saved[0].parent) else None


def _target(shared: dict, output: Path | None, extract: Path | None, force: bool) -> Path:
    """Where the download of what a link shares goes (`extract`: the ZIP, until unpacked)."""
    name = _safe_filename(shared["name"])
    if shared.get("kind", "file") == "file":
        if extract is not None:
            raise Failure("--extract is for a link to a folder or to several files", EXIT_USAGE)
        return destination(output, name, force)
    if not name.lower().endswith(".zip"):
        name += ".zip"
    left_out = shared.get("pending_count") or 0
    if left_out:
        stderr.print(
            f"{count(left_out, 'file')} of this link {'is' if left_out == 1 else 'are'} "
            "not ready yet and not in the ZIP; get it again later for "
            f"{'it' if left_out == 1 else 'them'}"
        )
    if extract is not None:
        extract.mkdir(parents=True, exist_ok=True)
        return extract / f".{name}"  # beside what it unpacks, hidden, resumable
    return destination(output, name, force)


def download(url: str, output: Path | None, force: bool, extract: Path | None = None) -> None:
    """`get URL`: download through a share link, as anyone who has it; a multi-file link's
    ZIP of everything, unpacked into `extract` if given."""
    state = DownloadState()
    try:
        with ShareLink(url) as link:
            # A partial download resumes without asking what the link shares first: a link
            # at its download limit still lets the download it counted finish.
            unfinished = _unfinished(state, link.url, extract or output)
            if unfinished is None:
                shared = _unlocked(link, link.metadata)
                target = _target(shared, output, extract, force)
                everything = shared.get("kind", "file") != "file"
            else:
                target, everything = unfinished
            state.put(link.url, target, everything)
            fetch = link.download_all if everything else link.download
            with Bars() as bars, resumable("download"):
                started, advanced = bars.callbacks(target.name.lstrip("."))
                _unlocked(
                    link,
                    lambda: transfer.download(
                        fetch, target, sha256=None, started=started, progress=advanced
                    ),
                )
            state.drop(link.url)
    except ApiError as exc:
        raise failure(exc, logged_in=False) from None  # no session of ours is involved
    if extract is None:
        stdout.print(f"saved {target} ({iec(target.stat().st_size)})")
        return
    files, size = archives.extract(target, extract, force=force)
    target.unlink()
    stdout.print(f"extracted {count(files, 'file')} ({iec(size)}) into {extract}")


def _lifetime(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict | None:
    """`--expires` as create_share's arguments: 12h, 7d, 2w or never."""
    if value is None:
        return None
    value = value.strip().lower()
    if value == "never":
        return {"never_expires": True}
    match = LIFETIME.fullmatch(value)
    if not match:
        raise click.BadParameter("give hours, days or weeks (12h, 7d, 2w) or never")
    count = int(match["count"])
    if match["unit"] == "h":
        return {"expires_in_hours": count}
    return {"expires_in_days": count * (7 if match["unit"] == "w" else 1)}


SHARE_EPILOG = """\b
Examples:
  instashare share report.pdf                       # a link for 7 days
  instashare share report.pdf --expires 12h --max-downloads 3
  instashare share report.pdf --password --original
  instashare share photos/2024                      # a folder: what it will hold, too
  instashare share report.pdf slides.pdf data/      # several: one link, one ZIP of all
  INSTASHARE_SHARE_PASSWORD=... instashare share report.pdf --password   # in a script
"""


def _what(found: list[remote.Entry], original: bool) -> str:
    """What a new link shares, for the line about it."""
    if len(found) == 1 and found[0].kind == "file":
        return found[0].shown if original else f"{found[0].shown} (as a ZIP)"
    if len(found) == 1:
        return f"the folder {found[0].shown} (what it holds now and later)"
    shown = ", ".join(e.shown for e in found[:3]) + (", ..." if len(found) > 3 else "")
    return f"{count(len(found), 'item')} ({shown})"


@click.command(epilog=SHARE_EPILOG)
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option(
    "--expires",
    metavar="12h|7d|2w|never",
    callback=_lifetime,
    help="How long the link works [default: the server's, 7d].",
)
@click.option(
    "--password",
    "ask_password",
    is_flag=True,
    help="Protect the link with a password: asked for twice, hidden "
    "[or from env INSTASHARE_SHARE_PASSWORD].",
)
@click.option(
    "--max-downloads", type=click.IntRange(min=1), metavar="N", help="Stop after N downloads."
)
@click.option("--original", is_flag=True, help="Share the original bytes instead of the ZIP.")
@pass_session
def share(
    session: Session,
    paths: tuple[str, ...],
    expires: dict | None,
    ask_password: bool,
    max_downloads: int | None,
    original: bool,
) -> None:
    """Make a link that lets anyone who has it download a file, a folder or several of
    them, without an account.

    Each PATH is a file's or folder's path (or its id). One file: the link serves it (it
    may still be processing: the link then says to come back later). A folder: the link
    shares what it holds, files added later included. Several: the link shares that set.
    A link to more than one file lists them and serves each, and all as one ZIP. Prints
    the link's URL, and only that, on stdout.
    """
    password = None
    if ask_password:
        password = os.environ.get(SHARE_PASSWORD_ENV) or click.prompt(
            "Password for the link", hide_input=True, confirmation_prompt=True, err=True
        )
    options = {
        **(expires or {}),
        "password": password,
        "max_downloads": max_downloads,
        "original": original,
    }
    with session.api() as api:
        found: list[remote.Entry] = []
        for path in paths:
            entry = remote.not_root(remote.locate(api, path), "share")
            if all(entry.id != e.id for e in found):
                found.append(entry)
        if len(found) == 1 and found[0].kind == "file":
            made = api.create_share(found[0].id, **options)
        else:
            items = [{"kind": e.kind, "id": e.id} for e in found]
            made = api.create_multi_share(items, **options)
    limits = [f"expires {when(made['expires_at'], 'never')}"]
    if max_downloads:
        limits.append(count(max_downloads, "download"))
    if made["has_password"]:
        limits.append("password")
    stderr.print(f"link {made['id']} to {_what(found, original)}: {', '.join(limits)}")
    click.echo(made["url"])


def _shared(link: dict, names: dict[str, str]) -> str:
    """What a link shares: a file's name; a folder or selection link's items' names, each
    folder's ending in `/`."""
    if link.get("file_id"):
        return names[link["file_id"]]
    items = link.get("items") or []
    return ", ".join(i["name"] + ("/" if i["kind"] == "folder" else "") for i in items)


@click.command(epilog="Example: instashare shares report.pdf")
@click.argument("path", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print all links as a JSON array.")
@pass_session
def shares(session: Session, path: str | None, as_json: bool) -> None:
    """List your share links, newest first: all of them, or those that share PATH.

    Shows each link's id (for unshare), what it shares, URL, when it was made and
    expires, its downloads (of its limit), the last download, whether it has a password,
    and whether it still works (active) or is expired, revoked or exhausted.
    """
    with session.api() as api:
        found = remote.not_root(remote.locate(api, path), "list links to") if path else None
        if found is not None and found.kind == "file":
            links = list(api.shares(found.id))
        else:
            links = list(api.shares())
            if found is not None:
                links = [
                    link
                    for link in links
                    if any(i["id"] == found.id for i in link.get("items") or [])
                ]
        names = {found.id: found.name} if found is not None and found.kind == "file" else {}
        for link in links:
            if link.get("file_id") and link["file_id"] not in names:
                names[link["file_id"]] = api.file(link["file_id"])[0]["name"]
    for link in links:
        link["file_name"] = _shared(link, names)
    if plainly(links, as_json, "no share links" + (f" for {found.shown}" if found else "")):
        return
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "FILE", "URL", "CREATED", "EXPIRES", "DOWNLOADS", "LAST DOWNLOAD"):
        table.add_column(column, no_wrap=True)
    for column in ("PASSWORD", "STATE"):
        table.add_column(column, no_wrap=True)
    for link in links:
        limit = link["max_downloads"]
        table.add_row(
            link["id"],
            link["file_name"],
            link["url"],
            when(link["created_at"]),
            when(link["expires_at"], "never"),
            f"{link['downloads']}/{limit}" if limit else str(link["downloads"]),
            when(link["last_downloaded_at"]),
            "yes" if link["has_password"] else "no",
            Text(link["state"], style=STATE_STYLE.get(link["state"], "")),
        )
    # Wider than the terminal if need be: a cut id or URL could not be copied whole.
    natural = Measurement.get(stdout, stdout.options.update_width(10_000), table).maximum
    Console(highlight=False, markup=False, width=max(stdout.width, natural)).print(table)


@click.command(epilog="Example: instashare unshare 0b6a7f0e-3c1d-4e57-9f1a-2d4c8e9b7a61")
@click.argument("link_id")
@pass_session
def unshare(session: Session, link_id: str) -> None:
    """Revoke a share link: from now on it answers that it was revoked.

    LINK_ID is the link's id (see: instashare shares) or its URL.
    """
    with session.api() as api:
        if not UUID.match(link_id):
            if share_link(link_id) is None:
                raise Failure(f"{link_id!r} is neither a link id nor a link's URL", EXIT_USAGE)
            matches = [s["id"] for s in api.shares() if s["url"] == link_id.strip().rstrip("/")]
            if not matches:
                raise Failure(f"you have no link {link_id}", EXIT_NOT_FOUND)
            link_id = matches[0]
        api.revoke_share(link_id)
    stdout.print(f"revoked link {link_id}")
