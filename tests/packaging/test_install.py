"""The extension zip installs into a throw-away Blender user folder and runs Complete Pose on the real weights.

The linux zip is built as `python build.py extension` builds it, except that the torch wheel (190 MB, over
700 MB installed) is left out: this environment's torch is importable and stands in for it. Every other wheel
installs from the zip. The full zips, torch included, are validated by `python build.py extension`.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tools import extension

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="module")
def lite_zip(tmp_path_factory):
    output = tmp_path_factory.mktemp("dist") / "dposerx_blender-linux_x64-without-torch.zip"
    try:
        return extension.build_zip("linux-x64", output, without=("torch",))
    except extension.BuildError as exc:
        pytest.skip(f"cannot build the linux zip here: {exc}")


def test_zip_holds_the_package_weights_and_wheels_only(lite_zip):
    with zipfile.ZipFile(lite_zip) as z:
        names = z.namelist()
        manifest = tomllib.loads(z.read("blender_manifest.toml").decode())
    assert manifest["platforms"] == ["linux-x64"]
    assert sorted(manifest["wheels"]) == sorted(f"./{n}" for n in names if n.startswith("wheels/"))
    assert {"__init__.py", "bundled_weights/prior.safetensors", "bundled_weights/pose_bank.safetensors",
            "bundled_weights/dposerx.json"} <= set(names)
    assert not [n for n in names if n.split("/")[0] in ("training", "tests", "bench", "tools", "docs")]
    assert not [n for n in names if "numpy" in n or "__pycache__" in n]


def test_wheel_list_covers_the_runtime_requirements():
    """Every requirement of the shipped wheels (numpy aside, Blender ships it) is shipped too."""
    shipped = {extension.canonical(r.split("==")[0]) for r in extension.WHEELS}
    requirements = [Requirement(r) for name in shipped for r in metadata.requires(name) or ()]
    needed = {extension.canonical(r.name) for r in requirements if r.marker is None or "extra" not in str(r.marker)}
    assert needed - shipped - {"numpy"} == set()


def test_wheels_cover_the_packages_imports():
    """Every third-party module the shipped package imports is shipped or comes with Blender (the CLI's
    progress bars, tqdm, are optional and outside Blender)."""
    blender = {"bpy", "bmesh", "bpy_extras", "mathutils", "numpy"}
    modules = set()
    for path in (ROOT / "dposerx_blender").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - {"dposerx_blender", "__future__"}
    shipped = {extension.canonical(r.split("==")[0]) for r in extension.WHEELS}
    assert third_party - blender - shipped - {"tqdm"} == set()


def test_zip_installs_enables_and_completes_a_pose(lite_zip, tmp_path):
    user = tmp_path / "blender_user"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the extension must come from the zip
    env.update(BLENDER_USER_RESOURCES=str(user), OMP_NUM_THREADS="1")
    outputs = []
    for args in (["install", lite_zip], ["run"]):
        done = subprocess.run([sys.executable, HERE / "install_and_run.py", *args], cwd=tmp_path, env=env,
                              check=False, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        outputs.append(done.stdout)
    lines = [line for line in outputs[-1].splitlines() if line.startswith("RESULT ")]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["completed"] == ["FINISHED"]
    for key in ("extension_file", "safetensors_file"):  # installed into the throw-away folder, not the checkout
        assert Path(result[key]).resolve().is_relative_to(user.resolve()), result
    assert result["locked_changed"] == []
    assert result["bones_changed"] > 20
