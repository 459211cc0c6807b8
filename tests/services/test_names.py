"""File names: which ones `check_name` accepts, and how client filenames are cleaned."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import InvalidInput
from app.services.names import FALLBACK_NAME, MAX_NAME, check_name, from_client_filename


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "report.pdf",
        "holiday photo (1).jpg",
        "résumé 📄.txt",
        "...",
        ".hidden",
        "trailing dot.",
        " spaced ",
        "名前.txt",
        "x" * MAX_NAME,
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
def test_any_client_filename_becomes_an_acceptable_name(raw):
    name = from_client_filename(raw)
    assert check_name(name) == name
    assert "/" not in name
    assert "\\" not in name
