"""The application factory: the Connexion app that serves `swagger/openapi.yaml`."""

from __future__ import annotations

from importlib.resources import files

from connexion import AsyncApp
from connexion.datastructures import MediaTypeDict
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.validators import VALIDATOR_MAP

from app.http import problems, security
from app.http.attempts import PasswordAttempts
from app.http.middleware import (
    JsonBodyLimit,
    PathGuard,
    PublicLinks,
    ResponseHeaders,
    add_cors,
)
from app.http.multipart import StreamingMultipartValidator
from app.http.observer import RequestObserver
from app.http.streaming import COMPACT_JSON, StreamingOperations
from app.http.tus import TusBodyValidator, TusProtocol
from app.http.validation import SafeFormValidator, SecretSafeJSONBodyValidator
from app.overrides import check_versions
from app.overrides.connexion import CompiledParameterValidator
from app.runtime import Runtime, build_runtime
from app.settings import Settings

# `swagger/` at the top of the repository, shipped in the wheel as the package `app.spec`.
SPEC_DIR = files("app.spec")
_NO_UI = SwaggerUIOptions(swagger_ui=False, serve_spec=False)
# The API docs (/api/v1/ui/) show the API's document, and the share links' (outside the
# base path, served by share.yaml's own route) one pick away.
_DOCS = SwaggerUIOptions(
    swagger_ui_template_arguments={
        "urls": [
            {"name": "Instashare API (/api/v1)", "url": "/api/v1/openapi.json"},
            {"name": "Share links (/s)", "url": "/s/-/openapi.json"},
        ]
    }
)


def direct_uploads_origin(rt: Runtime) -> str:
    """The origin browsers send direct uploads to, when the server offers them ("": none)."""
    sessions = rt.storage.direct_sessions() if rt.settings.direct_uploads else None
    return sessions.origin if sessions is not None else ""


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> AsyncApp:
    """The Connexion app for `settings` (default: from the environment).

    `runtime` replaces the one built from the settings (the tests bring their own). Raises
    UnsupportedVersion first if a library app.overrides reaches into is not a version it
    was written for.
    """
    check_versions()
    settings = settings or Settings.from_env()
    rt = runtime or build_runtime(settings)

    validators = dict(VALIDATOR_MAP)
    validators["parameter"] = CompiledParameterValidator
    validators["body"] = MediaTypeDict(
        {
            **VALIDATOR_MAP["body"],
            "*/*json": SecretSafeJSONBodyValidator,
            "application/x-www-form-urlencoded": SafeFormValidator,
            "multipart/form-data": StreamingMultipartValidator.configured(
                settings.spool_root, settings.max_upload_bytes, settings.body_idle_seconds
            ),
            "application/offset+octet-stream": TusBodyValidator,
        }
    )
    app = AsyncApp(__name__, specification_dir=str(SPEC_DIR), jsonifier=COMPACT_JSON)
    # Share links are for anyone, from any origin: their CORS goes around the API's own.
    app.add_middleware(PublicLinks, position=MiddlewarePosition.BEFORE_EXCEPTION)
    if settings.cors_origins:
        add_cors(app, settings.cors_origins)
    app.add_middleware(
        TusProtocol, position=MiddlewarePosition.BEFORE_EXCEPTION, prefix="/api/v1/uploads"
    )
    app.add_middleware(RequestObserver, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(
        ResponseHeaders,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        uploads_to=lambda: direct_uploads_origin(rt),
    )
    app.add_middleware(PathGuard, position=MiddlewarePosition.BEFORE_ROUTING)
    app.add_middleware(
        JsonBodyLimit, position=MiddlewarePosition.BEFORE_VALIDATION, limit=settings.max_json_bytes
    )
    # Password checks wait for their turn before a thread (or a streaming handler) takes
    # them: added first, so it runs before StreamingOperations.
    app.add_middleware(PasswordAttempts, position=MiddlewarePosition.BEFORE_CONTEXT, runtime=rt)
    app.add_middleware(StreamingOperations, position=MiddlewarePosition.BEFORE_CONTEXT, runtime=rt)
    # The root-level ops API must be added first: Connexion's spec-serving middleware
    # tries APIs in order, and a root base path added later is never reached. Its router
    # mounts them in the reverse order: the share links' (/s) must come after the root's,
    # whose mount would otherwise take their paths.
    # Every API checks its requests the same way: the same limits, the same sentences.
    app.add_api(
        "ops.yaml", strict_validation=True, swagger_ui_options=_NO_UI, validator_map=validators
    )
    # The web app shares the root base path: the router tries it when ops.yaml has no
    # route for a path. It needs a name of its own: Connexion names an API after its base
    # path, which ops.yaml's has already.
    app.add_api(
        "web.yaml",
        name="webapp",
        strict_validation=True,
        swagger_ui_options=_NO_UI,
        validator_map=validators,
    )
    app.add_api(
        "share.yaml", strict_validation=True, swagger_ui_options=_NO_UI, validator_map=validators
    )
    app.add_api(
        "openapi.yaml",
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map=validators,
        swagger_ui_options=_DOCS,
    )
    # Added after the API's: mounted before it, so that its base path, under the API's,
    # is reached (see above).
    app.add_api(
        "admin.yaml",
        name="admin",
        strict_validation=True,
        validate_responses=settings.validate_responses,
        validator_map=validators,
        swagger_ui_options=_NO_UI,
    )
    problems.register(app)
    security.operation_scopes()  # read now: a scope the specs misspell stops the start
    # The app's state, where everything that serves it finds it (scope["app"] is this
    # middleware): no module global outlives the app, or is another app's.
    setattr(app.middleware, security.RUNTIME, rt)
    return app


def runtime_of(app: AsyncApp) -> Runtime:
    """The Runtime `app` was built with."""
    return getattr(app.middleware, security.RUNTIME)
