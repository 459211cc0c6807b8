"""File names: which ones `check_name` accepts, how client filenames are cleaned, and the
media type a name's bytes are given."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import InvalidInput
from app.services.names import (
    FALLBACK_NAME,
    MAX_NAME,
    archive_name,
    check_name,
    content_type_for,
    from_client_filename,
)

NFC_CAFE = "caf\u00e9.txt"
NFD_CAFE = "cafe\u0301.txt"


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "report.pdf",
        "holiday photo (1).jpg",
        "résumé 📄.txt",
        ".hidden",
        " leading space",
        "名前.txt",
        "x" * MAX_NAME,
        "10:30 meeting.txt",  # a colon, but no drive
        "תמונה.jpg",  # right-to-left text needs no control characters
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.txt",  # Persian needs its ZWNJ
        "क्\u200dष.txt",  # a joiner after a virama
        "👩\u200d💻.png",  # an emoji ZWJ sequence
        "🏳\ufe0f\u200d🌈.txt",
        "❤\ufe0f.txt",  # a variation selector after the emoji it styles
        "1\ufe0f\u20e3.txt",  # keycap
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f.png",  # a flag
        NFC_CAFE,
    ],
)
def test_check_name_returns_an_acceptable_name_unchanged(name):
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "1 to 255"),
        ("x" * (MAX_NAME + 1), "1 to 255"),
        (".", "'.' or '..'"),
        ("..", "'.' or '..'"),
        ("a/b", "cannot contain"),
        ("/", "cannot contain"),
        ("a\\b", "cannot contain"),
        ("a\x00b", "cannot contain"),
        ("tab\there", "cannot contain"),
        ("new\nline", "cannot contain"),
        ("del\x7f", "cannot contain"),
        ("c1\x85", "cannot contain"),
        ("c1\x9f", "cannot contain"),
        ("two\u2028lines.txt", "line separators"),
        ("para\u2029graph.txt", "line separators"),
        # What only serves to pass one name off as another:
        ("invoice\u202efdp.exe", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("\u202aa.txt", "U+202A (LEFT-TO-RIGHT EMBEDDING)"),
        ("a\u202bb", "bidirectional"),
        ("a\u202cb", "bidirectional"),
        ("a\u202db", "bidirectional"),
        ("a\u2066b\u2069", "U+2066 (LEFT-TO-RIGHT ISOLATE)"),
        ("a\u2067b", "bidirectional"),
        ("a\u2068b", "bidirectional"),
        ("report\u200e.pdf", "U+200E (LEFT-TO-RIGHT MARK)"),
        ("\u200freport.pdf", "bidirectional"),
        ("\u061creport.pdf", "U+061C (ARABIC LETTER MARK)"),
        ("pay\u200bpal.pdf", "U+200B (ZERO WIDTH SPACE)"),
        ("pay\u200cpal.pdf", "U+200C (ZERO WIDTH NON-JOINER)"),  # between ASCII: no use
        ("pay\u200dpal.pdf", "U+200D (ZERO WIDTH JOINER)"),
        ("👩\u200d", "ZERO WIDTH JOINER"),  # joins nothing
        ("report\u2060.pdf", "U+2060 (WORD JOINER)"),
        ("\ufeffreport.pdf", "U+FEFF (ZERO WIDTH NO-BREAK SPACE)"),
        ("pay\u00adpal.pdf", "U+00AD (SOFT HYPHEN)"),
        ("a\ufe0f.txt", "VARIATION SELECTOR-16"),  # ASCII letters take no variation
        ("x\U000e0067.txt", "TAG LATIN SMALL LETTER G"),  # hidden text, not a flag
        ("\u3164", "HANGUL FILLER"),
        ("\ud800.txt", "U+D800: a lone surrogate"),  # a JSON escape can carry one
        ("   ", "only spaces"),
        ("\u3000\u00a0", "only spaces"),
        ("\u2800", "only spaces"),
        ("...", "end with a dot or a space"),
        ("trailing dot.", "end with a dot or a space"),
        ("report.pdf ", "end with a dot or a space"),
        (" spaced ", "end with a dot or a space"),
        ("report.pdf\u00a0", "end with a dot or a space"),
        ("C:report.txt", "drive letter such as 'C:'"),
        ("z:", "drive letter such as 'z:'"),
    ],
)
def test_check_name_refuses_with_a_reason(name, why):
    with pytest.raises(InvalidInput) as caught:
        check_name(name)
    assert why in caught.value.detail
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/abs/path/file.txt", "file.txt"),
        ("C:\\dir\\x.txt", "x.txt"),
        ("C:x.txt", "x.txt"),  # drive-relative, still a path
        ("report.pdf.", "report.pdf"),  # Windows drops trailing dots and spaces
        ("report.pdf . .", "report.pdf"),
        ("...", FALLBACK_NAME),
        ("two\u2028lines.txt", "twolines.txt"),  # a line break, like "\n"
        (NFD_CAFE, NFC_CAFE),
        ("mixed/dirs\\and.txt", "and.txt"),
        ("  padded.txt  ", "padded.txt"),
        ("bell\x07.txt", "bell.txt"),
        ("new\nline.txt", "newline.txt"),
        ("résumé 📄.txt", "résumé 📄.txt"),
        (None, FALLBACK_NAME),
        ("", FALLBACK_NAME),
        ("   ", FALLBACK_NAME),
        (".", FALLBACK_NAME),
        ("..", FALLBACK_NAME),
        ("dir/", FALLBACK_NAME),
        ("dir/..", FALLBACK_NAME),
        ("\x00\x01", FALLBACK_NAME),
    ],
)
def test_from_client_filename(raw, expected):
    assert from_client_filename(raw) == expected


def test_long_filename_keeps_its_extension():
    name = from_client_filename("a" * 300 + ".tar.gz")
    assert len(name) == MAX_NAME
    assert name.endswith("a.gz")


def test_long_filename_without_a_short_extension_is_cut():
    name = from_client_filename("b" * 300 + "." + "c" * 20)
    assert name == ("b" * 300 + "." + "c" * 20)[:MAX_NAME]


@pytest.mark.parametrize(
    "raw",
    ["../../etc/passwd", "C:\\x\\y", "a\x00b", "x" * 1000, "..", "\t", "ok.txt", "dir/\x1f."],
)
def test_from_client_filename_always_gives_an_acceptable_name(raw):
    assert check_name(from_client_filename(raw)) == from_client_filename(raw)


@given(st.text(max_size=400))
def test_any_client_filename_becomes_an_acceptable_name_or_is_refused(raw):
    try:
        name = from_client_filename(raw)
    except InvalidInput as refused:
        assert "cannot contain" in refused.detail
        return
    assert check_name(name) == name
    assert "/" not in name
    assert "\\" not in name


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("invoice\u202efdp.exe", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("dir/pay\u200bpal.pdf", "U+200B (ZERO WIDTH SPACE)"),
        ("report\u2066.pdf", "U+2066"),
        ("\ufeffreport.pdf", "U+FEFF"),
    ],
)
def test_a_disguised_client_filename_is_refused_not_stripped(raw, why):
    with pytest.raises(InvalidInput) as caught:
        from_client_filename(raw)
    assert why in caught.value.detail
    assert caught.value.status == 400


def test_both_spellings_of_a_name_are_one_name():
    assert unicodedata.is_normalized("NFD", NFD_CAFE) and NFD_CAFE != NFC_CAFE
    assert check_name(NFD_CAFE) == check_name(NFC_CAFE) == NFC_CAFE
    assert from_client_filename(NFD_CAFE) == NFC_CAFE


def test_a_name_that_normalises_within_the_limit_is_accepted():
    # 200 decomposed é are 400 code points, 200 once composed.
    assert check_name("e\u0301" * 200) == "\u00e9" * 200


@given(st.text(min_size=1, max_size=MAX_NAME))
def test_check_name_gives_nfc_or_refuses(raw):
    try:
        name = check_name(raw)
    except InvalidInput:
        return
    assert unicodedata.is_normalized("NFC", name)
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("stored", "entry"),
    [
        ("report.pdf", "report.pdf"),
        (NFD_CAFE, NFC_CAFE),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("pay\u200bpal .pdf.", "paypal .pdf"),
        ("\u202e", FALLBACK_NAME),
    ],
)
def test_archive_name_cleans_names_stored_before_these_rules(stored, entry):
    assert archive_name(stored) == entry


@pytest.mark.parametrize(
    ("name", "declared", "stored"),
    [
        ("photo.png", "Image/PNG; charset=x", "image/png"),  # the client's, plain
        ("notes.md", "text/markdown", "text/markdown"),
        ("notes.txt", None, "text/plain"),  # missing: a guess from the name
        ("notes.txt", "application/octet-stream", "text/plain"),  # generic: a guess
        ("notes.txt", "text/plain\r\nX-Evil: 1", "text/plain"),  # no media type: a guess
        ("caf\u00e9.txt", "t\u00e9xt/plain", "text/plain"),
        ("data", "", "application/octet-stream"),  # nothing to guess from
    ],
)
def test_content_type_is_the_clients_plain_one_else_a_guess(name, declared, stored):
    assert content_type_for(name, declared) == stored
