"""Rotation conversions against scipy (and core.rig_math's scipy path), round trips, gradients at angle 0,
batch shapes and slerp."""

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation, Slerp

from dposerx_blender.core import rig_math
from dposerx_blender.core import rotations as rot

SETTINGS = settings(max_examples=200, deadline=None)

unit = st.floats(-1.0, 1.0, allow_nan=False)
axes = (
    st.tuples(unit, unit, unit)
    .filter(lambda v: np.linalg.norm(v) > 0.1)
    .map(lambda v: np.asarray(v) / np.linalg.norm(v))
)
angles = st.one_of(
    st.floats(0.0, math.pi),
    st.floats(1e-8, 1e-3),  # near 0, where Taylor series take over
    st.floats(math.pi - 1e-6, math.pi),  # near pi, where the axis must come from the symmetric part
    st.sampled_from([0.0, math.pi]),
)
rotvecs = st.builds(lambda axis, angle: axis * angle, axes, angles)
# A scaled, possibly sign-flipped quaternion: the functions that take quaternions must not care.
quat_scales = st.sampled_from([1.0, -1.0, 0.5, -2.0])


def t64(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array), dtype=torch.float64)


def to_wxyz(xyzw: np.ndarray) -> np.ndarray:
    return np.roll(xyzw, 1, axis=-1)


def assert_same_quat(actual: torch.Tensor, expected: np.ndarray, atol: float = 1e-10) -> None:
    """Quaternions equal up to the global sign (q and -q are the same rotation)."""
    actual = actual.detach().numpy()
    sign = 1.0 if np.dot(actual, expected) >= 0 else -1.0
    np.testing.assert_allclose(actual, sign * expected, rtol=0, atol=atol)


def assert_same_rotvec(actual: torch.Tensor, expected: np.ndarray) -> None:
    """Axis-angles equal to 1e-9 relative; the sign may differ only for angles within 1e-9 of pi."""
    actual = actual.detach().numpy()
    angle = np.linalg.norm(expected)
    if math.pi - angle < 1e-9 and np.dot(actual, expected) < 0:
        expected = -expected
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-14)
    assert np.linalg.norm(actual) <= math.pi + 1e-12


# --- against scipy ---------------------------------------------------------------------------


@SETTINGS
@given(rotvecs)
def test_axis_angle_to_matrix_matches_scipy(rotvec):
    expected = Rotation.from_rotvec(rotvec).as_matrix()
    np.testing.assert_allclose(rot.axis_angle_to_matrix(t64(rotvec)), expected, rtol=0, atol=1e-12)


@SETTINGS
@given(st.builds(lambda axis, angle: axis * angle, axes, st.floats(1e-8, 1e-2)))
def test_axis_angle_to_matrix_is_relatively_accurate_near_zero(rotvec):
    # R = I + a K + b K^2. Near 0 scipy is only accurate to 1e-16 absolute; check a and b relatively
    # (except on the diagonal, where 1 + b K^2 cannot hold more than 1e-16 absolute).
    angle = np.linalg.norm(rotvec)
    skew = np.cross(np.eye(3), rotvec)  # row i is e_i x v = -K e_i, so this is -K^T = K
    matrix = rot.axis_angle_to_matrix(t64(rotvec)).numpy()
    a = np.sin(angle) / angle
    b = 0.5 * (np.sin(angle / 2) / (angle / 2)) ** 2
    np.testing.assert_allclose((matrix - matrix.T) / 2, a * skew, rtol=1e-12, atol=1e-16 * angle)
    np.testing.assert_allclose((matrix + matrix.T) / 2 - np.eye(3), b * skew @ skew, rtol=1e-9, atol=4e-16)


@SETTINGS
@given(rotvecs)
def test_matrix_to_axis_angle_matches_scipy(rotvec):
    matrix = Rotation.from_rotvec(rotvec).as_matrix()
    assert_same_rotvec(rot.matrix_to_axis_angle(t64(matrix)), Rotation.from_matrix(matrix).as_rotvec())
    assert_same_rotvec(rot.matrix_to_axis_angle(t64(matrix)), rotvec)


@SETTINGS
@given(rotvecs)
def test_axis_angle_to_quaternion_matches_scipy(rotvec):
    quat = rot.axis_angle_to_quaternion(t64(rotvec))
    assert_same_quat(quat, to_wxyz(Rotation.from_rotvec(rotvec).as_quat()), atol=1e-14)
    assert quat[0] >= -1e-15  # not exactly 0: |rotvec| may round to just above pi


@SETTINGS
@given(rotvecs, quat_scales)
def test_quaternion_to_axis_angle_matches_scipy(rotvec, scale):
    quat = scale * to_wxyz(Rotation.from_rotvec(rotvec).as_quat())
    assert_same_rotvec(rot.quaternion_to_axis_angle(t64(quat)), rotvec)


@SETTINGS
@given(rotvecs, quat_scales)
def test_quaternion_to_matrix_matches_scipy(rotvec, scale):
    xyzw = Rotation.from_rotvec(rotvec).as_quat()
    expected = Rotation.from_quat(xyzw).as_matrix()
    np.testing.assert_allclose(rot.quaternion_to_matrix(t64(scale * to_wxyz(xyzw))), expected, rtol=0, atol=1e-12)


@SETTINGS
@given(rotvecs)
def test_matrix_to_quaternion_matches_scipy(rotvec):
    matrix = Rotation.from_rotvec(rotvec).as_matrix()
    quat = rot.matrix_to_quaternion(t64(matrix))
    assert_same_quat(quat, to_wxyz(Rotation.from_matrix(matrix).as_quat()), atol=1e-12)
    assert quat[0] >= 0
    assert abs(float(quat.norm()) - 1) < 1e-14


@pytest.mark.parametrize(
    "axis", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1 / math.sqrt(2), 1 / math.sqrt(2), 0)], ids=["x", "y", "z", "xy"]
)
def test_matrix_to_quaternion_at_exactly_180_degrees(axis):
    axis = np.asarray(axis)
    matrix = 2 * np.outer(axis, axis) - np.eye(3)  # exactly 180 degrees about axis
    quat = rot.matrix_to_quaternion(t64(matrix))
    expected = to_wxyz(Rotation.from_matrix(matrix).as_quat())
    assert_same_quat(quat, expected, atol=1e-15)
    assert_same_quat(quat, np.concatenate([[0.0], axis]), atol=1e-15)
    np.testing.assert_allclose(rot.quaternion_to_matrix(quat), matrix, atol=1e-15)
    np.testing.assert_allclose(np.abs(rot.matrix_to_axis_angle(t64(matrix))), math.pi * np.abs(axis), atol=1e-15)


@SETTINGS
@given(rotvecs)
def test_matrix_to_rot6d_takes_first_two_columns(rotvec):
    matrix = Rotation.from_rotvec(rotvec).as_matrix()
    rot6d = rot.matrix_to_rot6d(t64(matrix))
    np.testing.assert_array_equal(rot6d, np.concatenate([matrix[:, 0], matrix[:, 1]]))
    np.testing.assert_allclose(rot.rot6d_to_matrix(rot6d), matrix, rtol=0, atol=1e-14)


def test_quaternion_multiply_composes_like_matrices():
    rng = np.random.default_rng(0)
    r1, r2 = Rotation.random(50, random_state=rng), Rotation.random(50, random_state=rng)
    product = rot.quaternion_multiply(t64(to_wxyz(r1.as_quat())), t64(to_wxyz(r2.as_quat())))
    expected = r1.as_matrix() @ r2.as_matrix()
    np.testing.assert_allclose(rot.quaternion_to_matrix(product), expected, atol=1e-14)
    for actual, xyzw in zip(product, (r1 * r2).as_quat()):
        assert_same_quat(actual, to_wxyz(xyzw), atol=1e-14)


# --- round trips -----------------------------------------------------------------------------


@SETTINGS
@given(rotvecs)
def test_round_trip_axis_angle_matrix(rotvec):
    assert_same_rotvec(rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(t64(rotvec))), rotvec)


@SETTINGS
@given(rotvecs)
def test_round_trip_axis_angle_quaternion(rotvec):
    assert_same_rotvec(rot.quaternion_to_axis_angle(rot.axis_angle_to_quaternion(t64(rotvec))), rotvec)


@SETTINGS
@given(rotvecs, quat_scales)
def test_round_trip_quaternion_matrix(rotvec, scale):
    unit_quat = to_wxyz(Rotation.from_rotvec(rotvec).as_quat())
    back = rot.matrix_to_quaternion(rot.quaternion_to_matrix(t64(scale * unit_quat)))
    assert_same_quat(back, unit_quat, atol=1e-12)
    assert back[0] >= 0


@SETTINGS
@given(st.lists(st.floats(-10, 10), min_size=6, max_size=6))
def test_round_trip_rot6d_matrix(values):
    rot6d = t64(values)
    col0, col1 = rot6d[:3], rot6d[3:]
    # (Nearly) parallel or tiny columns make Gram-Schmidt ill-conditioned.
    # (Seen failing at 1e-3: rounding grows as 1 / sin(angle between the columns).)
    assume(min(col0.norm(), col1.norm()) > 1e-2 and torch.linalg.cross(col0, col1).norm() > 1e-2 * col0.norm() * col1.norm())
    matrix = rot.rot6d_to_matrix(rot6d)
    np.testing.assert_allclose(matrix.T @ matrix, np.eye(3), atol=1e-12)
    assert abs(float(torch.linalg.det(matrix)) - 1) < 1e-12
    np.testing.assert_allclose(matrix[:, 0], col0 / col0.norm(), atol=1e-14)
    assert float(matrix[:, 1] @ col1) > 0  # col1 stays on the same side
    clean = rot.matrix_to_rot6d(matrix)
    np.testing.assert_allclose(rot.matrix_to_rot6d(rot.rot6d_to_matrix(clean)), clean, atol=1e-14)


# --- gradients -------------------------------------------------------------------------------


def test_axis_angle_to_matrix_gradient_at_zero_is_the_skew_generator():
    for dtype in (torch.float32, torch.float64):
        jacobian = torch.autograd.functional.jacobian(rot.axis_angle_to_matrix, torch.zeros(3, dtype=dtype))
        assert torch.isfinite(jacobian).all()
        for k in range(3):
            generator = torch.zeros(3, 3, dtype=dtype)
            i, j = (k + 1) % 3, (k + 2) % 3
            generator[j, i], generator[i, j] = 1.0, -1.0  # d R / d aa_k = [e_k]x
            torch.testing.assert_close(jacobian[..., k], generator, rtol=0, atol=1e-7)
        torch.testing.assert_close(jacobian[..., 0], torch.tensor([[0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=dtype))


def test_gradients_at_identity_are_finite_and_exact():
    zero_aa = torch.zeros(3, dtype=torch.float64)
    identity_quat = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    for func, point in [
        (rot.axis_angle_to_quaternion, zero_aa),
        (rot.quaternion_to_axis_angle, identity_quat),
        (rot.matrix_to_axis_angle, torch.eye(3, dtype=torch.float64)),
        (rot.matrix_to_quaternion, torch.eye(3, dtype=torch.float64)),
    ]:
        assert torch.isfinite(torch.autograd.functional.jacobian(func, point)).all(), func.__name__
    # Near identity axis_angle = vee((R - R^T) / 2), so d aa_x / d R[2, 1] = 1/2 = -d aa_x / d R[1, 2].
    jacobian = torch.autograd.functional.jacobian(rot.matrix_to_axis_angle, torch.eye(3, dtype=torch.float64))
    assert float(jacobian[0, 2, 1]) == pytest.approx(0.5)
    assert float(jacobian[0, 1, 2]) == pytest.approx(-0.5)
    # and d q / d aa at 0 is [0; I / 2].
    jacobian = torch.autograd.functional.jacobian(rot.axis_angle_to_quaternion, zero_aa)
    torch.testing.assert_close(jacobian, torch.cat([torch.zeros(1, 3), torch.eye(3) / 2]).double())


@pytest.mark.parametrize("angle", [1e-7, 9e-4, 1.1e-3, 0.5, 2.0, 3.0])
def test_gradcheck(angle):
    gen = torch.Generator().manual_seed(round(angle * 1e7))
    axis = torch.nn.functional.normalize(torch.randn(4, 3, generator=gen, dtype=torch.float64), dim=-1)
    aa = (angle * axis).requires_grad_()
    quat = rot.axis_angle_to_quaternion(aa).detach().requires_grad_()
    mats = rot.axis_angle_to_matrix(aa).detach().requires_grad_()
    rot6d = torch.randn(4, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    other = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    weight = torch.rand(4, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(rot.axis_angle_to_matrix, (aa,))
    assert torch.autograd.gradcheck(rot.axis_angle_to_quaternion, (aa,))
    assert torch.autograd.gradcheck(rot.quaternion_to_axis_angle, (quat,))
    assert torch.autograd.gradcheck(rot.quaternion_to_matrix, (quat,))
    assert torch.autograd.gradcheck(rot.matrix_to_quaternion, (mats,))
    assert torch.autograd.gradcheck(rot.matrix_to_axis_angle, (mats,))
    assert torch.autograd.gradcheck(rot.rot6d_to_matrix, (rot6d,))
    assert torch.autograd.gradcheck(lambda q: rot.quaternion_slerp(q, other, weight), (quat,))


# --- shapes and dtypes -----------------------------------------------------------------------


@pytest.mark.parametrize("batch", [(), (5,), (2, 3, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batch_shapes_and_dtype(batch, dtype):
    gen = torch.Generator().manual_seed(1)
    aa = torch.randn(batch + (3,), generator=gen, dtype=dtype)
    mats = rot.axis_angle_to_matrix(aa)
    quat = rot.axis_angle_to_quaternion(aa)
    outputs = {
        "axis_angle_to_matrix": (mats, (3, 3)),
        "matrix_to_axis_angle": (rot.matrix_to_axis_angle(mats), (3,)),
        "axis_angle_to_quaternion": (quat, (4,)),
        "quaternion_to_axis_angle": (rot.quaternion_to_axis_angle(quat), (3,)),
        "quaternion_to_matrix": (rot.quaternion_to_matrix(quat), (3, 3)),
        "matrix_to_quaternion": (rot.matrix_to_quaternion(mats), (4,)),
        "matrix_to_rot6d": (rot.matrix_to_rot6d(mats), (6,)),
        "rot6d_to_matrix": (rot.rot6d_to_matrix(rot.matrix_to_rot6d(mats)), (3, 3)),
        "quaternion_multiply": (rot.quaternion_multiply(quat, quat), (4,)),
        "quaternion_slerp": (rot.quaternion_slerp(quat, quat.flip(-1), torch.full(batch, 0.3, dtype=dtype)), (4,)),
    }
    for name, (output, tail) in outputs.items():
        assert output.shape == batch + tail, name
        assert output.dtype == dtype, name
        assert torch.isfinite(output).all(), name
    # The float32 results are still accurate.
    expected = Rotation.from_rotvec(aa.double().reshape(-1, 3).numpy()).as_matrix().reshape(batch + (3, 3))
    np.testing.assert_allclose(mats.double(), expected, atol=1e-6)
    np.testing.assert_allclose(rot.axis_angle_to_matrix(rot.matrix_to_axis_angle(mats)), mats, atol=1e-5)


# --- slerp ---------------------------------------------------------------------------------


@SETTINGS
@given(rotvecs, rotvecs, st.floats(0.0, 1.0))
def test_slerp_matches_scipy(rotvec0, rotvec1, weight):
    r0, r1 = Rotation.from_rotvec(rotvec0), Rotation.from_rotvec(rotvec1)
    q0, q1 = t64(to_wxyz(r0.as_quat())), t64(to_wxyz(r1.as_quat()))
    assert_same_quat(rot.quaternion_slerp(q0, q1, 0.0), q0.numpy(), atol=1e-14)
    assert_same_quat(rot.quaternion_slerp(q0, q1, 1.0), q1.numpy(), atol=1e-12)
    mid = rot.quaternion_slerp(q0, q1, torch.tensor([0.5], dtype=torch.float64))
    half = abs(float(mid @ q0))
    full = abs(float(q1 @ q0))
    assert math.acos(min(half, 1.0)) == pytest.approx(math.acos(min(full, 1.0)) / 2, abs=2e-7)
    if (r0.inv() * r1).magnitude() < math.pi - 1e-6:  # at 180 degrees apart the shortest path is ambiguous
        expected = Slerp([0.0, 1.0], Rotation.concatenate([r0, r1]))([weight]).as_matrix()[0]
        np.testing.assert_allclose(rot.quaternion_to_matrix(rot.quaternion_slerp(q0, q1, weight)), expected, atol=1e-6)


def test_slerp_takes_the_short_path_and_handles_identical_inputs():
    q0 = t64([1.0, 0, 0, 0])
    q1 = t64([math.cos(0.4), math.sin(0.4), 0, 0])
    # -q1 is the same rotation: the result must be the same rotation 0.8 * weight about x.
    np.testing.assert_allclose(
        rot.quaternion_to_axis_angle(rot.quaternion_slerp(q0, -q1, 0.25)), [0.2, 0, 0], atol=1e-14
    )
    for nearby in (q0, t64([1.0, 1e-9, 0, 0]), -q0):
        q = (q0 + torch.zeros(4, dtype=torch.float64)).requires_grad_()
        out = rot.quaternion_slerp(q, nearby, torch.tensor([0.3], dtype=torch.float64))
        assert_same_quat(out, q0.numpy(), atol=1e-9)
        out.sum().backward()
        assert torch.isfinite(q.grad).all()
    # weight (..., ) and (..., 1) broadcast the same way
    q0s, q1s = q0.expand(5, 4), q1.expand(5, 4)
    weights = torch.linspace(0, 1, 5, dtype=torch.float64)
    torch.testing.assert_close(rot.quaternion_slerp(q0s, q1s, weights), rot.quaternion_slerp(q0s, q1s, weights[:, None]))


# --- the numpy side (core.rig_math through scipy) against this module ---------------------------------------

# A rotation as a quaternion (w, x, y, z) of any non-zero length and sign: Blender's channels may hold any.
quaternions = st.tuples(unit, unit, unit, unit).filter(lambda q: np.linalg.norm(q) > 0.1)


def _torch_matrix(quat):
    return rot.quaternion_to_matrix(t64(quat)).numpy()


@SETTINGS
@given(quaternions, quat_scales)
def test_rig_math_quaternion_channels_agree(quat, scale):
    """rig_math (scipy, for numpy code) and this module (torch, where gradients are needed) are the same maths."""
    channels = scale * np.asarray(quat)
    mats = rig_math.channels_to_matrix("QUATERNION", channels[None])
    np.testing.assert_allclose(mats[0], _torch_matrix(channels), atol=1e-12)
    back = rig_math.matrix_to_channels("QUATERNION", mats)[0]
    torch_back = rot.matrix_to_quaternion(torch.from_numpy(mats)).numpy()[0]
    np.testing.assert_allclose(back * np.sign(back @ torch_back), torch_back, atol=1e-9)
    assert back[0] >= 0  # no reference: w >= 0


@SETTINGS
@given(quaternions, st.sampled_from(rig_math.EULER_ORDERS))
def test_rig_math_euler_and_axis_angle_channels_agree(quat, order):
    expected = _torch_matrix(quat)
    # At gimbal lock an Euler middle angle comes from its sine (±1): the round trip holds to about sqrt(eps).
    for mode, atol in ((order, 1e-7), ("AXIS_ANGLE", 1e-9)):
        channels = rig_math.matrix_to_channels(mode, expected[None])
        np.testing.assert_allclose(rig_math.channels_to_matrix(mode, channels)[0], expected, atol=atol)
    angle, axis = channels[0, 0], channels[0, 1:]
    rotvec = torch.from_numpy(angle * axis)
    np.testing.assert_allclose(rot.axis_angle_to_matrix(rotvec).numpy(), expected, atol=1e-9)
    assert 0 <= angle <= math.pi + 1e-12
