"""Generous anatomical bounds for sanity checks of body poses: the largest rotation of each body joint away
from the rest T-pose, and the hinge direction of knees and elbows. Not a pose prior: a test of gross errors
(a knee bent forwards, a spine folded in half)."""
from __future__ import annotations

import numpy as np

from .skeleton import JOINT_INDEX

MAX_ROTATION_DEG = {
    "left_hip": 150, "right_hip": 150, "left_knee": 165, "right_knee": 165,
    "spine1": 70, "spine2": 70, "spine3": 70, "neck": 90, "head": 90,
    "left_ankle": 90, "right_ankle": 90, "left_foot": 70, "right_foot": 70,
    "left_collar": 60, "right_collar": 60, "left_shoulder": 180, "right_shoulder": 180,
    "left_elbow": 165, "right_elbow": 165, "left_wrist": 150, "right_wrist": 150,  # SMPL-X wrists also carry forearm pronation
}
HINGE_SLACK_DEG = 25  # knees may not bend forwards, nor elbows backwards, by more than this


def limit_violations(pose: np.ndarray) -> np.ndarray:
    """pose (..., 165) axis-angle -> (..., 55) bool: the body joints outside MAX_ROTATION_DEG or their hinge."""
    by_joint = np.asarray(pose).reshape(pose.shape[:-1] + (55, 3))
    bad = np.zeros(by_joint.shape[:-1], bool)
    for name, limit in MAX_ROTATION_DEG.items():
        bad[..., JOINT_INDEX[name]] = np.degrees(np.linalg.norm(by_joint[..., JOINT_INDEX[name], :], axis=-1)) > limit
    # SMPL-X knees flex about +X; the left elbow (along +X at rest) flexes about -Y, the right one about +Y.
    for name, axis, sign in (("left_knee", 0, 1), ("right_knee", 0, 1), ("left_elbow", 1, -1), ("right_elbow", 1, 1)):
        bad[..., JOINT_INDEX[name]] |= sign * np.degrees(by_joint[..., JOINT_INDEX[name], axis]) < -HINGE_SLACK_DEG
    return bad


def within_limits(pose: np.ndarray) -> np.ndarray:
    """pose (..., 165) axis-angle -> (...) bool: every body joint inside MAX_ROTATION_DEG and the hinges."""
    return ~limit_violations(pose).any(-1)
