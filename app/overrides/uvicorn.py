"""uvicorn's httptools protocol, handing a request body's pieces on as they came.

uvicorn appends every piece of a request body to a bytearray and hands the app `bytes()`
of it: each byte of an upload copied twice on the event loop, the thread every upload
shares. Here a piece that arrives while none is waiting is kept as the bytes object
httptools made (whose `bytes()` is itself), and only pieces that pile up between two
reads of the app are joined. `app.http.protocol.HTTPProtocol` builds on it. Guarded in
app.overrides (`check_versions`); tests/http/test_protocol.py compares the uvicorn code
this restates with the installed one.
"""

from __future__ import annotations

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class UncopiedBodies(HttpToolsProtocol):
    """uvicorn's httptools protocol, whose request bodies reach the app without copies."""

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
