"""The strict base64url codec, and the share tokens and download grants decoded with it:
each byte string has exactly one spelling, and nothing else decodes."""

from __future__ import annotations

import base64
import string
import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import NotFound
from app.services import base64url, grants, shares

SECRET = "s" * 40
ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


@given(st.binary(max_size=120))
def test_every_encoding_decodes_to_its_bytes(raw):
    text = base64url.encode(raw)
    assert len(text) == base64url.encoded_length(len(raw))
    assert base64url.decode(text) == raw
    assert base64url.decode(text, size=len(raw)) == raw


@given(st.binary(min_size=1, max_size=64), st.data())
def test_no_other_spelling_decodes(raw, data):
    text = base64url.encode(raw)
    at = data.draw(st.integers(0, len(text)))
    stray = data.draw(st.sampled_from(["\\", ".", "=", "%", " ", "\n", "+", "/", "é", "٣"]))
    others = [
        text[:at] + stray + text[at:],
        text + "=" * (-len(text) % 4 or 4),
        base64.urlsafe_b64encode(raw).decode() + "=",
        text[:-1] + ALPHABET[ALPHABET.index(text[-1]) ^ 1],  # a bit no byte uses, or a byte
    ]
    for other in others:
        try:
            decoded = base64url.decode(other)
        except ValueError:
            continue
        # Only a spelling of other bytes may decode (a flipped bit that is a byte's).
        assert decoded != raw and base64url.encode(decoded) == other


@pytest.mark.parametrize("text", ["", "A", "AAAAA", "AB", "AAE", "AAAA=", "AA==", "AA\n", "A A"])
def test_malformed_or_uncanonical_text_is_refused(text):
    with pytest.raises(ValueError):
        base64url.decode(text, size=1)


def test_the_size_is_exact():
    text = base64url.encode(b"x" * 32)
    with pytest.raises(ValueError):
        base64url.decode(text, size=31)
    with pytest.raises(ValueError):
        base64url.decode(text[:-1], size=32)


# --- share tokens ---------------------------------------------------------------------------


def test_a_share_token_names_its_link_in_one_spelling_only():
    share_id = uuid.uuid4()
    token = shares.token(SECRET, share_id)
    assert len(token) == 43
    assert shares.share_id_of(SECRET, token) == share_id
    unused = token[:-1] + ALPHABET[ALPHABET.index(token[-1]) ^ 1]
    for other in (
        "\\\\" + token[:4] + "." + token[4:6] + "\\" + token[6:],
        token + "=",
        unused,
        token.swapcase(),
        token[:-1],
        token + "A",
        shares.token("another secret", share_id),
    ):
        with pytest.raises(NotFound):
            shares.share_id_of(SECRET, other)


# --- download grants ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grant",
    [
        grants.Grant("share", uuid.uuid4(), False, 2_000_000_000),
        grants.Grant("file", uuid.uuid4(), True, 2_000_000_000, 3, uuid.uuid4().hex),
    ],
    ids=["share", "file"],
)
def test_a_grant_decodes_in_one_spelling_only(grant):
    text = grants.encode(SECRET, grant)
    assert grants.decode(SECRET, text, now=time.time()) == grant
    others = [
        text + "=" * (-len(text) % 4),
        text + "=",
        "." + text,
        text[:10] + "\\" + text[10:],
        text[:-1] + ALPHABET[ALPHABET.index(text[-1]) ^ 1],
    ]
    for other in others:
        if other == text:
            continue
        with pytest.raises(NotFound):
            grants.decode(SECRET, other)
