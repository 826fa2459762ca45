"""Denoising quality on held-out test takes: clean takes, capture noise of each kind (bench/noise.py), each
method's result, scored against the clean take.

Metrics: MPJPE of the pelvis + 21 body joints (default skeleton, global orientation removed, mm), mean geodesic
rotation error of the 21 body joints (degrees; it sees twist, which joint positions do not), acceleration error
(mm/frame^2), and *clean input kept*: a clean take in, how far each method moves it (mm and degrees).
Baselines: every filter of bench.filters tuned per noise kind on the validation takes with oracle knowledge of the
noise (the same kind, a different draw), and Blender's Butterworth Smooth at its defaults (no tuning).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from dposerx_blender.core.rotations import axis_angle_to_matrix
from dposerx_blender.core.skeleton import NUM_JOINTS, forward_kinematics
from dposerx_blender.core.tasks import denoise_track

from .filters import BLENDER_DEFAULTS, FILTERS, blender_butterworth, smooth_track, tune
from .metrics import acceleration_error
from .noise import KINDS

FPS = 30.0
METRIC_JOINTS = 22  # pelvis + 21 body joints, as the paper
OURS = "Clean Mocap"
BLENDER = "Blender Butterworth Smooth (defaults)"


def clips(data_dir: Path, split: str, min_frames: int = 0, count: int | None = None) -> list[np.ndarray]:
    """The takes of a split at least `min_frames` long, `count` of them evenly spread (all when None)."""
    with np.load(data_dir / "tracks" / f"{split}.npz") as tracks:
        starts = np.r_[0, np.cumsum(tracks["lengths"])]
        takes = [tracks["poses"][a:b].astype(np.float64) for a, b in zip(starts[:-1], starts[1:])]
    takes = [t for t in takes if len(t) >= min_frames]
    if count is None or count >= len(takes):
        return takes
    return [takes[i] for i in np.linspace(0, len(takes) - 1, count).astype(int)]


def body_positions(track: np.ndarray) -> np.ndarray:
    """(T, 165) -> (T, 22, 3) millimetres, global orientation removed."""
    poses = torch.from_numpy(track).reshape(len(track), NUM_JOINTS, 3).clone()
    poses[:, 0] = 0
    return 1000 * forward_kinematics(axis_angle_to_matrix(poses))[:, :METRIC_JOINTS].numpy()


def rotation_error_deg(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Mean geodesic angle between the body joints' rotations (degrees)."""
    e = Rotation.from_rotvec(estimate.reshape(-1, NUM_JOINTS, 3)[:, 1:METRIC_JOINTS].reshape(-1, 3))
    t = Rotation.from_rotvec(truth.reshape(-1, NUM_JOINTS, 3)[:, 1:METRIC_JOINTS].reshape(-1, 3))
    return float(np.degrees((e.inv() * t).magnitude()).mean())


def errors(estimates: list[np.ndarray], truths: list[np.ndarray]) -> dict:
    """MPJPE (mm), rotation error (deg) and acceleration error (mm/frame^2), averaged over takes by frame count."""
    frames = np.array([len(t) for t in truths])
    mpjpe, rotation, accel = [], [], []
    for estimate, truth in zip(estimates, truths):
        e, t = body_positions(estimate), body_positions(truth)
        mpjpe.append(np.linalg.norm(e - t, axis=-1).mean())
        rotation.append(rotation_error_deg(estimate, truth))
        accel.append(acceleration_error(e, t))
    return {"mpjpe_mm": float(np.average(mpjpe, weights=frames)),
            "rotation_deg": float(np.average(rotation, weights=frames)),
            "accel_mm": float(np.average(accel, weights=frames))}


def noisy_versions(tracks: list[np.ndarray], kind: str, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [KINDS[kind](t, rng) for t in tracks]


def tune_filters(val_tracks: list[np.ndarray], kind: str, seed: int) -> dict:
    """Each filter's parameter with the lowest validation MPJPE for this noise: {name: (parameter, errors)}."""
    noisy = noisy_versions(val_tracks, kind, seed)
    tuned = {}
    for name, (smoother, grid) in FILTERS.items():
        def error(parameter, smoother=smoother):
            return errors([smooth_track(n, smoother, parameter, FPS) for n in noisy], val_tracks)["mpjpe_mm"]
        tuned[name] = tune(grid, error)
    return tuned


def blender_defaults(track: np.ndarray) -> np.ndarray:
    return smooth_track(track, lambda x, cutoff, fps: blender_butterworth(x, cutoff, fps, BLENDER_DEFAULTS[
        "filter_order"], BLENDER_DEFAULTS["blend_in_out"]), BLENDER_DEFAULTS["cutoff_hz"], FPS)


def evaluate(prior, test_tracks, val_tracks, kind: str, seed: int) -> dict:
    """{method: {"mpjpe_mm", "rotation_deg", "accel_mm", "seconds"[, "parameter"]}} for one noise kind."""
    noisy = noisy_versions(test_tracks, kind, seed)
    methods = {"noisy input": lambda n: n,
               OURS: lambda n: denoise_track(prior, n, fps=FPS, seed=seed),
               BLENDER: blender_defaults}
    tuned = tune_filters(val_tracks, kind, seed + 1)
    for name, (parameter, _) in tuned.items():
        methods[name] = lambda n, s=FILTERS[name][0], p=parameter: smooth_track(n, s, p, FPS)
    results = {}
    for name, method in methods.items():
        start = time.perf_counter()
        estimates = [method(n) for n in noisy]
        results[name] = {**errors(estimates, test_tracks), "seconds": time.perf_counter() - start}
    for name, (parameter, _) in tuned.items():
        results[name]["parameter"] = float(parameter)
    return results


def clean_kept(prior, test_tracks, seed: int) -> dict:
    """How far each untuned method moves clean takes: {method: {"mpjpe_mm", "rotation_deg", "accel_mm"}}."""
    methods = {OURS: lambda t: denoise_track(prior, t, fps=FPS, seed=seed), BLENDER: blender_defaults}
    return {name: errors([method(t) for t in test_tracks], test_tracks) for name, method in methods.items()}


def verdict(results: dict, kind: str, glitch: bool) -> dict:
    """Clean Mocap's ratios to the best tuned filter (per metric) and whether they meet the targets."""
    filters = [m for m in results if m in FILTERS]
    ratios = {key: results[OURS][key] / max(min(results[f][key] for f in filters), 1e-9)
              for key in ("mpjpe_mm", "rotation_deg", "accel_mm")}
    limit = 0.6 if glitch else 0.9
    met = ratios["mpjpe_mm"] <= limit and ratios["rotation_deg"] <= limit and ratios["accel_mm"] <= 1.2
    return {"ratios": ratios, "limit": limit, "met": bool(met), "kind": kind}


def speed_tracks(data_dir: Path, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy `frames`-frame tracks for timing: the test takes end to end with video-mix noise on the body
    (flat hands: body only), and the same with every hand and face joint moving too (a slow random motion of
    about 0.3 rad plus 0.05 rad noise: whole body)."""
    with np.load(data_dir / "tracks" / "test.npz") as tracks:
        track = tracks["poses"][:frames].astype(np.float64)  # consecutive takes, cut at the length
    rng = np.random.default_rng(seed)
    body = KINDS["video mix"](track, rng)
    whole = body.copy()
    others = slice(22 * 3, NUM_JOINTS * 3)
    slow = gaussian_filter1d(rng.normal(size=(frames, whole[:, others].shape[1])), 10.0, axis=0)
    whole[:, others] = 0.3 * slow / slow.std() + rng.normal(scale=0.05, size=slow.shape)
    return body, whole
