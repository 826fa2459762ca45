"""AMASS-style .npz reading and writing: round trips, SMPL+H expansion, fps keys, errors and atomic writes."""

import numpy as np
import pytest

from dposerx_blender.core.amass import FPS_KEYS, SPLIT_KEYS, AmassMotion, read_amass_npz, write_amass_npz
from dposerx_blender.core.errors import DPoserError


def random_motion(frames: int = 5, seed: int = 0, **kwargs) -> AmassMotion:
    rng = np.random.default_rng(seed)
    defaults = dict(poses=rng.normal(scale=0.5, size=(frames, 165)), trans=rng.normal(size=(frames, 3)), fps=60.0)
    defaults.update(kwargs)
    return AmassMotion(**defaults)


def save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_dposer_error_is_a_value_error():
    assert issubclass(DPoserError, ValueError)


# --- round trips -------------------------------------------------------------------------------------------


def test_write_read_round_trip(tmp_path):
    path = tmp_path / "motion.npz"
    betas = np.linspace(-1, 1, 16)
    extra = {"gender": np.array("female"), "markers": np.arange(12.0).reshape(4, 3)}
    motion = random_motion(7, betas=betas, fps=120.0, extra=extra)
    write_amass_npz(path, motion)
    back = read_amass_npz(path)
    np.testing.assert_array_equal(back.poses, motion.poses)
    np.testing.assert_array_equal(back.trans, motion.trans)
    assert back.fps == 120.0
    np.testing.assert_array_equal(back.betas, betas)
    assert set(back.extra) == {"gender", "markers"}
    assert str(back.extra["gender"]) == "female"
    np.testing.assert_array_equal(back.extra["markers"], extra["markers"])
    assert back.poses.shape == (7, 165) and back.trans.shape == (7, 3)
    # The file itself holds the standard AMASS keys.
    with np.load(path) as data:
        assert {"poses", "trans", "mocap_frame_rate", "betas", "gender", "markers"} == set(data.files)
        assert float(data["mocap_frame_rate"]) == 120.0


def test_round_trip_without_betas_and_overwrite(tmp_path):
    path = tmp_path / "motion.npz"
    write_amass_npz(path, random_motion(3, seed=1))
    second = random_motion(4, seed=2, fps=25.0)
    write_amass_npz(path, second)  # overwrites
    back = read_amass_npz(path)
    assert back.betas is None and back.extra == {}
    assert back.fps == 25.0
    np.testing.assert_array_equal(back.poses, second.poses)


def test_str_path_accepted(tmp_path):
    path = str(tmp_path / "motion.npz")
    write_amass_npz(path, random_motion(2))
    assert read_amass_npz(path).poses.shape == (2, 165)


def test_missing_trans_is_zero(tmp_path):
    path = save(tmp_path / "m.npz", poses=np.ones((3, 165)), mocap_frame_rate=np.array(30.0))
    motion = read_amass_npz(path)
    np.testing.assert_array_equal(motion.trans, np.zeros((3, 3)))
    assert motion.poses.dtype == np.float64 and motion.trans.dtype == np.float64


def test_smplh_poses_expand_with_zero_jaw_and_eyes(tmp_path):
    frames = 4
    # Joint j of the SMPL+H layout (52 joints: global, 21 body, 15 + 15 hand) gets value 10 j + component.
    smplh = np.tile((10.0 * np.arange(52)[:, None] + np.array([1.0, 2.0, 3.0])).reshape(156), (frames, 1))
    motion = read_amass_npz(save(tmp_path / "h.npz", poses=smplh, trans=np.zeros((frames, 3))))
    poses = motion.poses.reshape(frames, 55, 3)
    np.testing.assert_array_equal(poses[:, :22], smplh.reshape(frames, 52, 3)[:, :22])  # global + body
    np.testing.assert_array_equal(poses[:, 22:25], 0.0)  # jaw, left eye, right eye
    np.testing.assert_array_equal(poses[:, 25:40], smplh.reshape(frames, 52, 3)[:, 22:37])  # left hand
    np.testing.assert_array_equal(poses[:, 40:55], smplh.reshape(frames, 52, 3)[:, 37:52])  # right hand
    # Spot checks by hand: left_index1 (SMPL+H joint 22) and right_thumb3 (joint 51).
    np.testing.assert_array_equal(motion.poses[0, 75:78], [221.0, 222.0, 223.0])
    np.testing.assert_array_equal(motion.poses[0, 162:165], [511.0, 512.0, 513.0])


def test_poses_as_joints_by_three(tmp_path):
    poses = np.random.default_rng(3).normal(size=(6, 55, 3))
    motion = read_amass_npz(save(tmp_path / "j.npz", poses=poses))
    assert motion.poses.shape == (6, 165)
    np.testing.assert_array_equal(motion.poses, poses.reshape(6, 165))


@pytest.mark.parametrize("key", ["mocap_frame_rate", "mocap_framerate", "fps"])
def test_fps_key_variants(tmp_path, key):
    assert key in FPS_KEYS
    motion = read_amass_npz(save(tmp_path / "f.npz", poses=np.zeros((2, 165)), **{key: np.array(59.94)}))
    assert motion.fps == pytest.approx(59.94)
    assert key not in motion.extra


def test_fps_default_when_absent(tmp_path):
    path = save(tmp_path / "f.npz", poses=np.zeros((2, 165)))
    assert read_amass_npz(path).fps == 30.0
    assert read_amass_npz(path, default_fps=24.0).fps == 24.0


def test_fps_integer_value(tmp_path):
    motion = read_amass_npz(save(tmp_path / "f.npz", poses=np.zeros((2, 165)), fps=np.array(50)))
    assert motion.fps == 50.0 and isinstance(motion.fps, float)


# --- errors ------------------------------------------------------------------------------------------------


def read_error(path, **kwargs) -> str:
    with pytest.raises(DPoserError) as info:
        read_amass_npz(path, **kwargs)
    message = str(info.value)
    assert str(path) in message  # every message names the file
    return message


def test_missing_file(tmp_path):
    assert "not found" in read_error(tmp_path / "nope.npz")


def test_directory_is_not_a_file(tmp_path):
    read_error(tmp_path)


def test_text_file_is_not_an_npz(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("poses,trans\n1,2\n")
    assert "npz" in read_error(path)


def test_empty_file_is_not_an_npz(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    assert "npz" in read_error(path)


def test_single_npy_array_is_not_an_npz(tmp_path):
    path = tmp_path / "poses.npy"
    np.save(path, np.zeros((3, 165)))
    assert "npz" in read_error(path)


def test_truncated_npz(tmp_path):
    path = tmp_path / "cut.npz"
    write_amass_npz(path, random_motion(50))
    path.write_bytes(path.read_bytes()[:200])
    read_error(path)


def test_missing_poses(tmp_path):
    message = read_error(save(tmp_path / "m.npz", trans=np.zeros((3, 3)), betas=np.zeros(10)))
    assert "'poses'" in message
    assert "trans" in message and "betas" in message  # says what was found


@pytest.mark.parametrize("poses", [
    np.zeros((3, 100)),
    np.zeros((3, 164)),
    np.zeros(165),
    np.zeros((0, 165)),
    np.zeros((3, 55, 2)),
    np.zeros((2, 3, 165)),
    np.zeros(()),
], ids=["3x100", "3x164", "1d", "no-frames", "3x55x2", "3d", "scalar"])
def test_wrong_pose_shapes(tmp_path, poses):
    message = read_error(save(tmp_path / "s.npz", poses=poses))
    assert "165" in message and str(poses.shape) in message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_poses_name_the_frame(tmp_path, bad):
    poses = np.zeros((6, 165))
    poses[3, 17] = bad
    poses[5, 0] = bad
    message = read_error(save(tmp_path / "n.npz", poses=poses))
    assert "poses" in message and "frame 3" in message


def test_non_finite_smplh_poses_name_the_frame(tmp_path):
    poses = np.zeros((4, 156))
    poses[2, 155] = np.nan
    assert "frame 2" in read_error(save(tmp_path / "n.npz", poses=poses))


def test_non_finite_trans_name_the_frame(tmp_path):
    trans = np.zeros((5, 3))
    trans[4, 1] = np.nan
    message = read_error(save(tmp_path / "t.npz", poses=np.zeros((5, 165)), trans=trans))
    assert "trans" in message and "frame 4" in message


@pytest.mark.parametrize("trans_shape", [(4, 3), (6, 3), (5, 2), (5,), (5, 3, 1)])
def test_trans_shape_mismatch(tmp_path, trans_shape):
    message = read_error(save(tmp_path / "t.npz", poses=np.zeros((5, 165)), trans=np.zeros(trans_shape)))
    assert "trans" in message and "(5, 3)" in message and str(trans_shape) in message


@pytest.mark.parametrize("fps", [0.0, -30.0, np.nan])
def test_non_positive_fps(tmp_path, fps):
    message = read_error(save(tmp_path / "f.npz", poses=np.zeros((2, 165)), mocap_frame_rate=np.array(fps)))
    assert "frame rate" in message


def test_non_positive_default_fps(tmp_path):
    read_error(save(tmp_path / "f.npz", poses=np.zeros((2, 165))), default_fps=0.0)


@pytest.mark.parametrize("fps", [np.array([30.0, 60.0]), np.array("thirty"), np.array([])],
                         ids=["two-values", "text", "empty"])
def test_fps_not_a_single_number(tmp_path, fps):
    read_error(save(tmp_path / "f.npz", poses=np.zeros((2, 165)), fps=fps))


# --- writing -----------------------------------------------------------------------------------------------


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "out.npz"
    write_amass_npz(path, random_motion(3))
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]
    write_amass_npz(path, random_motion(4, seed=9))
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]


@pytest.mark.parametrize("poses", [np.zeros((3, 156)), np.zeros((3, 55, 3)), np.zeros(165)],
                         ids=["smplh", "joints", "1d"])
def test_write_bad_poses_raises_without_creating_a_file(tmp_path, poses):
    path = tmp_path / "out.npz"
    with pytest.raises(DPoserError) as info:
        write_amass_npz(path, random_motion(3, poses=poses))
    assert str(path) in str(info.value) and "165" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_write_bad_poses_keeps_an_existing_file(tmp_path):
    path = tmp_path / "out.npz"
    good = random_motion(3)
    write_amass_npz(path, good)
    with pytest.raises(DPoserError):
        write_amass_npz(path, random_motion(3, poses=np.zeros((3, 10))))
    np.testing.assert_array_equal(read_amass_npz(path).poses, good.poses)
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]


# --- split pose keys (video capture tools) ------------------------------------------------------------------


def split_arrays(poses: np.ndarray) -> dict:
    return {key: poses[:, where] for key, where in SPLIT_KEYS.items()}


def test_split_keys_join_into_the_165_vector(tmp_path):
    motion = random_motion(4)
    arrays = split_arrays(motion.poses)
    arrays["body_pose"] = arrays["body_pose"].reshape(4, 21, 3)  # (N, 21, 3) is accepted too
    back = read_amass_npz(save(tmp_path / "split.npz", transl=motion.trans, fps=25, **arrays))
    np.testing.assert_array_equal(back.poses, motion.poses)
    np.testing.assert_array_equal(back.trans, motion.trans)
    assert back.fps == 25.0 and back.extra == {}


def test_split_keys_missing_parts_are_zero(tmp_path):
    motion = random_motion(3)
    back = read_amass_npz(save(tmp_path / "body.npz", body_pose=motion.poses[:, 3:66]))
    expected = np.zeros_like(motion.poses)
    expected[:, 3:66] = motion.poses[:, 3:66]
    np.testing.assert_array_equal(back.poses, expected)
    np.testing.assert_array_equal(back.trans, np.zeros((3, 3)))


def test_split_keys_single_frame_vectors(tmp_path):
    back = read_amass_npz(save(tmp_path / "one.npz", body_pose=np.ones(63), global_orient=np.ones(3)))
    assert back.poses.shape == (1, 165) and np.all(back.poses[0, :66] == 1) and np.all(back.poses[0, 66:] == 0)


def test_trans_wins_over_transl(tmp_path):
    motion = random_motion(2)
    back = read_amass_npz(save(tmp_path / "t.npz", poses=motion.poses, trans=motion.trans, transl=np.zeros((2, 3))))
    np.testing.assert_array_equal(back.trans, motion.trans)
    assert "transl" in back.extra


@pytest.mark.parametrize("arrays, words", [
    ({"body_pose": np.zeros((3, 63)), "left_hand_pose": np.zeros((3, 12))}, ["left_hand_pose", "PCA"]),
    ({"body_pose": np.zeros((3, 60))}, ["body_pose", "63"]),
    ({"body_pose": np.zeros((3, 63)), "jaw_pose": np.zeros((2, 3))}, ["jaw_pose", "2 frames"]),
    ({"global_orient": np.zeros((3, 3))}, ["'poses'", "body_pose"]),
    ({"body_pose": np.full((3, 63), np.nan)}, ["NaN", "frame 0"]),
    ({"body_pose": np.zeros((3, 63)), "transl": np.zeros((3, 2))}, ["'transl'", "(3, 3)"]),
    ({"body_pose": np.array(["a"] * 63)}, ["body_pose", "numbers"]),
], ids=["pca-hands", "body-width", "frame-mismatch", "no-body", "nan", "transl-shape", "strings"])
def test_split_key_errors(tmp_path, arrays, words):
    message = read_error(save(tmp_path / "bad.npz", **arrays))
    for word in words:
        assert word in message, message
