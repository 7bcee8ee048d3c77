#!/usr/bin/env python3
"""Vendor the browser assets of the operator maps from the npm registry, pinned and checked.

The map pages must never reach the internet, so Leaflet, Leaflet.heat and MapLibre GL JS are
served by the service itself from ``geo_service/static/vendor/<package>/<version>/``. This
script fetches each pinned tarball with ``npm pack``, refuses it unless its sha256 is the pinned
one, copies the files the pages use (and the licence) and writes ``SHA256SUMS`` beside them.

    python scripts/vendor_assets.py           # (re)vendor from the registry
    python scripts/vendor_assets.py --check   # offline: the tree matches SHA256SUMS
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "geo_service" / "static" / "vendor"
SUMS = VENDOR / "SHA256SUMS"


@dataclass(frozen=True)
class Package:
    """One npm package: pinned version, tarball sha256, files to keep (path in the tarball)."""

    name: str
    version: str
    tarball_sha256: str
    files: tuple[str, ...]
    # the upstream licence, kept in scripts/licences/, for a tarball that ships none
    licence: str | None = None


PACKAGES = (
    Package(
        "leaflet",
        "1.9.4",
        "84c65a256e50657896f54c33bd857b6849ebe94c817803be818bf32a3dde0b77",
        (
            "LICENSE",
            "dist/leaflet.js",
            "dist/leaflet.css",
            "dist/images/layers.png",
            "dist/images/layers-2x.png",
            "dist/images/marker-icon.png",
            "dist/images/marker-icon-2x.png",
            "dist/images/marker-shadow.png",
        ),
    ),
    Package(
        "leaflet.heat",
        "0.2.0",
        "6d980bce16b6bbe8e3b124d200dfd12964ff8f6bfff44eb3a47344f97dfc5c7f",
        ("LICENSE", "dist/leaflet-heat.js"),
    ),
    Package(
        "maplibre-gl",
        "5.24.1",
        "b84d7fdf7fba5922fd3fff9a92733936c7a03b99165afc6c84f41c311bdbfa9d",
        ("LICENSE.txt", "dist/maplibre-gl.js", "dist/maplibre-gl.css"),
    ),
    Package(  # charts of the command-centre console (/console)
        "echarts",
        "5.6.0",
        "e1b82487dd7f8d9f0438eec1f1433051148e0095ac7a15d4db890afda45cf610",
        ("LICENSE", "dist/echarts.min.js"),
    ),
    Package(  # Swagger UI for /docs (served locally: the page works offline)
        "swagger-ui-dist",
        "5.35.0",
        "1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6",
        (
            "LICENSE",
            "NOTICE",
            "swagger-ui-bundle.js",
            "swagger-ui-bundle.js.LICENSE.txt",
            "swagger-ui.css",
            "favicon-32x32.png",
        ),
    ),
    Package(  # the planner's editor draws split lines with Terra Draw (MIT, no LICENSE inside)
        "terra-draw",
        "1.35.0",
        "da4e370b007b2194dd05c64d6c4437c244a0439cdefab52d1f87329e3f8b059d",
        ("dist/terra-draw.umd.js", "package.json"),
        licence="terra-draw.LICENSE",
    ),
    Package(
        "terra-draw-maplibre-gl-adapter",
        "1.4.1",
        "e4d24018df3bcb2db6ddaf3ac4d271c40d73233513232972b5e67de104b2b1b8",
        ("dist/terra-draw-maplibre-gl-adapter.umd.js", "package.json"),
        licence="terra-draw.LICENSE",
    ),
)


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def target(pkg: Package, member: str) -> Path:
    """Where a tarball member lands: ``dist/`` is dropped, the rest of the path kept."""
    rel = member.removeprefix("dist/")
    return VENDOR / pkg.name / pkg.version / rel


def fetch(pkg: Package, workdir: Path) -> Path:
    """``npm pack`` the pinned version into ``workdir``; refuse a tarball with another sha256."""
    out = subprocess.run(
        ["npm", "pack", f"{pkg.name}@{pkg.version}", "--silent", "--pack-destination", workdir],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    tarball = workdir / out[-1]
    digest = sha256(tarball)
    if digest != pkg.tarball_sha256:
        raise SystemExit(f"{tarball.name}: sha256 {digest}, pinned {pkg.tarball_sha256}")
    return tarball


def unpack(pkg: Package, tarball: Path) -> list[Path]:
    """Copy the package's kept files out of its tarball (``package/`` prefix)."""
    dest_root = VENDOR / pkg.name
    if dest_root.exists():
        shutil.rmtree(dest_root)
    written = []
    with tarfile.open(tarball) as tar:
        for member in pkg.files:
            source = tar.extractfile(f"package/{member}")
            if source is None:
                raise SystemExit(f"{tarball.name}: no file package/{member}")
            dest = target(pkg, member)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(source.read())
            written.append(dest)
    if pkg.licence is not None:
        dest = VENDOR / pkg.name / pkg.version / "LICENSE"
        shutil.copyfile(ROOT / "scripts" / "licences" / pkg.licence, dest)
        written.append(dest)
    return written


def write_sums(files: list[Path]) -> None:
    """``SHA256SUMS`` in ``sha256sum`` format, paths relative to the vendor folder."""
    lines = [f"{sha256(f)}  {f.relative_to(VENDOR).as_posix()}" for f in sorted(files)]
    SUMS.write_text("\n".join(lines) + "\n")


def check() -> list[str]:
    """Problems with the vendored tree: files missing, changed, or not listed."""
    problems = []
    listed = set()
    for line in SUMS.read_text().splitlines():
        digest, rel = line.split(maxsplit=1)
        listed.add(rel)
        path = VENDOR / rel
        if not path.is_file():
            problems.append(f"missing {rel}")
        elif sha256(path) != digest:
            problems.append(f"changed {rel}")
    expected = {target(p, m).relative_to(VENDOR).as_posix() for p in PACKAGES for m in p.files}
    problems += [f"not vendored {rel}" for rel in sorted(expected - listed)]
    present = {
        p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file() and p != SUMS
    }
    problems += [f"unlisted {rel}" for rel in sorted(present - listed)]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify offline, change nothing")
    args = parser.parse_args()
    if not args.check:
        VENDOR.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        with tempfile.TemporaryDirectory() as tmp:
            for pkg in PACKAGES:
                files += unpack(pkg, fetch(pkg, Path(tmp)))
                print(f"vendored {pkg.name}@{pkg.version}")
        write_sums(files)
    problems = check()
    for p in problems:
        print(p, file=sys.stderr)
    print("vendor tree OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
