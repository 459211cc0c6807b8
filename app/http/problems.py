"""The one place where domain errors become problem+json responses."""

from __future__ import annotations

import logging
import traceback

from connexion.exceptions import InternalServerError
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.problem import problem
from sqlalchemy.exc import OperationalError
from starlette.requests import ClientDisconnect

from app.errors import AppError, InvalidInput

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


def undecodable_body(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # Connexion's JSON body validator decodes the body outside its `try`, so a body that is
    # not UTF-8 escapes as UnicodeDecodeError. That one is the client's fault; any other
    # decoding error is ours and stays a 500.
    frames = traceback.extract_tb(exc.__traceback__)
    if frames and "connexion/validators/" in frames[-1].filename.replace("\\", "/"):
        return app_error(request, InvalidInput("The request body is not valid UTF-8."))
    log.error("%r", exc, exc_info=exc)
    return InternalServerError().to_problem()


def unencodable_text(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # JSON can spell a lone surrogate ("\ud800"), and Connexion hands it on as a `str` that
    # no database, Redis or hash function can encode. Every other input is decoded from
    # bytes and cannot hold one, so such text is always the client's.
    if isinstance(exc, UnicodeEncodeError) and exc.reason == "surrogates not allowed":
        return app_error(request, InvalidInput("The request holds text that is not Unicode."))
    log.error("%r", exc, exc_info=exc)
    return InternalServerError().to_problem()


def register(app) -> None:
    app.add_error_handler(AppError, app_error)
    app.add_error_handler(OperationalError, database_unavailable)
    app.add_error_handler(ClientDisconnect, client_disconnected)
    app.add_error_handler(UnicodeDecodeError, undecodable_body)
    app.add_error_handler(UnicodeEncodeError, unencodable_text)
