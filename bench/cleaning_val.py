"""Clean Mocap's glitch detection on the validation takes (never the test split): every noise kind of
bench/noise.py, clean takes (clean input kept), and clean fast motion that must be left alone: the fastest real val
takes and val takes with a fast knee kick, elbow punch or shoulder swing added (2-3 Hz, 60-90 deg; the moved joint's
change and rejected frames).

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.cleaning_val [label]   -> runs/cleaning_val_<label>.json
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from dposerx_blender.core import cleaning
from dposerx_blender.core.skeleton import BODY_JOINTS, JOINT_INDEX, NUM_JOINTS
from dposerx_blender.core.tasks import denoise_track
from dposerx_blender.core.weights import load_prior

from .denoising import FPS, clips, errors, noisy_versions
from .noise import KINDS

SEED = 0
# name: (joint, local axis, peak angle deg, frequency Hz): a movement that rises to the peak and back each cycle
FAST_MOVES = {
    "knee kick 2.5 Hz 75 deg": ("left_knee", (1, 0, 0), 75, 2.5),
    "elbow punch 3 Hz 80 deg": ("right_elbow", (0, 1, 0), 80, 3.0),
    "shoulder swing 2 Hz 90 deg": ("left_shoulder", (0, -1, 0), 90, 2.0),
    "knee kick 3 Hz 60 deg": ("right_knee", (1, 0, 0), 60, 3.0),
}
FASTEST_REAL = 4  # the val takes with the largest angular acceleration


def with_fast_move(track: np.ndarray, joint: str, axis, peak_deg: float, hz: float) -> np.ndarray:
    """Cycles of 0 -> peak -> 0 about a local axis, in bursts of 3 cycles every 2 s (a kick sequence)."""
    t = np.arange(len(track)) / FPS
    period = 1 / hz
    angle = np.zeros(len(t))
    for start in np.arange(0.3, t[-1] - 3 * period, 2.0):
        inside = (t >= start) & (t < start + 3 * period)
        angle[inside] = np.radians(peak_deg) * 0.5 * (1 - np.cos(2 * np.pi * hz * (t[inside] - start)))
    out = track.copy().reshape(len(track), NUM_JOINTS, 3)
    j = JOINT_INDEX[joint]
    out[:, j] = (Rotation.from_rotvec(out[:, j]) * Rotation.from_rotvec(np.outer(angle, axis))).as_rotvec()
    return out.reshape(track.shape)


def peak_acceleration_deg(track: np.ndarray) -> float:
    """99th percentile over body joints and frames of the change of angular velocity (deg/frame^2)."""
    rotations = track.reshape(len(track), NUM_JOINTS, 3)[:, list(BODY_JOINTS)]
    velocity = np.stack([(Rotation.from_rotvec(joint[1:]) * Rotation.from_rotvec(joint[:-1]).inv()).as_rotvec()
                         for joint in rotations.transpose(1, 0, 2)], 1)
    return float(np.degrees(np.percentile(np.linalg.norm(np.diff(velocity, axis=0), axis=-1), 99)))


def left_alone(tracks: list[np.ndarray], joint: str | None = None) -> dict:
    """Clean tracks in: the largest change (deg) and the frames rejected by the detector, of `joint` (None: all
    body joints)."""
    joints = [JOINT_INDEX[joint]] if joint else list(BODY_JOINTS)
    worst, rejected, frames = 0.0, 0, 0
    for track in tracks:
        result = cleaning.clean_track(track, BODY_JOINTS, fps=FPS)
        a = Rotation.from_rotvec(track.reshape(-1, 3))
        b = Rotation.from_rotvec(result.poses.reshape(-1, 3))
        change = np.degrees((a.inv() * b).magnitude()).reshape(len(track), NUM_JOINTS)[:, joints]
        worst = max(worst, float(change.max()))
        rejected += int(result.rejected[:, joints].sum())
        frames += len(track)
    return {"max_change_deg": worst, "rejected_joint_frames": rejected, "frames": frames}


def main(label: str) -> None:
    prior = load_prior()
    val = clips(Path("data"), "val")
    results = {}

    def denoise(track):
        return denoise_track(prior, track, fps=FPS, seed=SEED)

    for kind in KINDS if "--no-noise" not in sys.argv else ():
        noisy = noisy_versions(val, kind, SEED)
        start = time.perf_counter()
        results[kind] = {**errors([denoise(n) for n in noisy], val), "seconds": time.perf_counter() - start}
        print(kind, results[kind], flush=True)
    results["clean kept"] = {**errors([denoise(t) for t in val], val), **left_alone(val)}
    print("clean kept", results["clean kept"], flush=True)
    fastest = sorted(range(len(val)), key=lambda i: -peak_acceleration_deg(val[i]))[:FASTEST_REAL]
    results["fastest real takes"] = {**left_alone([val[i] for i in fastest]),
                                     "peak_accel_deg": [peak_acceleration_deg(val[i]) for i in fastest]}
    print("fastest real takes", results["fastest real takes"], flush=True)
    long_takes = [t for t in val if len(t) >= 120]
    for name, move in FAST_MOVES.items():
        results[name] = left_alone([with_fast_move(t, *move) for t in long_takes], move[0])
        print(name, results[name], flush=True)
    Path("runs").mkdir(exist_ok=True)
    Path(f"runs/cleaning_val_{label}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "run")
