"""HTTP range and conditional requests (RFC 9110 §13-14) for downloads: which bytes, which status.

Only single byte ranges are served; a multi-range, another unit or a malformed header is
ignored (the whole representation, 200), as RFC 9110 allows. `If-Range` takes a strong
ETag only (there is no Last-Modified to compare a date with), so a date means "send it all".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from app.errors import RangeNotSatisfiable

_SPEC = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Answer:
    """What to send: the status, which bytes (`start`, `length`) and the headers saying so."""

    status: int  # 200, 206 or 304
    start: int
    length: int
    headers: dict[str, str] = field(default_factory=dict)


def _etags(header: str) -> set[str]:
    return {tag.strip() for tag in header.split(",") if tag.strip()}


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """`If-None-Match` names the current ETag (weak comparison) or is `*`."""
    if if_none_match is None:
        return False
    offered = _etags(if_none_match)
    return "*" in offered or etag.removeprefix("W/") in {t.removeprefix("W/") for t in offered}


def range_still_valid(if_range: str | None, etag: str) -> bool:
    """`If-Range` absent, or naming the current ETag (strong comparison)."""
    if if_range is None:
        return True
    return not etag.startswith("W/") and if_range.strip() == etag


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (start, length) a `Range` header asks of `size` bytes; None for "all of it".

    Raises RangeNotSatisfiable (416, with `Content-Range: bytes */size`) when the one range
    asked for lies wholly past the end.
    """
    if header is None:
        return None
    match = _SPEC.match(header)
    if match is None:
        return None  # another unit, several ranges, or garbage: ignored
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        start = max(size - suffix, 0)
        return start, size - start
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid range-spec: ignored
    if start >= size:
        raise _unsatisfiable(size)
    end = min(end, size - 1)
    return start, end - start + 1


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"The range asked for lies outside the {size} bytes there are.",
        headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
    )


def answer(
    size: int,
    etag: str,
    *,
    range_header: str | None = None,
    if_range: str | None = None,
    if_none_match: str | None = None,
) -> Answer:
    """How to answer a GET/HEAD for `size` bytes with ETag `etag` given the request's headers."""
    common = {"Accept-Ranges": "bytes", "ETag": etag}
    if not_modified(if_none_match, etag):
        return Answer(304, 0, 0, common)
    wanted = parse_range(range_header, size) if range_still_valid(if_range, etag) else None
    if wanted is None:
        return Answer(200, 0, size, {**common, "Content-Length": str(size)})
    start, length = wanted
    return Answer(
        206,
        start,
        length,
        {
            **common,
            "Content-Length": str(length),
            "Content-Range": f"bytes {start}-{start + length - 1}/{size}",
        },
    )
