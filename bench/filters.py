"""The track baselines, all on the rotation channels as quaternions (as on Blender F-curves): zero-phase
Butterworth (scipy filtfilt), Gaussian, Savitzky-Golay and median + Butterworth, each with its parameter tuned
on validation tracks, and Blender's own Graph Editor > Channel > Butterworth Smooth at its default settings.

`blender_butterworth` re-implements Blender's operator (graph.butterworth_smooth; source/blender/animrig/intern/
keyframes_general.cc `ED_anim_calculate_butterworth_coefficients`, `butterworth_smooth_fcurve_segment`, and
editors/space_graph/graph_slider_ops.cc `btw_smooth_graph_keys`, Blender 4.x/5.0): `filter_order` cascaded
biquad sections (so order 4 is an 8-pole low-pass), run forward then backward on the curve sampled from
`filter_order` frames before its first key to 60 + `filter_order` frames past its last (constant extrapolation),
each pass offset by its first sample; the first and last keys keep their values (blend in/out of 1 key).
Defaults: cutoff 3 Hz, filter order 4, 1 sample per frame, blend 1, blend in/out 1.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d, median_filter
from scipy.signal import butter, filtfilt, savgol_filter, sosfilt

from dposerx_blender.core.rig_math import make_quaternions_continuous
from dposerx_blender.core.rotations import axis_angle_to_quaternion, quaternion_to_axis_angle

BUTTERWORTH_ORDER = 4
BLENDER_DEFAULTS = {"cutoff_hz": 3.0, "filter_order": 4, "blend_in_out": 1}
MEDIAN_FRAMES = 5  # the median stage of median + Butterworth (removes spikes up to 2 frames long)


def butterworth(x: np.ndarray, cutoff_hz: float, fps: float) -> np.ndarray:
    """Zero-phase low-pass of every column of x (T, C)."""
    b, a = butter(BUTTERWORTH_ORDER, cutoff_hz / (fps / 2))
    return filtfilt(b, a, x, axis=0, padlen=min(3 * max(len(a), len(b)), len(x) - 1))


def gaussian(x: np.ndarray, sigma_frames: float, fps: float) -> np.ndarray:
    del fps  # the kernel width is in frames
    return gaussian_filter1d(x, sigma_frames, axis=0, mode="nearest")


def savitzky_golay(x: np.ndarray, window_frames: float, fps: float) -> np.ndarray:
    """Local cubic least-squares fit over an odd window of frames."""
    del fps
    window = min(int(window_frames), len(x) - (1 - len(x) % 2))
    return savgol_filter(x, window, 3, axis=0, mode="interp") if window > 3 else x


def median_butterworth(x: np.ndarray, cutoff_hz: float, fps: float) -> np.ndarray:
    return butterworth(median_filter(x, size=(MEDIAN_FRAMES, 1), mode="nearest"), cutoff_hz, fps)


def blender_butterworth(x: np.ndarray, cutoff_hz: float, fps: float, filter_order: int = 4,
                        blend_in_out: int = 1) -> np.ndarray:
    """Blender's Butterworth Smooth on every column of x (T, C) keyed on every frame (see the module doc)."""
    a = np.tan(np.pi * min(cutoff_hz, fps / 2) / fps)
    r = np.sin(np.pi * (2 * np.arange(filter_order) + 1) / (4 * filter_order))
    s = a * a + 2 * a * r + 1
    gain, d1, d2 = a * a / s, 2 * (1 - a * a) / s, -(a * a - 2 * a * r + 1) / s
    # Each section is w0 = d1 w1 + d2 w2 + x, y = gain (w0 + 2 w1 + w2): a direct-form-II biquad.
    sos = np.stack([gain, 2 * gain, gain, np.ones_like(gain), -d1, -d2], axis=1)
    samples = np.concatenate([np.repeat(x[:1], filter_order, 0), x, np.repeat(x[-1:], filter_order + 60, 0)])

    def one_pass(values):
        return sosfilt(sos, values - values[0], axis=0) + values[0]

    filtered = one_pass(one_pass(samples)[::-1])[::-1][filter_order:filter_order + len(x)]
    if blend_in_out and len(x) > 1:
        filtered[0], filtered[-1] = x[0], x[-1]  # the border keys keep their values (blend factor 0 there)
    return filtered


# Each tuned filter with the parameter grid it is tuned over (cutoffs below the 15 Hz Nyquist limit of 30 fps).
FILTERS: dict[str, tuple[Callable, tuple[float, ...]]] = {
    "Butterworth": (butterworth, (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 11.0, 14.0)),
    "Gaussian": (gaussian, (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)),
    "Savitzky-Golay": (savitzky_golay, (5, 7, 9, 11, 15, 21, 31)),
    "median + Butterworth": (median_butterworth, (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 11.0, 14.0)),
}
UNITS = {"Butterworth": "Hz", "Gaussian": "frames", "Savitzky-Golay": "frames", "median + Butterworth": "Hz"}


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
