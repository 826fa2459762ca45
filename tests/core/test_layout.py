"""Pose/model vector layouts: round trips, slice contents, left-hand mirroring, pose mirroring checked by FK."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from dposerx_blender.core import layout as lo
from dposerx_blender.core import skeleton as sk

I = sk.JOINT_INDEX
REFLECT_X = np.array([-1.0, 1.0, 1.0])
FLIP_YZ = np.array([1.0, -1.0, -1.0])
BATCH_SHAPES = [(), (4,), (2, 3)]
KINDS = ["numpy", "torch"]
DTYPES = ["float32", "float64"]


def make(values: np.ndarray, kind: str, dtype: str):
    values = values.astype(dtype)
    return values if kind == "numpy" else torch.from_numpy(values)


def to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def check_kind(x, kind: str, dtype: str):
    if kind == "numpy":
        assert isinstance(x, np.ndarray) and x.dtype == np.dtype(dtype)
    else:
        assert isinstance(x, torch.Tensor) and x.dtype == getattr(torch, dtype)


def random_pose(shape=(), seed=0, scale=0.8) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-scale, scale, size=shape + (lo.POSE_DIM,))


def fk(pose: np.ndarray) -> np.ndarray:
    """pose (B, 165) axis-angle -> joints (B, 55, 3), via scipy matrices and the project's FK."""
    mats = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(len(pose), 55, 3, 3)
    return sk.forward_kinematics(torch.as_tensor(mats)).numpy()


# --- constants ---------------------------------------------------------------------------------------------


def test_dimensions_and_slices():
    assert lo.POSE_DIM == 165 and lo.MODEL_DIM == 162
    assert lo.MODEL_SLICES == {
        "body": slice(0, 63), "left_hand": slice(63, 108), "right_hand": slice(108, 153),
        "jaw": slice(153, 156), "eyes": slice(156, 162),
    }
    assert sorted(lo.MODEL_JOINTS.tolist()) == list(range(1, 55))  # every joint but the pelvis, once


# --- pose <-> model ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", BATCH_SHAPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_pose_model_round_trip(shape, kind, dtype):
    pose = make(random_pose(shape, seed=len(shape)), kind, dtype)
    model = lo.pose_to_model(pose)
    check_kind(model, kind, dtype)
    assert tuple(model.shape) == shape + (162,)
    back = lo.model_to_pose(model, pose[..., :3])
    check_kind(back, kind, dtype)
    assert tuple(back.shape) == shape + (165,)
    np.testing.assert_array_equal(to_numpy(back), to_numpy(pose))
    # Without a global orientation it is zero, everything else is kept.
    no_orient = to_numpy(lo.model_to_pose(model))
    np.testing.assert_array_equal(no_orient[..., :3], 0.0)
    np.testing.assert_array_equal(no_orient[..., 3:], to_numpy(pose)[..., 3:])
    # And model -> pose -> model is the identity too.
    np.testing.assert_array_equal(to_numpy(lo.pose_to_model(lo.model_to_pose(model))), to_numpy(model))


def test_model_to_pose_does_not_modify_its_input():
    model = np.random.default_rng(1).normal(size=(3, 162))
    copy = model.copy()
    lo.model_to_pose(model, np.ones((3, 3)))
    np.testing.assert_array_equal(model, copy)
    tmodel = torch.from_numpy(copy.copy())
    lo.model_to_pose(tmodel)
    np.testing.assert_array_equal(tmodel.numpy(), copy)


def test_global_orient_is_carried_and_broadcast():
    model = np.zeros((2, 162))
    pose = lo.model_to_pose(model, np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]))
    np.testing.assert_array_equal(pose[:, :3], [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    pose_t = lo.model_to_pose(torch.zeros(2, 162), torch.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(pose_t[:, :3].numpy(), [[1.0, 2.0, 3.0]] * 2)


def _labelled_pose() -> np.ndarray:
    """Joint j gets (100 j + 1, 100 j + 2, 100 j + 3): every value names its joint and component."""
    return (100.0 * np.arange(55)[:, None] + np.array([1.0, 2.0, 3.0])).reshape(165)


def test_model_slices_hold_the_right_joints():
    model = lo.pose_to_model(_labelled_pose())

    def joints_in(part: str) -> list[int]:
        values = model[lo.MODEL_SLICES[part]].reshape(-1, 3)
        return [int(round(abs(v[0]) - 1)) // 100 for v in values]

    assert joints_in("body") == list(range(1, 22))
    assert joints_in("body")[0] == I["left_hip"] and joints_in("body")[-1] == I["right_wrist"]
    assert joints_in("left_hand") == list(sk.LEFT_HAND_JOINTS)
    assert joints_in("right_hand") == list(sk.RIGHT_HAND_JOINTS)
    assert joints_in("jaw") == [I["jaw"]]
    assert joints_in("eyes") == [I["left_eye_smplhf"], I["right_eye_smplhf"]]
    # Exact values: the pelvis (0..3 -> 1, 2, 3) is gone, body starts at left_hip.
    np.testing.assert_array_equal(model[:3], [101.0, 102.0, 103.0])
    np.testing.assert_array_equal(model[153:156], 100.0 * I["jaw"] + np.array([1.0, 2.0, 3.0]))
    assert not np.any(np.isin(model, [1.0, 2.0, 3.0]))


def test_left_hand_is_mirrored_in_the_model_vector():
    pose = _labelled_pose()
    model = lo.pose_to_model(pose)
    left = pose.reshape(55, 3)[list(sk.LEFT_HAND_JOINTS)]
    right = pose.reshape(55, 3)[list(sk.RIGHT_HAND_JOINTS)]
    np.testing.assert_array_equal(model[lo.MODEL_SLICES["left_hand"]].reshape(15, 3), left * FLIP_YZ)
    np.testing.assert_array_equal(model[lo.MODEL_SLICES["right_hand"]].reshape(15, 3), right)
    # Nothing else is sign-flipped.
    others = np.r_[0:63, 108:162]
    assert np.all(model[others] > 0)
    # Both hand slices hold the same convention: a mirrored pose's right hand is the original's left hand slice.
    pose = random_pose((3,), seed=7)
    np.testing.assert_allclose(lo.pose_to_model(lo.mirror_pose(pose))[..., lo.MODEL_SLICES["right_hand"]],
                               lo.pose_to_model(pose)[..., lo.MODEL_SLICES["left_hand"]])
    np.testing.assert_array_equal(lo.pose_to_model(pose)[..., lo.MODEL_SLICES["left_hand"]],
                                  lo.mirror_hand(pose[..., 75:120]))


# --- mirroring ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_mirror_pose_is_an_involution(kind, dtype, shape):
    pose = make(random_pose(shape, seed=3), kind, dtype)
    mirrored = lo.mirror_pose(pose)
    check_kind(mirrored, kind, dtype)
    assert tuple(mirrored.shape) == shape + (165,)
    assert not np.allclose(to_numpy(mirrored), to_numpy(pose))
    np.testing.assert_array_equal(to_numpy(lo.mirror_pose(mirrored)), to_numpy(pose))


def test_mirror_pose_swaps_left_and_right_values():
    pose = _labelled_pose()
    mirrored = lo.mirror_pose(pose).reshape(55, 3)
    original = pose.reshape(55, 3)
    for j, name in enumerate(sk.JOINT_NAMES):
        source = sk.MIRROR_INDEX[j]
        np.testing.assert_array_equal(mirrored[j], original[source] * FLIP_YZ, err_msg=name)
    np.testing.assert_array_equal(mirrored[I["left_knee"]], original[I["right_knee"]] * FLIP_YZ)
    np.testing.assert_array_equal(mirrored[I["spine2"]], original[I["spine2"]] * FLIP_YZ)
    np.testing.assert_array_equal(mirrored[0], original[0] * FLIP_YZ)  # global orientation reflected too


def test_mirror_pose_fk_equals_the_reflected_fk():
    """The axis-angle reflection rule (x, y, z) -> (x, -y, -z) checked against geometry: the mirrored pose's
    joint j sits where the original's mirror joint sits, reflected in the x = 0 plane."""
    pose = random_pose((6,), seed=11, scale=1.2)
    original = fk(pose)
    mirrored = fk(lo.mirror_pose(pose))
    expected = original[:, list(sk.MIRROR_INDEX)] * REFLECT_X
    np.testing.assert_allclose(mirrored, expected, atol=1e-10)
    assert not np.allclose(mirrored, original, atol=1e-3)


def test_wrong_reflection_rule_would_be_caught():
    """Sanity check of the previous test: negating x instead of y, z does not reproduce the reflected FK."""
    pose = random_pose((2,), seed=12)
    wrong = (pose.reshape(2, 55, 3)[:, list(sk.MIRROR_INDEX)] * REFLECT_X).reshape(2, 165)
    expected = fk(pose)[:, list(sk.MIRROR_INDEX)] * REFLECT_X
    assert not np.allclose(fk(wrong), expected, atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_mirror_hand_matches_geometry(kind):
    hand = random_pose((3,), seed=13, scale=1.0)[:, :45]
    left_pose = np.zeros((3, 165))
    left_pose[:, 75:120] = hand
    right_pose = np.zeros((3, 165))
    mirrored = lo.mirror_hand(make(hand, kind, "float64"))
    check_kind(mirrored, kind, "float64")
    right_pose[:, 120:165] = to_numpy(mirrored)
    left_fk = fk(left_pose)[:, list(sk.LEFT_HAND_JOINTS)]
    right_fk = fk(right_pose)[:, list(sk.RIGHT_HAND_JOINTS)]
    np.testing.assert_allclose(right_fk, left_fk * REFLECT_X, atol=1e-10)
    assert not np.allclose(left_fk, fk(np.zeros((1, 165)))[:, list(sk.LEFT_HAND_JOINTS)], atol=1e-3)
    np.testing.assert_array_equal(to_numpy(lo.mirror_hand(mirrored)), hand)  # involution
    np.testing.assert_array_equal(to_numpy(mirrored).reshape(3, 15, 3), hand.reshape(3, 15, 3) * FLIP_YZ)


# --- masks -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_joint_mask_to_model_mask(kind):
    for joint in (I["left_knee"], I["jaw"], I["right_eye_smplhf"], I["left_thumb2"], I["right_pinky3"]):
        mask = np.ones(55, dtype=bool)
        mask[joint] = False
        model_mask = lo.joint_mask_to_model_mask(mask if kind == "numpy" else torch.from_numpy(mask))
        if kind == "torch":
            assert isinstance(model_mask, torch.Tensor) and model_mask.dtype == torch.bool
        else:
            assert model_mask.dtype == bool
        model_mask = to_numpy(model_mask)
        assert model_mask.shape == (162,)
        k = int(np.nonzero(lo.MODEL_JOINTS == joint)[0][0])
        expected = np.ones(162, dtype=bool)
        expected[3 * k:3 * k + 3] = False
        np.testing.assert_array_equal(model_mask, expected)
    # Masking the pelvis changes nothing in the model vector; batches keep their shape.
    mask = np.ones((2, 3, 55), dtype=bool)
    mask[..., 0] = False
    assert lo.joint_mask_to_model_mask(mask).all()
    assert lo.joint_mask_to_model_mask(mask).shape == (2, 3, 162)


def test_model_mask_selects_the_masked_joints_values():
    mask = np.zeros(55, dtype=bool)
    mask[list(sk.OCCLUSION_GROUPS["left_leg"])] = True
    model = lo.pose_to_model(_labelled_pose())
    selected = model[lo.joint_mask_to_model_mask(mask)].reshape(-1, 3)
    joints = sorted(int(round(abs(v[0]) - 1)) // 100 for v in selected)
    assert joints == sorted(sk.OCCLUSION_GROUPS["left_leg"])


# --- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("func, size, expected", [
    (lo.pose_to_model, 162, "165"),
    (lo.pose_to_model, 166, "165"),
    (lo.model_to_pose, 165, "162"),
    (lo.mirror_pose, 156, "165"),
    (lo.mirror_hand, 48, "45"),
    (lo.joint_mask_to_model_mask, 54, "55"),
])
@pytest.mark.parametrize("kind", KINDS)
def test_wrong_last_dimension_raises(func, size, expected, kind):
    x = np.zeros((2, size), dtype=bool if func is lo.joint_mask_to_model_mask else np.float64)
    if kind == "torch":
        x = torch.from_numpy(x)
    with pytest.raises(ValueError, match=expected) as info:
        func(x)
    assert str(size) in str(info.value)  # the actual shape is reported too


def test_transposed_input_raises():
    with pytest.raises(ValueError, match="165"):
        lo.pose_to_model(np.zeros((165, 4)))
