"""core.rig_math (bpy-free) against scipy and core.rotations; kept here with the Blender layer it serves."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from dposerx_blender.core import rig_math, rotations

RNG = np.random.default_rng(0)


def random_rotations(n):
    return Rotation.random(n, random_state=1).as_matrix()


def test_axis_angle_matches_torch_rotations():
    aa = RNG.normal(size=(50, 3)) * 0.9
    aa[0] = 0.0
    aa[1] = 1e-9
    ours = rig_math.axis_angle_to_matrix(aa)
    theirs = rotations.axis_angle_to_matrix(torch.from_numpy(aa)).numpy()
    assert np.allclose(ours, theirs, atol=1e-12)
    assert np.allclose(rig_math.matrix_to_axis_angle(ours), aa, atol=1e-9)


def test_quaternion_round_trip_and_sign():
    mats = random_rotations(100)
    quat = rig_math.matrix_to_quaternion(mats)
    assert (quat[:, 0] >= 0).all()
    assert np.allclose(rig_math.quaternion_to_matrix(quat), mats, atol=1e-12)
    assert np.allclose(quat[:, [1, 2, 3, 0]] * np.sign(quat[:, :1]),
                       Rotation.from_matrix(mats).as_quat() * np.sign(Rotation.from_matrix(mats).as_quat()[:, 3:]),
                       atol=1e-12)


@pytest.mark.parametrize("order", rig_math.EULER_ORDERS)
def test_euler_matches_blender_convention(order):
    # Blender "XYZ" applies X first: R = Rz Ry Rx, which is scipy's extrinsic lower-case "xyz".
    angles = RNG.uniform(-3, 3, size=(40, 3))
    angles[:, 1] = RNG.uniform(-1.5, 1.5, size=40)
    mats = rig_math.euler_to_matrix(angles, order)
    assert np.allclose(mats, Rotation.from_euler(order.lower(), angles).as_matrix(), atol=1e-12)
    back = rig_math.matrix_to_euler(mats, order)
    assert np.allclose(rig_math.euler_to_matrix(back, order), mats, atol=1e-12)


@pytest.mark.parametrize("order", rig_math.EULER_ORDERS)
def test_euler_gimbal_lock(order):
    angles = np.array([[0.4, np.pi / 2, -0.3], [0.4, -np.pi / 2, 1.0]])
    mats = rig_math.euler_to_matrix(angles, order)
    assert np.allclose(rig_math.euler_to_matrix(rig_math.matrix_to_euler(mats, order), order), mats, atol=1e-9)


@pytest.mark.parametrize("mode", list(rig_math.CHANNEL_SIZES))
def test_channels_round_trip_and_continuity(mode):
    # A slow spin through 2.5 turns: channels must not jump between samples.
    angle = np.linspace(0, 5 * np.pi, 200)
    axis = np.array([0.3, 0.8, -0.5]) / np.linalg.norm([0.3, 0.8, -0.5])
    mats = rig_math.axis_angle_to_matrix(angle[:, None] * axis)
    channels = rig_math.matrix_to_channels(mode, mats)
    assert channels.shape == (200, rig_math.CHANNEL_SIZES[mode])
    assert np.allclose(rig_math.channels_to_matrix(mode, channels), mats, atol=1e-9)
    if mode != "AXIS_ANGLE":  # axis-angle wraps its angle at 2 pi by design; Euler rates grow near gimbal lock
        assert np.abs(np.diff(channels, axis=0)).max() < 1.0  # no 2 pi wraps or sign flips


def test_continuity_follows_reference():
    mats = rig_math.axis_angle_to_matrix(np.array([[0.0, 0.0, 0.1]]))
    reference = -rig_math.matrix_to_quaternion(mats)[0]
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
