"""The tus 1.0 protocol layer: its headers parsed and sent, and unbuffered PATCH bodies.

The rules of resumable uploads (offsets, parts, quotas) live in
`app.services.resumable_uploads`; this module only speaks the protocol.

`TusProtocol` wraps the whole app (outside Connexion's exception handling, so error
responses get `Tus-Resumable` too): it honours `X-HTTP-Method-Override` and answers 412
to a tus request (POST, HEAD, PATCH, DELETE) under /uploads without `Tus-Resumable: 1.0.0`.
Bodies are read by the handlers on the event loop (app.http.streaming).

`TusBodyValidator` is the body "validator" for `application/offset+octet-stream`: there
is nothing to validate, and Connexion's default would read the body into memory.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from connexion.validators import AbstractRequestBodyValidator
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import InvalidInput, UnsupportedMediaType
from app.http.middleware import HttpMiddleware, rewriting_start
from app.services.part_stream import CHECKSUMS, Checksum, Chunk

VERSION = "1.0.0"
EXTENSIONS = ("creation", "creation-with-upload", "termination", "checksum", "expiration")
CONTENT_TYPE = "application/offset+octet-stream"
MAX_METADATA_PAIRS = 32

OVERRIDABLE = {"HEAD", "PATCH", "DELETE", "POST", "OPTIONS", "GET"}
# The methods tus defines a request for; any other is left to routing (405, Allow).
VERSIONED = {"HEAD", "PATCH", "DELETE", "POST"}


class TusProtocol(HttpMiddleware):
    """Protocol-level rules for every request under `prefix`; see the module docstring."""

    def __init__(self, app: ASGIApp, prefix: str):
        super().__init__(app)
        self.prefix = prefix.rstrip("/")

    def _applies(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._applies(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        override = headers.get("x-http-method-override", "").strip().upper()
        if override in OVERRIDABLE:
            scope = {**scope, "method": override}
        if scope["method"] in VERSIONED and headers.get("tus-resumable") != VERSION:
            await self._version_mismatch(headers.get("tus-resumable"), send)
            return

        await self.app(scope, receive, rewriting_start(send, _versioned))

    async def _version_mismatch(self, offered: str | None, send: Send) -> None:
        detail = (
            "Send Tus-Resumable: 1.0.0 with every tus request."
            if offered is None
            else f"tus version {offered!r} is not supported; this server speaks {VERSION}."
        )
        body = json.dumps(
            {
                "type": "/problems/precondition-failed",
                "title": "Precondition Failed",
                "status": 412,
                "detail": detail,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 412,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"tus-resumable", VERSION.encode()),
                    (b"tus-version", VERSION.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class TusBodyValidator(AbstractRequestBodyValidator):
    """Passes `application/offset+octet-stream` bodies through unread; see the module docstring."""

    def __init__(self, *, schema: dict, strict_validation: bool, **kwargs: Any):
        super().__init__(schema=schema, strict_validation=strict_validation, **kwargs)

    async def wrap_receive(self, receive: Receive, *, scope: Scope) -> tuple[Receive, Scope]:
        return receive, scope


def parse_chunk(headers: Mapping[str, str], offset: int, content_length: int | None) -> Chunk:
    """What a request's headers say of the bytes it brings from `offset` (400 for a bad
    `Upload-Checksum`)."""
    return Chunk(offset, content_length, parse_checksum(headers.get("Upload-Checksum")))


def parse_checksum(header: str | None) -> Checksum | None:
    """`Upload-Checksum: <algorithm> <base64 digest>`; 400 for an unknown algorithm."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUMS:
        raise InvalidInput(
            f"Upload-Checksum algorithm {algorithm!r} is not supported; "
            f"use one of {', '.join(CHECKSUMS)}."
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("The Upload-Checksum digest is not valid base64.") from None
    if len(digest) != CHECKSUMS[algorithm]().digest_size:
        raise InvalidInput(f"The Upload-Checksum digest is not a {algorithm} digest.")
    return Checksum(algorithm, digest)


def parse_metadata(header: str | None) -> dict[str, str | None]:
    """`Upload-Metadata`: comma-separated `key base64value` pairs (the value may be absent)."""
    metadata: dict[str, str | None] = {}
    if not header or not header.strip():
        return metadata
    pairs = header.split(",")
    if len(pairs) > MAX_METADATA_PAIRS:
        raise InvalidInput(f"Upload-Metadata may have at most {MAX_METADATA_PAIRS} pairs.")
    for pair in pairs:
        key, _, encoded = pair.strip().partition(" ")
        if not key or " " in encoded.strip() or key in metadata:
            raise InvalidInput(f"Upload-Metadata has a malformed or repeated pair {pair!r}.")
        if not encoded.strip():
            metadata[key] = None
            continue
        try:
            metadata[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise InvalidInput(
                f"Upload-Metadata value for {key!r} is not base64-encoded UTF-8."
            ) from None
    return metadata


def check_content_type(header: str | None) -> None:
    """PATCH bodies must say they are `application/offset+octet-stream` (415 otherwise)."""
    if (header or "").split(";", 1)[0].strip().lower() != CONTENT_TYPE:
        raise UnsupportedMediaType(f"A tus PATCH body must be sent as {CONTENT_TYPE}.")


def _versioned(headers: MutableHeaders) -> None:
    headers["Tus-Resumable"] = VERSION
