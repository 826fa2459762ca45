"""Rotation conventions the retargeter settles after aiming the bones, so that retargeted rotations mean what
they mean on the SMPL-X template whatever rig the capture came on.

Aiming fixes every bone's direction but not its twist (roll about the bone), which comes from the source rig's
own joint frames, nor where a rig places its landmarks. Two corrections, both constant rotations applied in a
bone's own frame (global G_j -> G_j C_j; local rotations follow as L'_j = C_parent^T L_j C_j):

- Limb twist, per take: the elbow and the knee are hinges. A rig whose rest pose rolls the arm or leg differently
  from SMPL-X's T-pose (palms down) hands every bone of the limb the same extra roll, which shows as a flexion
  axis turned about the limb. The whole limb (upper bone and everything below it) is turned about the upper
  bone so that the mean flexion axis of the bent frames (> 30 deg) is SMPL-X's: left elbow -Y, right elbow +Y,
  knees +X, in the T-pose frame; bones off that axis (foot, hand) are swung back onto their aimed directions.
  Then the forearm or shank alone is rolled so that the hinge carries no mean twist of its own.
- Rig calibration, per joint map (`[calibration]` in its TOML, axis-angle in degrees): where a rig's landmarks
  differ from SMPL-X's (a clavicle starting on the midline, a spine joint placed lower, another head end),
  the same standing pose gives different rotations. `python -m training.calibrate_skeleton` estimates these
  (spine, neck, head, collars) from standing frames against the CMU ASF skeleton, and the rest skeleton's
  geometry (core/skeleton.py) from all rigs' frames against AMASS.
Rig calibration is applied first, then the limb roll; joints the source leaves out follow their parent.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ..skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS, REST_JOINTS, TIP_OFFSETS

from .aim import _axis_angle_matrix, aim

MIN_BEND_DEGREES = 30.0
MIN_BENT_FRAMES = 10
# A hinge bends about one axis: the bent frames' flexion axes must agree (length of their mean unit vector) or
# the source is not hinge-like there (e.g. synthetic poses) and the limb keeps its twist.
MIN_AXIS_AGREEMENT = 0.6
# Hinge joint -> (flexion axis in the T-pose frame, the bone whose twist is settled by it).
HINGE_AXES = {
    "left_elbow": (np.array([0.0, -1.0, 0.0]), "left_shoulder"),
    "right_elbow": (np.array([0.0, 1.0, 0.0]), "right_shoulder"),
    "left_knee": (np.array([1.0, 0.0, 0.0]), "left_hip"),
    "right_knee": (np.array([1.0, 0.0, 0.0]), "right_hip"),
}


# Joints with several children: the one their bone points at (as the retargeter aims them).
_BONE_ENDS = {"spine3": "neck", "left_wrist": "left_middle1", "right_wrist": "right_middle1"}


def bone_direction(name: str) -> np.ndarray:
    """Unit rest direction of the bone that joint `name` carries (towards its child, or its tip)."""
    j = JOINT_INDEX[name]
    children = [c for c, p in enumerate(PARENTS) if p == j]
    if name in _BONE_ENDS:
        children = [JOINT_INDEX[_BONE_ENDS[name]]]
    vector = REST_JOINTS[children[0]] - REST_JOINTS[j] if len(children) == 1 else TIP_OFFSETS[j]
    return vector / np.linalg.norm(vector)


def _signed_angle(u: np.ndarray, v: np.ndarray, axis: np.ndarray) -> float:
    """Angle (radians) turning u onto v about `axis` (u, v projected on its normal plane)."""
    u, v = u - (u @ axis) * axis, v - (v @ axis) * axis
    return float(np.arctan2(np.cross(u, v) @ axis, u @ v))


def flexion_axes(local: np.ndarray, bone: np.ndarray) -> np.ndarray:
    """(T, 3) unit axes of the swing that bends `bone` (rest direction of the hinge's own bone) in `local`."""
    bent = local @ bone
    axes = np.cross(bone, bent)
    return axes / np.maximum(np.linalg.norm(axes, axis=-1, keepdims=True), 1e-12)


def _subtree(j: int) -> list[int]:
    out = [j]
    for c, p in enumerate(PARENTS):
        if p in out:
            out.append(c)
    return out


def twist_angles(local: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Twist (radians) of rotations (T, 3, 3) about `axis` in the swing-twist decomposition L = swing @ twist."""
    quat = Rotation.from_matrix(local).as_quat()  # x, y, z, w
    return 2.0 * np.arctan2(quat[:, :3] @ axis, quat[:, 3])


def _roll(globals_: np.ndarray, joints: list[int], axis: np.ndarray, angle: float) -> None:
    """Turn the frames of `joints` by `angle` about `axis` (rest frame); bones off the axis (the foot, the hand's
    knuckle line) are swung back onto their aimed directions: they keep pointing where the source's bones
    point, and take the turn as a roll."""
    turn = _axis_angle_matrix(axis[None], np.array([angle]))[0]
    for d in joints:
        bone = bone_direction(JOINT_NAMES[d])
        globals_[:, d] = aim(globals_[:, d] @ turn, bone, globals_[:, d] @ bone)


def settle_hinges(globals_: np.ndarray) -> dict[str, float]:
    """Turn each limb's twist in `globals_` (T, 55, 3, 3, canonical axes, modified in place) as the module
    docstring says. Returns the rolls applied (degrees): the whole limb's under its upper bone's name, the
    hinge's own under the hinge's; a limb with fewer than MIN_BENT_FRAMES bent frames, or whose flexion axes
    disagree, is left as it is (and missing from the result)."""
    applied = {}
    for hinge, (flexion_axis, upper) in HINGE_AXES.items():
        h, u = JOINT_INDEX[hinge], JOINT_INDEX[upper]
        upper_bone = bone_direction(upper)
        local = np.swapaxes(globals_[:, u], -1, -2) @ globals_[:, h]
        bent = Rotation.from_matrix(local).magnitude() > np.radians(MIN_BEND_DEGREES)
        if bent.sum() < MIN_BENT_FRAMES:
            continue
        mean_axis = flexion_axes(local[bent], bone_direction(hinge)).mean(0)
        if np.linalg.norm(mean_axis) < MIN_AXIS_AGREEMENT:
            continue
        # A limb frame turned by phi about the upper bone sees the flexion axis turned by -phi.
        twist = _signed_angle(flexion_axis, mean_axis, upper_bone)
        _roll(globals_, _subtree(u), upper_bone, twist)
        # The hinge's own twist (a forearm or shank rolled at rest against the bone above, as in rigs re-based
        # on an animation frame): the lower bone alone rolls back, the hand or foot keeps its orientation.
        local = np.swapaxes(globals_[:, u], -1, -2) @ globals_[:, h]
        lower_bone = bone_direction(hinge)
        twists = twist_angles(local, lower_bone)
        own = -float(np.arctan2(np.sin(twists).mean(), np.cos(twists).mean()))
        _roll(globals_, [h], lower_bone, own)
        applied[hinge] = float(np.degrees(own))
        applied[upper] = float(np.degrees(twist))
    return applied


def calibration_matrices(calibration: dict[str, list[float]]) -> np.ndarray:
    """(55, 3, 3) per-joint calibration rotations from a joint map's `[calibration]` table (degrees)."""
    out = np.broadcast_to(np.eye(3), (len(PARENTS), 3, 3)).copy()
    for name, rotvec in calibration.items():
        out[JOINT_INDEX[name]] = Rotation.from_rotvec(np.radians(rotvec)).as_matrix()
    return out
