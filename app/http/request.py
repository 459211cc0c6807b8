"""Per-request access to the process's runtime and a database session (Flask context)."""

from __future__ import annotations

import flask
from sqlalchemy.orm import Session

from app.runtime import Runtime

EXTENSION = "instashare"


def runtime() -> Runtime:
    """The running app's Runtime (inside a request)."""
    return flask.current_app.extensions[EXTENSION]


def db() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    if "db" not in flask.g:
        flask.g.db = runtime().sessions()
    return flask.g.db


def close_session(_exc: BaseException | None = None) -> None:
    """Teardown: close the request's session, if it opened one."""
    session = flask.g.pop("db", None)
    if session is not None:
        session.close()
