"""The application factory: the Connexion app that serves `swagger/openapi.yaml`."""

from __future__ import annotations

import logging
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
from starlette.types import ASGIApp, Receive, Scope, Send

from app import problems, security
from app.db import make_engine, make_session_factory
from app.errors import TooLarge
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
    """413 for JSON bodies over the limit, before Connexion's validator buffers them."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            if "json" in headers.get("content-type", ""):
                declared = headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.limit:
                    raise TooLarge(f"A JSON body may be at most {self.limit} bytes.", limit="body")
                receive = self._counting(receive)
        await self.app(scope, receive, send)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def receive_() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise TooLarge(f"A JSON body may be at most {self.limit} bytes.", limit="body")
            return message

        return receive_


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
