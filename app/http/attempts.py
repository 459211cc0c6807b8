"""Password attempts are counted, and wait for their turn, before a thread is taken.

A login or a share link's password check is counted by the throttle before the password
is verified (app.services.throttle). Under a guessing campaign a key's checks are run one
at a time, and a request must wait for its turn: that wait happens here, on the event loop,
after routing, security and validation and before the request reaches its handler
(app.http.streaming), so waiting requests hold no thread. The attempt travels on with the
request (`current()`); the handler verifies the password and settles it, and an attempt
left unsettled (the request ended before any password was verified) gives its counts back.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
from collections.abc import Callable

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import observability
from app.errors import NotFound
from app.http.middleware import HttpMiddleware
from app.runtime import Runtime
from app.services import shares, users
from app.services.throttle import Attempt, Subject

LOGIN = "app.handlers.users.login"
# The public routes of a link that check its password when one is presented.
LINK_OPERATIONS = frozenset(
    {
        "app.handlers.shares.metadata",
        "app.handlers.shares.content",
        "app.handlers.shares.content_head",
    }
)
# The grant form sends its password in the body: every grant request is an attempt.
GRANT = "app.handlers.shares.grant"

_current: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar(
    "password_attempt", default=None
)


def current() -> Attempt | None:
    """The attempt this request began before its handler ran, if it is a password check."""
    return _current.get()


def _presents_password(headers: Headers) -> bool:
    authorization = headers.get("authorization", "")
    return "x-share-password" in headers or authorization.lower().startswith("basic")


class PasswordAttempts(HttpMiddleware):
    """ASGI middleware: begins each password check's attempt and waits for its turn."""

    def __init__(self, app: ASGIApp, runtime: Runtime):
        super().__init__(app)
        self.runtime = runtime

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        routing = scope.get("extensions", {}).get("connexion_routing", {})
        operation = routing.get("operation_id")
        begin: Callable[[], Attempt] | None = None
        if operation == LOGIN:
            receive, email = await _email_of(receive)
            if email is not None:
                begin = self._begin(users.throttle_key(email), scope, Subject.ACCOUNT)
        elif operation == GRANT or (
            operation in LINK_OPERATIONS and _presents_password(Headers(scope=scope))
        ):
            token = scope.get("path_params", {}).get("token", "")
            try:
                share_id = shares.share_id_of(self.runtime.settings.secret_key, token)
            except NotFound:
                pass  # the handler answers 404; no password is checked
            else:
                begin = self._begin(shares.throttle_key(share_id), scope, Subject.LINK)
        if begin is None:
            await self.app(scope, receive, send)
            return
        attempt = await anyio.to_thread.run_sync(begin)
        if attempt.refusal is None and attempt.wait > 0:
            observability.PASSWORD_TURN_WAITS.observe(attempt.wait)
            await asyncio.sleep(attempt.wait)  # its turn: on the event loop, no thread held
        reset = _current.set(attempt)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(reset)
            if attempt.open:
                await anyio.to_thread.run_sync(attempt.abandon)

    def _begin(self, key: str, scope: Scope, subject: Subject) -> Callable[[], Attempt]:
        client = scope.get("client")
        address = client[0] if client else "unknown"
        return functools.partial(
            self.runtime.throttle.begin, key, address, subject=subject, may_wait=True
        )


async def _email_of(receive: Receive) -> tuple[Receive, str | None]:
    """The e-mail address of a login body (validated already), and a `receive` that hands
    the body on as it came."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    try:
        email = json.loads(body)["email"]
    except (ValueError, TypeError, KeyError, RecursionError):
        email = None
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay, email if isinstance(email, str) else None
