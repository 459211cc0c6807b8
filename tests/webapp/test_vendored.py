"""The vendored JavaScript: the files their manifests name, and the check that compares
them with their npm release (run against the registry by `.ci/run`, see vendored.py)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile

import pytest

from tests.helpers import ROOT
from tests.webapp.vendored import MANIFESTS, Mismatch, check, integrity


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_app_vendors_tus_js_client_with_its_licence():
    manifest = json.loads(
        (ROOT / "app/webapp/vendor/tus-js-client/vendor.json").read_text(encoding="utf-8")
    )
    assert manifest["name"] == "tus-js-client"
    assert manifest["version"].split(".")[0] == "4"
    assert set(manifest["files"]) == {"tus.min.js", "LICENSE"}
    assert "MIT License" in (ROOT / "app/webapp/vendor/tus-js-client/LICENSE").read_text()


def test_there_are_manifests_to_check():
    assert {m.parent.name for m in MANIFESTS} == {"tus-js-client", "axe-core"}


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name)
def test_each_vendored_file_matches_its_manifest(manifest):
    described = json.loads(manifest.read_text(encoding="utf-8"))
    assert described["integrity"].startswith("sha512-")
    for name, entry in described["files"].items():
        data = (manifest.parent / name).read_bytes()
        assert sha256(data) == entry["sha256"], f"{name} is not the file the manifest names"


def _release(tmp_path, files: dict[str, bytes], name="pkg", version="1.0.0"):
    """A tarball as `npm pack` makes one, and a vendored copy with its manifest."""
    members = {"package/package.json": json.dumps({"name": name, "version": version}).encode()}
    members.update({f"package/dist/{n}": data for n, data in files.items()})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    tarball = tmp_path / f"{name}-{version}.tgz"
    tarball.write_bytes(buffer.getvalue())
    vendored = tmp_path / "vendor"
    vendored.mkdir()
    for n, data in files.items():
        (vendored / n).write_bytes(data)
    manifest = vendored / "vendor.json"
    manifest.write_text(
        json.dumps(
            {
                "name": name,
                "version": version,
                "npm_tarball": tarball.name,
                "integrity": integrity(tarball.read_bytes()),
                "files": {
                    n: {"from": f"package/dist/{n}", "sha256": sha256(d)} for n, d in files.items()
                },
            }
        )
    )
    return manifest, tarball


def test_the_check_passes_the_release_the_manifest_names(tmp_path):
    manifest, tarball = _release(tmp_path, {"lib.min.js": b"export const x = 1;\n"})
    check(manifest, tarball)


def test_the_check_refuses_an_edited_vendored_file(tmp_path):
    manifest, tarball = _release(tmp_path, {"lib.min.js": b"export const x = 1;\n"})
    (manifest.parent / "lib.min.js").write_bytes(b"export const x = 2;\n")
    with pytest.raises(Mismatch, match=re.escape("is not package/dist/lib.min.js")):
        check(manifest, tarball)


def test_the_check_refuses_another_tarball_or_a_missing_file(tmp_path):
    manifest, tarball = _release(tmp_path, {"lib.min.js": b"a"})
    tarball.write_bytes(tarball.read_bytes() + b"\0")
    with pytest.raises(Mismatch, match="not the tarball the registry published"):
        check(manifest, tarball)

    (tmp_path / "again").mkdir()
    manifest, tarball = _release(tmp_path / "again", {"lib.min.js": b"a"})
    described = json.loads(manifest.read_text())
    described["files"]["lib.min.js"]["from"] = "package/dist/gone.js"
    manifest.write_text(json.dumps(described))
    with pytest.raises(Mismatch, match=re.escape("gone.js is not in")):
        check(manifest, tarball)
