"""The bytes of a stored one-entry ZIP: where its entry's data starts, what its directory
says, and both as they read under another entry name.

Every archive here is one `stream-zip` wrote: a local header, the entry's data (and, for
a deflated entry, a data descriptor), then the central directory and end records. The
local header and the tail are each under 2 KiB (a name is at most 255 characters), so
each is one small ranged read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

LOCAL = struct.Struct("<IHHHHHIIIHH")  # local file header, up to the name
CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # central directory header, up to the name
ZIP64_END = struct.Struct("<IQHHIIQQQQ")  # ZIP64 end of central directory record
ZIP64_LOCATOR = struct.Struct("<IIQI")
END = struct.Struct("<IHHHHIIH")  # end of central directory record
UTF8 = 0x800  # general purpose flag: the name is UTF-8
NO_VALUE = 0xFFFFFFFF  # a 32-bit field whose value lives in the ZIP64 record
STORED, DEFLATED = 0, 8
LOCAL_SIGNATURE = 0x04034B50
END_SIGNATURE = 0x06054B50
# A local header, a name of 255 characters of up to 4 bytes each in UTF-8, a ZIP64 extra.
HEAD_READ = LOCAL.size + 4 * 255 + 64
# The central directory (the same, plus a comment that stream-zip never writes), ZIP64
# end record and locator, end record.
TAIL_READ = CENTRAL.size + 4 * 255 + 64 + ZIP64_END.size + ZIP64_LOCATOR.size + END.size


class ArchiveMismatch(Exception):
    """The stored ZIP (or the staged original) is not what was uploaded."""


@dataclass(frozen=True)
class LocalHeader:
    """The entry's local header: its fields, its name and extra field as stored."""

    fields: tuple[int, ...]
    name: bytes
    extra: bytes

    @classmethod
    def parse(cls, head: bytes) -> LocalHeader:
        """From the archive's first bytes (at least the whole header)."""
        if len(head) < LOCAL.size:
            raise ArchiveMismatch(f"the archive is {len(head)} bytes, too short for a ZIP")
        fields = LOCAL.unpack_from(head)
        if fields[0] != LOCAL_SIGNATURE:
            raise ArchiveMismatch("the archive does not start with a ZIP local header")
        name_length, extra_length = fields[9], fields[10]
        end = LOCAL.size + name_length + extra_length
        if len(head) < end:
            raise ArchiveMismatch("the archive's local header is cut short")
        return cls(
            fields,
            head[LOCAL.size : LOCAL.size + name_length],
            head[LOCAL.size + name_length : end],
        )

    @property
    def method(self) -> int:
        return self.fields[3]

    @property
    def data_offset(self) -> int:
        """Where the entry's (compressed) data starts."""
        return LOCAL.size + len(self.name) + len(self.extra)

    @property
    def entry_name(self) -> str:
        return self.name.decode("utf-8" if self.fields[2] & UTF8 else "cp437")

    def renamed(self, new: bytes) -> bytes:
        """The header with the entry named `new` (UTF-8)."""
        fields = list(self.fields)
        fields[2] |= UTF8
        fields[9] = len(new)
        return LOCAL.pack(*fields) + new + self.extra


def directory_offset(tail: bytes, archive_size: int) -> int:
    """Where the central directory starts, from the archive's last bytes (`tail`)."""
    at = tail.rfind(struct.pack("<I", END_SIGNATURE))
    if at < 0 or at + END.size > len(tail):
        raise ArchiveMismatch("the archive has no ZIP end record")
    end = END.unpack_from(tail, at)
    if end[6] != NO_VALUE:
        return end[6]
    locator_at = at - ZIP64_LOCATOR.size
    if locator_at < 0:
        raise ArchiveMismatch("the archive's ZIP64 locator is missing")
    locator = ZIP64_LOCATOR.unpack_from(tail, locator_at)
    record_at = locator[2] - (archive_size - len(tail))
    if locator[0] != 0x07064B50 or not 0 <= record_at <= len(tail) - ZIP64_END.size:
        raise ArchiveMismatch("the archive's ZIP64 end record is missing")
    return ZIP64_END.unpack_from(tail, record_at)[9]


def renamed_tail(tail: bytes, new: bytes, delta: int) -> bytes:
    """The central directory and end records (`tail`), for the entry renamed to `new`;
    `delta` is how much longer the new name is than the old."""
    central = list(CENTRAL.unpack_from(tail))
    name_length, extra_length, comment_length = central[10], central[11], central[12]
    after_name = CENTRAL.size + name_length
    central[3] |= UTF8
    central[10] = len(new)
    records = [
        CENTRAL.pack(*central),
        new,
        tail[after_name : after_name + extra_length + comment_length],
    ]
    at = after_name + extra_length + comment_length
    while at < len(tail):
        (signature,) = struct.unpack_from("<I", tail, at)
        if signature == 0x06064B50:
            zip64 = list(ZIP64_END.unpack_from(tail, at))
            zip64[8] += delta  # the directory grew by delta
            zip64[9] += delta  # and starts delta later
            length = 12 + zip64[1]
            records += [ZIP64_END.pack(*zip64), tail[at + ZIP64_END.size : at + length]]
        elif signature == 0x07064B50:
            locator = list(ZIP64_LOCATOR.unpack_from(tail, at))
            locator[2] += 2 * delta  # after the directory: both shifts
            length = ZIP64_LOCATOR.size
            records.append(ZIP64_LOCATOR.pack(*locator))
        elif signature == END_SIGNATURE:
            end = list(END.unpack_from(tail, at))
            for field in (5, 6):  # directory size, directory offset
                if end[field] != NO_VALUE:
                    end[field] += delta
            length = len(tail) - at  # the last record, with its comment
            records += [END.pack(*end), tail[at + END.size :]]
        else:
            raise ArchiveMismatch(f"unexpected record {signature:#010x} after the directory")
        at += length
    return b"".join(records)
