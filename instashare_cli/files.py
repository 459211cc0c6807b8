"""Commands for your own files: upload, ls, mv, rm, get."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import click
from rich.filesize import decimal
from rich.table import Table
from rich.text import Text

from instashare_cli import shares, transfer
from instashare_cli.api import Api, ApiError, share_link
from instashare_cli.config import UploadState
from instashare_cli.failures import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    Failure,
    exit_code_for,
    failure,
    resumable,
)
from instashare_cli.output import Bars, count, destination, plainly, stderr, stdout, when
from instashare_cli.session import Session, pass_session, resolve

STATUS_STYLE = {"ready": "green", "failed": "red", "processing": "yellow", "pending": "cyan"}
SORTS = ["created_at", "-created_at", "name", "-name"]
STATUSES = ["pending", "processing", "ready", "failed"]
POLL_SECONDS = (0.2, 0.5, 1.0, 2.0)  # --wait asks often at first, then every 2 s


def _is_about_this_file(error: ApiError) -> bool:
    """A refusal of one file (name taken, too large, ...), after which the others can go on."""
    return error.status is not None and 400 <= error.status < 500 and error.status not in (401, 403)


def _wait_until_processed(api: Api, file_ids: list[str]) -> list[dict]:
    """Poll each file until it is ready or failed; the final records, in order."""
    final: dict[str, dict] = {}
    delays = iter(POLL_SECONDS)
    delay = next(delays)
    with stderr.status(f"waiting for the server to compress {count(len(file_ids), 'file')}"):
        while True:
            for file_id in file_ids:
                if file_id not in final:
                    file = api.file(file_id)[0]
                    if file["status"] in ("ready", "failed"):
                        final[file_id] = file
            if len(final) == len(file_ids):
                return [final[i] for i in file_ids]
            time.sleep(delay)
            delay = next(delays, delay)


UPLOAD_EPILOG = """\b
Examples:
  instashare upload report.pdf photos/*.jpg
  instashare upload big.iso --name debian.iso --wait
"""


@click.command(epilog=UPLOAD_EPILOG)
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
)
@click.option("--name", help="Store it under this name (one file only; default: its file name).")
@click.option("--wait", is_flag=True, help="Wait until each file is compressed, or has failed.")
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=transfer.CHUNK_SIZE,
    envvar="INSTASHARE_CHUNK_SIZE",
    hidden=True,
)
@click.pass_context
def upload(
    ctx: click.Context, paths: tuple[Path, ...], name: str | None, wait: bool, chunk_size: int
) -> None:
    """Upload files; the server compresses each into a ZIP.

    Files go up in chunks over the resumable (tus) endpoint: if an upload is cut short,
    run the same command again and it carries on where it stopped.
    """
    if name is not None and len(paths) > 1:
        raise click.UsageError("--name takes one file only")
    session: Session = ctx.obj
    state = UploadState()
    uploaded: list[str] = []
    exit_code = 0
    with session.api() as api:
        total = sum(p.stat().st_size for p in paths) if len(paths) > 1 else None
        with Bars(total) as bars, resumable("upload"):
            for path in paths:
                label = name or path.name
                started, advanced = bars.callbacks(label)
                try:
                    result = transfer.upload(
                        api,
                        path,
                        name=label,
                        state=state,
                        started=started,
                        progress=advanced,
                        chunk_size=chunk_size,
                    )
                except ApiError as exc:
                    if not _is_about_this_file(exc):
                        raise
                    # Through the bars' console, so the line lands above them.
                    stderr.print(f"instashare: error: {failure(exc, f'{label}: ').message}")
                    exit_code = exit_code or exit_code_for(exc)
                    continue
                uploaded.append(result.file_id)
                bars.say(f"uploaded {label} ({decimal(result.size)}) as {result.file_id}")
        if wait and uploaded:
            try:
                processed = _wait_until_processed(api, uploaded)
            except KeyboardInterrupt:
                raise Failure(
                    "stopped waiting; the server goes on compressing (see: instashare ls)",
                    EXIT_INTERRUPTED,
                ) from None
            for file in processed:
                if file["status"] == "ready":
                    stdout.print(
                        f"{file['name']} is ready: {decimal(file['size'])} → "
                        f"{decimal(file['compressed_size'] or 0)} zipped"
                    )
                else:
                    Failure(f"{file['name']} failed: {file['error'] or 'no reason given'}").show()
                    exit_code = exit_code or EXIT_ERROR
    ctx.exit(exit_code)


@click.command("ls", epilog="Example: instashare ls --status ready --sort name")
@click.option("--status", type=click.Choice(STATUSES), help="Only files in this state.")
@click.option("--sort", type=click.Choice(SORTS), default="-created_at", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print all files as a JSON array.")
@click.option("--count", is_flag=True, help="Print only how many there are (one request).")
@pass_session
def list_files(session: Session, status: str | None, sort: str, as_json: bool, count: bool) -> None:
    """List your files.

    Shows each file's name, status, size, compressed size and when it was uploaded;
    --json prints every field of every file for scripts; --count prints how many files
    there are (with --status, in that state), however many, with a single request.
    """
    if count:
        with session.api() as api:
            click.echo(api.count_files(status=status))
        return
    with session.api() as api:
        files = list(api.files(status=status, sort=sort))
    if plainly(files, as_json, "no files" + (f" with status {status}" if status else "")):
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("NAME", overflow="fold")
    table.add_column("STATUS")
    table.add_column("SIZE", justify="right")
    table.add_column("COMPRESSED", justify="right")
    table.add_column("CREATED")
    for file in files:
        compressed = file["compressed_size"]
        table.add_row(
            file["name"],
            Text(file["status"], style=STATUS_STYLE.get(file["status"], "")),
            decimal(file["size"]),
            "-" if compressed is None else decimal(compressed),
            when(file["created_at"]),
        )
    stdout.print(table)


@click.command(epilog="Example: instashare mv notes.txt notes-2024.txt")
@click.argument("file")
@click.argument("new_name")
@pass_session
def mv(session: Session, file: str, new_name: str) -> None:
    """Rename a file.

    FILE is the file's current name or its id.
    """
    with session.api() as api:
        found = resolve(api, file)
        renamed = api.rename(found["id"], new_name)
    stdout.print(f"renamed {found['name']} to {renamed['name']}")


@click.command(epilog="Example: instashare rm old-backup.tar --yes")
@click.argument("file")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_session
def rm(session: Session, file: str, yes: bool) -> None:
    """Delete a file.

    FILE is the file's name or its id. Asks first unless --yes is given.
    """
    with session.api() as api:
        found = resolve(api, file)
        if not yes:
            click.confirm(
                f"Delete {found['name']} ({decimal(found['size'])})?", abort=True, err=True
            )
        api.delete(found["id"])
    stdout.print(f"deleted {found['name']}")


GET_EPILOG = """\b
Examples:
  instashare get notes.txt                  # saves notes.txt.zip
  instashare get notes.txt --original -o ~/Downloads/
  instashare get https://share.example.com/s/TOKEN
"""


@click.command(epilog=GET_EPILOG)
@click.argument("file", metavar="FILE|URL")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="A file or directory to save to (default: the file's name, plus .zip for the ZIP).",
)
@click.option("--original", is_flag=True, help="The original bytes instead of the ZIP.")
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
@pass_session
def get(session: Session, file: str, output: Path | None, original: bool, force: bool) -> None:
    """Download a file: its ZIP, or with --original the original bytes; or what a share link
    shares, without an account.

    FILE is the file's name or its id; URL a share link (https://…/s/…), which asks for the
    link's password when it has one [env INSTASHARE_SHARE_PASSWORD]. The bytes go to
    OUTPUT.part first; run the same command again after an interruption and it resumes
    from there.
    """
    if share_link(file) is not None:
        if original:
            raise click.UsageError("--original is for your own files: a link serves what it serves")
        shares.download(file, output, force)
        return
    with session.api() as api:
        found = resolve(api, file)
        filename = found["name"] if original else f"{found['name']}.zip"
        target = destination(output, filename, force)
        with Bars() as bars, resumable("download"):
            started, advanced = bars.callbacks(target.name)
            transfer.download(
                functools.partial(api.download, found["id"], original=original),
                target,
                sha256=found["sha256"] if original else None,
                started=started,
                progress=advanced,
            )
    stdout.print(f"saved {target} ({decimal(target.stat().st_size)})")
