"""What a file may be called, and how a client's filename becomes such a name.

Names are kept in Unicode NFC: `café.txt` typed on one system and `cafe\u0301.txt` sent by
another (macOS spells file names decomposed) are one name, so they clash, sort and match
alike. Beyond what breaks paths (`/`, `\\`, NUL, control characters), a name may not carry
what only serves to pass it off as another name: bidirectional controls, which reorder
what is shown (`invoice\u202efdp.exe` shows as `invoiceexe.pdf`); invisible characters
(zero-width spaces, soft hyphens, fillers), which make two names look the same; line
separators; a trailing dot or space, which Windows drops on extraction; a `C:` drive
prefix. Those are refused with a reason, never stripped in silence: the uploader learns
that the name is not what it looks like. A client's *filename* (multipart, tus) is still
cleaned of what file systems and clients put there by accident: directories, a drive,
control characters, surrounding spaces and trailing dots. Beside the name, the rule for
its media type (`content_type_for`): the client's, when it is a plain one, else a guess
from the name.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata

from app.errors import InvalidInput

MAX_NAME = 255
FORBIDDEN = {"/", "\\", "\x00"}
FALLBACK_NAME = "upload"
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
# A media type as RFC 9110 spells one (type "/" subtype, each a token), at most 255 long.
MEDIA_TYPE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]{1,127}/[a-z0-9!#$%&'*+.^_`|~-]{1,127}")

# Unicode's Bidi_Control characters: each changes the order in which a name is shown.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Default_Ignorable_Code_Point (DerivedCoreProperties.txt): drawn as nothing at all.
_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)  # fmt: skip
# Invisible, but needed where they sit (see `_needed_here`).
_JOINERS = frozenset("\u200c\u200d")  # Persian, Indic scripts; emoji sequences such as 👩‍💻
_KEYCAP_BASES = frozenset("0123456789#*")  # 1️⃣ is "1", VS-16, U+20E3
# A subdivision flag (🏴 then tag letters, then CANCEL TAG) is the one use of tag characters.
_FLAG_TAGS = re.compile("\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")
_DRIVE = re.compile(r"[A-Za-z]:")
# Whitespace, dots, and the braille blank that looks like a space.
_TRAILING = re.compile("[\\s.\u2800]+\\Z")


def _is_ignorable(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _IGNORABLE)


def _is_variation_selector(char: str) -> bool:
    code = ord(char)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF or 0x180B <= code <= 0x180F


def _is_control(char: str) -> bool:
    """C0/C1 controls and Unicode's line and paragraph separators: line breaks and junk."""
    return unicodedata.category(char) in {"Cc", "Zl", "Zp"}


def _shows(char: str) -> bool:
    """A character drawn as something outside ASCII (a letter, mark, symbol, emoji...)."""
    return (
        ord(char) >= 0x80
        and not char.isspace()
        and unicodedata.category(char) not in {"Cc", "Cf", "Cs", "Zl", "Zp", "Zs"}
    )


def _needed_here(name: str, at: int, flag_tags: set[int]) -> bool:
    """Whether the invisible character at `at` does something where it stands.

    A joiner between two visible non-ASCII characters shapes a script or builds an emoji;
    a variation selector picks a glyph for the character before it (emoji and CJK take
    them; ASCII letters do not). Anywhere else they change nothing that shows.
    """
    char = name[at]
    before = name[at - 1] if at > 0 else ""
    after = name[at + 1] if at + 1 < len(name) else ""
    if char in _JOINERS:
        return bool(before and after) and _shows(before) and _shows(after)
    if _is_variation_selector(char):
        return bool(before) and (
            (_shows(before) and not _is_variation_selector(before)) or before in _KEYCAP_BASES
        )
    return at in flag_tags


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} ({name})" if name else f"U+{ord(char):04X}"


def _deceptive(name: str) -> tuple[int, str] | None:
    """(position, reason) of the first character that only serves to disguise `name`."""
    flag_tags = {
        at for match in _FLAG_TAGS.finditer(name) for at in range(match.start() + 1, match.end())
    }
    for at, char in enumerate(name):
        if char in BIDI_CONTROLS:
            return at, (
                f"{_describe(char)}: bidirectional controls change the order in which a name "
                "is shown, so one name can pass for another"
            )
        category = unicodedata.category(char)
        if category == "Cs":
            return at, f"{_describe(char)}: a lone surrogate is not text"
        if (_is_ignorable(char) or category == "Cf") and not _needed_here(name, at, flag_tags):
            return at, (
                f"{_describe(char)}: invisible and format characters make one name look "
                "like another"
            )
    return None


def check_name(name: str) -> str:
    """The name in NFC if it is acceptable; InvalidInput saying why otherwise."""
    name = unicodedata.normalize("NFC", name)
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidInput(f"A file name must be 1 to {MAX_NAME} characters long.")
    if name in {".", ".."}:
        raise InvalidInput("A file name cannot be '.' or '..'.")
    if any(c in FORBIDDEN or _is_control(c) for c in name):
        raise InvalidInput(
            "A file name cannot contain '/', '\\', NUL, control characters or line separators."
        )
    found = _deceptive(name)
    if found is not None:
        raise InvalidInput(f"A file name cannot contain {found[1]}.")
    if all(c.isspace() or c == "\u2800" for c in name):
        raise InvalidInput("A file name cannot be only spaces.")
    if _TRAILING.search(name):
        raise InvalidInput(
            "A file name cannot end with a dot or a space: Windows drops them, and the name "
            "would pass for the one without."
        )
    if _DRIVE.match(name):
        raise InvalidInput(
            f"A file name cannot start with a drive letter such as {name[:2]!r}: "
            "it is a path on Windows."
        )
    return name


def _strip_path(raw: str) -> str:
    """The last component of a client's path: no directories, drive, controls or padding."""
    base = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if not _is_control(c)).strip()
    while _DRIVE.match(base):
        base = base[2:].lstrip()
    return _TRAILING.sub("", base)


def _shorten(name: str) -> str:
    """`name` cut to MAX_NAME (keeping a short extension), with nothing left dangling."""
    if len(name) <= MAX_NAME:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and 0 < len(ext) <= 16 and len(stem) > len(ext):
        # A cut may leave a joiner or selector at the edge, or a space before the dot.
        return f"{_end_cleanly(stem[: MAX_NAME - len(ext) - 1])}.{ext}"
    return _end_cleanly(name[:MAX_NAME])


def _end_cleanly(text: str) -> str:
    while text and (_TRAILING.search(text) or _is_ignorable(text[-1])):
        text = _TRAILING.sub("", text)
        if text and _is_ignorable(text[-1]):
            text = text[:-1]
    return text


def from_client_filename(raw: str | None) -> str:
    """A name from the filename a client sent: its path, controls and padding cleaned off.

    InvalidInput when what is left is disguised (bidi controls, invisible characters):
    such a name is refused, not silently changed.
    """
    cleaned = _strip_path(raw or "")
    found = _deceptive(cleaned)
    if found is not None:
        raise InvalidInput(f"The file name {cleaned!r} cannot contain {found[1]}.")
    cleaned = _shorten(cleaned)
    return check_name(cleaned) if cleaned not in {"", ".", ".."} else FALLBACK_NAME


def archive_name(name: str) -> str:
    """The name a stored file's ZIP entry and download carry.

    Any name taken under these rules is returned as it is; a row named before them gets
    its NFC form, with what they refuse taken out.
    """
    try:
        return check_name(name)
    except InvalidInput:
        pass
    cleaned = _strip_path(name)
    while (found := _deceptive(cleaned)) is not None:
        cleaned = cleaned[: found[0]] + cleaned[found[0] + 1 :]
    cleaned = _shorten(_strip_path(cleaned))
    return cleaned if cleaned not in {"", ".", ".."} else FALLBACK_NAME


def content_type_for(name: str, declared: str | None) -> str:
    """The client's type unless it is missing, generic or not a media type; else a guess.

    What the client declares is stored and sent back in a header: anything that is not a
    plain `type/subtype` (control characters, non-ASCII, a whole paragraph) is ignored.
    """
    declared = (declared or "").split(";", 1)[0].strip().lower()
    if declared not in GENERIC_TYPES and MEDIA_TYPE.fullmatch(declared):
        return declared
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
