"""Build the Blender extension zips: `python build.py extension [--platform linux-x64|windows-x64|macos-arm64|all]`.

Each zip holds the manifest (with that platform's `platforms` and `wheels`), the dposerx_blender package with the
bundled weights inside it, and the unmodified cp311 wheels of the runtime dependencies for that platform.
numpy is never shipped: Blender bundles its own. Blender's own extension tool (blender_ext.py, shipped inside
the bpy wheel) writes and validates every zip. Downloads are cached in .cache/wheels/<platform>/.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dposerx_blender"
WEIGHTS = ROOT / "bundled_weights"
MANIFEST = ROOT / "blender_manifest.toml"
CACHE = ROOT / ".cache" / "wheels"
DIST = ROOT / "dist"
# Blender platform -> the pip platform tags to download for. pip expands macOS tags to older versions itself but
# not manylinux ones; Blender 4.5+ needs glibc 2.28. torch 2.13.0 for macOS arm64 exists only for macOS 14+.
PLATFORMS = {"linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
             "windows-x64": ("win_amd64",), "macos-arm64": ("macosx_14_0_arm64",)}
# The extension's runtime requirements, pinned like the test venv: torch (CPU), smplx, safetensors, scipy (mocap
# import), and the requirements of those (torch imports sympy and networkx as it loads). smplx and scipy need
# only numpy (scipy 1.17: numpy>=1.26.4, which Blender 4.5 and 5.0 bundle) besides torch.
WHEELS = [
    "torch==2.13.0",
    "smplx==0.1.28",
    "safetensors==0.8.0",
    "scipy==1.17.1",
    "filelock==4.2.11",
    "typing_extensions==4.16.0",
    "setuptools==84.2.1",
    "sympy==1.14.0",
    "mpmath==1.3.0",
    "networkx==3.6.1",
    "jinja2==3.1.6",
    "markupsafe==3.0.4",
    "fsspec==2026.9.0",
]


class BuildError(Exception):
    """A zip could not be built; the message says why."""


def blender_ext_script() -> Path:
    """Blender's extension command line, shipped inside the bpy wheel (bpy/<version>/scripts/...)."""
    bpy_dir = Path(find_spec("bpy").origin).parent
    found = sorted(bpy_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise BuildError(f"Blender's blender_ext.py is not inside {bpy_dir}: run `python build.py setup`")
    return found[-1]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def cached_wheel(folder: Path, requirement: str) -> Path | None:
    """The cached wheel for `name==version` (a local version such as 2.13.0+cpu counts), if any."""
    name, version = requirement.split("==")
    for wheel in folder.glob("*.whl"):
        wheel_name, wheel_version = wheel.name.split("-")[:2]
        if canonical(wheel_name) == canonical(name) and wheel_version.split("+")[0] == version:
            return wheel
    return None


def fetch_wheels(platform: str, requirements: list[str]) -> list[Path]:
    """One cp311 wheel per requirement for `platform`, from the cache or `pip download`."""
    folder = CACHE / platform
    wheels = []
    for requirement in requirements:
        wheel = cached_wheel(folder, requirement)
        if wheel is None:
            print(f"  downloading {requirement} for {platform}", flush=True)
            result = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--no-deps",
                 "--only-binary=:all:", *(f"--platform={tag}" for tag in PLATFORMS[platform]),
                 "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "-d", folder, requirement],
                check=False, capture_output=True, text=True)
            wheel = cached_wheel(folder, requirement)
            if result.returncode or wheel is None:
                reason = (result.stderr.strip().splitlines() or ["no wheel was saved"])[-1]
                raise BuildError(f"no {requirement} wheel for {platform} (cp311) could be downloaded: {reason}")
        wheels.append(wheel)
    return wheels


def manifest_text(platform: str, wheels: list[Path]) -> str:
    """The repository manifest with this zip's `platforms` and `wheels` added before its first table."""
    text = MANIFEST.read_text()
    present = {"platforms", "wheels"} & tomllib.loads(text).keys()
    if present:
        raise BuildError(f"{MANIFEST.name} must not set {', '.join(sorted(present))}: the build writes them")
    keys = (f'\nplatforms = ["{platform}"]\n'
            + "wheels = [\n" + "".join(f'  "./wheels/{w.name}",\n' for w in wheels) + "]\n")
    head, table, tail = text.partition("\n[")
    return head.rstrip("\n") + "\n" + keys + table + tail


def blender_ext(*args) -> None:
    result = subprocess.run([sys.executable, blender_ext_script(), *map(str, args)], check=False,
                            capture_output=True, text=True)
    if result.returncode:
        raise BuildError(f"blender_ext.py {args[0]} failed: {(result.stdout + result.stderr).strip()}")


def build_zip(platform: str, output: Path, without: tuple[str, ...] = ()) -> Path:
    """Write and validate the extension zip for `platform`; `without` leaves out wheels by name (tests only)."""
    requirements = [r for r in WHEELS if r.split("==")[0] not in without]
    output.unlink(missing_ok=True)
    wheels = fetch_wheels(platform, requirements)
    with tempfile.TemporaryDirectory(prefix="dposerx-ext-") as tmp:
        stage = Path(tmp) / "stage"
        shutil.copytree(PACKAGE, stage, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copytree(WEIGHTS, stage / "bundled_weights")
        (stage / "wheels").mkdir()
        for wheel in wheels:
            shutil.copy2(wheel, stage / "wheels" / wheel.name)
        (stage / "blender_manifest.toml").write_text(manifest_text(platform, wheels))
        output.parent.mkdir(parents=True, exist_ok=True)
        blender_ext("build", "--source-dir", stage, "--output-filepath", output)
    blender_ext("validate", output)
    return output


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python build.py extension", description=__doc__.splitlines()[0])
    parser.add_argument("--platform", default="linux-x64", choices=[*PLATFORMS, "all"],
                        help="which platform's zip to build (default linux-x64)")
    args = parser.parse_args(argv)
    meta = tomllib.loads(MANIFEST.read_text())
    failed = []
    for platform in PLATFORMS if args.platform == "all" else [args.platform]:
        output = DIST / f"{meta['id']}-{meta['version']}-{platform.replace('-', '_')}.zip"
        print(f"{platform}:", flush=True)
        try:
            build_zip(platform, output)
        except BuildError as exc:
            failed.append(platform)
            print(f"  SKIPPED {platform}, no zip written: {exc}", flush=True)
            continue
        print(f"  {output.relative_to(ROOT)}  {output.stat().st_size / 2**20:.1f} MiB, valid", flush=True)
    if failed:
        print(f"Not built: {', '.join(failed)} (see above).")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
