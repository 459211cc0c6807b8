"""The HTTP/1.1 protocol the API is served with: uvicorn's httptools one, less two copies.

uvicorn appends every piece of a request body to a bytearray and hands the app `bytes()`
of it: each byte of an upload copied twice on the event loop, the thread every upload
shares. A piece that arrives while none is waiting is kept here as the bytes object
httptools made (whose `bytes()` is itself), and only pieces that pile up between two reads
of the app are joined. Both `dev` and `serve` (through `Worker`) use it; without httptools,
uvicorn's own choice stands.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker

try:
    from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is part of connexion[uvicorn]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


if HttpToolsProtocol is not None:

    class BodyProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, handing body pieces on as they came."""

        def on_body(self, body: bytes) -> None:
            cycle = self.cycle
            if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
                return
            if cycle.body:
                cycle.body += body  # pieces that piled up: joined, as uvicorn does
            else:
                cycle.body = body  # type: ignore[assignment] # read with bytes(): no copy
            if len(cycle.body) > HIGH_WATER_LIMIT:
                self.flow.pause_reading()
            cycle.message_event.set()

    HTTP: Any = BodyProtocol
else:  # pragma: no cover
    HTTP = "auto"


class Worker(UvicornWorker):
    """gunicorn's uvicorn worker, serving with `BodyProtocol` (`-k app.http.protocol.Worker`)."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "http": HTTP}
