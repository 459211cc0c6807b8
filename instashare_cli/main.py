"""`instashare`: the commands. Each one is thin: parse, call the API or a transfer, print."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console
from rich.filesize import decimal
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from instashare_cli import transfer
from instashare_cli.api import Api, ApiError, ShareLink, share_link
from instashare_cli.config import (
    Config,
    ConfigError,
    DownloadState,
    Login,
    UploadState,
    normalize_server,
)

EXIT_ERROR = 1  # any other failure: a name clash, a full quota, a file that failed, ...
EXIT_USAGE = 2  # Click's own: a bad option or argument
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_SERVER = 5
EXIT_INTERRUPTED = 130
T = TypeVar("T")

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
STATUS_STYLE = {"ready": "green", "failed": "red", "processing": "yellow", "pending": "cyan"}
STATE_STYLE = {"active": "green", "expired": "yellow", "revoked": "red", "exhausted": "red"}
# A link's lifetime: `7d`, `2w`, `12h`, or `never`.
LIFETIME = re.compile(r"(?P<count>[1-9][0-9]{0,5})(?P<unit>[hdw])")
SHARE_PASSWORD_ENV = "INSTASHARE_SHARE_PASSWORD"  # noqa: S105 - the variable's name
SORTS = ["created_at", "-created_at", "name", "-name"]
STATUSES = ["pending", "processing", "ready", "failed"]
POLL_SECONDS = (0.2, 0.5, 1.0, 2.0)  # --wait asks often at first, then every 2 s

# Names are the user's: never read them as Rich markup.
stdout = Console(highlight=False, markup=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


class Failure(click.ClickException):
    """One line on stderr, `instashare: error: ...`, and a distinct exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR):
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click's default is per class

    def show(self, file=None) -> None:
        click.echo(f"instashare: error: {self.message}", err=True)


def exit_code_for(error: ApiError) -> int:
    """The exit status an API failure maps to (see `instashare --help`)."""
    if error.status is None or error.status >= 500:
        return EXIT_SERVER
    if error.status in (401, 403):
        return EXIT_AUTH
    if error.status in (404, 410):
        return EXIT_NOT_FOUND
    return EXIT_ERROR


def failure(error: ApiError, prefix: str = "", *, logged_in: bool = True) -> Failure:
    """The Failure to report `error` with; a 401 with a session means it has run out."""
    message = prefix + error.detail
    if error.retry_after and error.retry_after.isdigit() and error.status in (409, 429, 503):
        message += f" (try again in {error.retry_after} s)"
    if error.status == 401 and logged_in:
        message += " (log in again: instashare login)"
    elif error.status is not None and error.status >= 500 and error.request_id:
        message += f" (request id {error.request_id})"
    return Failure(message, exit_code_for(error))


class Session:
    """What every command shares: the server, the saved configuration and an API client."""

    def __init__(self, server: str | None):
        self.config = Config()
        self.server = normalize_server(server) if server else self.config.server
        self.login = self.config.login_for(self.server)

    def api(self, *, authenticated: bool = True) -> Api:
        if not authenticated:
            return Api(self.server)
        if self.login is None:
            raise Failure(f"not logged in to {self.server}; run: instashare login", EXIT_AUTH)
        return Api(self.server, self.login.token)


class Group(click.Group):
    """Turns the client's exceptions into one readable line and the right exit status."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            logged_in = ctx.invoked_subcommand not in ("register", "login")
            raise failure(exc, logged_in=logged_in) from None
        except (ConfigError, transfer.TransferError) as exc:
            raise Failure(str(exc)) from None
        except OSError as exc:
            raise Failure(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from None


EPILOG = """\b
Exit status:
  0  success
  1  an error the server refused or the command could not do
     (name taken, quota full, a file that failed, ...)
  2  usage error (a bad option or argument)
  3  not logged in, wrong password, or an expired session
  4  no such file
  5  the server failed (5xx) or could not be reached

\b
Example:
  instashare --server http://127.0.0.1:8000 login
  instashare upload holiday.jpg notes.txt --wait
  instashare ls
  instashare get holiday.jpg --original
  instashare share holiday.jpg --expires 2d
  instashare get https://share.example.com/s/TOKEN
"""


@click.group(cls=Group, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--server",
    envvar="INSTASHARE_URL",
    metavar="URL",
    help="The server's root URL [env INSTASHARE_URL; default: the last one you logged in to, "
    "or http://127.0.0.1:8000].",
)
@click.version_option(package_name="instashare", prog_name="instashare")
@click.pass_context
def cli(ctx: click.Context, server: str | None) -> None:
    """Share files through an Instashare server: upload, list, rename, download, delete.

    Your session is kept in $XDG_CONFIG_HOME/instashare (~/.config/instashare), readable
    by you only.
    """
    try:
        ctx.obj = Session(server)
    except ConfigError as exc:
        raise Failure(str(exc), EXIT_USAGE) from None


pass_session = click.pass_obj


def _email_option(fn):
    return click.option(
        "--email", prompt="Email", envvar="INSTASHARE_EMAIL", help="[env INSTASHARE_EMAIL]"
    )(fn)


@cli.command(epilog="Example: instashare register --email ada@example.com")
@_email_option
@click.password_option(
    "--password",
    envvar="INSTASHARE_PASSWORD",
    help="10 characters or more [env INSTASHARE_PASSWORD]",
)
@pass_session
def register(session: Session, email: str, password: str) -> None:
    """Create an account.

    Asks for the e-mail address and (twice, hidden) the password when they are not given.
    The server becomes the default, so that `instashare login` goes to the same one.
    """
    with session.api(authenticated=False) as api:
        user = api.register(email, password)
    session.config.remember_server(session.server)
    stdout.print(f"registered {user['email']} on {session.server}; now run: instashare login")


@cli.command(epilog="Example: instashare --server https://share.example.com login")
@_email_option
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    envvar="INSTASHARE_PASSWORD",
    help="[env INSTASHARE_PASSWORD]",
)
@pass_session
def login(session: Session, email: str, password: str) -> None:
    """Log in, and remember the server and the session token.

    Asks for the e-mail address and (hidden) the password when they are not given. The
    token is saved in a file only you can read; the server becomes the default.
    """
    with session.api(authenticated=False) as api:
        token = api.login(email, password)
    session.config.remember_login(Login(session.server, email, token["access_token"]))
    minutes = token.get("expires_in", 0) // 60
    stdout.print(f"logged in to {session.server} as {email} (the session lasts {minutes} minutes)")


@cli.command(epilog="Example: instashare logout")
@pass_session
def logout(session: Session) -> None:
    """End the session: the server stops taking its token, and this client forgets it.

    When the server cannot be reached the token is kept, so that running the command
    again can still end the session.
    """
    if session.login is None:
        stdout.print(f"not logged in to {session.server}")
        return
    note = ""
    try:
        with session.api() as api:
            api.logout()
    except ApiError as exc:
        if exc.status is None or exc.status >= 500:
            raise Failure(
                f"{failure(exc).message}; still logged in: run instashare logout again",
                EXIT_SERVER,
            ) from None
        if exc.status in (404, 405):  # a server from before sessions could end
            note = " (this server cannot end sessions: the token works until it expires)"
        # 401: the server already refuses the token; either way there is nothing to keep.
    login = session.config.forget_login(session.server)
    assert login is not None
    stdout.print(f"logged out {login.email} from {session.server}{note}")


@cli.command(epilog="Example: instashare password")
@click.option(
    "--current-password",
    prompt="Current password",
    hide_input=True,
    envvar="INSTASHARE_PASSWORD",
    help="[env INSTASHARE_PASSWORD]",
)
@click.option(
    "--new-password",
    prompt="New password",
    hide_input=True,
    confirmation_prompt=True,
    envvar="INSTASHARE_NEW_PASSWORD",
    help="10 characters or more [env INSTASHARE_NEW_PASSWORD]",
)
@pass_session
def password(session: Session, current_password: str, new_password: str) -> None:
    """Change your password; every other session of the account ends.

    Asks (hidden) for the current password and, twice, the new one when they are not
    given. This client goes on with a new session; anywhere else, log in again.
    """
    with session.api() as api:
        token = api.change_password(current_password, new_password)
    assert session.login is not None
    email = session.login.email
    session.config.remember_login(Login(session.server, email, token["access_token"]))
    stdout.print(
        f"changed the password of {email} on {session.server}; every other session has ended"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@cli.command(epilog="Example: instashare whoami")
@pass_session
def whoami(session: Session) -> None:
    """Your account, how much of your quota it uses, and how many share links work."""
    with session.api() as api:
        me = api.me()
    usage = me["usage"]
    quota = usage["quota_bytes"]
    reserved = usage.get("bytes_reserved") or 0
    share = 100 * (usage["bytes_stored"] + reserved) / quota if quota else 0.0
    held = f", {decimal(reserved)} held by unfinished uploads" if reserved else ""
    stdout.print(f"{me['email']} on {session.server}")
    stdout.print(
        f"{_count(usage['file_count'], 'file')}, {decimal(usage['bytes_stored'])} stored{held} "
        f"({share:.1f}% of your {decimal(quota)} quota)"
    )
    if "active_shares" in me:  # a server from before share links has no such count
        stdout.print(f"{_count(me['active_shares'], 'active share link')}")


@contextlib.contextmanager
def resumable(what: str) -> Iterator[None]:
    """A transfer cut short (Ctrl-C, the network, the server) says that a rerun resumes it."""
    hint = "; run the same command again to resume"
    try:
        yield
    except KeyboardInterrupt:
        raise Failure(f"{what} interrupted{hint}", EXIT_INTERRUPTED) from None
    except ApiError as exc:
        if exit_code_for(exc) != EXIT_SERVER:
            raise
        raise Failure(f"{failure(exc).message}{hint}", EXIT_SERVER) from None


class Bars:
    """Progress bars for a batch of transfers: one per file and, for several, a total.

    The display starts with the first bar, so a batch that moves no bytes prints nothing.
    """

    def __init__(self, total: int | None = None):
        self.progress = Progress(
            TextColumn("{task.description}", markup=False, style="bold"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=stderr,
        )
        self.total = total
        self.overall: TaskID | None = None
        self._done: dict[TaskID, int] = {}

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def callbacks(self, label: str) -> tuple[transfer.Started, transfer.Advanced]:
        """`started` and `progress` callbacks for transfer.upload/download of one file."""
        task: TaskID | None = None

        def started(done: int, total: int) -> None:
            nonlocal task
            if done:
                stderr.print(f"resuming {label} at {decimal(done)} of {decimal(total)}")
            if self.total is not None and self.overall is None:
                self.overall = self.progress.add_task("total", total=self.total)
            task = self.progress.add_task(label, total=total, completed=done)
            self.progress.start()
            self._moved(task, done)

        def advanced(done: int) -> None:
            assert task is not None
            self.progress.update(task, completed=done)
            self._moved(task, done)

        return started, advanced

    def say(self, line: str) -> None:
        """A result line for stdout; above the bars when both share one terminal."""
        if stdout.is_terminal and stderr.is_terminal:
            self.progress.console.print(line)  # else it lands in the middle of a bar
        else:
            stdout.print(line)

    def _moved(self, task: TaskID, done: int) -> None:
        self._done[task] = done
        if self.overall is not None:
            self.progress.update(self.overall, completed=sum(self._done.values()))


def resolve(api: Api, ref: str) -> dict:
    """The file `ref` names: an id, or else a name (which must be unique)."""
    if UUID.match(ref):
        try:
            return api.file(ref)[0]
        except ApiError as exc:
            if exc.status != 404:
                raise
    # The server keeps names in NFC: a decomposed spelling (as macOS types it) is the same.
    name = unicodedata.normalize("NFC", ref)
    matches = [f for f in api.files(sort="name") if f["name"] == name]
    if not matches:
        what = f"with the id {ref}" if UUID.match(ref) else f"named {ref!r}"
        raise Failure(f"you have no file {what}", EXIT_NOT_FOUND)
    if len(matches) > 1:
        ids = ", ".join(f["id"] for f in matches)
        raise Failure(f"{len(matches)} files are named {ref!r}; give one of their ids: {ids}")
    return matches[0]


def _is_about_this_file(error: ApiError) -> bool:
    """A refusal of one file (name taken, too large, ...), after which the others can go on."""
    return error.status is not None and 400 <= error.status < 500 and error.status not in (401, 403)


def _wait_until_processed(api: Api, file_ids: list[str]) -> list[dict]:
    """Poll each file until it is ready or failed; the final records, in order."""
    final: dict[str, dict] = {}
    delays = iter(POLL_SECONDS)
    delay = next(delays)
    with stderr.status(f"waiting for the server to compress {_count(len(file_ids), 'file')}"):
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


@cli.command(epilog=UPLOAD_EPILOG)
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


def _created(file: dict) -> str:
    return dt.datetime.fromisoformat(file["created_at"]).astimezone().strftime("%Y-%m-%d %H:%M")


@cli.command("ls", epilog="Example: instashare ls --status ready --sort name")
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
    if as_json:
        click.echo(json.dumps(files, indent=2, ensure_ascii=False))
        return
    if not files:
        stdout.print("no files" + (f" with status {status}" if status else ""))
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
            _created(file),
        )
    stdout.print(table)


@cli.command(epilog="Example: instashare mv notes.txt notes-2024.txt")
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


@cli.command(epilog="Example: instashare rm old-backup.tar --yes")
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


def _target(output: Path | None, filename: str, force: bool) -> Path:
    """Where a download of `filename` goes; Failure if a file is there and not --force."""
    target = output or Path(filename)
    if target.is_dir():
        target = target / filename
    if target.exists() and not force:
        raise Failure(f"{target} exists; use --force to overwrite it")
    return target


@cli.command(epilog=GET_EPILOG)
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
        _get_shared(file, output, force)
        return
    with session.api() as api:
        found = resolve(api, file)
        filename = found["name"] if original else f"{found['name']}.zip"
        target = _target(output, filename, force)
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


def _get_shared(url: str, output: Path | None, force: bool) -> None:
    """`get URL`: download through a share link, as anyone who has it."""
    state = DownloadState()
    try:
        with ShareLink(url) as link:
            # A partial download resumes without asking what the link shares first: a link
            # at its download limit still lets the download it counted finish.
            target = _unfinished(state, link.url, output)
            if target is None:
                shared = _unlocked(link, link.metadata)
                target = _target(output, _safe_filename(shared["name"]), force)
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


# --- share links ------------------------------------------------------------------------------


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


def _when(value: str | None, absent: str = "-") -> str:
    if value is None:
        return absent
    return dt.datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M")


SHARE_EPILOG = """\b
Examples:
  instashare share report.pdf                       # a link for 7 days
  instashare share report.pdf --expires 12h --max-downloads 3
  instashare share report.pdf --password --original
  INSTASHARE_SHARE_PASSWORD=... instashare share report.pdf --password   # in a script
"""


@cli.command(epilog=SHARE_EPILOG)
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
    limits = [f"expires {_when(made['expires_at'], 'never')}"]
    if max_downloads:
        limits.append(_count(max_downloads, "download"))
    if made["has_password"]:
        limits.append("password")
    stderr.print(f"link {made['id']} to {what}: {', '.join(limits)}")
    click.echo(made["url"])


@cli.command(epilog="Example: instashare shares report.pdf")
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
            if link["file_id"] not in names:
                names[link["file_id"]] = api.file(link["file_id"])[0]["name"]
    for link in links:
        link["file_name"] = names[link["file_id"]]
    if as_json:
        click.echo(json.dumps(links, indent=2, ensure_ascii=False))
        return
    if not links:
        stdout.print("no share links" + (f" for {found['name']}" if found else ""))
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
            _when(link["created_at"]),
            _when(link["expires_at"], "never"),
            f"{link['downloads']}/{limit}" if limit else str(link["downloads"]),
            _when(link["last_downloaded_at"]),
            "yes" if link["has_password"] else "no",
            Text(link["state"], style=STATE_STYLE.get(link["state"], "")),
        )
    # Wider than the terminal if need be: a cut id or URL could not be copied whole.
    natural = Measurement.get(stdout, stdout.options.update_width(10_000), table).maximum
    Console(highlight=False, markup=False, width=max(stdout.width, natural)).print(table)


@cli.command(epilog="Example: instashare unshare 0b6a7f0e-3c1d-4e57-9f1a-2d4c8e9b7a61")
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
