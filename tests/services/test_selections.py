"""Pieces of a multi-file link's Download all that need no server: how its chunks go out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.services.selections import SMALL, coalesced
from app.storage.base import CHUNK_SIZE

SIZES = st.sampled_from([0, 1, 30, 46, 5_000, SMALL - 1, SMALL, 70_000, CHUNK_SIZE])


@given(st.lists(SIZES, max_size=30))
def test_small_chunks_go_out_joined_and_nothing_is_lost(sizes):
    chunks = [bytes([n % 251]) * size for n, size in enumerate(sizes)]
    out = list(coalesced(iter(chunks)))
    assert b"".join(out) == b"".join(chunks)
    assert all(len(chunk) <= SMALL + CHUNK_SIZE for chunk in out)
    # Every chunk but the last is at least SMALL: no header goes out alone.
    assert all(len(chunk) >= SMALL for chunk in out[:-1])
