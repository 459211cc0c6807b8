"""The application factory: the Connexion app that serves `swagger/openapi.yaml`."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import flask
from connexion import FlaskApp
from connexion.datastructures import MediaTypeDict
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.validators import VALIDATOR_MAP
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import problems, security
from app.db import make_engine, make_session_factory
from app.errors import NotFound, TooLarge
from app.multipart import StreamingMultipartValidator
from app.observability import RequestObserver
from app.services.jobs import JobQueue, celery_sender, redis_queue_depth
from app.services.throttle import LoginThrottle, MemoryCounters, RedisCounters
from app.settings import Settings
from app.storage import Storage, make_storage
from app.tus_http import TusBodyValidator, TusProtocol

SPEC_DIR = Path(__file__).resolve().parent.parent / "swagger"
CORS_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "Upload-Length",
    "Upload-Offset",
    "Upload-Metadata",
    "Upload-Checksum",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Tus-Resumable",
    "X-HTTP-Method-Override",
    "X-Request-ID",
    "If-Match",
    "If-None-Match",
    "If-Range",
    "Range",
]
CORS_EXPOSE_HEADERS = [
    "Location",
    "ETag",
    "Content-Range",
    "Content-Disposition",
    "Accept-Ranges",
    "Retry-After",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Expires",
    "Tus-Version",
    "Tus-Resumable",
    "Tus-Max-Size",
    "Tus-Extension",
    "Tus-Checksum-Algorithm",
]
_NO_UI = SwaggerUIOptions(swagger_ui=False, serve_spec=False)
log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What handlers need, built once per process from the settings."""

    settings: Settings
    sessions: sessionmaker
    storage: Storage
    jobs: JobQueue
    throttle: LoginThrottle


def runtime() -> Runtime:
    """The running app's Runtime (inside a request)."""
    return flask.current_app.extensions["instashare"]


def db() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    if "db" not in flask.g:
        flask.g.db = runtime().sessions()
    return flask.g.db


class JsonBodyLimit:
    """413 for JSON bodies over the limit, before Connexion's validator buffers them.

    A JSON body sent without Content-Length (chunked) is read here, up to the limit, and
    handed on with its length: Connexion's validator takes a body with no Content-Length
    for a missing one ("RequestBody is required").
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    def _too_large(self) -> TooLarge:
        return TooLarge(f"A JSON body may be at most {self.limit} bytes.", limit="body")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            if "json" in headers.get("content-type", ""):
                declared = headers.get("content-length")
                if declared is None and "chunked" in headers.get("transfer-encoding", ""):
                    scope, receive = await self._buffered(scope, receive)
                elif declared is not None and declared.isdigit() and int(declared) > self.limit:
                    raise self._too_large()
                else:
                    receive = self._counting(receive)
        await self.app(scope, receive, send)

    async def _buffered(self, scope: Scope, receive: Receive) -> tuple[Scope, Receive]:
        pieces: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            pieces.append(message.get("body", b""))
            size += len(pieces[-1])
            if size > self.limit:
                raise self._too_large()
            if not message.get("more_body", False):
                break
        body = b"".join(pieces)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"transfer-encoding"]
        headers.append((b"content-length", str(len(body)).encode()))
        replayed = False

        async def receive_() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return {**scope, "headers": headers}, receive_

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def receive_() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise self._too_large()
            return message

        return receive_


class PathGuard:
    """404 for a path holding control characters, before routing sees it.

    Connexion's router does not match such a path (`/files/abc%0A`), passes it on unrouted,
    and Flask's own routing then calls the handler outside any operation: a 500.
    """

    _CONTROL = re.compile(r"[\x00-\x1f\x7f]")

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._CONTROL.search(scope["path"]):
            raise NotFound("No resource has this path.")
        await self.app(scope, receive, send)


def _throttle(settings: Settings) -> LoginThrottle:
    if settings.redis_url:
        import redis

        store = RedisCounters(redis.Redis.from_url(settings.redis_url, socket_timeout=5))
    else:
        store = MemoryCounters()
    return LoginThrottle(
        store,
        per_account=settings.login_max_failures,
        per_address=settings.login_max_failures_per_ip,
        window=settings.login_window_seconds,
    )


def build_runtime(settings: Settings) -> Runtime:
    from worker.celery_app import make_celery

    return Runtime(
        settings=settings,
        sessions=make_session_factory(make_engine(settings.database_url)),
        storage=make_storage(settings),
        jobs=JobQueue(
            celery_sender(make_celery(settings)),
            redis_queue_depth(settings.broker_url, "instashare"),
        ),
        throttle=_throttle(settings),
    )


def create_app(settings: Settings | None = None) -> FlaskApp:
    """The Connexion app for `settings` (default: from the environment)."""
    settings = settings or Settings.from_env()
    security.configure(settings)
    rt = build_runtime(settings)

    validators = dict(VALIDATOR_MAP)
    validators["body"] = MediaTypeDict(
        {
            **VALIDATOR_MAP["body"],
            "multipart/form-data": StreamingMultipartValidator.configured(
                settings.spool_root, settings.max_upload_bytes
            ),
            "application/offset+octet-stream": TusBodyValidator,
        }
    )
    app = FlaskApp(__name__, specification_dir=SPEC_DIR)
    if settings.cors_origins:
        # Outermost, so preflights are answered before anything else and error responses
        # carry the CORS headers too (a browser hides a response without them).
        app.add_middleware(
            CORSMiddleware,
            position=MiddlewarePosition.BEFORE_EXCEPTION,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
            max_age=86400,
        )
    app.add_middleware(
        TusProtocol, position=MiddlewarePosition.BEFORE_EXCEPTION, prefix="/api/v1/uploads"
    )
    app.add_middleware(RequestObserver, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(PathGuard, position=MiddlewarePosition.BEFORE_ROUTING)
    app.add_middleware(
        JsonBodyLimit, position=MiddlewarePosition.BEFORE_VALIDATION, limit=settings.max_json_bytes
    )
    # The root-level ops API must be added first: Connexion's spec-serving middleware
    # tries APIs in order, and a root base path added later is never reached.
    app.add_api("ops.yaml", strict_validation=True, swagger_ui_options=_NO_UI)
    app.add_api(
        "openapi.yaml",
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map=validators,
    )
    problems.register(app)

    flask_app = app.app
    flask_app.extensions["instashare"] = rt

    @flask_app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = flask.g.pop("db", None)
        if session is not None:
            session.close()

    return app
