"""The one place where errors become problem+json responses.

Every problem's `type` is `/problems/<its title in kebab case>`: the app's own errors,
Connexion's (request validation, security) and the router's (404, 405) alike. Connexion's
400s for a body or parameter that breaks the spec are the app's Invalid Input.
"""

from __future__ import annotations

import functools
import logging
import traceback
from importlib.resources import files

from connexion.exceptions import ProblemException
from connexion.http_facts import HTTP_STATUS_CODES
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.problem import problem
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from app.errors import AppError, InvalidInput, StorageUnavailable, problem_type
from app.storage import BackendUnavailable

log = logging.getLogger(__name__)


def _problem(
    status: int, title: str | None, detail: str | None, headers=None, ext=None
) -> ConnexionResponse:
    title = title or HTTP_STATUS_CODES.get(status, "Error")
    if status == 400 and title == "Bad Request":
        title = InvalidInput.title
    return problem(
        status, title, detail or title, type=problem_type(title), headers=headers, ext=ext
    )


def _internal_error() -> ConnexionResponse:
    return _problem(500, "Internal Server Error", "The server failed; it has been logged.")


def connexion_problem(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """Connexion's own problems (validation, security) in the app's scheme."""
    assert isinstance(exc, ProblemException)
    if exc.status >= 500:
        log.error("%r", exc)
    else:
        log.debug("%s %s: %s", exc.status, exc.title, exc.detail)
    return _problem(exc.status, exc.title, exc.detail, exc.headers, exc.ext)


def prefers_html(accept: str) -> bool:
    """Whether an Accept header ranks a page above JSON: a browser's address bar does
    (`text/html,…,*/*;q=0.8`); curl's `*/*` and an API client's JSON do not."""
    html = json = 0.0
    for item in accept.split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if kind.lower() in {"text/html", "application/xhtml+xml"}:
            html = max(html, q)
        elif kind.lower() in {"application/json", "application/problem+json", "*/*"}:
            json = max(json, q)
    return html > json


@functools.cache
def _not_found_page() -> bytes:
    return files("app").joinpath("templates/not_found.html").read_bytes()


# The page names its stylesheet and nothing else: no script, no form, no frame.
NOT_FOUND_CSP = (
    "default-src 'none'; style-src 'self'; img-src data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)


def not_found_page() -> ConnexionResponse:
    """The 404 a browser gets for an address nothing serves: a page with a way home."""
    return ConnexionResponse(
        status_code=404,
        content_type="text/html; charset=utf-8",
        body=_not_found_page(),
        headers={"Content-Security-Policy": NOT_FOUND_CSP, "Cache-Control": "no-cache"},
    )


def http_exception(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """The router's 404 (a page for a browser) and 405 (with `Allow`), in the app's scheme."""
    assert isinstance(exc, HTTPException)
    if (
        exc.status_code == 404
        and request.scope.get("method") in {"GET", "HEAD"}
        and prefers_html(request.headers.get("accept", ""))
    ):
        return not_found_page()
    detail = {404: "No resource has this path.", 405: "This path does not take that method."}
    return _problem(
        exc.status_code, None, detail.get(exc.status_code, exc.detail), dict(exc.headers or {})
    )


def app_error(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, AppError)
    if exc.status >= 500 and exc.__cause__ is not None:
        # The client reads a plain sentence; the operator needs what caused it.
        log.error("%s %s: %r", exc.status, exc.detail, exc.__cause__)
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


def storage_unavailable(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # The backend already retried for its deadline (INSTASHARE_GCS_DEADLINE_SECONDS).
    log.error("storage unavailable: %s", exc)
    return app_error(request, StorageUnavailable("The storage did not answer; retry in a moment."))


def client_disconnected(_request: ConnexionRequest, _exc: Exception) -> ConnexionResponse:
    # Nobody is listening any more; the status only shows up in the access log.
    return _problem(400, "Client Disconnected", "The client went away mid-request.")


def undecodable_body(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # Connexion's JSON body validator decodes the body outside its `try`, so a body that is
    # not UTF-8 escapes as UnicodeDecodeError. That one is the client's fault; any other
    # decoding error is ours and stays a 500.
    frames = traceback.extract_tb(exc.__traceback__)
    if frames and "connexion/validators/" in frames[-1].filename.replace("\\", "/"):
        return app_error(request, InvalidInput("The request body is not valid UTF-8."))
    # `%s`, not `%r`: the repr of a Unicode error holds all the text it was given.
    log.error("%s: %s", type(exc).__name__, exc, exc_info=exc)
    return _internal_error()


def unencodable_text(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # JSON can spell a lone surrogate ("\ud800"), and Connexion hands it on as a `str` that
    # no database, Redis or hash function can encode. Every other input is decoded from
    # bytes and cannot hold one, so such text is always the client's.
    if isinstance(exc, UnicodeEncodeError) and exc.reason == "surrogates not allowed":
        return app_error(request, InvalidInput("The request holds text that is not Unicode."))
    log.error("%s: %s", type(exc).__name__, exc, exc_info=exc)
    return _internal_error()


def unexpected(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    log.error("%r", exc, exc_info=exc)
    return _internal_error()


def register(app) -> None:
    app.add_error_handler(Exception, unexpected)
    app.add_error_handler(HTTPException, http_exception)
    app.add_error_handler(ProblemException, connexion_problem)
    app.add_error_handler(AppError, app_error)
    app.add_error_handler(OperationalError, database_unavailable)
    app.add_error_handler(BackendUnavailable, storage_unavailable)
    app.add_error_handler(ClientDisconnect, client_disconnected)
    app.add_error_handler(UnicodeDecodeError, undecodable_body)
    app.add_error_handler(UnicodeEncodeError, unencodable_text)
