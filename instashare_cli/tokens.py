"""`instashare tokens create/list/revoke`: API tokens for scripts and CI."""

from __future__ import annotations

import re

import click
from rich.table import Table

from instashare_cli.failures import EXIT_USAGE, Failure
from instashare_cli.output import plainly, stderr, stdout, when
from instashare_cli.session import TOKEN_ENV, UUID, Session, pass_session

SCOPES = ("read", "upload", "share", "full")
# A token's lifetime: `30d`, `12w`, `never`.
LIFETIME = re.compile(r"(?P<count>[1-9][0-9]{0,3})(?P<unit>[dw])")


def _days(_ctx: click.Context, _param: click.Parameter, value: str) -> int | None:
    if value == "never":
        return None
    match = LIFETIME.fullmatch(value)
    if match is None:
        raise click.BadParameter(f"{value!r} is not a lifetime such as 30d, 12w or never")
    return int(match["count"]) * (7 if match["unit"] == "w" else 1)


@click.group(epilog="Example: instashare tokens create ci --scope upload --expires 90d")
def tokens() -> None:
    """Make, list and revoke API tokens: credentials for scripts and CI, with scopes.

    A token is shown once, when it is made. Put it in INSTASHARE_TOKEN and every command
    uses it, with no login. Its scopes say what it may do: read (list and download),
    upload (upload, and make the folders an upload goes into), share (make and revoke
    links, and read), full (everything your account can). Changing your password ends
    every token.
    """


@tokens.command(
    "create",
    epilog="Example: INSTASHARE_TOKEN=$(instashare tokens create nightly --scope upload)",
)
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    default=("read",),
    show_default=True,
    help="What the token may do (repeat for several).",
)
@click.option(
    "--expires",
    metavar="30d|12w|never",
    default="never",
    show_default=True,
    callback=_days,
    help="How long the token works.",
)
@pass_session
def create(session: Session, name: str, scopes: tuple[str, ...], expires: int | None) -> None:
    """Make an API token named NAME; prints the token, and only that, on stdout."""
    with session.api() as api:
        made = api.create_token(name, list(scopes), expires)
    stderr.print(
        f"token {made['id']} ({made['name']}: {' '.join(made['scopes'])}), "
        f"expires {when(made['expires_at'], 'never')}; it is shown this once"
    )
    click.echo(made["token"])


@tokens.command("list", epilog="Example: instashare tokens list")
@click.option("--json", "as_json", is_flag=True, help="Print the tokens as a JSON array.")
@pass_session
def list_tokens(session: Session, as_json: bool) -> None:
    """Your API tokens, newest first: id, name, scopes, made, expires, last used."""
    with session.api() as api:
        found = api.tokens()
    if plainly(found, as_json, "no API tokens"):
        return
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "NAME", "SCOPES", "CREATED", "EXPIRES", "LAST USED"):
        table.add_column(column, no_wrap=True)
    for token in found:
        table.add_row(
            token["id"],
            token["name"],
            " ".join(token["scopes"]),
            when(token["created_at"]),
            when(token["expires_at"], "never"),
            when(token["last_used_at"], "never"),
        )
    stdout.print(table)


@tokens.command("revoke", epilog="Example: instashare tokens revoke 0b6a7f0e-3c1d-...")
@click.argument("token_id")
@pass_session
def revoke(session: Session, token_id: str) -> None:
    """Revoke the API token TOKEN_ID (see: instashare tokens list): it stops working at once."""
    if not UUID.match(token_id):
        raise Failure(f"{token_id!r} is not a token's id (see: instashare tokens list)", EXIT_USAGE)
    with session.api() as api:
        api.revoke_token(token_id)
    stdout.print(f"revoked the API token {token_id}")
    if session.from_env:
        stderr.print(f"(if that was the token in {TOKEN_ENV}, the next command is refused)")
