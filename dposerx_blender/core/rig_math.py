"""Rotation maths between a Blender armature's bone channels and SMPL-X local rotations, in numpy (float64).

Blender side: a pose bone stores its rotation in one of three channel layouts (`rotation_mode`):
quaternion (w, x, y, z), Euler angles in one of six orders (Blender's "XYZ" means R = Rz Ry Rx), or axis-angle
(angle, x, y, z). SMPL-X side: axis-angle vectors in the SMPL-X frame (+Y up, +X the subject's left, +Z forward).

The bridge between the two is the rest-frame formula R_smplx = A M R_basis M^T A^T, with M the bone's rest
orientation in armature space and A the armature -> SMPL-X axes change (see `smplx_axes`).
No bpy here: the Blender layer passes plain arrays in and out.
"""
from __future__ import annotations

import numpy as np

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
CHANNEL_SIZES = {"QUATERNION": 4, "AXIS_ANGLE": 4, **{order: 3 for order in EULER_ORDERS}}
_SMALL = 1e-12


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """axis_angle (..., 3) -> rot_mats (..., 3, 3) (Rodrigues)."""
    return quaternion_to_matrix(axis_angle_to_quaternion(axis_angle))


def axis_angle_to_quaternion(axis_angle: np.ndarray) -> np.ndarray:
    """axis_angle (..., 3) -> quat (..., 4) (w, x, y, z); exact at angle 0."""
    angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
    # sin(a/2)/a, with its limit 1/2 at a = 0
    scale = np.where(angle < 1e-8, 0.5 - angle**2 / 48, np.sin(angle / 2) / np.where(angle < 1e-8, 1, angle))
    return np.concatenate([np.cos(angle / 2), scale * axis_angle], axis=-1)


def quaternion_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """quat (..., 4), any norm -> axis_angle (..., 3) with angle in [0, pi]."""
    quat = np.where(quat[..., :1] < 0, -quat, quat)
    norm_v = np.linalg.norm(quat[..., 1:], axis=-1, keepdims=True)
    angle = 2 * np.arctan2(norm_v, quat[..., :1])
    return quat[..., 1:] * np.where(norm_v < _SMALL, 2 / np.maximum(quat[..., :1], _SMALL), angle / np.maximum(norm_v, _SMALL))


def quaternion_to_matrix(quat: np.ndarray) -> np.ndarray:
    """quat (..., 4) (w, x, y, z), normalised here -> rot_mats (..., 3, 3)."""
    w, x, y, z = np.moveaxis(quat / np.linalg.norm(quat, axis=-1, keepdims=True), -1, 0)
    rows = (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y))
    return np.stack(rows, axis=-1).reshape(quat.shape[:-1] + (3, 3))


def matrix_to_quaternion(rot_mats: np.ndarray) -> np.ndarray:
    """rot_mats (..., 3, 3) -> quat (..., 4) with w >= 0 (largest-component method, stable for all angles)."""
    m = rot_mats
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate solutions, each accurate when its own leading component is the largest.
    candidates = np.stack([
        np.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + 2 * m[..., 0, 0] - trace, m[..., 0, 1] + m[..., 1, 0],
                  m[..., 0, 2] + m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 + 2 * m[..., 1, 1] - trace,
                  m[..., 1, 2] + m[..., 2, 1]], -1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                  1 + 2 * m[..., 2, 2] - trace], -1),
    ], axis=-2)  # (..., 4, 4)
    best = np.argmax(np.stack([trace, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1), axis=-1)
    quat = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    quat = quat / np.linalg.norm(quat, axis=-1, keepdims=True)
    return np.where(quat[..., :1] < 0, -quat, quat)


def matrix_to_axis_angle(rot_mats: np.ndarray) -> np.ndarray:
    """rot_mats (..., 3, 3) -> axis_angle (..., 3), angle in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(rot_mats))


def _euler_relabel(order: str) -> tuple[np.ndarray, float]:
    """Permutation P with R = P^T R' P, R' in XYZ form, and the angle sign (-1 for odd permutations)."""
    axes = ["XYZ".index(a) for a in order]
    perm = np.eye(3)[axes]
    return perm, float(np.linalg.det(perm))


def euler_to_matrix(angles: np.ndarray, order: str) -> np.ndarray:
    """angles (..., 3) in Blender's order (first letter applied first) -> rot_mats (..., 3, 3)."""
    perm, sign = _euler_relabel(order)
    a, b, c = np.moveaxis(sign * angles, -1, 0)
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rows = (cb * cc, sa * sb * cc - ca * sc, ca * sb * cc + sa * sc,
            cb * sc, sa * sb * sc + ca * cc, ca * sb * sc - sa * cc,
            -sb, sa * cb, ca * cb)
    relabelled = np.stack(rows, axis=-1).reshape(angles.shape[:-1] + (3, 3))
    return perm.T @ relabelled @ perm


def matrix_to_euler(rot_mats: np.ndarray, order: str) -> np.ndarray:
    """rot_mats (..., 3, 3) -> angles (..., 3) in Blender's order, middle angle in [-pi/2, pi/2]."""
    perm, sign = _euler_relabel(order)
    m = perm @ rot_mats @ perm.T
    cos_b = np.hypot(m[..., 0, 0], m[..., 1, 0])
    b = np.arctan2(-m[..., 2, 0], cos_b)
    locked = cos_b < 1e-9  # gimbal lock: only a - c (or a + c) is defined; put it all in a
    a = np.where(locked, np.arctan2(-m[..., 1, 2], m[..., 1, 1]), np.arctan2(m[..., 2, 1], m[..., 2, 2]))
    c = np.where(locked, 0.0, np.arctan2(m[..., 1, 0], m[..., 0, 0]))
    return sign * np.stack([a, b, c], axis=-1)


def _wrap_near(angles: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return angles + 2 * np.pi * np.round((reference - angles) / (2 * np.pi))


def compatible_euler(angles: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The Euler triple equal to `angles` as a rotation and closest to `reference`. (..., 3) each."""
    first = _wrap_near(angles, reference)
    flipped = _wrap_near(angles * np.array([1, -1, 1]) + np.array([np.pi, np.pi, np.pi]), reference)
    closer = np.abs(flipped - reference).sum(-1, keepdims=True) < np.abs(first - reference).sum(-1, keepdims=True)
    return np.where(closer, flipped, first)


def channels_to_matrix(mode: str, values: np.ndarray) -> np.ndarray:
    """Bone rotation channels (..., k) in `mode` (QUATERNION, AXIS_ANGLE or an Euler order) -> (..., 3, 3)."""
    if mode == "QUATERNION":
        return quaternion_to_matrix(values)
    if mode == "AXIS_ANGLE":
        return quaternion_to_matrix(_axis_angle_channels_to_quaternion(values))
    return euler_to_matrix(values[..., _sequence(mode)], mode)


def _sequence(order: str) -> list[int]:
    """Blender stores Euler angles as (x, y, z) whatever the order: the indices that list them in `order`."""
    return ["XYZ".index(axis) for axis in order]


def matrix_to_channels(mode: str, rot_mats: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Rotations (T, ..., 3, 3), T consecutive samples -> channels (T, ..., k) in `mode`, continuous along T.

    Continuity keeps component-wise key interpolation on the short path: quaternion signs follow the previous
    sample (the first follows `reference` (..., k) when given, else w >= 0), Euler triples stay compatible with
    the previous one, and axis-angle follows the continuous quaternion.
    """
    if mode in EULER_ORDERS:
        sequence = _sequence(mode)
        angles = matrix_to_euler(rot_mats, mode)
        previous = None if reference is None else np.asarray(reference)[..., sequence]
        for t in range(len(angles)):
            if previous is not None:
                angles[t] = compatible_euler(angles[t], previous)
            previous = angles[t]
        return angles[..., np.argsort(sequence)]
    if reference is not None and mode == "AXIS_ANGLE":
        reference = _axis_angle_channels_to_quaternion(reference)
    quats = make_continuous(matrix_to_quaternion(rot_mats), reference)
    if mode == "QUATERNION":
        return quats
    norm_v = np.linalg.norm(quats[..., 1:], axis=-1, keepdims=True)
    angle = 2 * np.arctan2(norm_v, quats[..., :1])
    axis = np.where(norm_v < _SMALL, np.array([0.0, 1.0, 0.0]), quats[..., 1:] / np.maximum(norm_v, _SMALL))
    return np.concatenate([angle, axis], axis=-1)


def _axis_angle_channels_to_quaternion(axis_angle_channels: np.ndarray) -> np.ndarray:
    """Blender axis-angle channels (..., 4) (angle, x, y, z) -> quaternion (..., 4); a zero axis is no rotation."""
    angle, axis = axis_angle_channels[..., :1], axis_angle_channels[..., 1:]
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), _SMALL)
    return np.concatenate([np.cos(angle / 2), np.sin(angle / 2) * axis], axis=-1)


def make_continuous(quats: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """quats (T, ..., 4) -> same rotations with dot(q_t, q_{t-1}) >= 0 (q_0 against `reference` if given)."""
    if not len(quats):
        return quats.copy()
    first = np.zeros(quats.shape[1:-1], bool) if reference is None else (quats[0] * reference).sum(-1) < 0
    flips = np.concatenate([first[None], (quats[1:] * quats[:-1]).sum(-1) < 0])  # (T, ...) against the raw previous
    signs = np.where(np.cumsum(flips, axis=0) % 2 == 1, -1.0, 1.0)  # each flip also flips everything after it
    return quats * signs[..., None]


def nearest_rotation(mats: np.ndarray) -> np.ndarray:
    """(..., 3, 3) nearly-rotation matrices (e.g. float32 bone matrices) -> the closest rotations (polar part)."""
    u, _, vt = np.linalg.svd(mats)
    return u @ vt


def smplx_axes(left: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Armature-space -> SMPL-X axes change A (3, 3), snapped to the nearest signed axis permutation.

    left: armature-space vector towards the subject's left (e.g. right hip -> left hip); up: towards the head
    (e.g. pelvis -> neck). SMPL-X has left = +X, up = +Y, so A maps `left` to +X and `up` to +Y. Rigs stand on
    an axis (MPI: Z-up, Meshcapade: Y-up), so snapping makes A exact for them.
    """
    def axis(v):
        k = int(np.argmax(np.abs(v)))
        out = np.zeros(3)
        out[k] = np.sign(v[k])
        return out

    x, y = axis(np.asarray(left, float)), axis(np.asarray(up, float))
    if abs(x @ y) > 0.5:
        raise ValueError("the rig's left and up directions point along the same axis")
    return np.stack([x, y, np.cross(x, y)])


def basis_to_smplx(basis: np.ndarray, rest: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Bone-local pose rotations -> SMPL-X local rotations: A M R_basis M^T A^T.

    basis (..., J, 3, 3) pose_bone.matrix_basis rotations, rest (J, 3, 3) bone.matrix_local rotations, axes (3, 3)
    -> (..., J, 3, 3).
    """
    frame = axes @ rest  # (J, 3, 3): bone axes -> SMPL-X axes
    return frame @ basis @ np.swapaxes(frame, -1, -2)


def smplx_to_basis(local: np.ndarray, rest: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Inverse of `basis_to_smplx`: M^T A^T R_smplx A M. local (..., J, 3, 3) -> (..., J, 3, 3)."""
    frame = axes @ rest
    return np.swapaxes(frame, -1, -2) @ local @ frame
