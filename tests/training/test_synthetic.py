"""SYNTHETIC hand, jaw and eye generators: determinism, bounds, synergies, and forward-kinematics checks that
the flexion, jaw and gaze axes turn the right way."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dposerx_blender.core.skeleton import EYE_JOINTS, JAW_JOINT, REST_JOINTS, TIP_OFFSETS
from training import synthetic as syn
from training.mocap import hands
from dposerx_blender.core.mocap.aim import angle_between

N = 2000


def points(hand_pose: np.ndarray) -> np.ndarray:
    local = Rotation.from_rotvec(hand_pose.reshape(-1, 3)).as_matrix().reshape(-1, 15, 3, 3)
    return hands.hand_points(local, np.broadcast_to(np.eye(3), (len(local), 3, 3)))


@pytest.fixture(scope="module")
def hand_samples():
    pose, kinds = syn.synthetic_hand_archetypes(N, np.random.default_rng(0))
    return pose, kinds, points(pose)


def test_generators_are_deterministic_per_seed():
    for generate in (syn.synthetic_hand_poses, syn.synthetic_jaw_poses, syn.synthetic_eye_poses):
        first, again = generate(200, np.random.default_rng(5)), generate(200, np.random.default_rng(5))
        np.testing.assert_array_equal(first, again)
        assert not np.allclose(first, generate(200, np.random.default_rng(6)))
    assert syn.synthetic_hand_poses(7, np.random.default_rng(0)).shape == (7, 15, 3)
    assert syn.synthetic_jaw_poses(7, np.random.default_rng(0)).shape == (7, 3)
    assert syn.synthetic_eye_poses(7, np.random.default_rng(0)).shape == (7, 2, 3)


def test_hand_angles_stay_in_bounds(hand_samples):
    pose, kinds, _ = hand_samples
    assert set(kinds) == set(syn.ARCHETYPES)
    flexion, abduction = hands.joint_angles(pose)
    assert (flexion >= syn.FLEXION_BOUNDS[:, 0] - 1e-6).all() and (flexion <= syn.FLEXION_BOUNDS[:, 1] + 1e-6).all()
    assert (abduction >= syn.ABDUCTION_BOUNDS[:, 0] - 1e-6).all()
    assert (abduction <= syn.ABDUCTION_BOUNDS[:, 1] + 1e-6).all()
    assert not hands.out_of_range(pose).any()  # the synthetic box lies inside the fit's anatomical limits


def test_finger_synergies(hand_samples):
    pose, kinds, _ = hand_samples
    flexion, _ = hands.joint_angles(pose)
    coupled = ~np.isin(kinds, ["power_grasp", "interpolation"])  # blends of coupled rows stay coupled, too
    np.testing.assert_allclose(flexion[coupled][:, 2:12:3], syn.DIP_PER_PIP * flexion[coupled][:, 1:12:3], atol=1e-5)
    mcp = flexion[kinds == "relaxed"][:, 3 * syn.FINGER_SLOTS]  # index, middle, ring, pinky
    correlation = np.corrcoef(mcp.T)
    assert correlation[0, 1] > 0.5 and correlation[2, 3] > 0.5
    assert correlation[0, 3] < correlation[0, 1]  # neighbours move together more than index and pinky


def palm_centre(p: np.ndarray) -> np.ndarray:
    return p[:, [0, 5, 9, 13, 17]].mean(axis=1)


def test_fist_curls_the_fingertips_into_the_palm(hand_samples):
    _, kinds, p = hand_samples
    fist = p[kinds == "fist"]
    tips = fist[:, [8, 12, 16, 20]]
    assert np.linalg.norm(tips - palm_centre(fist)[:, None], axis=-1).max() < 0.045
    assert (tips[..., 1] < fist[:, [5, 9, 13, 17], 1]).all()  # on the palm side of the knuckles (-Y, palm down)


def test_flat_hand_keeps_the_fingertips_on_the_palm_plane(hand_samples):
    _, kinds, p = hand_samples
    flat = p[kinds == "flat"]
    tips = flat[:, [8, 12, 16, 20]]
    reach = tips - flat[:, [5, 9, 13, 17]]
    elevation = np.degrees(np.arcsin(reach[..., 1] / np.linalg.norm(reach, axis=-1)))  # above the palm plane
    assert np.abs(elevation).max() < 25.0  # MCP from -20 (hyperextended) to a few degrees of flexion
    assert np.linalg.norm(tips - palm_centre(flat)[:, None], axis=-1).min() > 0.08


def test_single_joint_flexion_moves_towards_the_palm():
    for joint in range(12):
        flexion = np.zeros((2, 15))
        flexion[1, joint] = 30.0
        before, after = points(hands.hand_pose_from_angles(flexion, np.zeros((2, 15))))
        tip = hands.SEGMENTS[3 * (joint // 3) + 2, 1]
        assert after[tip, 1] < before[tip, 1] - 0.002  # palmar = -Y
        assert abs(after[tip, 2] - before[tip, 2]) < 0.003  # no sideways drift: the axis is +Z


def test_thumb_flexion_heads_for_the_little_finger_base_on_the_palm_side():
    target = hands.rest_hand("right").starts[6]  # pinky MCP
    for joint in (12, 13, 14):  # each thumb joint alone
        flexion = np.zeros((2, 15))
        flexion[1, joint] = 15.0
        before, after = points(hands.hand_pose_from_angles(flexion, np.zeros((2, 15))))[:, 4]
        assert np.linalg.norm(after - target) < np.linalg.norm(before - target) - 0.005
        assert after[1] < before[1]  # palmar, not over the back of the hand
    flexion = np.zeros((2, 15))
    flexion[1, 12:15] = [45.0, 50.0, 80.0]  # all three at their upper bounds
    rest_tip, curled_tip = points(hands.hand_pose_from_angles(flexion, np.zeros((2, 15))))[:, 4]
    assert np.linalg.norm(curled_tip - target) < 0.35 * np.linalg.norm(rest_tip - target)


def test_grasps_touch(hand_samples):
    _, kinds, p = hand_samples
    pinch = p[kinds == "pinch"]
    gap = np.linalg.norm(pinch[:, 4] - pinch[:, 8], axis=-1)
    assert np.median(gap) < 0.02 and gap.max() < 0.035  # tip points ~1.4 cm apart when the pads touch
    power = p[kinds == "power_grasp"]
    tips = power[:, [8, 12, 16, 20]]
    assert (tips[..., 1] < power[:, [5, 9, 13, 17], 1]).all()  # fingers wrap below the palm


def test_jaw_opens_down_and_back_mostly_near_closed():
    jaw = syn.synthetic_jaw_poses(N, np.random.default_rng(1))
    rot = Rotation.from_rotvec(jaw)
    chin = TIP_OFFSETS[JAW_JOINT]
    moved = rot.apply(chin)
    opening = np.degrees(np.arctan2(np.cross(chin, moved)[:, 0], moved @ chin))  # turn about +X
    assert opening.min() >= syn.JAW_OPENING_RANGE[0] - 0.5 and opening.max() <= syn.JAW_OPENING_RANGE[1] + 0.5
    assert np.median(opening) < 8.0 and np.percentile(opening, 95) > 18.0
    wide = opening > 5.0
    assert (moved[wide, 1] < chin[1]).all() and (moved[wide, 2] < chin[2]).all()  # chin goes down and back
    lateral = rot.as_euler("YXZ", degrees=True)[:, 0]
    assert np.abs(lateral).max() <= syn.JAW_LATERAL_LIMIT + 1e-9


def test_eyes_fixate_one_point_in_front_within_the_gaze_limits():
    eyes = syn.synthetic_eye_poses(N, np.random.default_rng(2))
    rot = Rotation.from_rotvec(eyes.reshape(-1, 3))
    rest_gaze = np.tile(np.stack([TIP_OFFSETS[j] for j in EYE_JOINTS]), (N, 1))
    gaze = rot.apply(rest_gaze).reshape(N, 2, 3)
    gaze /= np.linalg.norm(gaze, axis=-1, keepdims=True)
    yaw, pitch = syn.gaze_angles(gaze)
    assert np.abs(yaw).max() <= syn.GAZE_YAW_LIMIT + 1e-9
    assert pitch.min() >= syn.GAZE_PITCH_RANGE[0] - 1e-9 and pitch.max() <= syn.GAZE_PITCH_RANGE[1] + 1e-9
    assert np.abs(yaw).max() > 30 and pitch.min() < -25 and pitch.max() > 20  # the range is used
    # Closest approach of the two gaze rays: both in front of the eyes, and the rays nearly meet.
    origin = REST_JOINTS[list(EYE_JOINTS)]
    u, v, w0 = gaze[:, 0], gaze[:, 1], origin[0] - origin[1]
    b, d, e = np.sum(u * v, -1), np.sum(u * w0, -1), np.sum(v * w0, -1)
    s, t = (b * e - d) / (1 - b**2), (e - b * d) / (1 - b**2)
    assert (s > 0.3).all() and (t > 0.3).all()
    gap = np.linalg.norm(origin[0] + s[:, None] * u - origin[1] - t[:, None] * v, axis=-1)
    assert gap.max() < 1e-6
    assert (yaw[:, 0] < yaw[:, 1]).all()  # converging: the left eye (+X) turns further right than the right eye
    assert angle_between(u, v).max() < 10.0  # small vergence
    axes = rot.as_rotvec()
    assert np.abs(axes[:, 2]).max() < 1e-9  # no torsion: rotation axes perpendicular to the rest gaze (Listing)
