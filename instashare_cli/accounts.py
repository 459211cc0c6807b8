"""Commands for the account: register, login, logout, password, reset-password, whoami."""

from __future__ import annotations

import click

from app.services.sizes import iec
from instashare_cli.api import ApiError
from instashare_cli.config import Login
from instashare_cli.failures import EXIT_SERVER, EXIT_USAGE, Failure, failure
from instashare_cli.output import count, stdout
from instashare_cli.session import Session, pass_session


def _email_option(fn):
    return click.option(
        "--email", prompt="Email", envvar="INSTASHARE_EMAIL", help="[env INSTASHARE_EMAIL]"
    )(fn)


def _secret_option(name: str, env: str, *, prompt: str | bool = True, confirm=False, help=""):
    """An option asked for hidden when not given (twice with `confirm`), or taken from `env`."""
    return click.option(
        name,
        prompt=prompt,
        hide_input=True,
        confirmation_prompt=confirm,
        envvar=env,
        help=f"{help} [env {env}]".lstrip(),
    )


@click.command(epilog="Example: instashare register --email ada@example.com")
@_email_option
@_secret_option("--password", "INSTASHARE_PASSWORD", confirm=True, help="10 characters or more")
@click.option(
    "--invite",
    "invitation",
    metavar="TOKEN",
    help="an invitation's token (the end of its link, after /#/invite/), or the whole link",
)
@pass_session
def register(session: Session, email: str, password: str, invitation: str | None) -> None:
    """Create an account (on a server that takes sign-ups by invitation: with --invite).

    Asks for the e-mail address and (twice, hidden) the password when they are not given.
    The server becomes the default, so that `instashare login` goes to the same one.
    """
    if invitation is not None:
        invitation = invitation.rsplit("/#/invite/", 1)[-1]
    with session.api(authenticated=False) as api:
        user = api.register(email, password, invitation)
    session.config.remember_server(session.server)
    stdout.print(f"registered {user['email']} on {session.server}; now run: instashare login")


@click.command(epilog="Example: instashare --server https://share.example.com login")
@_email_option
@_secret_option("--password", "INSTASHARE_PASSWORD")
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


@click.command(epilog="Example: instashare logout")
@pass_session
def logout(session: Session) -> None:
    """End the session: the server stops taking its token, and this client forgets it.

    When the server cannot be reached the token is kept, so that running the command
    again can still end the session.
    """
    if session.from_env:
        raise Failure(
            "the token in INSTASHARE_TOKEN is no login to end: unset the variable, or revoke "
            "the token (instashare tokens revoke ID)",
            EXIT_USAGE,
        )
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


@click.command(epilog="Example: instashare password")
@_secret_option("--current-password", "INSTASHARE_PASSWORD", prompt="Current password")
@_secret_option(
    "--new-password",
    "INSTASHARE_NEW_PASSWORD",
    prompt="New password",
    confirm=True,
    help="10 characters or more",
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


@click.command("reset-password", epilog="Example: instashare reset-password ada@example.com")
@click.argument("email")
@pass_session
def reset_password(session: Session, email: str) -> None:
    """Forgot your password? Ask for a link by e-mail to set a new one.

    The server answers the same whether or not EMAIL has an account. Open the link in the
    mail in a browser: it sets the new password and signs you in there; then run
    instashare login here.
    """
    with session.api(authenticated=False) as api:
        answer = api.request_password_reset(email)
    stdout.print(answer["detail"])


@click.command(epilog="Example: instashare whoami")
@pass_session
def whoami(session: Session) -> None:
    """Your account, how much of your quota it uses, and how many share links work."""
    with session.api() as api:
        me = api.me()
    usage = me["usage"]
    quota = usage["quota_bytes"]
    reserved = usage.get("bytes_reserved") or 0
    share = 100 * (usage["bytes_stored"] + reserved) / quota if quota else 0.0
    held = f", {iec(reserved)} held by unfinished uploads" if reserved else ""
    stdout.print(f"{me['email']} on {session.server}")
    stdout.print(
        f"{count(usage['file_count'], 'file')}, {iec(usage['bytes_stored'])} stored{held} "
        f"({share:.1f}% of your {iec(quota)} quota)"
    )
    if "active_shares" in me:  # a server from before share links has no such count
        stdout.print(f"{count(me['active_shares'], 'active share link')}")
