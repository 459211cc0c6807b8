"""What every command shares: the server, the saved configuration, an API client, and
the files a command names."""

from __future__ import annotations

import re
import unicodedata

import click

from instashare_cli.api import Api, ApiError
from instashare_cli.config import Config, normalize_server
from instashare_cli.failures import EXIT_AUTH, EXIT_NOT_FOUND, Failure

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


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


# A command takes the Session the group made as its first argument.
pass_session = click.pass_obj


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
