"""Is each vendored JavaScript file the very one its npm release ships?

Each vendored package has a `vendor.json`: its name, version, the npm tarball's
`integrity` (as the registry publishes it) and, for each file copied from it, where it
came from and its sha256. `check(manifest, tarball)` compares the two; run as a script
(`python -m tests.webapp.vendored`, as `.ci/run` does, where the registry can be reached)
it `npm pack`s every release named and fails on any difference. The tests never touch the
network: tests/webapp/test_vendored.py checks the files against their manifests, and this
check against tarballs it builds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted(
    [
        *(ROOT / "app" / "webapp" / "vendor").glob("*/vendor.json"),
        *(ROOT / "tests" / "browser" / "vendor").glob("*/vendor.json"),
    ]
)


class Mismatch(Exception):
    """The vendored files are not what the named npm release ships."""


def integrity(data: bytes) -> str:
    """npm's `integrity` of a tarball."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def check(manifest: Path, tarball: Path) -> None:
    """Raise Mismatch unless `tarball` is the release `manifest` names and ships its files."""
    described = json.loads(manifest.read_text(encoding="utf-8"))
    if integrity(tarball.read_bytes()) != described["integrity"]:
        raise Mismatch(f"{tarball.name} is not the tarball the registry published")
    with tarfile.open(tarball) as archive:
        package_json = archive.extractfile("package/package.json")
        assert package_json is not None
        package = json.load(package_json)
        if (package["name"], package["version"]) != (described["name"], described["version"]):
            raise Mismatch(f"{tarball.name} holds {package['name']}@{package['version']}")
        for name, entry in described["files"].items():
            try:
                shipped = archive.extractfile(entry["from"])
            except KeyError:
                shipped = None
            if shipped is None:
                raise Mismatch(f"{entry['from']} is not in {tarball.name}")
            if shipped.read() != (manifest.parent / name).read_bytes():
                raise Mismatch(f"{manifest.parent / name} is not {entry['from']}")


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        for manifest in MANIFESTS:
            described = json.loads(manifest.read_text(encoding="utf-8"))
            spec = f"{described['name']}@{described['version']}"
            subprocess.run(
                ["npm", "pack", "--silent", spec], cwd=scratch, check=True, timeout=300,
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                check(manifest, Path(scratch) / described["npm_tarball"])
            except Mismatch as exc:
                print(f"{manifest.relative_to(ROOT)}: {exc}", file=sys.stderr)
                return 1
            print(f"{spec}: the vendored files are the release's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
