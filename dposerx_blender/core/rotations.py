"""Batched rotation conversions in torch: axis-angle, matrix, quaternion (w, x, y, z) and 6D, for the code that
needs gradients or runs on the prior's tensors (forward kinematics, the tasks, training). Plain numpy code uses
scipy's `Rotation` instead (core.rig_math adds Blender's channel layouts); tests compare the two.

Every function accepts any leading batch shape and keeps the input's dtype and device; values and
gradients stay finite at angle 0, where the naive formulas divide by zero.
"""

import torch
from torch import Tensor

_SMALL_ANGLE_SQ = 1e-6  # below angle 1e-3 the sin(x)/x-type ratios use Taylor series (exact in float64)
_SLERP_LERP_DOT = 1.0 - 1e-6  # above this |dot| slerp falls back to normalised lerp


def _safe_angle(angle_sq: Tensor) -> tuple[Tensor, Tensor]:
    """Mask of small angles, and the angle with small entries replaced by 1 so no branch divides by 0."""
    small = angle_sq < _SMALL_ANGLE_SQ
    return small, torch.sqrt(torch.where(small, torch.ones_like(angle_sq), angle_sq))


def _skew(vec: Tensor) -> Tensor:
    """Cross-product matrix, [v]x @ u == cross(v, u); vec (..., 3) -> (..., 3, 3)."""
    x, y, z = vec.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (zero, -z, y, z, zero, -x, -y, x, zero)
    return torch.stack(rows, dim=-1).reshape(vec.shape[:-1] + (3, 3))


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula R = I + a K + b K^2 with Taylor series near angle 0.

    axis_angle (..., 3) -> rot_mats (..., 3, 3)
    """
    angle_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)
    small, angle = _safe_angle(angle_sq)
    sinc = torch.where(small, 1 - angle_sq / 6 + angle_sq**2 / 120, torch.sin(angle) / angle)
    # (1 - cos x) / x^2 written as 2 sin^2(x/2) / x^2 to avoid cancellation in float32.
    half_sinc = torch.sin(angle / 2) / (angle / 2)
    cosc = torch.where(small, 0.5 - angle_sq / 24 + angle_sq**2 / 720, 0.5 * half_sinc**2)
    skew = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + sinc[..., None] * skew + cosc[..., None] * (skew @ skew)


def axis_angle_to_quaternion(axis_angle: Tensor) -> Tensor:
    """Unit quaternion (cos(t/2), sin(t/2) * axis) with Taylor series near angle 0.

    axis_angle (..., 3) -> quat (..., 4)
    """
    angle_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)
    small, angle = _safe_angle(angle_sq)
    w = torch.where(small, 1 - angle_sq / 8 + angle_sq**2 / 384, torch.cos(angle / 2))
    scale = torch.where(small, 0.5 - angle_sq / 48 + angle_sq**2 / 3840, torch.sin(angle / 2) / angle)
    return torch.cat([w, scale * axis_angle], dim=-1)


def quaternion_to_axis_angle(quat: Tensor) -> Tensor:
    """Axis-angle with angle in [0, pi] via 2 * atan2(|xyz|, w); quat need not be unit length.

    quat (..., 4) -> axis_angle (..., 3)
    """
    quat = torch.where(quat[..., :1] < 0, -quat, quat)
    w, xyz = quat[..., :1], quat[..., 1:]
    sin_sq = (xyz * xyz).sum(-1, keepdim=True)
    small = sin_sq < _SMALL_ANGLE_SQ * w * w
    sin_half = torch.sqrt(torch.where(small, torch.ones_like(sin_sq), sin_sq))
    w_safe = torch.where(small, w, torch.ones_like(w))
    ratio_sq = sin_sq / w_safe**2  # tan^2(angle / 2), tiny where used
    # angle / |xyz| = 2 atan(u) / (u w) with u = |xyz| / w, and atan(u) / u = 1 - u^2/3 + u^4/5 - ...
    scale = torch.where(
        small, 2 / w_safe * (1 - ratio_sq / 3 + ratio_sq**2 / 5), 2 * torch.atan2(sin_half, w) / sin_half
    )
    return scale * xyz


def quaternion_to_matrix(quat: Tensor) -> Tensor:
    """Rotation matrix of a quaternion of any non-zero length (same as normalising it first).

    quat (..., 4) -> rot_mats (..., 3, 3)
    """
    w, x, y, z = quat.unbind(-1)
    s = 2 / (quat * quat).sum(-1)
    rows = (
        1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
        s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
        s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y),
    )  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(quat.shape[:-1] + (3, 3))


def matrix_to_quaternion(rot_mats: Tensor) -> Tensor:
    """Unit quaternion with w >= 0, reading it from the largest of |w|, |x|, |y|, |z| (Shepperd).

    rot_mats (..., 3, 3) -> quat (..., 4)
    """
    m = rot_mats
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    wx, wy, wz = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    xy, xz, yz = m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1]
    # For a rotation this symmetric matrix is 4 q q^T (wx = 4 w x, ...); row i / (2 sqrt(4 q_i^2)) is +-q.
    entries = (
        1 + m00 + m11 + m22, wx, wy, wz,
        wx, 1 + m00 - m11 - m22, xy, xz,
        wy, xy, 1 - m00 + m11 - m22, yz,
        wz, xz, yz, 1 - m00 - m11 + m22,
    )  # fmt: skip
    outer = torch.stack(entries, dim=-1).reshape(m.shape[:-2] + (4, 4))
    diag = torch.diagonal(outer, dim1=-2, dim2=-1)
    # The largest diagonal entry is >= 1 for a rotation; the floor only keeps unused rows finite.
    candidates = outer / (2 * torch.sqrt(diag.clamp_min(1e-3)))[..., None]
    best = diag.argmax(-1)[..., None, None]
    quat = torch.take_along_dim(candidates, best, dim=-2).squeeze(-2)
    quat = quat / quat.norm(dim=-1, keepdim=True)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def matrix_to_axis_angle(rot_mats: Tensor) -> Tensor:
    """Axis-angle with angle in [0, pi], through the quaternion so it stays accurate near 0 and pi.

    rot_mats (..., 3, 3) -> axis_angle (..., 3)
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(rot_mats))


def matrix_to_rot6d(rot_mats: Tensor) -> Tensor:
    """First two columns of the matrix, [col0, col1] (Zhou et al., CVPR 2019).

    rot_mats (..., 3, 3) -> rot6d (..., 6)
    """
    return torch.cat([rot_mats[..., :, 0], rot_mats[..., :, 1]], dim=-1)


def rot6d_to_matrix(rot6d: Tensor) -> Tensor:
    """Gram-Schmidt on the two 3-vectors; the third column is their cross product.

    rot6d (..., 6) -> rot_mats (..., 3, 3)
    """
    col0 = torch.nn.functional.normalize(rot6d[..., :3], dim=-1)
    raw1 = rot6d[..., 3:]
    col1 = torch.nn.functional.normalize(raw1 - (col0 * raw1).sum(-1, keepdim=True) * col0, dim=-1)
    col2 = torch.linalg.cross(col0, col1, dim=-1)
    return torch.stack([col0, col1, col2], dim=-1)


def quaternion_multiply(q1: Tensor, q2: Tensor) -> Tensor:
    """Hamilton product q1 * q2 (rotate by q2, then by q1).

    q1 (..., 4), q2 (..., 4) -> quat (..., 4)
    """
    w1, x1, y1, z1 = q1.unbind(-1)
    w2, x2, y2, z2 = q2.unbind(-1)
    w = w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2
    x = w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2
    y = w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2
    z = w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2
    return torch.stack([w, x, y, z], dim=-1)


def quaternion_slerp(q0: Tensor, q1: Tensor, weight: Tensor | float) -> Tensor:
    """Shortest-path spherical interpolation (weight 0 gives q0), normalised lerp when q0 ~= q1.

    q0 (..., 4), q1 (..., 4), weight (...) or (..., 1) -> quat (..., 4)
    """
    q0, q1 = torch.broadcast_tensors(q0, q1)
    q0 = torch.nn.functional.normalize(q0, dim=-1)
    q1 = torch.nn.functional.normalize(q1, dim=-1)
    weight = torch.as_tensor(weight, dtype=q0.dtype, device=q0.device)
    if weight.dim() < q0.dim():
        weight = weight.unsqueeze(-1)
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs()
    close = dot > _SLERP_LERP_DOT
    angle = torch.acos(dot.clamp(max=_SLERP_LERP_DOT))  # clamped: acos' gradient is infinite at 1
    sin_angle = torch.sin(angle)
    w0 = torch.where(close, 1 - weight, torch.sin((1 - weight) * angle) / sin_angle)
    w1 = torch.where(close, weight, torch.sin(weight * angle) / sin_angle)
    return torch.nn.functional.normalize(w0 * q0 + w1 * q1, dim=-1)

