"""`get URL --extract DIR` unpacks a link's ZIP where it cannot do harm (no server needed:
the archives here are made to be hostile)."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from instashare_cli.archives import extract
from instashare_cli.failures import Failure


def _zip(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def test_a_tree_is_unpacked_as_it_was(tmp_path):
    archive = _zip(
        tmp_path / "a.zip",
        {"photos/2024/a.jpg": b"a" * 5000, "photos/b.txt": b"bee", "photos/empty/": b""},
    )
    into = tmp_path / "out"
    assert extract(archive, into, force=False) == (2, 5003)
    assert (into / "photos" / "2024" / "a.jpg").read_bytes() == b"a" * 5000
    assert (into / "photos" / "b.txt").read_bytes() == b"bee"
    assert (into / "photos" / "empty").is_dir()
    # A rerun (after an interruption, say) finds the files whole and leaves them.
    before = (into / "photos" / "b.txt").stat().st_mtime_ns
    assert extract(archive, into, force=False) == (2, 5003)
    assert (into / "photos" / "b.txt").stat().st_mtime_ns == before
    assert sorted(p.name for p in (into / "photos").iterdir()) == ["2024", "b.txt", "empty"]


@pytest.mark.parametrize(
    "name",
    [
        "../evil.txt",
        "a/../../evil.txt",
        "/etc/evil.txt",
        "C:/evil.txt",
        "a\\..\\evil.txt",
        "a/\x1b[2J",
    ],
)
def test_a_path_that_would_escape_is_refused_before_anything_is_written(tmp_path, name):
    archive = _zip(tmp_path / "bad.zip", {"fine.txt": b"ok", name: b"evil"})
    into = tmp_path / "out"
    with pytest.raises(Failure) as refused:
        extract(archive, into, force=False)
    assert refused.value.message == (
        f"the archive holds an unsafe path {name!r}; nothing was extracted"
    )
    assert not (into / "fine.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_a_link_in_the_archive_is_refused(tmp_path):
    archive = _zip(tmp_path / "link.zip", {"a.txt": b"a"}, links={"passwd": "/etc/passwd"})
    with pytest.raises(Failure) as refused:
        extract(archive, tmp_path / "out", force=False)
    assert refused.value.message == "the archive's 'passwd' is a link; nothing was extracted"
    assert not (tmp_path / "out" / "a.txt").exists()


def test_a_link_already_in_the_folder_does_not_lead_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    into = tmp_path / "out"
    into.mkdir()
    os.symlink(outside, into / "photos")
    archive = _zip(tmp_path / "a.zip", {"photos/a.txt": b"a"})
    with pytest.raises(Failure) as refused:
        extract(archive, into, force=False)
    assert refused.value.message == (
        f"the archive's 'photos/a.txt' would land outside {into}; nothing was extracted"
    )
    assert list(outside.iterdir()) == []


def test_a_different_file_in_the_way_needs_force(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"a.txt": b"new"})
    into = tmp_path / "out"
    into.mkdir()
    (into / "a.txt").write_bytes(b"mine")
    with pytest.raises(Failure) as refused:
        extract(archive, into, force=False)
    assert refused.value.message == f"{into / 'a.txt'} exists; use --force to overwrite it"
    assert (into / "a.txt").read_bytes() == b"mine"
    extract(archive, into, force=True)
    assert (into / "a.txt").read_bytes() == b"new"
    assert sorted(p.name for p in into.iterdir()) == ["a.txt"]  # no temporary left


def test_a_damaged_entry_leaves_no_file_under_its_name(tmp_path):
    data = os.urandom(50_000)
    archive = _zip(tmp_path / "a.zip", {"data.bin": data})
    raw = bytearray(archive.read_bytes())
    at = raw.find(data[:32])
    assert at > 0  # stored: random bytes do not deflate
    raw[at + 1000] ^= 0xFF
    archive.write_bytes(bytes(raw))
    into = tmp_path / "out"
    with pytest.raises(Failure) as refused:
        extract(archive, into, force=False)
    assert refused.value.message.startswith("the archive's 'data.bin' is damaged (")
    assert list(into.iterdir()) == []
