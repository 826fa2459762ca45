"""Skeleton tables (names, parents, parts, occlusion groups, mirroring), the rest skeleton and forward kinematics."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation
from smplx.joint_names import JOINT_NAMES as SMPLX_JOINT_NAMES

from dposerx_blender.core import skeleton as sk
from training.conventions import amass_stats_path

I = sk.JOINT_INDEX
# The well-known SMPL-X kinematic tree (kintree_table[0] of SMPLX_NEUTRAL, first 55 joints).
SMPLX_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15, 20, 25, 26,
                 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50,
                 21, 52, 53]
REFLECT_X = np.array([-1.0, 1.0, 1.0])


def tip(name: str) -> np.ndarray:
    j = I[name]
    return sk.REST_JOINTS[j] + sk.TIP_OFFSETS[j]


def random_rot_mats(batch: int, seed: int, dtype=torch.float64, scale: float = math.pi) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    rotvecs = rng.uniform(-1.0, 1.0, size=(batch * sk.NUM_JOINTS, 3)) * scale / math.sqrt(3)
    mats = Rotation.from_rotvec(rotvecs).as_matrix().reshape(batch, sk.NUM_JOINTS, 3, 3)
    return torch.as_tensor(mats, dtype=dtype)


def identity_rot_mats(batch: int, dtype=torch.float64) -> torch.Tensor:
    return torch.eye(3, dtype=dtype).expand(batch, sk.NUM_JOINTS, 3, 3).clone()


def naive_fk(rot_mats: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Textbook FK loop: global rotation G_j = G_parent R_j, position p_j = p_parent + G_parent (rest_j - rest_parent)."""
    batch = rot_mats.shape[0]
    out = np.zeros((batch, sk.NUM_JOINTS, 3))
    for b in range(batch):
        glob = [None] * sk.NUM_JOINTS
        for j, p in enumerate(sk.PARENTS):
            if p < 0:
                glob[j] = rot_mats[b, j]
                out[b, j] = rest[j]
            else:
                glob[j] = glob[p] @ rot_mats[b, j]
                out[b, j] = out[b, p] + glob[p] @ (rest[j] - rest[p])
    return out


# --- tables ------------------------------------------------------------------------------------------------


def test_joint_names_are_the_first_55_smplx_names():
    assert sk.NUM_JOINTS == 55
    assert list(sk.JOINT_NAMES) == list(SMPLX_JOINT_NAMES[:55])
    assert len(set(sk.JOINT_NAMES)) == 55
    assert all(sk.JOINT_INDEX[n] == i for i, n in enumerate(sk.JOINT_NAMES))


def test_parents_match_the_smplx_kintree():
    assert list(sk.PARENTS) == SMPLX_PARENTS


def test_parents_root_first_and_before_children():
    assert sk.PARENTS[0] == -1
    assert sum(p < 0 for p in sk.PARENTS) == 1
    for j, p in enumerate(sk.PARENTS[1:], start=1):
        assert 0 <= p < j


@pytest.mark.parametrize("child, parent", [
    ("left_knee", "left_hip"), ("right_wrist", "right_elbow"), ("head", "neck"), ("jaw", "head"),
    ("left_eye_smplhf", "head"), ("left_collar", "spine3"), ("left_index1", "left_wrist"),
    ("right_thumb3", "right_thumb2"), ("right_pinky1", "right_wrist"),
])
def test_named_parents(child, parent):
    assert sk.PARENTS[I[child]] == I[parent]


def test_part_sizes_disjoint_and_cover_all_joints_with_the_pelvis():
    sizes = {name: len(joints) for name, joints in sk.PARTS.items()}
    assert sizes == {"body": 21, "left_hand": 15, "right_hand": 15, "jaw": 1, "eyes": 2}
    all_joints = [j for joints in sk.PARTS.values() for j in joints]
    assert len(all_joints) == len(set(all_joints)) == 54
    assert sorted(all_joints + [I["pelvis"]]) == list(range(55))
    assert I["pelvis"] == 0


def test_part_contents_by_name():
    names = {part: {sk.JOINT_NAMES[j] for j in joints} for part, joints in sk.PARTS.items()}
    assert names["jaw"] == {"jaw"}
    assert names["eyes"] == {"left_eye_smplhf", "right_eye_smplhf"}
    assert names["left_hand"] == {f"left_{f}{k}" for f in sk.FINGERS for k in (1, 2, 3)}
    assert names["right_hand"] == {f"right_{f}{k}" for f in sk.FINGERS for k in (1, 2, 3)}
    assert {"left_wrist", "right_wrist", "head", "neck", "spine1", "left_foot"} <= names["body"]
    assert "pelvis" not in names["body"]
    # The hand joints follow the SMPL-X order index, middle, pinky, ring, thumb.
    assert [sk.JOINT_NAMES[j] for j in sk.LEFT_HAND_JOINTS[::3]] == [f"left_{f}1" for f in sk.FINGERS]
    assert sk.FINGERS == ("index", "middle", "pinky", "ring", "thumb")


def _names(group: str) -> set[str]:
    return {sk.JOINT_NAMES[j] for j in sk.OCCLUSION_GROUPS[group]}


def test_occlusion_groups():
    for side in ("left", "right"):
        assert _names(f"{side}_leg") == {f"{side}_{n}" for n in ("hip", "knee", "ankle", "foot")}
        assert _names(f"{side}_arm") == {f"{side}_{n}" for n in ("collar", "shoulder", "elbow", "wrist")}
    assert _names("trunk") == {"spine1", "spine2", "spine3", "left_shoulder", "right_shoulder"}
    assert _names("legs") == _names("left_leg") | _names("right_leg")
    assert _names("arms") == _names("left_arm") | _names("right_arm")
    hands = _names("hands")
    assert {"left_wrist", "right_wrist"} <= hands
    assert set(sk.OCCLUSION_GROUPS["hands"]) == {I["left_wrist"], I["right_wrist"], *sk.LEFT_HAND_JOINTS,
                                                  *sk.RIGHT_HAND_JOINTS}
    for group, joints in sk.OCCLUSION_GROUPS.items():
        assert len(joints) == len(set(joints)), group
        assert 0 not in joints, group  # global orientation is never occluded


def test_mirror_index_is_an_involution_swapping_sides():
    mirror = np.asarray(sk.MIRROR_INDEX)
    assert sorted(mirror) == list(range(55))
    np.testing.assert_array_equal(mirror[mirror], np.arange(55))
    for j, name in enumerate(sk.JOINT_NAMES):
        other = sk.JOINT_NAMES[mirror[j]]
        if name.startswith("left_"):
            assert other == "right_" + name[5:]
        elif name.startswith("right_"):
            assert other == "left_" + name[6:]
        else:
            assert other == name
    assert mirror[I["left_eye_smplhf"]] == I["right_eye_smplhf"]
    assert mirror[I["left_thumb2"]] == I["right_thumb2"]
    # The parent tree commutes with the mirror.
    for j in range(1, 55):
        assert sk.PARENTS[mirror[j]] == mirror[sk.PARENTS[j]]


# --- rest skeleton -----------------------------------------------------------------------------------------


def test_rest_skeleton_is_left_right_symmetric():
    np.testing.assert_allclose(sk.REST_JOINTS[list(sk.MIRROR_INDEX)], sk.REST_JOINTS * REFLECT_X, atol=1e-12)
    for j, off in sk.TIP_OFFSETS.items():
        np.testing.assert_allclose(sk.TIP_OFFSETS[sk.MIRROR_INDEX[j]], off * REFLECT_X, atol=1e-12)
    centre = [j for j, m in enumerate(sk.MIRROR_INDEX) if m == j]
    np.testing.assert_allclose(sk.REST_JOINTS[centre, 0], 0.0, atol=1e-12)


def test_rest_joints_from_offsets():
    assert sk.REST_JOINTS.shape == (55, 3)
    np.testing.assert_array_equal(sk.REST_JOINTS[0], 0.0)
    for j, p in enumerate(sk.PARENTS[1:], start=1):
        np.testing.assert_allclose(sk.REST_JOINTS[j] - sk.REST_JOINTS[p], sk.REST_OFFSETS[j], atol=1e-12)
    assert np.all(np.linalg.norm(sk.REST_OFFSETS[1:], axis=1) > 1e-3)  # no zero-length bones


def test_rest_skeleton_anthropometry():
    head_top = tip("head")[1]
    sole = min(tip("left_foot")[1], sk.REST_JOINTS[I["left_ankle"]][1], sk.REST_JOINTS[I["left_foot"]][1])
    stature = head_top - sole
    assert 1.6 <= stature <= 1.85
    span = tip("left_middle3")[0] - tip("right_middle3")[0]
    assert abs(span - stature) <= 0.1 * stature
    # Up is +Y: head above neck above pelvis above knees above ankles.
    y = sk.REST_JOINTS[:, 1]
    assert y[I["head"]] > y[I["neck"]] > y[I["spine3"]] > y[I["pelvis"]] > y[I["left_knee"]] > y[I["left_ankle"]]
    # Forward is +Z: toes and face (eyes, jaw tip) in front.
    assert tip("left_foot")[2] > sk.REST_JOINTS[I["left_ankle"]][2]
    assert sk.REST_JOINTS[I["left_eye_smplhf"]][2] > sk.REST_JOINTS[I["head"]][2]
    assert tip("jaw")[2] > sk.REST_JOINTS[I["head"]][2]


def test_left_arm_and_hand_on_plus_x_fingers_along_plus_x_thumbs_forward():
    left_arm_hand = [I[n] for n in ("left_collar", "left_shoulder", "left_elbow", "left_wrist")]
    left_arm_hand += list(sk.LEFT_HAND_JOINTS)
    assert np.all(sk.REST_JOINTS[left_arm_hand, 0] > 0)
    assert np.all(sk.REST_JOINTS[[sk.MIRROR_INDEX[j] for j in left_arm_hand], 0] < 0)
    # T-pose: shoulder -> elbow -> wrist along +X.
    x = sk.REST_JOINTS[:, 0]
    assert x[I["left_collar"]] < x[I["left_shoulder"]] < x[I["left_elbow"]] < x[I["left_wrist"]]
    wrist = sk.REST_JOINTS[I["left_wrist"]]
    for finger in ("index", "middle", "ring", "pinky"):
        chain = [sk.REST_JOINTS[I[f"left_{finger}{k}"]] for k in (1, 2, 3)] + [tip(f"left_{finger}3")]
        xs = [wrist[0]] + [p[0] for p in chain]
        assert all(a < b for a, b in zip(xs, xs[1:])), finger
        direction = chain[-1] - wrist
        assert direction[0] > 0.9 * np.linalg.norm(direction), finger  # mostly along +X
    # Finger order across the palm (front to back): index, middle, ring, pinky.
    z = sk.REST_JOINTS[:, 2]
    assert z[I["left_index1"]] > z[I["left_middle1"]] > z[I["left_ring1"]] > z[I["left_pinky1"]]
    # The thumb points forward (+Z) and sits in front of the index finger.
    thumb = [sk.REST_JOINTS[I[f"left_thumb{k}"]] for k in (1, 2, 3)] + [tip("left_thumb3")]
    zs = [wrist[2]] + [p[2] for p in thumb]
    assert all(a < b for a, b in zip(zs, zs[1:]))
    assert thumb[-1][2] > z[I["left_index1"]]
    assert tip("right_thumb3")[2] > sk.REST_JOINTS[I["right_wrist"]][2]
    # Palms down: the fingers hang slightly below the wrist, not above.
    assert tip("left_middle3")[1] < wrist[1]


# --- forward kinematics ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fk_identity_gives_rest_joints_with_batch_shape_and_dtype(dtype):
    posed = sk.forward_kinematics(identity_rot_mats(4, dtype))
    assert posed.shape == (4, 55, 3)
    assert posed.dtype == dtype
    expected = torch.as_tensor(sk.REST_JOINTS, dtype=dtype).expand(4, 55, 3)
    torch.testing.assert_close(posed, expected)


def test_fk_batch_of_one_and_custom_rest():
    rest = sk.REST_JOINTS * 1.1
    posed = sk.forward_kinematics(identity_rot_mats(1), rest)
    assert posed.shape == (1, 55, 3)
    np.testing.assert_allclose(posed[0].numpy(), rest, atol=1e-12)
    # Per-batch rest (B, 55, 3).
    rests = np.stack([sk.REST_JOINTS, sk.REST_JOINTS * 0.9])
    posed = sk.forward_kinematics(identity_rot_mats(2), torch.as_tensor(rests))
    np.testing.assert_allclose(posed.numpy(), rests, atol=1e-12)


def test_fk_rotation_about_z_at_left_shoulder():
    """90 deg about +Z at the left shoulder: R (x, y, z) = (-y, x, z), so the arm (along +X) now points up (+Y)."""
    rot = identity_rot_mats(1)
    rot[0, I["left_shoulder"]] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    posed = sk.forward_kinematics(rot)[0].numpy()
    shoulder = sk.REST_JOINTS[I["left_shoulder"]]
    elbow_off = sk.REST_OFFSETS[I["left_elbow"]]  # (0.27, 0, -0.01)
    wrist_off = sk.REST_OFFSETS[I["left_wrist"]]  # (0.25, 0, 0.005)
    elbow = shoulder + np.array([-elbow_off[1], elbow_off[0], elbow_off[2]])
    wrist = elbow + np.array([-wrist_off[1], wrist_off[0], wrist_off[2]])
    np.testing.assert_allclose(posed[I["left_shoulder"]], shoulder, atol=1e-12)
    np.testing.assert_allclose(posed[I["left_elbow"]], elbow, atol=1e-12)
    np.testing.assert_allclose(posed[I["left_wrist"]], wrist, atol=1e-12)
    # Hand-computed numbers, independent of the offsets table.
    np.testing.assert_allclose(posed[I["left_elbow"]] - shoulder, [0.0, 0.27, -0.01], atol=1e-12)
    np.testing.assert_allclose(posed[I["left_wrist"]] - shoulder, [0.0, 0.52, -0.005], atol=1e-12)
    assert posed[I["left_wrist"]][1] > posed[I["head"]][1] - 0.2  # the hand is raised to head height
    # Everything outside the left arm's subtree is unchanged.
    moved = {I["left_elbow"], I["left_wrist"], *sk.LEFT_HAND_JOINTS}
    still = [j for j in range(55) if j not in moved]
    np.testing.assert_allclose(posed[still], sk.REST_JOINTS[still], atol=1e-12)


def _bone_lengths(joints: np.ndarray) -> np.ndarray:
    parents = np.asarray(sk.PARENTS[1:])
    return np.linalg.norm(joints[..., 1:, :] - joints[..., parents, :], axis=-1)


def test_fk_preserves_bone_lengths_for_random_rotations():
    posed = sk.forward_kinematics(random_rot_mats(16, seed=1)).numpy()
    rest_lengths = _bone_lengths(sk.REST_JOINTS)
    np.testing.assert_allclose(_bone_lengths(posed), np.broadcast_to(rest_lengths, (16, 54)), atol=1e-10)
    assert not np.allclose(posed, sk.REST_JOINTS)  # really posed


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_fk_preserves_bone_lengths_float32(seed):
    posed = sk.forward_kinematics(random_rot_mats(2, seed=seed, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(_bone_lengths(posed), np.broadcast_to(_bone_lengths(sk.REST_JOINTS), (2, 54)),
                               atol=1e-5)


def test_fk_global_orientation_rotates_everything_about_the_pelvis():
    rot = identity_rot_mats(1)
    glob = Rotation.from_rotvec([0.3, -1.2, 0.7]).as_matrix()
    rot[0, 0] = torch.as_tensor(glob)
    rest = sk.REST_JOINTS + np.array([0.1, 0.9, -0.2])  # pelvis away from the origin
    posed = sk.forward_kinematics(rot, rest)[0].numpy()
    pelvis = rest[0]
    np.testing.assert_allclose(posed[0], pelvis, atol=1e-12)
    np.testing.assert_allclose(posed, pelvis + (rest - pelvis) @ glob.T, atol=1e-12)


def test_fk_global_orientation_composes_with_local_rotations():
    rot = random_rot_mats(3, seed=5)
    glob = torch.as_tensor(Rotation.from_rotvec([-0.4, 2.0, 0.1]).as_matrix())
    base = sk.forward_kinematics(rot).numpy()
    rot2 = rot.clone()
    rot2[:, 0] = glob @ rot[:, 0]
    turned = sk.forward_kinematics(rot2).numpy()
    np.testing.assert_allclose(turned, base @ glob.numpy().T, atol=1e-12)  # pelvis at the origin


def test_fk_matches_a_naive_loop():
    rot = random_rot_mats(5, seed=2)
    rest = sk.REST_JOINTS + np.random.default_rng(3).normal(scale=0.01, size=(55, 3))
    np.testing.assert_allclose(sk.forward_kinematics(rot, rest).numpy(), naive_fk(rot.numpy(), rest), atol=1e-12)
    rot32 = rot.float()
    np.testing.assert_allclose(sk.forward_kinematics(rot32).numpy(), naive_fk(rot.numpy(), sk.REST_JOINTS),
                               atol=1e-5)


def test_fk_gradients_flow_to_rot_mats():
    rot = random_rot_mats(2, seed=4).requires_grad_(True)
    posed = sk.forward_kinematics(rot)
    posed[:, I["left_index3"]].sum().backward()
    grad = rot.grad
    assert grad is not None and torch.isfinite(grad).all()
    chain = {0}
    j = I["left_index3"]
    while j > 0:  # the joint's own rotation does not move it; its ancestors' rotations do
        j = sk.PARENTS[j]
        chain.add(j)
    for j in range(55):
        norm = grad[:, j].abs().sum().item()
        if j in chain:
            assert norm > 0, sk.JOINT_NAMES[j]
        else:
            assert norm == 0, sk.JOINT_NAMES[j]
    # Analytic gradient against finite differences, through the pelvis, shoulder and elbow rotations.
    base = random_rot_mats(1, seed=6)
    chosen = [0, I["left_shoulder"], I["left_elbow"]]

    def fk_of(mats):
        full = base.clone()
        full[:, chosen] = mats
        return sk.forward_kinematics(full)[:, [I["left_wrist"], I["left_thumb3"]]]

    assert torch.autograd.gradcheck(fk_of, (base[:, chosen].clone().requires_grad_(True),))


AMASS_STATS = amass_stats_path()  # ../shared/reference next to the mocap folder


@pytest.mark.skipif(not AMASS_STATS.exists(), reason="AMASS reference statistics not found")
def test_rest_skeleton_has_the_smplx_convention():
    """The AMASS mean pose (real SMPL-X fits) stands on our skeleton: its neck and head do not hunch forward.
    Before the skeleton's bone directions were estimated (training/calibrate_skeleton.py) the same pose bent
    spine2->spine3 26 degrees and neck->head 47 degrees forward."""
    mean = np.load(AMASS_STATS)["mean"].reshape(21, 3)
    rot = identity_rot_mats(1)
    rot[0, 1:22] = torch.as_tensor(Rotation.from_rotvec(mean).as_matrix())
    joints = sk.forward_kinematics(rot)[0].numpy()
    for a, b in (("spine1", "spine2"), ("spine2", "spine3"), ("spine3", "neck"), ("neck", "head")):
        v = joints[I[b]] - joints[I[a]]
        assert abs(np.degrees(np.arctan2(v[2], v[1]))) < 20, (a, b)
