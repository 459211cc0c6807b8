"""Commands for moving your files' bytes: upload (files, or directories with -r), get."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import click

from app.services.sizes import iec
from instashare_cli import remote, shares, transfer, tree
from instashare_cli.api import Api, ApiError, share_link
from instashare_cli.config import TreeJournal, UploadState
from instashare_cli.failures import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    Failure,
    exit_code_for,
    failure,
    resumable,
)
from instashare_cli.output import Bars, Tally, count, destination, stderr, stdout
from instashare_cli.remote import Entry
from instashare_cli.session import Session, pass_session

POLL_SECONDS = (0.2, 0.5, 1.0, 2.0)  # --wait asks often at first, then every 2 s


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


def _wait_for_many(api: Api, file_ids: list[str]) -> tuple[int, list[dict]]:
    """Wait until each file is ready or failed, asking for the pending and processing ones
    (a page per 100, not a request per file); how many are ready, and the failed ones."""
    waiting = set(file_ids)
    delays = iter(POLL_SECONDS)
    delay = next(delays)
    with stderr.status(f"waiting for the server to compress {count(len(file_ids), 'file')}"):
        while True:
            unsettled = {
                f["id"] for status in ("pending", "processing") for f in api.files(status=status)
            }
            waiting &= unsettled
            if not waiting:
                break
            time.sleep(delay)
            delay = next(delays, delay)
    wanted = set(file_ids)
    failed = [f for f in api.files(status="failed") if f["id"] in wanted]
    return len(wanted) - len(failed), failed


def _stop_waiting():
    return Failure(
        "stopped waiting; the server goes on compressing (see: instashare ls)", EXIT_INTERRUPTED
    )


def _upload_files(
    api: Api,
    paths: tuple[Path, ...],
    base: Entry,
    name: str | None,
    chunk_size: int,
    on_conflict: str | None = None,
) -> tuple[list[str], int]:
    """Each of `paths` into `base`, one after another: the file ids, and the exit status.
    `on_conflict` (rename, replace) is what the server does when a name is taken."""
    state = UploadState()
    uploaded: list[str] = []
    exit_code = 0
    folder_id = base.folder_id
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
                    slot=state.slot(api.server, path, label, folder_id),
                    started=started,
                    progress=advanced,
                    metadata={
                        **({"folderId": folder_id} if folder_id else {}),
                        **({"onConflict": on_conflict} if on_conflict else {}),
                    },
                    chunk_size=chunk_size,
                )
            except ApiError as exc:
                if not tree.refusal(exc):
                    raise
                # Through the bars' console, so the line lands above them.
                stderr.print(f"instashare: error: {failure(exc, f'{label}: ').message}")
                exit_code = exit_code or exit_code_for(exc)
                continue
            uploaded.append(result.file_id)
            where = f" to {base.shown}" if base.kind != "root" else ""
            if on_conflict == "rename":  # the server may have chosen another name
                stored = api.file(result.file_id)[0]["name"]
                where += f" named {stored}" if stored != label else ""
            bars.say(f"uploaded {label} ({iec(result.size)}){where} as {result.file_id}")
    return uploaded, exit_code


def _upload_tree(
    api: Api, paths: tuple[Path, ...], base: Entry, jobs: int, chunk_size: int
) -> tuple[list[str], int]:
    """`upload -r`: the files and directories `paths` into `base`, `jobs` files at a time."""
    found = tree.walk(list(paths))
    for skipped in found.skipped:
        stderr.print(f"skipped {skipped}: not a regular file or folder")
    journal = TreeJournal(api.server, list(paths), base.folder_id)
    complete = False
    try:
        with Tally(len(found.files), found.size) as tally, resumable("upload"):
            outcome = tree.upload(
                api, found, base, journal, tally, jobs=jobs, chunk_size=chunk_size
            )
        complete = not outcome.refused
    finally:
        journal.close(complete=complete)
    earlier = f"; {outcome.earlier} of them in an earlier run" if outcome.earlier else ""
    size = found.size - sum(item.size for item, _ in outcome.refused)
    stdout.print(
        f"uploaded {count(len(outcome.uploaded), 'file')} ({iec(size)}) to {base.shown}{earlier}"
    )
    if not outcome.refused:
        return outcome.uploaded, 0
    stderr.print(f"instashare: error: {count(len(outcome.refused), 'file')} not uploaded")
    return outcome.uploaded, max(exit_code_for(exc) for _, exc in outcome.refused)


UPLOAD_EPILOG = """\b
Examples:
  instashare upload report.pdf photos/*.jpg
  instashare upload big.iso --name debian.iso --wait
  instashare upload report.pdf --replace     # or --keep-both: "report (1).pdf"
  instashare upload -r holiday/ --to photos/2024 --wait
"""


@click.command(epilog=UPLOAD_EPILOG)
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, readable=True, path_type=Path),
)
@click.option(
    "-r",
    "--recursive",
    is_flag=True,
    help="Upload directories with everything in them, their structure kept.",
)
@click.option(
    "--to",
    metavar="FOLDER",
    help="Into this folder, made if missing [default: your root folder].",
)
@click.option("--name", help="Store it under this name (one file only; default: its file name).")
@click.option(
    "--keep-both",
    is_flag=True,
    help="When a name is taken, keep both: the server names the new file 'name (1).ext'.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="When a name is taken, replace that file once the new one has arrived.",
)
@click.option("--wait", is_flag=True, help="Wait until each file is compressed, or has failed.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 16),
    default=tree.JOBS,
    show_default=True,
    help="With -r: how many files go up at once.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=transfer.CHUNK_SIZE,
    envvar="INSTASHARE_CHUNK_SIZE",
    hidden=True,
)
@click.pass_context
def upload(
    ctx: click.Context,
    paths: tuple[Path, ...],
    recursive: bool,
    to: str | None,
    name: str | None,
    keep_both: bool,
    replace: bool,
    wait: bool,
    jobs: int,
    chunk_size: int,
) -> None:
    """Upload files, or with -r directories; the server compresses each file into a ZIP.

    Files go up in chunks over the resumable (tus) endpoint: if an upload is cut short,
    run the same command again and it carries on where it stopped. With -r, a directory
    keeps its structure (photos/2024/a.jpg arrives as the folder photos with 2024 in it),
    several files go up at once, and a rerun skips the files that had arrived.
    """
    if name is not None and (len(paths) > 1 or recursive):
        raise click.UsageError("--name takes one file only")
    if keep_both and replace:
        raise click.UsageError("--keep-both and --replace cannot go together")
    if (keep_both or replace) and recursive:
        raise click.UsageError("--keep-both and --replace are for files, not with -r")
    on_conflict = "rename" if keep_both else "replace" if replace else None
    directories = [p for p in paths if p.is_dir()]
    if directories and not recursive:
        raise click.UsageError(
            f"{directories[0]} is a directory; upload -r uploads it with everything in it"
        )
    session: Session = ctx.obj
    with session.api() as api:
        base = remote.make_folders(api, to)[0] if to else remote.ROOT
        if recursive:
            uploaded, exit_code = _upload_tree(api, paths, base, jobs, chunk_size)
        else:
            uploaded, exit_code = _upload_files(api, paths, base, name, chunk_size, on_conflict)
        if wait and uploaded and recursive:
            try:
                ready, failed = _wait_for_many(api, uploaded)
            except KeyboardInterrupt:
                raise _stop_waiting() from None
            stdout.print(f"{count(ready, 'file')} ready")
            for file in failed:
                Failure(f"{file['name']} failed: {file['error'] or 'no reason given'}").show()
                exit_code = exit_code or EXIT_ERROR
        elif wait and uploaded:
            try:
                processed = _wait_until_processed(api, uploaded)
            except KeyboardInterrupt:
                raise _stop_waiting() from None
            for file in processed:
                if file["status"] == "ready":
                    stdout.print(
                        f"{file['name']} is ready: {iec(file['size'])} → "
                        f"{iec(file['compressed_size'] or 0)} zipped"
                    )
                else:
                    Failure(f"{file['name']} failed: {file['error'] or 'no reason given'}").show()
                    exit_code = exit_code or EXIT_ERROR
    ctx.exit(exit_code)


GET_EPILOG = """\b
Examples:
  instashare get notes.txt                  # saves notes.txt.zip
  instashare get photos/2024                # saves 2024.zip: the folder, as it is
  instashare get photos/2024/a.jpg --original -o ~/Downloads/
  instashare get https://share.example.com/s/TOKEN
  instashare get https://share.example.com/s/TOKEN --extract holiday/   # a folder's link
"""


@click.command(epilog=GET_EPILOG)
@click.argument("file", metavar="FILE|FOLDER|URL")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="A file or directory to save to (default: the file's name, plus .zip for the ZIP).",
)
@click.option("--original", is_flag=True, help="The original bytes instead of the ZIP.")
@click.option(
    "--extract",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="For a link to several files: unpack the ZIP of all of them into DIR.",
)
@click.option("--force", is_flag=True, help="Overwrite the output file(s) if they exist.")
@pass_session
def get(
    session: Session,
    file: str,
    output: Path | None,
    original: bool,
    extract: Path | None,
    force: bool,
) -> None:
    """Download a file: its ZIP, or with --original the original bytes; a folder of yours as
    one ZIP; or what a share link shares, without an account.

    FILE or FOLDER is its path or its id (a folder's ZIP holds its ready files under their
    folders, its empty folders too); URL a share link (https://…/s/…), which asks for the
    link's password when it has one [env INSTASHARE_SHARE_PASSWORD]. A link to a folder or
    to several files gives one ZIP of all its ready files (NAME.zip), which --extract
    unpacks into DIR, where no entry can land outside it. The bytes go to OUTPUT.part
    first; run the same command again after an interruption and it resumes from there.
    """
    if share_link(file) is not None:
        if original:
            raise click.UsageError("--original is for your own files: a link serves what it serves")
        if extract is not None and output is not None:
            raise click.UsageError("--extract unpacks into DIR: give it or -o, not both")
        shares.download(file, output, force, extract)
        return
    if extract is not None:
        raise click.UsageError("--extract is for a share link to a folder or to several files")
    with session.api() as api:
        entry = remote.locate(api, file)
        if entry.is_folder:
            _get_folder(api, entry, output, original, force)
            return
        found = entry.record
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
    stdout.print(f"saved {target} ({iec(target.stat().st_size)})")


def _get_folder(api: Api, folder: Entry, output: Path | None, original: bool, force: bool) -> None:
    """`get FOLDER`: the folder as one ZIP, through a grant (POST /download-grants), the
    same archive a link to it serves; resumable as a file's download (its ETag is the
    archive's, whichever grant asked)."""
    if original:
        raise click.UsageError("--original is for a file: a folder comes as one ZIP")
    if folder.kind == "root":
        raise click.UsageError("give a folder's path: the top level is not one folder")
    grant = api.zip_grant([{"kind": "folder", "id": folder.id}])
    left_out = grant["pending_count"]
    if left_out:
        stderr.print(
            f"{count(left_out, 'file')} of {folder.shown} {'is' if left_out == 1 else 'are'} "
            "not ready yet and not in the ZIP; get it again later for "
            f"{'it' if left_out == 1 else 'them'}"
        )
    target = destination(output, grant["name"], force)
    with Bars() as bars, resumable("download"):
        started, advanced = bars.callbacks(target.name)
        transfer.download(
            functools.partial(api.download_grant, grant["url"]),
            target,
            sha256=None,
            started=started,
            progress=advanced,
        )
    stdout.print(f"saved {target} ({iec(target.stat().st_size)})")
