"""What a file may be called, and how a client's filename becomes such a name."""

from __future__ import annotations

import unicodedata

from app.errors import InvalidInput

MAX_NAME = 255
FORBIDDEN = {"/", "\\", "\x00"}
FALLBACK_NAME = "upload"


def _is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc"


def check_name(name: str) -> str:
    """The name unchanged if it is acceptable; InvalidInput saying why otherwise."""
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidInput(f"A file name must be 1 to {MAX_NAME} characters long.")
    if name in {".", ".."}:
        raise InvalidInput("A file name cannot be '.' or '..'.")
    if any(c in FORBIDDEN or _is_control(c) for c in name):
        raise InvalidInput("A file name cannot contain '/', '\\', NUL or control characters.")
    return name


def from_client_filename(raw: str | None) -> str:
    """A safe name from whatever filename the client sent (paths, controls and all)."""
    base = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if not _is_control(c)).strip()
    if cleaned in {"", ".", ".."}:
        return FALLBACK_NAME
    if len(cleaned) > MAX_NAME:
        stem, dot, ext = cleaned.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            cleaned = stem[: MAX_NAME - len(ext) - 1] + "." + ext
        else:
            cleaned = cleaned[:MAX_NAME]
    return cleaned
