"""The HTTP/1.1 protocol the API is served with: uvicorn's httptools one, with limits on a
request's head and two copies fewer on its body.

Head limits: httptools (llhttp) has none, and uvicorn sets none on it, so a client could
send a header of any size, or any number of them, and the server kept them all in memory.
Past the limits below the request is answered `431 Request Header Fields Too Large` (or
`414 URI Too Long` for its target) as problem+json, and the connection is closed. They are
those of Apache, gunicorn and nginx (8 KiB a line, 100 fields; nginx keeps 32 KiB for a
whole head), far above anything this API's clients send (a bearer token, tus metadata of
one file name).

Bodies: uvicorn copies each byte of an upload twice on the event loop; the protocol this
one builds on, `app.overrides.uvicorn.UncopiedBodies`, hands body pieces on as they came.

Both `dev` and `serve` (through `Worker`) use it. It needs httptools (part of
`connexion[uvicorn]`): uvicorn's own fallback, h11, would serve without these limits.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus

import httptools
from uvicorn_worker import UvicornWorker

from app.errors import problem_type
from app.overrides.uvicorn import UncopiedBodies

# The largest request target (path and query), in bytes.
MAX_TARGET_BYTES = 8 * 1024
# The most header fields one request may carry.
MAX_HEADER_FIELDS = 100
# The largest header field, `Name: value` (as Apache's LimitRequestFieldSize, 8190).
MAX_HEADER_FIELD_BYTES = 8 * 1024
# The largest request head: request line and every header field with its line end.
MAX_HEAD_BYTES = 32 * 1024
# How long a request's head may take to arrive, from the connection's opening or its first
# byte: a client trickling a head (or opening a connection and sending nothing) would
# otherwise hold a connection, and a file descriptor, for ever ("slowloris"). Apache's
# mod_reqtimeout allows 20-40 s, nginx 60 s.
HEAD_SECONDS = 30.0
# After refusing a head: how long, and how much more of the request, to read and drop.
LINGER_SECONDS = 2.0
LINGER_BYTES = 4 * 1024 * 1024


TOO_LARGE = (HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request Header Fields Too Large")
TOO_LONG = (HTTPStatus.REQUEST_URI_TOO_LONG, "URI Too Long")  # RFC 9110's name for 414
TOO_SLOW = (HTTPStatus.REQUEST_TIMEOUT, "Request Timeout")


def _kib(size: int) -> str:
    return f"{size // 1024} KiB ({size:,} bytes)"


_TOTAL = f"A request's headers may total at most {_kib(MAX_HEAD_BYTES)}."


class HeadRefused(Exception):
    """A request head past one of the limits: what to answer (raised to stop the parser)."""

    def __init__(self, answer: tuple[HTTPStatus, str], detail: str):
        super().__init__(detail)
        self.status, self.title = answer
        self.detail = detail


class HTTPProtocol(UncopiedBodies):
    """uvicorn's httptools protocol, with head limits, handing body pieces on as they came."""

    # Where the parser is: reading a head (or waiting for one), or past it (in a body).
    _in_head = True
    # Bytes of the current head seen so far, while it is incomplete.
    _head_bytes = 0
    _target_bytes = 0
    # After a refusal: what the client still sends is read and dropped, for a while.
    _lingering = False
    _discarded = 0
    # Closes the connection when a head takes longer than HEAD_SECONDS to arrive.
    _head_timer: asyncio.TimerHandle | None = None
    _head_begun = False

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(HEAD_SECONDS, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._lingering:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind an answer still being sent: its time starts once
            # that answer is done (the connection is busy, not idle).
            self._arm_head_timer()
            return
        if not self._head_begun:
            self.transport.close()  # nothing asked: close, as an idle keep-alive is
            return
        self._refuse(
            HeadRefused(TOO_SLOW, f"A request's head must arrive within {HEAD_SECONDS:g} seconds.")
        )

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._discarded += len(data)
            if self._discarded > LINGER_BYTES:
                self.transport.close()
            return
        was_in_head = self._in_head
        self._completed = False
        try:
            self._unset_keepalive_if_required()
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            refused = exc.__context__
            if isinstance(refused, HeadRefused):
                self._refuse(refused)
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head:
            # A head still incomplete: bound what the parser holds of it. A chunk that
            # began inside a head is all head; one where another message ended first is
            # counted from the next chunk on (at most one read's worth more is held).
            if was_in_head and not self._completed:
                self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(HeadRefused(TOO_LARGE, _TOTAL))

    def _refuse(self, refused: HeadRefused) -> None:
        status, title = int(refused.status), refused.title
        body = json.dumps(
            {
                "type": problem_type(title),
                "title": title,
                "status": status,
                "detail": refused.detail,
            }
        ).encode()
        self.logger.info("%d %s: %s", status, title, refused.detail)
        head = [f"HTTP/1.1 {status} {title}\r\n".encode()]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/problem+json\r\n")
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        # Closing now, with the rest of the request unread, would reset the connection,
        # and the client would likely never read the answer. As nginx does ("lingering
        # close"): send it and the end of our side, drop what still comes for a moment,
        # then close.
        self._lingering = True
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._target_bytes = 0
        self._head_begun = True
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._target_bytes += len(url)
        if self._target_bytes > MAX_TARGET_BYTES:
            raise HeadRefused(
                TOO_LONG,
                f"A request's path and query may be at most {_kib(MAX_TARGET_BYTES)}.",
            )
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= MAX_HEADER_FIELDS:
            raise HeadRefused(
                TOO_LARGE,
                f"A request may carry at most {MAX_HEADER_FIELDS} header fields.",
            )
        if len(name) + len(value) + 2 > MAX_HEADER_FIELD_BYTES:
            # The name only: a value may be a credential.
            shown = name[:64].decode("latin-1")
            raise HeadRefused(
                TOO_LARGE,
                f"A header field may be at most {_kib(MAX_HEADER_FIELD_BYTES)}; {shown} is longer.",
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        # The head's exact size, now that it is whole (the count in data_received may fall
        # short by a read): request line, each field and its line end, the blank line.
        size = len(self.url) + 14 + sum(len(n) + len(v) + 4 for n, v in self.headers) + 2
        if size > MAX_HEAD_BYTES:
            raise HeadRefused(TOO_LARGE, _TOTAL)
        self._in_head = False
        self._head_begun = False
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._completed = True
        super().on_message_complete()


HTTP = HTTPProtocol


class Worker(UvicornWorker):
    """gunicorn's uvicorn worker, serving with `HTTPProtocol` (`-k app.http.protocol.Worker`)."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "http": HTTP}
