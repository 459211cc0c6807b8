"""Building responses: JSON answers, empty ones, and the download's file name header."""

from __future__ import annotations

from urllib.parse import quote

import flask

JSON = {"Content-Type": "application/json"}


def json_body(body: dict, status: int = 200, **headers: str) -> tuple[dict, int, dict[str, str]]:
    """A JSON answer; the spec declares several media types, so the type is named."""
    return body, status, {**JSON, **headers}


def empty(status: int, headers: dict[str, str]) -> flask.Response:
    """A response without a body, and so without a guessed media type."""
    response = flask.Response(status=status, headers=headers)
    del response.headers["Content-Type"]
    return response


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback and the exact UTF-8 name (RFC 6266 / 8187)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
