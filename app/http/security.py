"""The spec's bearer scheme, and the caller's account for handlers.

Connexion runs `bearer_info` on the event loop, outside any handler: it only checks the
token's signature and expiry (CPU only), by the rules of the app serving the request
(`runtime_of`). The account it names is looked up once per request, on first use, by
`Exchange.owner` (or `Exchange.account`), and the same query tells whether the token's
session has ended (logout, a session ended elsewhere, password change):
`users.session_account`, or for the many
requests that need only the account's id, the lighter `users.session_owner`. The files
page, the most frequent request, asks it inside its own statement instead
(`files.list_files` with the presented token).

`bearer_info` runs in the request's own task, so the token's claims it keeps in a context
variable are seen by everything after it, the handler's worker threads included.

An API token (`isk_…`, app.services.api_tokens) is no signed claim: only the database
knows it, so for one `bearer_info` returns a coroutine (Connexion awaits it) that asks on a
worker thread, then checks here, for every operation alike, that the token's scopes reach
the scope the operation declares in its spec (`x-token-scope`; `full` when it declares
none): 403 naming the missing scope, before validation reads a byte of the body.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Iterator
from contextvars import ContextVar
from importlib.resources import files

import anyio.to_thread
import yaml
from connexion.lifecycle import ConnexionRequest
from sqlalchemy.orm import Session
from starlette.types import Scope

from app.errors import Unauthorized
from app.models import User
from app.overrides.connexion import signature_kept
from app.runtime import Runtime
from app.services import api_tokens, tokens, users

# The attribute of the app's Connexion middleware (which every request's scope names as
# its `app`) that holds the Runtime the factory built it with.
RUNTIME = "instashare_runtime"
_presented: ContextVar[tokens.Claims | None] = ContextVar("presented_token", default=None)
# The operation's extension that names the scope an API token needs for it.
SCOPE_EXTENSION = "x-token-scope"
# libyaml's safe loader when PyYAML has it: the documents are read in a tenth of the time.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FULL = frozenset({"full"})
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def runtime_of(scope: Scope) -> Runtime:
    """The Runtime of the app serving the request of `scope` (see app.web.create_app)."""
    return getattr(scope["app"], RUNTIME)


# Connexion asks which keywords this takes on every request (app.overrides.connexion).
@signature_kept
def bearer_info(
    token: str, request: ConnexionRequest
) -> dict[str, str] | Awaitable[dict[str, str]]:
    """Token info for a valid token; raises Unauthorized (401) for anything else."""
    rt = runtime_of(request.scope)
    if token.startswith(api_tokens.PREFIX):
        routing = request.scope.get("extensions", {}).get("connexion_routing", {})
        return _api_token_info(rt, api_tokens.digest_of(token), routing.get("operation_id"))
    claims = tokens.verify(rt.settings, token)
    _presented.set(claims)
    return {"sub": str(claims.user_id)}


async def _api_token_info(rt: Runtime, digest: bytes, operation_id: str | None) -> dict[str, str]:
    claims = await anyio.to_thread.run_sync(_resolve, rt, digest)
    assert claims.scopes is not None
    api_tokens.check_reach(claims.scopes, operation_scopes().get(operation_id or "", FULL))
    _presented.set(claims)
    return {"sub": str(claims.user_id)}


def _resolve(rt: Runtime, digest: bytes) -> tokens.Claims:
    with rt.sessions() as session:
        return api_tokens.resolve(session, digest)


def bearer_operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    """(path, method, operation) of every operation of a spec document that a bearer
    token may call (its own `security`, else the document's, names a bearer scheme)."""
    schemes = document.get("components", {}).get("securitySchemes", {})
    bearer = {
        name
        for name, scheme in schemes.items()
        if scheme.get("type") == "http" and scheme.get("scheme", "").lower() == "bearer"
    }
    default = document.get("security", [])
    for path, item in (document.get("paths") or {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            requirements = operation.get("security", default)
            if any(bearer & set(requirement) for requirement in requirements):
                yield path, method, operation


def declared_scopes(operation: dict) -> frozenset[str]:
    """The scopes an operation names (`x-token-scope`: one, or a list of which any one
    will do); `full` when it names none. ValueError for a scope that is none."""
    declared = operation.get(SCOPE_EXTENSION, "full")
    scopes = frozenset([declared] if isinstance(declared, str) else declared)
    unknown = scopes - set(api_tokens.SCOPES)
    if unknown or not scopes:
        raise ValueError(f"{operation.get('operationId')}: no scope {sorted(unknown)}")
    return scopes


@functools.cache
def operation_scopes() -> dict[str, frozenset[str]]:
    """The scopes that let an API token call each bearer operation of every spec, by
    operationId (`declared_scopes`). Read once per process from the documents the app
    serves (the package `app.spec`)."""
    found: dict[str, frozenset[str]] = {}
    for entry in sorted(files("app.spec").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        document = yaml.load(entry.read_text(), Loader=_LOADER)  # noqa: S506 - a safe loader
        for _path, _method, operation in bearer_operations(document):
            found[operation["operationId"]] = declared_scopes(operation)
    return found


def presented_token(user: str) -> tokens.Claims:
    """The claims of the token this request presented (for `user`, as Connexion says)."""
    claims = _presented.get()
    if claims is None or str(claims.user_id) != user:
        raise Unauthorized("The access token is not valid.")
    return claims


def account_in(session: Session, user: str, used: users.Used | None = None) -> User:
    """The caller's account, in `session`; 401 when its token's session ended."""
    return users.session_account(session, presented_token(user), used)


def owner_in(session: Session, user: str, used: users.Used | None = None) -> uuid.UUID:
    """The id of the caller's account, in `session`; 401 when the token outlived it."""
    return users.session_owner(session, presented_token(user), used)
