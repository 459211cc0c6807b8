"""Parsing a Range header on its own (`app.http.ranges`): no server, no database."""

from __future__ import annotations

import pytest

from app.errors import RangeNotSatisfiable
from app.http import ranges


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-0", 10, (0, 1)),
        ("bytes=-1", 10, (9, 1)),
        ("bytes=-20", 10, (0, 10)),
        ("bytes=3-", 10, (3, 7)),
        ("bytes=3-100", 10, (3, 7)),
        ("BYTES = 2 - 4", 10, (2, 3)),
        ("bytes=5-2", 10, None),
        ("bytes=-", 10, None),
        ("bytes=0-1,3-4", 10, None),
        ("lines=0-1", 10, None),
    ],
)
def test_parse_range(header, size, expected):
    assert ranges.parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0)])
def test_parse_range_unsatisfiable(header, size):
    with pytest.raises(RangeNotSatisfiable) as caught:
        ranges.parse_range(header, size)
    assert caught.value.headers["Content-Range"] == f"bytes */{size}"
