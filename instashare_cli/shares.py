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
from rich.filesize import decimal
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from instashare_cli import transfer
from instashare_cli.api import ApiError, ShareLink, share_link
from instashare_cli.config import DownloadState
from instashare_cli.failures import EXIT_NOT_FOUND, EXIT_USAGE, Failure, failure, resumable
from instashare_cli.output import Bars, count, destination, plainly, stderr, stdout, when
from instashare_cli.session import UUID, Session, pass_session, resolve

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


def _unfinished(state: DownloadState, url: str, output: Path | None) -> Path | None:
    """Where a run of the same command left this link's download partial, if it did."""
    saved = state.get(url)
    if saved is None or not transfer.part_paths(saved)[0].exists():
        return None
    return saved if (output or Path()).resolve() in (saved, saved.parent) else None


def download(url: str, output: Path | None, force: bool) -> None:
    """`get URL`: download through a share link, as anyone who has it."""
    state = DownloadState()
    try:
        with ShareLink(url) as link:
            # A partial download resumes without asking what the link shares first: a link
            # at its download limit still lets the download it counted finish.
            target = _unfinished(state, link.url, output)
            if target is None:
                shared = _unlocked(link, link.metadata)
                target = destination(output, _safe_filename(shared["name"]), force)
            state.put(link.url, target)
            with Bars() as bars, resumable("download"):
                started, advanced = bars.callbacks(target.name)
                _unlocked(
                    link,
                    lambda: transfer.download(
                        link.download, target, sha256=None, started=started, progress=advanced
                    ),
                )
            state.drop(link.url)
    except ApiError as exc:
        raise failure(exc, logged_in=False) from None  # no session of ours is involved
    stdout.print(f"saved {target} ({decimal(target.stat().st_size)})")


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
  INSTASHARE_SHARE_PASSWORD=... instashare share report.pdf --password   # in a script
"""


@click.command(epilog=SHARE_EPILOG)
@click.argument("file")
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
    file: str,
    expires: dict | None,
    ask_password: bool,
    max_downloads: int | None,
    original: bool,
) -> None:
    """Make a link that lets anyone who has it download a file, without an account.

    FILE is the file's name or its id; it may still be processing (the link then says to
    come back later). Prints the link's URL, and only that, on stdout.
    """
    password = None
    if ask_password:
        password = os.environ.get(SHARE_PASSWORD_ENV) or click.prompt(
            "Password for the link", hide_input=True, confirmation_prompt=True, err=True
        )
    with session.api() as api:
        found = resolve(api, file)
        made = api.create_share(
            found["id"],
            **(expires or {}),
            password=password,
            max_downloads=max_downloads,
            original=original,
        )
    what = found["name"] if original else f"{found['name']} (as a ZIP)"
    limits = [f"expires {when(made['expires_at'], 'never')}"]
    if max_downloads:
        limits.append(count(max_downloads, "download"))
    if made["has_password"]:
        limits.append("password")
    stderr.print(f"link {made['id']} to {what}: {', '.join(limits)}")
    click.echo(made["url"])


@click.command(epilog="Example: instashare shares report.pdf")
@click.argument("file", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print all links as a JSON array.")
@pass_session
def shares(session: Session, file: str | None, as_json: bool) -> None:
    """List your share links, newest first: all of them, or FILE's.

    Shows each link's id (for unshare), file, URL, when it was made and expires, its
    downloads (of its limit), the last download, whether it has a password, and whether
    it still works (active) or is expired, revoked or exhausted.
    """
    with session.api() as api:
        found = resolve(api, file) if file else None
        links = list(api.shares(found["id"] if found else None))
        names = {found["id"]: found["name"]} if found else {}
        for link in links:
            if link["file_id"] is not None and link["file_id"] not in names:
                names[link["file_id"]] = api.file(link["file_id"])[0]["name"]
    for link in links:
        # A folder or selection link has no one file: its items' names say what it shares.
        shared = [item["name"] + ("/" if item["kind"] == "folder" else "") for item in
                  link.get("items", [])]  # fmt: skip
        link["file_name"] = names.get(link["file_id"]) or ", ".join(shared)
    if plainly(links, as_json, "no share links" + (f" for {found['name']}" if found else "")):
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
