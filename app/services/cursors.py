"""Keyset cursors of the sortable listings (files, and accounts for administrators): the
sort order, the last row's sort value and its id, as unpadded base64url JSON."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid

from app.errors import InvalidInput

INVALID = "The cursor is not valid for this listing; start again without it."


def encode(sort: str, value: object, row_id: uuid.UUID) -> str:
    """The cursor of the page after the row `row_id`, whose `sort` value is `value`."""
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    raw = json.dumps({"s": sort, "v": value, "id": str(row_id)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(sort: str, cursor: str, kind: type) -> tuple[object, uuid.UUID]:
    """The sort value (a `kind`: dt.datetime, str or int) and row id of a cursor made for
    `sort`; InvalidInput for any other cursor."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["s"] != sort:
            raise ValueError("cursor from another sort order")
        value = data["v"]
        if kind is dt.datetime:
            value = dt.datetime.fromisoformat(value)
            if value.tzinfo is None:  # the columns refuse naive datetimes
                raise ValueError("naive datetime")
        elif kind is str:
            if not isinstance(value, str) or "\x00" in value:
                raise ValueError("bad value")
            value.encode()  # a lone surrogate raises UnicodeEncodeError, a ValueError
        elif not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("bad value")
        return value, uuid.UUID(data["id"])
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise InvalidInput(INVALID) from None
