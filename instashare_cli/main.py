"""`instashare`: the command group. Each command is thin: parse, call the API or a
transfer, print; they live by resource in `accounts`, `files` and `shares`."""

from __future__ import annotations

import click

from instashare_cli import accounts, files, folders, shares, tokens, transfer
from instashare_cli.api import ApiError
from instashare_cli.config import ConfigError
from instashare_cli.failures import EXIT_AUTH, EXIT_USAGE, Failure, failure
from instashare_cli.session import TOKEN_ENV, Session


class Group(click.Group):
    """Turns the client's exceptions into one readable line and the right exit status."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            if exc.status == 401 and getattr(ctx.obj, "from_env", False):
                raise Failure(f"{exc.detail} (the token in {TOKEN_ENV})", EXIT_AUTH) from None
            logged_in = ctx.invoked_subcommand not in ("register", "login", "reset-password")
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
  4  no such file or folder
  5  the server failed (5xx) or could not be reached

\b
Example:
  instashare --server http://127.0.0.1:8000 login
  instashare upload holiday.jpg notes.txt --wait
  instashare upload -r photos --wait
  instashare ls photos
  instashare get holiday.jpg --original
  instashare share holiday.jpg --expires 2d
  instashare share photos
  instashare get https://share.example.com/s/TOKEN --extract photos-copy
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
    """Share files and folders through an Instashare server: upload, list, move, download,
    delete, share.

    Your session is kept in $XDG_CONFIG_HOME/instashare (~/.config/instashare), readable
    by you only. In a script or CI, put an API token in INSTASHARE_TOKEN instead (see:
    instashare tokens create): every command then uses it, with no login.
    """
    try:
        ctx.obj = Session(server)
    except ConfigError as exc:
        raise Failure(str(exc), EXIT_USAGE) from None


for command in (
    accounts.register,
    accounts.login,
    accounts.logout,
    accounts.password,
    accounts.reset_password,
    accounts.whoami,
    files.upload,
    folders.mkdir,
    folders.list_files,
    folders.mv,
    folders.rm,
    files.get,
    shares.share,
    shares.shares,
    shares.unshare,
    tokens.tokens,
):
    cli.add_command(command)
