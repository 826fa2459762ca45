"""Capture noise for the denoising benchmark, on the 21 body joints' rotations (the flat CMU hands stay flat; the
global orientation stays clean except in dropouts, which hold the whole pose). Every kind is a function (track (T, 165), rng) -> noisy track; glitches come about
once a second (`GLITCHES_PER_SECOND` at 30 fps), each on a random joint or limb for a few frames.

- rotation: Gaussian noise of sigma radians on each axis-angle component, every frame independently;
- jitter: the same with each joint's sigma = jitter / the length of the segment it rotates, so every segment's
  far end moves by about `jitter` (marker noise through a solver: short segments jitter most in angle);
- drift: slow band-limited (1-4 Hz) rotation noise (soft-tissue artefacts, a marker sliding): it looks like
  motion, so a low-pass filter cannot remove it;
- spins: a joint turned 30-90 degrees about a random axis for 1-4 frames;
- flips: a ~180 degree twist of a forearm (elbow), wrist or ankle about its bone for 1-6 frames;
- swaps: the left and right arm or leg exchanged (mirrored) for 1-4 frames (marker labels swapped);
- backwards: a knee or elbow bent the wrong way (its flexion negated) for 1-4 frames;
- frozen: the whole pose held for 2-8 frames (a dropout), then jumping back to the motion;
- video mix: what monocular video capture gives: jitter, rotation noise, spins, flips, swaps and dropouts.
"""
from __future__ import annotations

from functools import partial

import numpy as np
from scipy.signal import butter, sosfiltfilt
from scipy.spatial.transform import Rotation

from dposerx_blender.core.skeleton import BODY_JOINTS, JOINT_INDEX, NUM_JOINTS, PARENTS, REST_OFFSETS, TIP_OFFSETS

FPS = 30.0
GLITCHES_PER_SECOND = 1.0
LIMBS = {  # left chain, right chain (same order)
    "arm": (("left_collar", "left_shoulder", "left_elbow", "left_wrist"),
            ("right_collar", "right_shoulder", "right_elbow", "right_wrist")),
    "leg": (("left_hip", "left_knee", "left_ankle", "left_foot"),
            ("right_hip", "right_knee", "right_ankle", "right_foot")),
}
TWIST_JOINTS = ("left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_ankle", "right_ankle")
# The hinge axis component whose sign says which way a knee or elbow bends (as core.limits).
HINGES = {"left_knee": 0, "right_knee": 0, "left_elbow": 1, "right_elbow": 1}


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
_BODY = np.array(BODY_JOINTS)


def _bone_axis(joint: int) -> np.ndarray:
    """Unit vector along the segment a joint rotates (to its first child, else its tip), in the joint's frame."""
    children = [j for j, p in enumerate(PARENTS) if p == joint]
    offset = REST_OFFSETS[children[0]] if children else TIP_OFFSETS[joint]
    return offset / np.linalg.norm(offset)


def _joints(track: np.ndarray) -> np.ndarray:
    return track.reshape(len(track), NUM_JOINTS, 3)


def rotation(track, rng, sigma: float):
    noisy = _joints(track.copy())
    noisy[:, _BODY] += rng.normal(size=(len(track), len(_BODY), 3)) * sigma
    return noisy.reshape(track.shape)


def jitter(track, rng, millimetres: float):
    noisy = _joints(track.copy())
    sigma = millimetres / 1000 / SEGMENT_LENGTHS[_BODY]
    noisy[:, _BODY] += rng.normal(size=(len(track), len(_BODY), 3)) * sigma[:, None]
    return noisy.reshape(track.shape)


def drift(track, rng, rms_rad: float):
    """Band-limited 1-4 Hz noise composed onto each body joint's rotation, `rms_rad` per axis."""
    sos = butter(2, (1.0, 4.0), btype="bandpass", fs=FPS, output="sos")
    pad = 60
    white = rng.normal(size=(len(track) + 2 * pad, len(_BODY), 3))
    band = sosfiltfilt(sos, white, axis=0)[pad:-pad]
    band *= rms_rad / band.std()
    noisy = _joints(track.copy())
    for k, j in enumerate(_BODY):
        noisy[:, j] = (Rotation.from_rotvec(noisy[:, j]) * Rotation.from_rotvec(band[:, k])).as_rotvec()
    return noisy.reshape(track.shape)


def _events(track, rng, rate: float = GLITCHES_PER_SECOND, longest: int = 4, shortest: int = 1):
    """(start, length) of glitch events, about `rate` per second."""
    count = rng.poisson(rate * len(track) / FPS)
    for _ in range(count):
        length = int(rng.integers(shortest, longest + 1))
        yield int(rng.integers(0, max(1, len(track) - length))), length


def spins(track, rng, rate: float = GLITCHES_PER_SECOND):
    noisy = _joints(track.copy())
    for start, length in _events(track, rng, rate):
        j = int(rng.choice(_BODY))
        axis = rng.normal(size=3)
        turn = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(rng.uniform(30, 90)))
        frames = slice(start, start + length)
        noisy[frames, j] = (Rotation.from_rotvec(noisy[frames, j]) * turn).as_rotvec()
    return noisy.reshape(track.shape)


def flips(track, rng, rate: float = GLITCHES_PER_SECOND):
    noisy = _joints(track.copy())
    for start, length in _events(track, rng, rate, longest=6):
        j = JOINT_INDEX[TWIST_JOINTS[rng.integers(len(TWIST_JOINTS))]]
        twist = Rotation.from_rotvec(_bone_axis(j) * np.radians(rng.uniform(160, 200)))
        frames = slice(start, start + length)
        noisy[frames, j] = (Rotation.from_rotvec(noisy[frames, j]) * twist).as_rotvec()
    return noisy.reshape(track.shape)


def _mirrored(axis_angle: np.ndarray) -> np.ndarray:
    """A rotation reflected through the body's left-right (YZ) plane: (x, y, z) -> (x, -y, -z)."""
    return axis_angle * np.array([1.0, -1.0, -1.0])


def swaps(track, rng, rate: float = GLITCHES_PER_SECOND):
    noisy = _joints(track.copy())
    for start, length in _events(track, rng, rate):
        left, right = LIMBS[("arm", "leg")[rng.integers(2)]]
        frames = slice(start, start + length)
        for a, b in zip(left, right):
            ja, jb = JOINT_INDEX[a], JOINT_INDEX[b]
            noisy[frames, ja], noisy[frames, jb] = _mirrored(noisy[frames, jb]), _mirrored(noisy[frames, ja])
    return noisy.reshape(track.shape)


def backwards(track, rng, rate: float = GLITCHES_PER_SECOND):
    noisy = _joints(track.copy())
    names = tuple(HINGES)
    for start, length in _events(track, rng, rate):
        name = names[rng.integers(len(names))]
        frames = slice(start, start + length)
        noisy[frames, JOINT_INDEX[name], HINGES[name]] *= -1
    return noisy.reshape(track.shape)


def frozen(track, rng, rate: float = 0.5):
    noisy = track.copy()
    for start, length in _events(track, rng, rate, longest=8, shortest=2):
        start = max(start, 1)
        noisy[start:start + length] = noisy[start - 1]
    return noisy


def video_mix(track, rng):
    noisy = jitter(track, rng, 10.0)
    noisy = rotation(noisy, rng, 0.03)
    for kind in (spins, flips, swaps):
        noisy = kind(noisy, rng, rate=0.3)
    return frozen(noisy, rng, rate=0.3)


# label -> noise function; the benchmark runs them in this order.
KINDS = {
    "rotation 0.03 rad": partial(rotation, sigma=0.03),
    "rotation 0.1 rad": partial(rotation, sigma=0.1),
    "rotation 0.2 rad": partial(rotation, sigma=0.2),
    "jitter 20 mm": partial(jitter, millimetres=20.0),
    "drift 1-4 Hz 0.05 rad": partial(drift, rms_rad=0.05),
    "spins": spins,
    "twist flips": flips,
    "limb swaps": swaps,
    "knees/elbows backwards": backwards,
    "frozen frames": frozen,
    "video mix": video_mix,
}
GLITCH_KINDS = ("spins", "twist flips", "limb swaps", "knees/elbows backwards", "video mix")  # target 0.6x
