"""uvicorn's httptools protocol, overridden: a request body's pieces reach the app uncopied,
and pieces that pile up between two reads of the app are joined in order."""

from __future__ import annotations

import asyncio
import socket

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.overrides.uvicorn import UncopiedBodies

HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n"


async def _bodies(protocol_class: type[HttpToolsProtocol]) -> tuple[bytes, list[bytes]]:
    """A 9-byte body given to a real protocol on a real socket: one piece, then two at once.

    The pieces go to `on_body` as httptools would hand them over; the first piece, and the
    body messages the app received.
    """
    received: list[bytes] = []
    read = asyncio.Event()

    async def app(scope, receive, send) -> None:
        while True:
            message = await receive()
            received.append(message["body"])
            read.set()
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    config = Config(app, http=protocol_class, lifespan="off", log_level="warning")
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    ours, theirs = socket.socketpair()
    with ours, theirs:
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
            lambda: protocol, ours
        )
        protocol.data_received(HEAD)
        first = bytes(bytearray(b"abc"))  # an object of its own, as httptools makes
        protocol.on_body(first)
        await asyncio.wait_for(read.wait(), 5)
        protocol.on_body(b"de")  # two pieces before the app reads again
        protocol.on_body(b"fghi")
        protocol.on_message_complete()
        while not protocol.cycle.response_complete:
            await asyncio.sleep(0.01)
        transport.close()
    return first, received


def test_a_piece_reaches_the_app_as_it_came_and_piled_up_pieces_are_joined():
    first, received = asyncio.run(_bodies(UncopiedBodies))
    assert received[0] is first  # no copy
    assert received == [b"abc", b"defghi"]
    assert all(type(body) is bytes for body in received)  # the ASGI spec: never a bytearray


def test_uvicorns_own_protocol_copies_each_piece():
    # What the override is for: without it, the app gets a copy of every piece.
    first, received = asyncio.run(_bodies(HttpToolsProtocol))
    assert received[0] == first and received[0] is not first
