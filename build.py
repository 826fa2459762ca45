#!/usr/bin/env python3
"""The project's one entry point. Needs only the standard library to start.

    python build.py [setup]          create/update .venv (Python 3.11) with the pinned dependencies
    python build.py test [ARGS]      set up if needed, then run the whole pytest suite (ARGS go to pytest);
                                     without ARGS, tests/blender also runs under bpy 4.5 LTS (.venv-blender45)
    python build.py data [ARGS]      build the training set into data/ and the retarget report in docs/data.md
    python build.py train --part P   train the prior for part P (body|hand|face|whole); --help for options
    python build.py export           best checkpoints -> bundled_weights/ with metrics, pictures for docs/
    python build.py bank             the completion's pose bank (training poses) -> bundled_weights/
    python build.py extension [--platform linux-x64|windows-x64|macos-arm64|all]
                                     Blender extension zips (package, weights, wheels) -> dist/, validated
    python build.py demo             headless demo on the bundled weights -> out/demo.blend, out/contact_sheet.png
    python build.py bench [--quick]  benchmarks against retrained baselines -> docs/benchmarks.md (builds data/
                                     first if it is missing; --quick: reduced sizes, under 5 minutes)
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON_VERSION = "3.11"
# Exact pins: numpy<2 because the bpy 5.0 wheel requires it; torch 2.13.0 resolves to the CPU wheel here.
REQUIREMENTS = [
    "bpy==5.0.1",
    "torch==2.13.0",
    "smplx==0.1.28",
    "numpy==1.26.4",
    "scipy==1.17.1",
    "safetensors==0.8.0",
    "tqdm==4.70.1",
    "matplotlib==3.11.2",
    "pytest==9.2.0",
    "hypothesis==6.170.15",
]
# The Blender layer also supports 4.5 LTS: a second venv runs tests/blender under it.
VENV_BLENDER45 = ROOT / ".venv-blender45"
REQUIREMENTS_BLENDER45 = [
    "bpy==4.5.15",
    "torch==2.13.0",
    "smplx==0.1.28",
    "numpy==1.26.4",
    "scipy==1.17.1",
    "safetensors==0.8.0",
    "pytest==9.2.0",
]


def venv_python(venv: Path = VENV) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def find_base_python() -> str:
    """A Python 3.11 interpreter to create the venv with."""
    if sys.version_info[:2] == tuple(int(p) for p in PYTHON_VERSION.split(".")):
        return sys.executable
    found = shutil.which(f"python{PYTHON_VERSION}")
    if not found:
        sys.exit(f"build.py: Python {PYTHON_VERSION} is required (bpy wheels exist only for it); "
                 f"install it and run `python{PYTHON_VERSION} build.py setup`.")
    return found


def run(cmd: list, **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, **kwargs)
    if result.returncode:
        sys.exit(result.returncode)


def setup(venv: Path = VENV, requirements: list[str] = REQUIREMENTS) -> None:
    """Create the venv and install the pinned requirements; a no-op when its stamp says they are installed."""
    stamp = venv / ".requirements.sha256"
    wanted = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    if venv_python(venv).exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return
    if not venv_python(venv).exists():
        run([find_base_python(), "-m", "venv", venv])
    run([venv_python(venv), "-m", "pip", "install", "--disable-pip-version-check", "-q", *requirements])
    stamp.write_text(wanted + "\n")
    print(f"build.py: {venv.name} is ready")


def in_venv(module_args: list, venv: Path = VENV, requirements: list[str] = REQUIREMENTS) -> None:
    setup(venv, requirements)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run([venv_python(venv), *module_args], env=env)


def main(argv: list[str]) -> None:
    command, args = (argv[0], argv[1:]) if argv else ("setup", [])
    if command == "setup":
        setup()
    elif command == "test":
        in_venv(["-m", "pytest", *(args or ["tests", "-q"])])
        if not args:
            in_venv(["-m", "pytest", "tests/blender", "-q"], VENV_BLENDER45, REQUIREMENTS_BLENDER45)
    elif command == "data":
        in_venv(["-m", "training.dataset", *args])
    elif command == "train":
        in_venv(["-m", "training.train", *args])
    elif command == "export":
        in_venv(["-m", "training.export", *args])
    elif command == "bank":
        in_venv(["-m", "training.pose_bank", *args])
    elif command == "bench":
        if not (ROOT / "data" / "manifest.json").exists():
            print("build.py: data/ is missing; building it first (python build.py data)", flush=True)
            in_venv(["-m", "training.dataset"])
        in_venv(["-m", "bench", *args])
    elif command == "extension":
        in_venv(["-m", "tools.extension", *args])
    elif command == "demo":
        in_venv(["-m", "tools.demo", *args])
    else:
        print(__doc__)
        sys.exit(0 if command in ("help", "-h", "--help") else 2)


if __name__ == "__main__":
    main(sys.argv[1:])
