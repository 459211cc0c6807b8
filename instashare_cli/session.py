"""What every command shares: the server, the saved configuration and an API client."""

from __future__ import annotations

import os
import re

import click

from instashare_cli.api import Api
from instashare_cli.config import Config, Login, normalize_server
from instashare_cli.failures import EXIT_AUTH, Failure

# An API token (`isk_…`, made with `instashare tokens create` or the web app) in this
# variable is what every command presents, instead of a login's saved session.
TOKEN_ENV = "INSTASHARE_TOKEN"  # noqa: S105 - the variable's name
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class Session:
    """What every command shares: the server, the saved configuration and an API client."""

    def __init__(self, server: str | None):
        self.config = Config()
        self.server = normalize_server(server) if server else self.config.server
        token = os.environ.get(TOKEN_ENV, "").strip()
        # Whether the token is the environment's (nothing saved is involved).
        self.from_env = bool(token)
        self.login = Login(self.server, "", token) if token else self.config.login_for(self.server)

    def api(self, *, authenticated: bool = True) -> Api:
        if not authenticated:
            return Api(self.server)
        if self.login is None:
            raise Failure(f"not logged in to {self.server}; run: instashare login", EXIT_AUTH)
        return Api(self.server, self.login.token)


# A command takes the Session the group made as its first argument.
pass_session = click.pass_obj
