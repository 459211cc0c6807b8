"""Building responses: JSON answers, empty ones, and the download's file name header."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

JSON = {"Content-Type": "application/json"}


def json_body(body: dict, status: int = 200, **headers: str) -> tuple[dict, int, dict[str, str]]:
    """A JSON answer (`Exchange.reply` writes it); the type is always named."""
    return body, status, {**JSON, **headers}


def empty(status: int, headers: Mapping[str, str]) -> tuple[None, int, Mapping[str, str]]:
    """A response without a body, and so without a media type."""
    return None, status, headers


# A 204 has no body, so it names no media type (it used to carry the problem type Connexion
# gave operations whose only declared body is an error's).
NO_CONTENT: tuple[None, int, dict[str, str]] = (None, 204, {})


def content_disposition(filename: str, kind: str = "attachment") -> str:
    """`attachment` (or `inline`) with an ASCII fallback and the exact UTF-8 name (RFC 6266
    / 8187)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
