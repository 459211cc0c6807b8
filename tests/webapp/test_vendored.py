"""The vendored JavaScript is the very file its npm release ships.

Each vendored package has a `vendor.json`: its name, version, the npm tarball's
`integrity` (as the registry publishes it) and the sha256 of each file copied from it. The
files are checked against the manifest always; against the tarball itself when it is in
the npm cache directory (`INSTASHARE_TEST_NPM_CACHE`, default `.artifacts/npm`), which `.ci/run`
fills with `npm pack` (the tests themselves never touch the network).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

MANIFESTS = sorted(
    [
        *(ROOT / "app" / "webapp" / "vendor").glob("*/vendor.json"),
        *(ROOT / "tests" / "browser" / "vendor").glob("*/vendor.json"),
    ]
)
CACHE = Path(os.environ.get("INSTASHARE_TEST_NPM_CACHE", ROOT / ".artifacts" / "npm"))


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


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name)
def test_each_vendored_file_matches_its_manifest(manifest):
    described = json.loads(manifest.read_text(encoding="utf-8"))
    assert described["integrity"].startswith("sha512-")
    for name, entry in described["files"].items():
        data = (manifest.parent / name).read_bytes()
        assert sha256(data) == entry["sha256"], f"{name} is not the file the manifest names"


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name)
def test_each_vendored_file_is_the_one_its_npm_release_ships(manifest):
    described = json.loads(manifest.read_text(encoding="utf-8"))
    tarball = CACHE / described["npm_tarball"]
    if not tarball.is_file():
        pytest.skip(f"{tarball} is not there (`npm pack` it; .ci/run does)")
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    assert f"sha512-{digest}" == described["integrity"], "not the tarball the registry published"
    with tarfile.open(tarball) as archive:
        package = json.load(archive.extractfile("package/package.json"))  # type: ignore[arg-type]
        assert (package["name"], package["version"]) == (described["name"], described["version"])
        for name, entry in described["files"].items():
            shipped = archive.extractfile(entry["from"])
            assert shipped is not None, f"{entry['from']} is not in {tarball.name}"
            assert shipped.read() == (manifest.parent / name).read_bytes(), name
