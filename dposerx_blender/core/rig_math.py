"""Rotation maths between a Blender armature's bone channels and SMPL-X local rotations, in numpy (float64), and
the axes changes between them. Plain conversions are scipy's `Rotation`; this module holds what scipy does not:
Blender's channel layouts, key continuity, and the rest-frame and axes changes.

Blender side: a pose bone stores its rotation in one of three channel layouts (`rotation_mode`):
quaternion (w, x, y, z), Euler angles in one of six orders (Blender's "XYZ" means R = Rz Ry Rx, scipy's
extrinsic "xyz"), or axis-angle (angle, x, y, z). SMPL-X side: axis-angle vectors in the SMPL-X frame (+Y up,
+X the subject's left, +Z forward).

The bridge between the two is the rest-frame formula R_smplx = A M R_basis M^T A^T, with M the bone's rest
orientation in armature space and A the armature -> SMPL-X axes change (see `smplx_axes`).
No bpy here: the Blender layer passes plain arrays in and out.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial.transform import Rotation

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
CHANNEL_SIZES = {"QUATERNION": 4, "AXIS_ANGLE": 4, **{order: 3 for order in EULER_ORDERS}}
_SMALL = 1e-12


def rotation_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angles (radians) of the rotations taking a to b: (..., 3, 3) each -> (...)."""
    shape = np.broadcast_shapes(a.shape, b.shape)[:-2]
    relative = np.swapaxes(a, -1, -2) @ b
    return Rotation.from_matrix(relative.reshape(-1, 3, 3)).magnitude().reshape(shape)


def _wrap_near(angles: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return angles + 2 * np.pi * np.round((reference - angles) / (2 * np.pi))


def compatible_euler(angles: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The Euler triple equal to `angles` as a rotation and closest to `reference`. (..., 3) each."""
    first = _wrap_near(angles, reference)
    flipped = _wrap_near(angles * np.array([1, -1, 1]) + np.array([np.pi, np.pi, np.pi]), reference)
    closer = np.abs(flipped - reference).sum(-1, keepdims=True) < np.abs(first - reference).sum(-1, keepdims=True)
    return np.where(closer, flipped, first)


def channels_to_matrix(mode: str, values: np.ndarray) -> np.ndarray:
    """Bone rotation channels (..., k) in `mode` (QUATERNION, AXIS_ANGLE or an Euler order) -> (..., 3, 3).

    Quaternions of any non-zero length; invalid channels (NaN, infinite, a zero quaternion) give NaN matrices
    for the caller to report."""
    values = np.asarray(values, dtype=np.float64)
    invalid = ~np.isfinite(values).all(-1)
    if mode == "QUATERNION":
        invalid |= ~(np.abs(values).max(-1) > 0)
    values = np.where(invalid[..., None], np.eye(values.shape[-1])[0], values)  # a valid stand-in, NaN after
    if mode == "QUATERNION":
        rotation = Rotation.from_quat(values, scalar_first=True)
    elif mode == "AXIS_ANGLE":
        rotation = Rotation.from_quat(_axis_angle_channels_to_quaternion(values), scalar_first=True)
    else:
        rotation = Rotation.from_euler(mode.lower(), values[..., _sequence(mode)])
    return np.where(invalid[..., None, None], np.nan, rotation.as_matrix())


def _sequence(order: str) -> list[int]:
    """Blender stores Euler angles as (x, y, z) whatever the order: the indices that list them in `order`."""
    return ["XYZ".index(axis) for axis in order]


def matrix_to_channels(mode: str, rot_mats: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Rotations (T, ..., 3, 3), T consecutive samples -> channels (T, ..., k) in `mode`, continuous along T.

    Continuity keeps component-wise key interpolation on the short path: quaternion signs follow the previous
    sample (the first follows `reference` (..., k) when given, else w >= 0), Euler triples stay compatible with
    the previous one, and axis-angle follows the continuous quaternion.
    """
    rotation = Rotation.from_matrix(rot_mats)
    if mode in EULER_ORDERS:
        sequence = _sequence(mode)
        with warnings.catch_warnings():  # gimbal lock: scipy puts the whole turn in the first angle, as we want
            warnings.filterwarnings("ignore", "Gimbal lock detected", UserWarning)
            angles = rotation.as_euler(mode.lower())
        previous = None if reference is None else np.asarray(reference)[..., sequence]
        for t in range(len(angles)):
            if previous is not None:
                angles[t] = compatible_euler(angles[t], previous)
            previous = angles[t]
        return angles[..., np.argsort(sequence)]
    if reference is not None and mode == "AXIS_ANGLE":
        reference = _axis_angle_channels_to_quaternion(reference)
    quats = make_quaternions_continuous(rotation.as_quat(canonical=True, scalar_first=True), reference)
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


def make_quaternions_continuous(quats: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """quats (T, ..., 4) -> the same rotations with dot(q_t, q_{t-1}) >= 0 (q_0 against `reference` (..., 4) if
    given), so that component-wise interpolation and filtering take the short path."""
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


# The one Z-up <-> Y-up change: Blender's world and AMASS files are Z-up, the subject facing -Y (left +X); SMPL-X's
# frame is Y-up (the transpose goes back). Exact: (x, y, z) -> (x, z, -y), -90 degrees about X.
Z_UP_TO_Y_UP = smplx_axes(left=(1, 0, 0), up=(0, 0, 1))


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
