"""Base64url without padding, with exactly one spelling for every byte string.

What the service puts in a URL (a share link's token, a download grant) is these bytes'
encoding, and it accepts back only that spelling. Python's `urlsafe_b64decode` is lenient:
it drops characters outside the alphabet (`\\`, `.`, `%`…), takes padding, and ignores the
unused low bits of the last character, so one token would have countless spellings, and
a page that showed the token as it was sent would show whatever was slipped into it.
"""

from __future__ import annotations

import base64
import binascii
import re

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def encode(raw: bytes) -> str:
    """`raw` as base64url, unpadded: the one spelling `decode` takes."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def encoded_length(size: int) -> int:
    """How many characters `encode` makes of `size` bytes."""
    return (size * 4 + 2) // 3


def decode(text: str, *, size: int | None = None) -> bytes:
    """The bytes `text` encodes, if it is exactly `encode`'s spelling of them (and `size`
    bytes long, when given); ValueError for any other text."""
    if size is not None and len(text) != encoded_length(size):
        raise ValueError("not the length of an encoding of that many bytes")
    if len(text) % 4 == 1 or not _ALPHABET.fullmatch(text):
        raise ValueError("not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None
    # The last character may carry bits no byte uses; only the spelling with them clear is
    # the encoding (`AB` and `AC` would both decode to b"\x00").
    if encode(raw) != text:
        raise ValueError("not the canonical spelling")
    return raw
