"""The track baselines: per-channel zero-phase Butterworth (scipy filtfilt) and Gaussian smoothing of the
rotation channels (quaternions, as on Blender F-curves), with the parameter tuned on validation tracks."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.signal import butter, filtfilt

from dposerx_blender.core.rig_math import make_quaternions_continuous
from dposerx_blender.core.rotations import axis_angle_to_quaternion, quaternion_to_axis_angle

BUTTERWORTH_ORDER = 4


def butterworth(x: np.ndarray, cutoff_hz: float, fps: float) -> np.ndarray:
    """Zero-phase low-pass of every column of x (T, C)."""
    b, a = butter(BUTTERWORTH_ORDER, cutoff_hz / (fps / 2))
    return filtfilt(b, a, x, axis=0, padlen=min(3 * max(len(a), len(b)), len(x) - 1))


def gaussian(x: np.ndarray, sigma_frames: float, fps: float) -> np.ndarray:
    del fps  # the kernel width is in frames
    return gaussian_filter1d(x, sigma_frames, axis=0, mode="nearest")


# Each filter with the parameter grid it is tuned over (cutoffs below the 15 Hz Nyquist limit of 30 fps).
FILTERS: dict[str, tuple[Callable, tuple[float, ...]]] = {
    "Butterworth": (butterworth, (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 11.0)),
    "Gaussian": (gaussian, (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)),
}


def smooth_track(track: np.ndarray, smoother: Callable, parameter: float, fps: float) -> np.ndarray:
    """Filter the quaternion channels of every joint but the global orientation: (T, 165) -> (T, 165)."""
    joints = torch.from_numpy(track).reshape(len(track), -1, 3)
    quats = make_quaternions_continuous(axis_angle_to_quaternion(joints[:, 1:]).numpy())
    filtered = smoother(quats.reshape(len(track), -1), parameter, fps)
    filtered = torch.from_numpy(np.ascontiguousarray(filtered)).reshape(quats.shape)
    filtered = torch.nn.functional.normalize(filtered, dim=-1)
    out = track.copy()
    out[:, 3:] = quaternion_to_axis_angle(filtered).reshape(len(track), -1).numpy()
    return out


def tune(candidates, error: Callable[[float], float]) -> tuple[float, dict]:
    """The candidate with the lowest error, and every candidate's error."""
    errors = {c: error(c) for c in candidates}
    return min(errors, key=errors.get), errors
