"""How a command fails: one line on stderr and an exit status that says what went wrong."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from instashare_cli.api import ApiError

EXIT_ERROR = 1  # any other failure: a name clash, a full quota, a file that failed, ...
EXIT_USAGE = 2  # Click's own: a bad option or argument
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_SERVER = 5
EXIT_INTERRUPTED = 130


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
