"""SMPL-X motion conventions that importers and exporters agree on: resampling to another frame rate, the hand
reference (flat or relaxed), and the source's up axis.

Poses are (T, 165) axis-angle in SMPL-X joint order, translations (T, 3) metres.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ..rig_math import Z_UP_TO_Y_UP  # AMASS stores motion in a Z-up world; SMPL-X's own frame is Y-up
from ..skeleton import JOINT_INDEX, LEFT_HAND_JOINTS, NUM_JOINTS, REST_OFFSETS, RIGHT_HAND_JOINTS, TIP_OFFSETS
HAND_SLICE = slice(3 * LEFT_HAND_JOINTS[0], 3 * (RIGHT_HAND_JOINTS[-1] + 1))  # 75:165, both hands
# Relaxed hand: each finger bends towards the palm by these angles (degrees) at its knuckle, middle and end joint.
RELAXED_FLEXION = {"index": (20, 20, 10), "middle": (20, 20, 10), "ring": (20, 20, 10), "pinky": (20, 20, 10),
                   "thumb": (10, 10, 10)}


def resample_poses(poses: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """(T, 165) axis-angle at `fps` -> (T', 165) at `target_fps` over the same duration, slerp per joint.

    Frame 0 stays at time 0 and the new frames sit at k / target_fps up to the last original time."""
    n_frames = len(poses)
    if n_frames < 2 or abs(fps - target_fps) < 1e-6:
        return poses
    times, new_times = _times(n_frames, fps, target_fps)
    out = np.empty((len(new_times), NUM_JOINTS, 3))
    for j in range(NUM_JOINTS):
        slerp = Slerp(times, Rotation.from_rotvec(poses[:, 3 * j:3 * j + 3]))
        out[:, j] = slerp(new_times).as_rotvec()
    return out.reshape(len(new_times), -1)


def resample_translation(trans: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """(T, 3) at `fps` -> (T', 3) at `target_fps` on the same time grid as `resample_poses` (linear)."""
    if len(trans) < 2 or abs(fps - target_fps) < 1e-6:
        return trans
    times, new_times = _times(len(trans), fps, target_fps)
    return np.stack([np.interp(new_times, times, trans[:, k]) for k in range(3)], axis=1)


def _times(n_frames: int, fps: float, target_fps: float) -> tuple[np.ndarray, np.ndarray]:
    times = np.arange(n_frames) / fps
    return times, np.arange(0.0, times[-1] + 1e-9, 1.0 / target_fps)


def _relaxed_hands() -> np.ndarray:
    """(90,) axis-angle of both hands (joints 25..54): every finger joint turned about the axis that swings its
    bone towards the palm (-Y in the T-pose, palms down) by RELAXED_FLEXION. Built from the project's own rest
    skeleton, so it mirrors exactly between the hands."""
    palm_normal = np.array([0.0, -1.0, 0.0])
    out = np.zeros((len(LEFT_HAND_JOINTS) * 2, 3))
    for side in ("left", "right"):
        for finger, degrees in RELAXED_FLEXION.items():
            for segment, angle in enumerate(degrees, start=1):
                j = JOINT_INDEX[f"{side}_{finger}{segment}"]
                bone = REST_OFFSETS[j + 1] if segment < 3 else TIP_OFFSETS[j]  # towards the next joint or the tip
                axis = np.cross(bone, palm_normal)
                out[j - LEFT_HAND_JOINTS[0]] = np.radians(angle) * axis / np.linalg.norm(axis)
    return out.reshape(-1)


RELAXED_HANDS = _relaxed_hands()


def add_hand_reference(poses: np.ndarray, relaxed: bool, sign: float = 1.0) -> np.ndarray:
    """Hands given relative to the relaxed reference -> absolute (sign +1), or back (sign -1); a copy.

    Like SMPL-X's hand mean, the reference is added to the hands' axis-angle vectors (a vector sum)."""
    out = np.array(poses, dtype=np.float64)
    if relaxed:
        out[:, HAND_SLICE] += sign * RELAXED_HANDS
    return out


def to_y_up(poses: np.ndarray, trans: np.ndarray, rest_pelvis: np.ndarray, inverse: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Z-up source motion -> the Y-up SMPL-X frame (or back with `inverse`), turned about the rig's origin.

    The global orientation turns by -90 degrees about X; the pelvis, at rest_pelvis + trans (rest_pelvis (3,):
    the rig's rest pelvis from its origin, metres), turns with it, as the SMPL-X add-on does by rotating its
    root bone. poses (T, 165), trans (T, 3) -> both converted (copies)."""
    turn = Z_UP_TO_Y_UP.T if inverse else Z_UP_TO_Y_UP
    out = np.array(poses, dtype=np.float64)
    out[:, :3] = Rotation.from_matrix(turn @ Rotation.from_rotvec(out[:, :3]).as_matrix()).as_rotvec()
    return out, (rest_pelvis + trans) @ turn.T - rest_pelvis
