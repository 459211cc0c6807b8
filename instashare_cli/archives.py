"""Unpacking a multi-file link's ZIP (`get URL --extract DIR`) where it cannot do harm.

The archive comes from a server and was put together from names other people chose, so
nothing in it is trusted: every entry's path is checked before the first byte is written
(no absolute path, no drive, no `..`, no link, no device; nothing that lands outside DIR,
not even through a link already in DIR), and each file is written under a temporary name
and renamed once whole and its CRC-32 checked, so no half-written file ever has a real
name. A rerun after an interruption skips the files that are already there, whole.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from instashare_cli.failures import Failure

BLOCK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class Planned:
    info: zipfile.ZipInfo
    target: Path
    is_dir: bool


def _names(raw: str) -> list[str]:
    """An entry's path as names; Failure if it is unsafe anywhere."""
    unsafe = Failure(f"the archive holds an unsafe path {raw!r}; nothing was extracted")
    if not raw or "\x00" in raw or "\\" in raw or raw.startswith("/"):
        raise unsafe
    names = [n for n in raw.split("/") if n not in ("", ".")]
    if not names or any(n == ".." or not n.isprintable() for n in names):
        raise unsafe
    if len(names[0]) >= 2 and names[0][1] == ":":  # C:, a drive on Windows
        raise unsafe
    return names


def _kind(info: zipfile.ZipInfo) -> int:
    """The entry's Unix file type (0 when it says none: a plain file or folder)."""
    return stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0


def plan(archive: zipfile.ZipFile, into: Path) -> list[Planned]:
    """Where each entry goes under `into` (resolved); Failure for any unsafe one."""
    root = into.resolve()
    planned = []
    for info in archive.infolist():
        names = _names(info.filename)
        kind = _kind(info)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            what = "a link" if kind == stat.S_IFLNK else "not a file or folder"
            raise Failure(f"the archive's {info.filename!r} is {what}; nothing was extracted")
        target = root.joinpath(*names)
        # A folder already on disk may be a link to elsewhere: what it leads to must be in.
        real_parent = target.parent.resolve()
        if real_parent != root and root not in real_parent.parents:
            raise Failure(
                f"the archive's {info.filename!r} would land outside {into}; nothing was extracted"
            )
        planned.append(Planned(info, target, info.is_dir() or kind == stat.S_IFDIR))
    return planned


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as source:
        while block := source.read(BLOCK_SIZE):
            crc = zlib.crc32(block, crc)
    return crc


def _already_there(entry: Planned) -> bool:
    """Whether the entry's file is on disk, whole (a rerun's): its size and CRC-32 match."""
    info, target = entry.info, entry.target
    if not target.is_file() or target.is_symlink():
        return False
    return target.stat().st_size == info.file_size and _crc32(target) == info.CRC


def extract(path: Path, into: Path, *, force: bool) -> tuple[int, int]:
    """Unpack the ZIP at `path` into `into`: how many files, and how many bytes, it holds.

    A file already there with other content is overwritten only with `force`.
    """
    with zipfile.ZipFile(path) as archive:
        planned = plan(archive, into)
        for entry in planned:
            if entry.is_dir:
                continue
            if entry.target.is_dir() or entry.target.is_symlink():
                raise Failure(f"{entry.target} is in the way; nothing was extracted")
            if entry.target.exists() and not force and not _already_there(entry):
                raise Failure(f"{entry.target} exists; use --force to overwrite it")
        files = size = 0
        for entry in planned:
            if entry.is_dir:
                entry.target.mkdir(parents=True, exist_ok=True)
                continue
            files += 1
            size += entry.info.file_size
            if not force and _already_there(entry):
                continue
            entry.target.parent.mkdir(parents=True, exist_ok=True)
            _write(archive, entry)
    return files, size


def _write(archive: zipfile.ZipFile, entry: Planned) -> None:
    """One file, under a temporary name until it is whole (zipfile checks the CRC-32 as
    the last bytes are read)."""
    partial = entry.target.with_name(f".{entry.target.name}.part")
    try:
        with archive.open(entry.info) as source, open(partial, "wb") as out:
            shutil.copyfileobj(source, out, BLOCK_SIZE)
        os.replace(partial, entry.target)
    except zipfile.BadZipFile as exc:
        raise Failure(f"the archive's {entry.info.filename!r} is damaged ({exc})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
