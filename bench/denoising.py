"""Denoising quality on held-out tracks: clean clips, synthetic noise, each method's result, and the error of
the body joints' positions (pelvis + 21, default skeleton) and their accelerations against the clean clip.

Noise kinds (on the 21 body joints' rotations; the global orientation and the flat CMU hands are left clean):
- rotation: Gaussian noise of sigma radians on each axis-angle component, every frame independently;
- positional jitter: the same, with each joint's sigma set to (jitter / the length of the segment it rotates),
  so every segment's far end moves by about `jitter` (what marker noise does to a solved skeleton: short
  segments such as feet and hands jitter most in angle).
"""
from __future__ import annotations

import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from dposerx_blender.core.rotations import axis_angle_to_matrix
from dposerx_blender.core.skeleton import (
    BODY_JOINTS,
    NUM_JOINTS,
    PARENTS,
    REST_OFFSETS,
    TIP_OFFSETS,
    forward_kinematics,
)
from dposerx_blender.core.solvers import SCHEDULES
from dposerx_blender.core.tasks import denoise_track

from .filters import FILTERS, smooth_track, tune
from .metrics import acceleration_error

FPS = 30.0
METRIC_JOINTS = 22  # pelvis + 21 body joints, as the paper


def _segment_lengths() -> np.ndarray:
    """For each joint, the length of the longest segment its rotation moves (to a child joint or a tip)."""
    lengths = np.zeros(NUM_JOINTS)
    for j, p in enumerate(PARENTS):
        if p >= 0:
            lengths[p] = max(lengths[p], np.linalg.norm(REST_OFFSETS[j]))
    for j, tip in TIP_OFFSETS.items():
        lengths[j] = max(lengths[j], np.linalg.norm(tip))
    return lengths


SEGMENT_LENGTHS = _segment_lengths()


def clips(data_dir: Path, split: str, count: int | None, frames: int | None) -> list[np.ndarray]:
    """The first `frames` frames of `count` takes long enough (evenly spread over the takes); all of every
    take when count and frames are None."""
    with np.load(data_dir / "tracks" / f"{split}.npz") as tracks:
        starts = np.r_[0, np.cumsum(tracks["lengths"])]
        takes = [tracks["poses"][a:b].astype(np.float64) for a, b in zip(starts[:-1], starts[1:])]
    if frames is None:
        return takes
    long_enough = [t[:frames] for t in takes if len(t) >= frames]
    return [long_enough[i] for i in np.linspace(0, len(long_enough) - 1, count).astype(int)]


def add_noise(track: np.ndarray, kind: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """kind "rotation" (level in radians) or "jitter" (level in millimetres)."""
    joints = np.array(BODY_JOINTS)
    sigma = level if kind == "rotation" else level / 1000 / SEGMENT_LENGTHS[joints]
    noisy = track.copy().reshape(len(track), NUM_JOINTS, 3)
    noisy[:, joints] += rng.normal(size=(len(track), len(joints), 3)) * np.reshape(sigma, (-1, 1))
    return noisy.reshape(track.shape)


def body_positions(track: np.ndarray) -> np.ndarray:
    """(T, 165) -> (T, 22, 3) millimetres, global orientation removed."""
    poses = torch.from_numpy(track).reshape(len(track), NUM_JOINTS, 3).clone()
    poses[:, 0] = 0
    return 1000 * forward_kinematics(axis_angle_to_matrix(poses))[:, :METRIC_JOINTS].numpy()


def errors(estimates: list[np.ndarray], truths: list[np.ndarray]) -> dict:
    """MPJPE (mm) over all frames and acceleration error (mm/frame^2), averaged over clips by frame count."""
    frames = np.array([len(t) for t in truths])
    mpjpe, accel = [], []
    for estimate, truth in zip(estimates, truths):
        e, t = body_positions(estimate), body_positions(truth)
        mpjpe.append(np.linalg.norm(e - t, axis=-1).mean())
        accel.append(acceleration_error(e, t))
    return {"mpjpe_mm": float(np.average(mpjpe, weights=frames)), "accel_mm": float(np.average(accel, weights=frames))}


def noisy_versions(tracks: list[np.ndarray], kind: str, level: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [add_noise(t, kind, level, rng) for t in tracks]


def tune_filters(val_tracks: list[np.ndarray], kind: str, level: float, seed: int) -> dict:
    """Each filter's parameter with the lowest validation MPJPE for this noise: {name: (parameter, errors)}."""
    noisy = noisy_versions(val_tracks, kind, level, seed)
    tuned = {}
    for name, (smoother, grid) in FILTERS.items():
        def error(parameter, smoother=smoother):
            smoothed = [smooth_track(n, smoother, parameter, FPS) for n in noisy]
            return errors(smoothed, val_tracks)["mpjpe_mm"]
        tuned[name] = tune(grid, error)
    return tuned


def _no_prior(prior, track, seed):
    """denoise_track with its schedule's DPoser weights at 0: data and smoothness terms only."""
    schedule = SCHEDULES["denoise"].reweighted(lambda _w: 0.0, "prior")
    with mock.patch.dict(SCHEDULES, denoise=schedule):
        return denoise_track(prior, track, fps=FPS, seed=seed)


def evaluate(prior, test_tracks, val_tracks, kind: str, level: float, seed: int) -> dict:
    """{method: {"mpjpe_mm", "accel_mm", "seconds"[, "parameter"]}} for one noise condition."""
    noisy = noisy_versions(test_tracks, kind, level, seed)
    methods = {"noisy input": lambda n: n,
               "DPoser-X": lambda n: denoise_track(prior, n, fps=FPS, seed=seed),
               "no prior (data + smoothness)": lambda n: _no_prior(prior, n, seed)}
    tuned = tune_filters(val_tracks, kind, level, seed + 1)
    for name, (parameter, _) in tuned.items():
        smoother = FILTERS[name][0]
        methods[name] = lambda n, s=smoother, p=parameter: smooth_track(n, s, p, FPS)
    results = {}
    for name, method in methods.items():
        start = time.perf_counter()
        estimates = [method(n) for n in noisy]
        results[name] = {**errors(estimates, test_tracks), "seconds": time.perf_counter() - start}
    for name, (parameter, _) in tuned.items():
        results[name]["parameter"] = parameter
    return results
