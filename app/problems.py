"""The one place where domain errors become problem+json responses."""

from __future__ import annotations

import logging

from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.problem import problem
from sqlalchemy.exc import OperationalError
from starlette.requests import ClientDisconnect

from app.errors import AppError

log = logging.getLogger(__name__)


def app_error(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, AppError)
    return problem(
        exc.status, exc.title, exc.detail, type=exc.type, headers=exc.headers, ext=exc.extra
    )


def database_unavailable(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    log.error("database unavailable: %s", exc)
    return problem(
        503,
        "Service Unavailable",
        "The database did not answer; retry in a moment.",
        type="/problems/service-unavailable",
        headers={"Retry-After": "5"},
    )


def client_disconnected(_request: ConnexionRequest, _exc: Exception) -> ConnexionResponse:
    # Nobody is listening any more; the status only shows up in the access log.
    return problem(400, "Client Disconnected", "The client went away mid-request.")


def register(app) -> None:
    app.add_error_handler(AppError, app_error)
    app.add_error_handler(OperationalError, database_unavailable)
    app.add_error_handler(ClientDisconnect, client_disconnected)
