"""Every operation's handler runs here: `async def h(request: Exchange)`, on the event loop.

A handler a thread serves (Flask's, through a2wsgi) holds that thread for as long as its
body takes to arrive or its response to be read: ten clients on slow links were enough to
stall every other request. So every handler the spec names is a coroutine function taking
one `Exchange`, run here after routing, security and validation: it waits for the network
without a thread, and only the short steps that touch the database or storage go to a
worker thread (`Exchange.run`, `Exchange.lookup`). The request's session, its caller and
the runtime are the Exchange's. Bodies move in batches of about `BATCH_BYTES`; the write
of one batch (in a thread) overlaps the reading of the next. A body or a download that
moves no byte for the configured idle time is cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import pkgutil
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import anyio.to_thread
import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" error handler
from connexion.jsonifier import Jsonifier
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.datastructures import Headers, QueryParams
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from werkzeug.http import parse_options_header
from werkzeug.sansio.utils import get_host

from app.db import without_transaction
from app.errors import RequestTimeout
from app.http import security
from app.http.middleware import HttpMiddleware
from app.models import User
from app.runtime import Runtime
from app.services import sessions, users

log = logging.getLogger(__name__)

BATCH_BYTES = 1024 * 1024
SEND_SLICE = 256 * 1024
T = TypeVar("T")
Handler = Callable[["Exchange"], Awaitable[None]]
# Whether a download may have sent this many bytes in all (see Exchange.send_chunks).
Allowance = Callable[[int], Awaitable[bool]]
# What a handler answers with (`Exchange.reply`): a body (a dict is JSON), status, headers.
Reply = tuple[dict | bytes | str | None, int, Mapping[str, str]]
# Responses as compact JSON, a line each (Connexion's own answers: the json module's C
# encoder; its default indents, through the pure-Python one, the largest cost of a page).
COMPACT_JSON = Jsonifier(json, separators=(",", ":"))
# Requests that only read (the spec's GET and HEAD operations).
READS = frozenset({"GET", "HEAD"})


class Disconnected(ClientDisconnect):
    """The client went away before its body ended (logged as a 400 nobody receives)."""


class Exchange:
    """One request to a streaming operation: what it asked, and how to answer it."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, runtime: Runtime):
        self.scope = scope
        self._receive = receive
        self._send = send
        self.runtime = runtime
        self.headers = Headers(scope=scope)
        self.query = QueryParams(scope.get("query_string", b""))
        self.path_params: Mapping[str, Any] = scope.get("path_params", {})
        context = scope.get("extensions", {}).get("connexion_context", {})
        self.user: str = context.get("user", "")
        self.method: str = scope.get("method", "GET")
        self.idle_seconds = runtime.settings.body_idle_seconds
        self._session: Session | None = None
        self._owner: uuid.UUID | None = None
        self._account: User | None = None
        self._used: uuid.UUID | None = None  # a session whose last use is due to be written
        self.started = False
        self.status: int | None = None
        # The account this request showed active, when it has no token yet (a login).
        self.seen: str | None = None

    # -- the blocking steps, on a worker thread ----------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on a worker thread (database, storage: never the network)."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    async def run_checks_alone(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`run` for a step that checks (the caller, then what it asks) before it writes,
        and ends its checks (a commit or rollback) before the first write: each statement
        of the checks stands alone, as in `read`, saving the BEGIN and COMMIT round trips
        (a tus request's); the writes after them get a transaction of their own."""

        def checked() -> T:
            without_transaction(self.session)
            return fn(*args, **kwargs)

        return await anyio.to_thread.run_sync(checked)

    async def lookup(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(session, *args, **kwargs)` on a worker thread, in this request's session,
        whose connection goes back to the pool before this returns: nothing holds one while
        the response waits on the network. What `fn` loaded stays readable, detached."""
        return await anyio.to_thread.run_sync(self._in_session, fn, args, kwargs, False)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`lookup` for `fn` that only reads: each of its statements stands alone, with no
        transaction around them (app.db.without_transaction), and the BEGIN and ROLLBACK
        round trips are saved. A GET that writes (a link's counted download) uses `lookup`."""
        return await anyio.to_thread.run_sync(self._in_session, fn, args, kwargs, True)

    def _in_session(self, fn: Callable[..., T], args: tuple, kwargs: dict, alone: bool) -> T:
        try:
            if alone:
                without_transaction(self.session)
            return fn(self.session, *args, **kwargs)
        finally:
            self.release()

    @property
    def session(self) -> Session:
        """This request's database session (on a worker thread, one at a time). `lookup` and
        `read` hand it to their function; a service that keeps it across steps (a tus
        body's) ends its transactions before the body streams."""
        if self._session is None:
            self._session = self.runtime.sessions()
        return self._session

    def release(self) -> None:
        """Close the session's transaction and hand its connection back (blocking); the
        session opens another on its next use."""
        if self._session is not None:
            self._session.close()

    async def aclose(self) -> None:
        if self._used is not None:  # after the answer: no request waits for this write
            await self.run(self._write_used, self._used)
        if self._session is not None:
            await self.run(self._session.close)
            self._session = None

    def _write_used(self, session_id: uuid.UUID) -> None:
        try:
            sessions.mark_used(self.session, session_id)
        except SQLAlchemyError:  # a last-used time is not worth a failed request's log
            log.warning("could not write when session %s was last used", session_id)
        finally:
            self.release()

    # -- the caller --------------------------------------------------------------------

    def owner(self) -> uuid.UUID:
        """The id of the caller's account; 401 when its token's session ended (blocking,
        in the request's session). Asked once per request."""
        if self._owner is None:
            if self._account is not None:
                self._owner = self._account.id
            else:
                self._owner = security.owner_in(self.session, self.user, self.used)
        return self._owner

    def account(self) -> User:
        """The caller's account; 401 when its token's session ended (blocking, as `owner`)."""
        if self._account is None:
            self._account = security.account_in(self.session, self.user, self.used)
        return self._account

    def used(self, session_id: uuid.UUID) -> None:
        """Note that the caller's session was used and the time is due to be written (once
        a minute at most): it is, after the response (`aclose`)."""
        self._used = session_id

    def token(self) -> Any:
        """The claims of the token this request presented (app.services.tokens.Claims)."""
        return security.presented_token(self.user)

    # -- what the request says ---------------------------------------------------------

    def uuid(self, name: str) -> uuid.UUID:
        """A path parameter the spec declares a UUID (validated by now)."""
        return uuid.UUID(self.path_params[name])

    @property
    def address(self) -> str:
        """The client's address (as the server says, after any trusted proxy's header)."""
        client = self.scope.get("client")
        return client[0] if client else "unknown"

    @property
    def mimetype(self) -> str:
        """The body's media type, without its parameters."""
        return parse_options_header(self.headers.get("content-type", ""))[0].lower()

    @property
    def host_url(self) -> str:
        """`scheme://host/` as the request names them (its `Host`, else the server's)."""
        scheme = self.scope.get("scheme", "http")
        server = self.scope.get("server")
        host = get_host(scheme, self.headers.get("host"), tuple(server) if server else None)
        return f"{scheme}://{host}/"

    async def content(self) -> bytes:
        """The whole request body (a small one: the spec's JSON and form bodies)."""
        chunks = []
        async for batch in self.body():
            chunks.extend(batch)
        return b"".join(chunks)

    async def json(self) -> Any:
        """The JSON body (validated by now), or None when there is none."""
        raw = await self.content()
        return COMPACT_JSON.loads(raw) if raw else None

    async def form(self) -> dict[str, str]:
        """A form body's fields (validated by now); of a repeated field, its last value. As
        werkzeug reads one: a body that is not UTF-8 holds no field, and an escape that
        is not is kept as it was spelled."""
        try:
            text = (await self.content()).decode()
        except UnicodeDecodeError:
            return {}
        return dict(parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"))

    # -- the request body --------------------------------------------------------------

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None

    def has_body(self) -> bool:
        return (
            bool(self.content_length)
            or "chunked" in self.headers.get("transfer-encoding", "").lower()
        )

    async def body(self, batch_bytes: int = BATCH_BYTES) -> AsyncGenerator[list[bytes], None]:
        """The request body in batches of about `batch_bytes`, each a list of the pieces
        the server handed over (not joined: the writer takes them as they are).

        Raises RequestTimeout when no byte arrives for the idle time and Disconnected when
        the client goes away; what came before was yielded already.
        """
        pieces: list[bytes] = []
        size = 0
        more = True
        with Idle(self.idle_seconds) as idle:
            while more:
                try:
                    message = await idle.receive(self._receive)
                except RequestTimeout:
                    if pieces:
                        yield pieces
                    raise
                if message["type"] == "http.disconnect":
                    if pieces:
                        yield pieces
                    raise Disconnected()
                chunk = message.get("body", b"")
                more = message.get("more_body", False)
                if chunk:
                    pieces.append(chunk)
                    size += len(chunk)
                if size >= batch_bytes or (not more and pieces):
                    yield pieces
                    pieces, size = [], 0

    async def write_body(self, write: Callable[[list[bytes]], None]) -> None:
        """Hand every batch of the body to `write`, on a worker thread, one write in flight
        while the next batch arrives. Raises as `body` does, after the last write ended."""
        pending: asyncio.Future[None] | None = None
        try:
            async with contextlib.aclosing(self.body()) as batches:
                async for batch in batches:
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(self.run(write, batch))
        finally:
            if pending is not None:
                await pending

    # -- the response ------------------------------------------------------------------

    async def reply(self, reply: Reply) -> None:
        """Answer with `(body, status, headers)`: a dict as a line of compact JSON, text as
        UTF-8, None as no body."""
        body, status, headers = reply
        if isinstance(body, dict):
            raw = COMPACT_JSON.dumps(body).encode()
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = body or b""
        await self.respond(status, headers, raw)

    async def respond(
        self, status: int, headers: Mapping[str, str], body: bytes = b"", *, more: bool = False
    ) -> None:
        """Start the response (and end it, unless `more` body follows via `send_body`)."""
        raw = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]
        bodiless = status in (204, 304)
        if not (more or bodiless) and b"content-length" not in {k for k, _ in raw}:
            raw.append((b"content-length", str(len(body)).encode()))
        await self._send({"type": "http.response.start", "status": status, "headers": raw})
        self.started = True
        self.status = status
        if not more:
            await self._send({"type": "http.response.body", "body": body})

    async def send_chunks(self, chunks: Iterator[bytes], allowance: Allowance | None = None) -> int:
        """Send every chunk of `chunks` (read on a worker thread, one read ahead), then end
        the response; how many bytes were handed to the server.

        With `allowance`, each piece goes only once `allowance(bytes sent with it)` says
        so; when it says no, the response ends short there (a link's resume whose budget
        was spent meanwhile by another).

        A client that reads nothing for the idle time is dropped. One that goes away is
        noticed (its `http.disconnect`) and nothing more is read for it: uvicorn takes
        what is sent after a disconnect without a word, so the count would be the whole
        body, and the rest of the file would be read for no one.
        """
        done = object()

        def next_chunk() -> Any:
            return next(chunks, done)

        sent = 0
        upcoming: asyncio.Future[Any] | None = None
        gone = asyncio.ensure_future(self._until_disconnect())
        try:
            with Idle(self.idle_seconds) as idle:
                upcoming = asyncio.ensure_future(self.run(next_chunk))
                while not gone.done():
                    chunk = await upcoming
                    if chunk is done:
                        await idle.guard(self._send({"type": "http.response.body", "body": b""}))
                        break
                    upcoming = asyncio.ensure_future(self.run(next_chunk))
                    # In slices: the server buffers what a message holds until the client
                    # takes it, so a reader that stalls keeps one slice, not a whole chunk.
                    view = memoryview(chunk)
                    for start in range(0, len(view), SEND_SLICE):
                        if gone.done():
                            break
                        piece = view[start : start + SEND_SLICE]
                        if allowance is not None and not await allowance(sent + len(piece)):
                            log.info("download ended short: no more bytes allowed")
                            return sent
                        await idle.guard(
                            self._send(
                                {"type": "http.response.body", "body": piece, "more_body": True}
                            )
                        )
                        sent += len(piece)
        except TimeoutError:
            log.info("download dropped: the client read nothing for %gs", self.idle_seconds)
        except Exception:
            # Too late for a problem response: the client sees the body end short.
            log.exception("download failed midway")
        finally:
            gone.cancel()
            if upcoming is not None and not upcoming.done():
                # The read ahead may still be inside the generator: closing it meanwhile
                # would fail ("generator already executing") and leave it open.
                with contextlib.suppress(Exception):
                    await upcoming
            close = getattr(chunks, "close", None)
            if close is not None:
                await self.run(close)
        return sent

    async def _until_disconnect(self) -> None:
        """Return when the client has gone away (whatever body it still sends is dropped)."""
        while (await self._receive())["type"] != "http.disconnect":
            pass


class Idle:
    """One idle timer for a whole body or download: `guard(aw)` awaits `aw`, raising
    TimeoutError when a single wait lasts `seconds`.

    `asyncio.wait_for` around every message (64 KiB each) made a Task and a timer per
    message, a good part of the event loop's time on a fast upload; here a message costs
    two clock reads, and the one timer re-arms itself only when it comes due.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._since: float | None = None  # when the current wait began (None: not waiting)
        self._fired = False
        self._timer: asyncio.TimerHandle | None = None

    def __enter__(self) -> Idle:
        self._timer = self._loop.call_later(self.seconds, self._check)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _check(self) -> None:
        since = self._since
        due = self.seconds if since is None else since + self.seconds - self._loop.time()
        if due <= 0 and self._task is not None:
            self._fired = True
            self._task.cancel()
        else:
            self._timer = self._loop.call_later(due, self._check)

    async def guard(self, awaitable: Awaitable[T]) -> T:
        # As asyncio.timeout does: the cancel is ours when taking it back leaves the task
        # with no more cancels than it had when the wait began (another one still counts).
        task = self._task
        pending = task.cancelling() if task is not None else 0
        self._since = self._loop.time()
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._fired and task is not None:
                self._fired = False
                if task.uncancel() <= pending:
                    raise TimeoutError from None
            raise
        finally:
            self._since = None
            if self._fired and task is not None:
                # The awaited call swallowed our cancel: take it back, it is spent.
                self._fired = False
                task.uncancel()

    async def receive(self, receive: Receive) -> Message:
        """The next message of a request body; 408 when none comes within the idle time."""
        try:
            return await self.guard(receive())
        except TimeoutError:
            raise RequestTimeout(
                f"No byte of the body arrived for {self.seconds:g} seconds."
            ) from None


def streaming_handler(operation_id: str | None) -> Handler | None:
    """The coroutine function the spec names for `operation_id`, if it is one."""
    if not operation_id:
        return None
    return _resolve(operation_id)


@functools.cache
def _resolve(operation_id: str) -> Handler | None:
    try:
        fn = pkgutil.resolve_name(operation_id)
    except (ImportError, AttributeError, ValueError):
        return None
    return fn if inspect.iscoroutinefunction(fn) else None


class Seen:
    """When this process last moved each account's `last_seen_at`: an account's requests
    write it at most once a minute per process (and the UPDATE's own condition keeps it to
    once a minute across them), so a request costs a dictionary lookup, not a write."""

    EVERY_SECONDS = users.SEEN_EVERY.total_seconds()
    MAX_ENTRIES = 50_000

    def __init__(self) -> None:
        self._at: dict[str, float] = {}

    def due(self, user: str) -> bool:
        """Whether `user`'s last_seen_at is due a write (and, if so, take the turn)."""
        now = time.monotonic()
        last = self._at.get(user)
        if last is not None and now - last < self.EVERY_SECONDS:
            return False
        if len(self._at) >= self.MAX_ENTRIES:  # bounded: forget the turns that are over
            self._at = {u: t for u, t in self._at.items() if now - t < self.EVERY_SECONDS}
        self._at[user] = now
        return True


class StreamingOperations(HttpMiddleware):
    """ASGI middleware after validation: runs streaming operations (see the module doc)."""

    def __init__(self, app: ASGIApp, runtime: Runtime):
        super().__init__(app)
        self.runtime = runtime
        self.seen = Seen()

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        routing = scope.get("extensions", {}).get("connexion_routing", {})
        handler = streaming_handler(routing.get("operation_id"))
        if handler is None:
            await self.app(scope, receive, send)  # no operation: Connexion's own answer
            return
        exchange = Exchange(scope, receive, send, self.runtime)
        try:
            await handler(exchange)
            # After the answer: a login (rare, throttled: always), or a request that
            # succeeded with a token (so it held), once a minute per account.
            if (exchange.status or 500) < 400:
                if exchange.seen:
                    await self._touch(exchange, exchange.seen)
                elif exchange.user and self.seen.due(exchange.user):
                    await self._touch(exchange, exchange.user)
        finally:
            await exchange.aclose()

    async def _touch(self, exchange: Exchange, who: str) -> None:
        try:
            await exchange.run(users.touch_seen, exchange.session, uuid.UUID(who))
        except Exception as exc:  # only bookkeeping: never the request's failure
            log.warning("last_seen_at not recorded: %s", exc)
            await exchange.run(exchange.session.rollback)
