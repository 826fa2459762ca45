"""SMPL-X motion conventions: resampling keeps timing, hand reference and up-axis conversions invert exactly."""
import numpy as np
from scipy.spatial.transform import Rotation

from dposerx_blender.core.mocap.conventions import (HAND_SLICE, RELAXED_HANDS, Z_UP_TO_Y_UP, add_hand_reference,
                                                    resample_poses, resample_translation, to_y_up)
from dposerx_blender.core.skeleton import JOINT_INDEX, LEFT_HAND_JOINTS


def test_resample_keeps_timing_and_interpolates_on_the_sphere():
    fps, seconds = 120.0, 2.0
    t = np.arange(int(fps * seconds) + 1) / fps
    poses = np.zeros((len(t), 165))
    poses[:, 3 * 4:3 * 4 + 3] = np.outer(0.5 * t, [0.0, 0.0, 1.0])  # knee turning at 0.5 rad/s
    out = resample_poses(poses, fps, 30.0)
    assert len(out) == int(30 * seconds) + 1
    np.testing.assert_allclose(out[:, 3 * 4 + 2], 0.5 * np.arange(len(out)) / 30.0, atol=1e-9)
    # Non-integer ratio (iClone's 59.999 fps) still lands on the 30 fps grid.
    assert len(resample_poses(poses[:100], 59.999, 30.0)) == int(99 / 59.999 * 30) + 1


def test_resample_takes_the_short_way_between_frames():
    poses = np.zeros((2, 165))
    poses[0, 3:6] = Rotation.from_euler("x", 170, degrees=True).as_rotvec()
    poses[1, 3:6] = Rotation.from_euler("x", -170, degrees=True).as_rotvec()
    middle = resample_poses(poses, 1.0, 2.0)[1, 3:6]
    assert np.isclose(np.degrees(np.linalg.norm(middle)), 180.0)  # through 180, not back through 0


def test_translation_resamples_linearly_on_the_same_grid():
    trans = np.outer(np.arange(61) / 60.0, [1.0, 2.0, 3.0])
    out = resample_translation(trans, 60.0, 24.0)
    assert len(out) == len(resample_poses(np.zeros((61, 165)), 60.0, 24.0)) == 25
    np.testing.assert_allclose(out, np.outer(np.arange(25) / 24.0, [1.0, 2.0, 3.0]), atol=1e-12)


def test_relaxed_hands_bend_fingers_towards_the_palm_and_mirror():
    hands = RELAXED_HANDS.reshape(30, 3)
    left_index1 = JOINT_INDEX["left_index1"] - LEFT_HAND_JOINTS[0]
    right_index1 = JOINT_INDEX["right_index1"] - LEFT_HAND_JOINTS[0]
    # The left index points +X with the palm down: bending it towards the palm turns +X towards -Y.
    bent = Rotation.from_rotvec(hands[left_index1]).apply([1.0, 0, 0])
    assert bent[1] < -0.3
    np.testing.assert_allclose(hands[right_index1], hands[left_index1] * [1, -1, -1], atol=1e-12)
    poses = np.zeros((2, 165))
    relaxed = add_hand_reference(poses, relaxed=True)
    np.testing.assert_array_equal(relaxed[:, HAND_SLICE], np.tile(RELAXED_HANDS, (2, 1)))
    np.testing.assert_allclose(add_hand_reference(relaxed, relaxed=True, sign=-1), poses, atol=1e-15)
    np.testing.assert_array_equal(add_hand_reference(poses, relaxed=False), poses)


def test_z_up_conversion_turns_about_the_rig_origin_and_inverts():
    rng = np.random.default_rng(0)
    poses, trans, rest_pelvis = rng.normal(size=(4, 165)), rng.normal(size=(4, 3)), np.array([0.0, 0.9, 0.0])
    y_poses, y_trans = to_y_up(poses, trans, rest_pelvis)
    np.testing.assert_allclose(y_trans + rest_pelvis, (trans + rest_pelvis) @ Z_UP_TO_Y_UP.T, atol=1e-12)
    np.testing.assert_array_equal(y_poses[:, 3:], poses[:, 3:])
    np.testing.assert_allclose(Rotation.from_rotvec(y_poses[:, :3]).as_matrix(),
                               Z_UP_TO_Y_UP @ Rotation.from_rotvec(poses[:, :3]).as_matrix(), atol=1e-12)
    back_poses, back_trans = to_y_up(y_poses, y_trans, rest_pelvis, inverse=True)
    np.testing.assert_allclose(Rotation.from_rotvec(back_poses[:, :3]).as_matrix(),
                               Rotation.from_rotvec(poses[:, :3]).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(back_trans, trans, atol=1e-12)
    # An AMASS pelvis 0.9 m up (+Z) ends 0.9 m up (+Y).
    _, up = to_y_up(poses[:1], np.array([[0.0, 0.0, 0.9]]), np.zeros(3))
    np.testing.assert_allclose(up, [[0.0, 0.9, 0.0]], atol=1e-12)
