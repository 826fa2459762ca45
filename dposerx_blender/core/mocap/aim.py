"""Batched bone aiming: the rotation that points a rest bone along a target direction, taking its twist from a
reference rotation. The one mechanism behind body retargeting and hand fitting from landmarks.
"""
from __future__ import annotations

import numpy as np

_EPS = 1e-9


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


def _any_perpendicular(v: np.ndarray) -> np.ndarray:
    """(N, 3) unit vectors perpendicular to v."""
    helper = np.where(np.abs(v[..., :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    return _unit(np.cross(v, helper))


def _axis_angle_matrix(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """axis (N, 3) unit, angle (N,) -> (N, 3, 3) (Rodrigues)."""
    k = np.zeros(axis.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def swing(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smallest rotation taking direction u onto direction v. u, v (N, 3) -> (N, 3, 3)."""
    u, v = _unit(u), _unit(v)
    cross = np.cross(u, v)
    sin = np.linalg.norm(cross, axis=-1)
    cos = np.clip(np.sum(u * v, axis=-1), -1.0, 1.0)
    # Opposite directions: any perpendicular axis does; parallel ones give the identity (angle 0).
    axis = np.where((sin < 1e-12)[..., None], _any_perpendicular(u), cross / np.maximum(sin, _EPS)[..., None])
    return _axis_angle_matrix(axis, np.arctan2(sin, cos))


def aim(reference: np.ndarray, rest_dir: np.ndarray, target_dir: np.ndarray,
        rest_side: np.ndarray | None = None, target_side: np.ndarray | None = None) -> np.ndarray:
    """Rotation R with R @ rest_dir parallel to target_dir, otherwise as close to `reference` as possible.

    With `rest_side`/`target_side` (a second direction, e.g. hip-to-hip for the pelvis), the twist about the
    aimed bone is instead chosen so that R @ rest_side is as close as possible to target_side.
    reference (N, 3, 3), rest_dir/target_dir/rest_side/target_side (N, 3) or (3,) -> (N, 3, 3).
    """
    reference = np.asarray(reference, dtype=np.float64)
    rest_dir = np.broadcast_to(rest_dir, reference.shape[:-1])
    target_dir = _unit(np.broadcast_to(target_dir, reference.shape[:-1]))
    rot = swing(np.einsum("nij,nj->ni", reference, rest_dir), target_dir) @ reference
    if rest_side is None:
        return rot
    # Twist about target_dir by the angle between the two side directions projected on its normal plane.
    side_now = np.einsum("nij,nj->ni", rot, np.broadcast_to(rest_side, target_dir.shape))
    side_now = side_now - np.sum(side_now * target_dir, -1, keepdims=True) * target_dir
    side_goal = np.broadcast_to(target_side, target_dir.shape)
    side_goal = side_goal - np.sum(side_goal * target_dir, -1, keepdims=True) * target_dir
    angle = np.arctan2(np.sum(np.cross(side_now, side_goal) * target_dir, -1), np.sum(side_now * side_goal, -1))
    return _axis_angle_matrix(target_dir, angle) @ rot


def angle_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle in degrees between directions u and v (..., 3) -> (...)."""
    u, v = _unit(u), _unit(v)
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), np.sum(u * v, axis=-1)))
