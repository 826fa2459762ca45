"""Hand poses from MediaPipe landmarks: forward kinematics, exact recovery of synthetic poses, what twist hides,
chirality, flexion limits, degenerate input, the tar reader, and the real ASL set when it is present."""

import io
import tarfile
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from dposerx_blender.core.errors import DPoserError
from dposerx_blender.core.layout import mirror_hand
from dposerx_blender.core.skeleton import JOINT_INDEX, NUM_JOINTS, forward_kinematics
from training.mocap import hands
from dposerx_blender.core.mocap.aim import angle_between
from training.mocap.sources import mocap_root
from training.synthetic import synthetic_hand_poses

N = 300
ASL_PATH = mocap_root() / hands.ASL_TAR


def matrices(hand_pose: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(hand_pose.reshape(-1, 3)).as_matrix().reshape(-1, 15, 3, 3)


def landmarks_of(hand_pose: np.ndarray, wrist: np.ndarray, side: str = "right") -> np.ndarray:
    return hands.hand_points(matrices(hand_pose), wrist, side)


@pytest.fixture(scope="module")
def truth():
    """Bounded synthetic right-hand poses under random wrist turns, seen at another scale and origin."""
    rng = np.random.default_rng(7)
    pose = synthetic_hand_poses(N, rng)
    wrist = Rotation.random(N, random_state=7).as_matrix()
    landmarks = 3.7 * landmarks_of(pose, wrist) + rng.normal(size=(N, 1, 3))
    return pose, wrist, landmarks


@pytest.mark.parametrize("side", ["left", "right"])
def test_hand_points_match_skeleton_forward_kinematics(side):
    rng = np.random.default_rng(1)
    pose = rng.normal(scale=0.5, size=(4, 15, 3))
    wrist = Rotation.random(4, random_state=2).as_matrix()
    rot_mats = np.broadcast_to(np.eye(3), (4, NUM_JOINTS, 3, 3)).copy()
    rot_mats[:, JOINT_INDEX[f"{side}_wrist"]] = wrist  # the arm above it stays at rest, so this is global
    joints = list(hands.rest_hand(side).joints)
    rot_mats[:, joints] = matrices(pose)
    posed = forward_kinematics(torch.from_numpy(rot_mats)).numpy()
    expected = posed[:, joints] - posed[:, [JOINT_INDEX[f"{side}_wrist"]]]
    points = landmarks_of(pose, wrist, side)
    np.testing.assert_allclose(points[:, hands.SEGMENTS[:, 0]], expected, atol=1e-12)


def test_fit_recovers_synthetic_poses_exactly(truth):
    pose, wrist, landmarks = truth
    fitted, fitted_wrist = hands.fit_hand_pose(landmarks, side="right")
    # Synthetic joints are twist-free swings, the fit's own convention: nothing is lost.
    np.testing.assert_allclose(matrices(fitted), matrices(pose), atol=1e-8)
    np.testing.assert_allclose(fitted_wrist, wrist, atol=1e-8)
    assert hands.landmark_direction_error(landmarks, fitted, fitted_wrist).max() < 0.5
    for ours, true in zip(hands.joint_angles(fitted), hands.joint_angles(pose)):
        np.testing.assert_allclose(ours, true, atol=1e-5)


def test_twist_is_unobservable_but_directions_and_bends_are_recovered(truth):
    pose, wrist, _ = truth
    rng = np.random.default_rng(3)
    bones = hands.right_hand_frames()[:, 0]
    twist = Rotation.from_rotvec(bones * np.radians(rng.uniform(-30, 30, (N, 15, 1)))).as_matrix()
    twisted = Rotation.from_matrix((matrices(pose) @ twist.reshape(N, 15, 3, 3)).reshape(-1, 3, 3))
    twisted = twisted.as_rotvec().reshape(N, 15, 3)
    landmarks = landmarks_of(twisted, wrist)
    fitted, fitted_wrist = hands.fit_hand_pose(landmarks, within_limits=False)
    assert hands.landmark_direction_error(landmarks, fitted, fitted_wrist).max() < 0.5
    # The bend between a bone and its parent bone ignores twist; the first joints' angles are read in the wrist
    # frame, which the palm fixes, so they match too.
    segments = landmarks[:, hands.SEGMENTS[:, 1]] - landmarks[:, hands.SEGMENTS[:, 0]]
    refit = landmarks_of(fitted, fitted_wrist)
    refit_segments = refit[:, hands.SEGMENTS[:, 1]] - refit[:, hands.SEGMENTS[:, 0]]
    children = [j for j in range(15) if j % 3]
    np.testing.assert_allclose(angle_between(refit_segments[:, children], refit_segments[:, np.subtract(children, 1)]),
                               angle_between(segments[:, children], segments[:, np.subtract(children, 1)]), atol=1e-5)
    firsts = [0, 3, 6, 9, 12]
    for ours, true in zip(hands.joint_angles(fitted), hands.joint_angles(twisted)):
        np.testing.assert_allclose(ours[:, firsts], true[:, firsts], atol=1e-5)


def test_chirality_is_read_from_geometry_and_mirrored_away(truth):
    pose, _, landmarks = truth
    mirrored = landmarks * np.array([-1.0, 1.0, 1.0])
    assert not hands.left_handed(landmarks).any()
    assert hands.left_handed(mirrored).all()
    mixed = np.where((np.arange(N) % 2 == 0)[:, None, None], mirrored, landmarks)
    np.testing.assert_allclose(matrices(hands.fit_hand_pose(mixed, side="right")[0]), matrices(pose), atol=1e-8)
    left, _ = hands.fit_hand_pose(landmarks, side="left")
    np.testing.assert_allclose(matrices(left), matrices(mirror_hand(pose.reshape(N, 45)).reshape(N, 15, 3)),
                               atol=1e-8)


def test_angles_round_trip_and_signs():
    rng = np.random.default_rng(4)
    flexion, abduction = rng.uniform(-60, 120, (50, 15)), rng.uniform(-40, 40, (50, 15))
    for side in ("left", "right"):
        pose = hands.hand_pose_from_angles(flexion, abduction, side)
        for ours, true in zip(hands.joint_angles(pose, side), (flexion, abduction)):
            np.testing.assert_allclose(ours, true, atol=1e-6)
    frames = hands.right_hand_frames()
    assert (frames[:12, 2] @ [0.0, 0.0, 1.0] > 0.99).all()  # finger flexion axis: +Z for a right hand
    assert (frames[12:, 2] @ [0.0, -1.0, 0.0] > 0.95).all()  # thumb flexion axis: about -Y


def test_limit_flexion_moves_excess_to_the_parent_and_keeps_distal_directions():
    flexion = np.zeros((1, 15))
    flexion[0, 4] = 140.0  # middle PIP, 30 beyond its limit
    flexion[0, 3] = 40.0
    pose = hands.hand_pose_from_angles(flexion, np.zeros((1, 15)))
    limited = hands.limit_flexion(pose)
    new_flexion, _ = hands.joint_angles(limited)
    assert new_flexion[0, 4] == pytest.approx(110.0) and new_flexion[0, 3] == pytest.approx(70.0)
    assert not hands.out_of_range(limited).any()
    before, after = landmarks_of(pose, np.eye(3)[None]), landmarks_of(limited, np.eye(3)[None])
    middle_phalanx = [hands.CHAINS["middle"][k] for k in (1, 2)]
    assert angle_between(np.diff(before[0, middle_phalanx], axis=0), np.diff(after[0, middle_phalanx], axis=0)) < 2.0


def test_limits_leave_in_range_poses_alone(truth):
    pose = truth[0]
    assert not hands.out_of_range(pose).any()
    np.testing.assert_allclose(matrices(hands.limit_flexion(pose)), matrices(pose), atol=1e-10)


def test_degenerate_landmarks_are_flagged_and_refused(truth):
    landmarks = truth[2][:4].copy()
    landmarks[0, 7] = np.nan
    landmarks[1, 6] = landmarks[1, 5]  # zero-length proximal phalanx
    forward = landmarks[2, 9] - landmarks[2, 0]
    landmarks[2, 5], landmarks[2, 17] = landmarks[2, 0] + 0.5 * forward, landmarks[2, 0] + 0.2 * forward  # no palm
    assert hands.degenerate_landmarks(landmarks).tolist() == [True, True, True, False]
    with pytest.raises(DPoserError, match="degenerate"):
        hands.fit_hand_pose(landmarks)
    with pytest.raises(DPoserError, match="shape"):
        hands.fit_hand_pose(landmarks[:, :20])


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_reader_sorts_scales_and_skips_bad_members(tmp_path, truth):
    raw = truth[2][:3] / hands.ASL_AXIS_SCALE
    nan_sample = raw[0].copy()
    nan_sample[3, 1] = np.nan
    members = {"B/frame_0.npy": _npy(raw[2].reshape(63)), "A/frame_10.npy": _npy(raw[1].reshape(63)),
               "A/frame_2.npy": _npy(raw[0].reshape(63)), "A/frame_3.npy": b"not a numpy file",
               "A/frame_4.npy": _npy(np.zeros(60)), "C/frame_0.npy": _npy(nan_sample.reshape(63)),
               "A/notes.txt": b"ignored"}
    path = tmp_path / "raw_gestures.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"data/raw_gestures/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.warns(UserWarning, match="skipped 2 unreadable or malformed members and 1 degenerate"):
        landmarks, letters = hands.read_asl_landmarks(path)
    assert letters == ["A", "A", "B"]
    np.testing.assert_allclose(landmarks, truth[2][:3], atol=1e-12)
    with pytest.raises(DPoserError, match="not found"):
        hands.read_asl_landmarks(tmp_path / "missing.tar")


@pytest.mark.skipif(not ASL_PATH.is_file(), reason=f"ASL landmark archive not present at {ASL_PATH}")
def test_real_asl_subset():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shipped archive has no bad members
        landmarks, letters = hands.read_asl_landmarks(ASL_PATH)
    assert len(landmarks) == 10508 and sorted(set(letters)) == [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    subset = landmarks[::50]
    assert hands.left_handed(subset).mean() > 0.95  # mirrored footage: left-hand geometry
    plain, wrist = hands.fit_hand_pose(subset, within_limits=False)
    assert hands.landmark_direction_error(subset, plain, wrist).max() < 1e-6
    # MediaPipe over-bends curled PIPs (module docstring); the other joints stay mostly within anatomy, which
    # wrong chirality or frames (fingers bending backwards, thumbs across the back) would not.
    outside = hands.out_of_range(plain)
    not_pip = [j for j in range(15) if hands.JOINT_KINDS[j] != "pip"]
    assert outside[:, not_pip].mean() < 0.05
    flexion, abduction = hands.joint_angles(plain)
    assert np.median(flexion[:, :12]) > 10  # fingers flex towards the palm
    assert np.median(np.abs(abduction[:, [1, 2, 4, 5, 7, 8, 10, 11]])) < 10  # PIP and DIP act as hinges
    limited, wrist = hands.fit_hand_pose(subset)
    assert not hands.out_of_range(limited).any()
    assert hands.landmark_direction_error(subset, limited, wrist).mean() < 6.0
