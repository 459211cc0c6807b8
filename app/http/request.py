"""Per-request access to the process's runtime and a database session (Flask context)."""

from __future__ import annotations

import flask
from sqlalchemy.orm import Session

from app.db import without_transaction
from app.runtime import Runtime

EXTENSION = "instashare"


def runtime() -> Runtime:
    """The running app's Runtime (inside a request)."""
    return flask.current_app.extensions[EXTENSION]


# Requests that only read (the spec's GET and HEAD operations).
READS = frozenset({"GET", "HEAD"})


def db() -> Session:
    """The request's database session, opened on first use and closed at teardown.

    A request that only reads takes no transaction (app.db.without_transaction): each
    statement stands alone, as under READ COMMITTED it would see the same in one, and the
    BEGIN and ROLLBACK round trips are saved.
    """
    if "db" not in flask.g:
        session = runtime().sessions()
        if flask.request.method in READS:
            without_transaction(session)
        flask.g.db = session
    return flask.g.db


def close_session(_exc: BaseException | None = None) -> None:
    """Teardown: close the request's session, if it opened one."""
    session = flask.g.pop("db", None)
    if session is not None:
        session.close()
