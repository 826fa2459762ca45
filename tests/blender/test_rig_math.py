"""core.rig_math (bpy-free, scipy underneath) against Blender's conventions; kept here with the Blender layer it
serves (tests/core/test_rotations.py compares it with core.rotations)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dposerx_blender.core import rig_math

RNG = np.random.default_rng(0)


def random_rotations(n):
    return Rotation.random(n, random_state=1).as_matrix()


@pytest.mark.parametrize("order", rig_math.EULER_ORDERS)
def test_euler_matches_blender_convention(order):
    """Blender "XYZ" applies X first: R = Rz Ry Rx (built here by hand), scipy's extrinsic lower-case "xyz"; the
    channels hold the angles about X, Y and Z whatever the order."""
    angles = RNG.uniform(-3, 3, size=(40, 3))
    angles[:, "XYZ".index(order[1])] = RNG.uniform(-1.5, 1.5, size=40)
    mats = rig_math.channels_to_matrix(order, angles)
    about = {axis: Rotation.from_rotvec(np.outer(angles[:, k], np.eye(3)[k])).as_matrix()
             for k, axis in enumerate("XYZ")}
    np.testing.assert_allclose(mats, about[order[2]] @ about[order[1]] @ about[order[0]], atol=1e-12)
    back = rig_math.matrix_to_channels(order, mats)
    np.testing.assert_allclose(rig_math.channels_to_matrix(order, back), mats, atol=1e-12)


@pytest.mark.parametrize("order", rig_math.EULER_ORDERS)
def test_euler_gimbal_lock(order):
    middle = "XYZ".index(order[1])  # the order's middle axis at +-90 degrees locks the other two
    angles = np.array([[0.4, 0.4, -0.3], [0.4, 0.4, 1.0]])
    angles[:, middle] = np.pi / 2, -np.pi / 2
    mats = rig_math.channels_to_matrix(order, angles)
    back = rig_math.matrix_to_channels(order, mats[:, None])[:, 0]
    np.testing.assert_allclose(rig_math.channels_to_matrix(order, back), mats, atol=1e-9)


def test_invalid_channels_give_nan_matrices():
    quats = np.array([[1.0, 0, 0, 0], [0, 0, 0, 0], [np.nan, 0, 0, 1], [np.inf, 0, 0, 1]])
    mats = rig_math.channels_to_matrix("QUATERNION", quats)
    assert np.isfinite(mats[0]).all() and np.isnan(mats[1:]).all()
    assert np.isnan(rig_math.channels_to_matrix("XYZ", np.array([[0.0, np.nan, 0]]))).all()
    np.testing.assert_allclose(rig_math.channels_to_matrix("AXIS_ANGLE", np.array([[0.7, 0, 0, 0]])), [np.eye(3)])


def test_make_quaternions_continuous():
    # A smooth motion for 3 joints over 40 frames, with random sign flips.
    rng = np.random.default_rng(2)
    rotvecs = np.cumsum(rng.normal(scale=0.3, size=(40, 3, 3)), axis=0)
    quat = Rotation.from_rotvec(rotvecs).as_quat(scalar_first=True)
    flipped = quat * rng.choice([-1.0, 1.0], size=(40, 3, 1))
    continuous = rig_math.make_quaternions_continuous(flipped)
    assert ((continuous[1:] * continuous[:-1]).sum(-1) >= 0).all()
    np.testing.assert_array_equal(np.abs(continuous), np.abs(quat))  # each frame is +-itself: same rotations
    expected = flipped.copy()  # the obvious sequential loop
    for t in range(1, len(expected)):
        for j in range(3):
            if expected[t, j] @ expected[t - 1, j] < 0:
                expected[t, j] = -expected[t, j]
    np.testing.assert_array_equal(continuous, expected)
    against = rig_math.make_quaternions_continuous(flipped, reference=-flipped[0])
    np.testing.assert_array_equal(against, -expected)
    assert rig_math.make_quaternions_continuous(flipped[:0]).shape == (0, 3, 4)


@pytest.mark.parametrize("mode", list(rig_math.CHANNEL_SIZES))
def test_channels_round_trip_and_continuity(mode):
    # A slow spin through 2.5 turns: channels must not jump between samples.
    angle = np.linspace(0, 5 * np.pi, 200)
    axis = np.array([0.3, 0.8, -0.5]) / np.linalg.norm([0.3, 0.8, -0.5])
    mats = Rotation.from_rotvec(angle[:, None] * axis).as_matrix()
    channels = rig_math.matrix_to_channels(mode, mats)
    assert channels.shape == (200, rig_math.CHANNEL_SIZES[mode])
    assert np.allclose(rig_math.channels_to_matrix(mode, channels), mats, atol=1e-9)
    if mode != "AXIS_ANGLE":  # axis-angle wraps its angle at 2 pi by design; Euler rates grow near gimbal lock
        assert np.abs(np.diff(channels, axis=0)).max() < 1.0  # no 2 pi wraps or sign flips


def test_continuity_follows_reference():
    mats = Rotation.from_rotvec([[0.0, 0.0, 0.1]]).as_matrix()
    reference = -Rotation.from_matrix(mats).as_quat(scalar_first=True)[0]
    quats = rig_math.matrix_to_channels("QUATERNION", mats, reference)
    assert quats[0, 0] < 0
    euler = rig_math.matrix_to_channels("XYZ", mats, np.array([0.0, 0.0, 2 * np.pi]))
    assert np.allclose(euler[0], [0, 0, 2 * np.pi + 0.1])


def test_smplx_axes_for_known_rigs():
    # MPI: armature Z-up, subject faces -Y, left = +X; Meshcapade: armature = SMPL-X frame.
    mpi = rig_math.smplx_axes(left=[1, 0, 0.01], up=[0.02, 0.1, 1])
    assert np.array_equal(mpi, [[1, 0, 0], [0, 0, 1], [0, -1, 0]])
    assert np.array_equal(rig_math.smplx_axes(left=[1, 0, 0], up=[0, 1, 0]), np.eye(3))
    with pytest.raises(ValueError):
        rig_math.smplx_axes(left=[1, 0, 0], up=[1, 0.1, 0])


def test_rest_frame_formula_round_trip_with_any_roll():
    rest = random_rotations(55)
    axes = rig_math.smplx_axes(left=[0, 0, 1], up=[1, 0, 0])
    local = random_rotations(3 * 55).reshape(3, 55, 3, 3)
    basis = rig_math.smplx_to_basis(local, rest, axes)
    assert np.allclose(rig_math.basis_to_smplx(basis, rest, axes), local, atol=1e-12)


@pytest.mark.parametrize("order", rig_math.EULER_ORDERS)
def test_euler_channels_are_blenders(order):
    """Blender stores rotation_euler as (x, y, z) whatever the order (a Rigify shoulder is YXZ)."""
    from mathutils import Euler

    angles = np.array([0.7, 0.4, -1.2])
    expected = np.array(Euler(angles, order).to_matrix())
    assert np.allclose(rig_math.channels_to_matrix(order, angles), expected, atol=1e-6)
    back = rig_math.matrix_to_channels(order, expected[None])[0]
    assert np.allclose(np.array(Euler(back, order).to_matrix()), expected, atol=1e-6)
