"""Write tests/fixtures/heldout.npz: a few held-out (test split) poses and tracks for the solver tests, so CI
checks the prior against real held-out motion without rebuilding the dataset.

    python -m training.fixtures          (after `python build.py data`)

CMU-derived data: "The data used in this project was obtained from mocap.cs.cmu.edu. The database was created
with funding from NSF EIA-0196217."
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dposerx_blender.core.layout import model_to_pose

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "heldout.npz"
POSES = 48
TRACKS = 2
TRACK_FRAMES = 150


def main(data: Path = ROOT / "data") -> None:
    with np.load(data / "whole" / "test.npz") as whole:
        rows = whole["model"][whole["present"][:, 0]]
    rows = rows[np.linspace(0, len(rows) - 1, POSES).astype(int)]
    with np.load(data / "tracks" / "test.npz") as tracks:
        starts = np.r_[0, np.cumsum(tracks["lengths"])[:-1]]
        long_enough = [i for i, n in enumerate(tracks["lengths"]) if n >= TRACK_FRAMES][:TRACKS]
        clips = np.stack([tracks["poses"][starts[i]:starts[i] + TRACK_FRAMES] for i in long_enough])
        names = tracks["names"][long_enough]
    manifest = json.loads((data / "manifest.json").read_text())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, poses=model_to_pose(rows.astype(np.float32)), tracks=clips, track_names=names,
                        data_sha256=manifest["content_sha256"], tracks_sha256=manifest["tracks"]["test"]["sha256"])
    print(f"{OUT}: {POSES} poses, tracks {list(names)} x {TRACK_FRAMES} frames, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
