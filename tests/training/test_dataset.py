"""Dataset builder pieces: split rules, calibration trimming, outputs and their hash."""
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dposerx_blender.core.layout import MODEL_DIM, MODEL_SLICES, pose_to_model
from dposerx_blender.core.skeleton import JOINT_INDEX
from training import dataset
from training.dataset import Collected, calibration_frames, cmu_subject, split_of_item, write_outputs


@pytest.mark.parametrize("name, subject", [("02_01.bvh", "02"), ("005_02.bvh", "05"), ("49_08_cmu.fbx", "49"),
                                           ("135_01.fbx", "135"), ("walk1.bvh", None)])
def test_cmu_subject(name, subject):
    assert cmu_subject(Path(name)) == subject


def test_held_out_subjects_are_disjoint():
    assert not dataset.VAL_SUBJECTS & dataset.TEST_SUBJECTS


def test_item_split_is_stable_and_roughly_80_10_10():
    splits = [split_of_item(f"item/{i}") for i in range(5000)]
    assert splits == [split_of_item(f"item/{i}") for i in range(5000)]
    fractions = {s: splits.count(s) / len(splits) for s in dataset.SPLITS}
    assert abs(fractions["train"] - 0.8) < 0.03 and abs(fractions["val"] - 0.1) < 0.02


def test_calibration_t_pose_frames_are_trimmed_only_at_the_ends():
    poses = np.zeros((10, 165))
    arms_down = Rotation.from_euler("z", 70, degrees=True).as_rotvec()
    for name in ("left_shoulder", "right_shoulder"):
        j = JOINT_INDEX[name]
        poses[2:8, 3 * j:3 * j + 3] = arms_down
    poses[5, :] = 0.0  # a T-pose in the middle of the motion stays
    drop = calibration_frames(poses)
    assert drop.tolist() == [True, True] + [False] * 6 + [True, True]


def _collected() -> Collected:
    rng = np.random.default_rng(0)
    collected = Collected()
    for split in dataset.SPLITS:
        collected.add(split, "cmu_test", pose_to_model(rng.normal(scale=0.3, size=(20, 165))), ("body",))
        dataset._add_hands(collected, "asl", rng.normal(scale=0.3, size=(6, 45)), [split] * 6)
        face = np.zeros((4, MODEL_DIM))
        face[:, MODEL_SLICES["jaw"]] = rng.normal(size=(4, 3))
        collected.add(split, "synthetic_face", face, ("jaw", "eyes"))
    return collected


def test_outputs_are_complete_normalised_and_hashed_deterministically(tmp_path):
    first = write_outputs(_collected(), tmp_path / "a", {"test": True})
    second = write_outputs(_collected(), tmp_path / "b", {"test": True})
    assert first["content_sha256"] == second["content_sha256"]
    for part, dim in (("body", 63), ("hand", 45), ("face", 9)):
        for split in dataset.SPLITS:
            poses = np.load(tmp_path / "a" / part / f"{split}.npz")["poses"]
            assert poses.shape[1] == dim
        stats = np.load(tmp_path / "a" / part / "normalizer.npz")
        train = np.load(tmp_path / "a" / part / "train.npz")["poses"]
        np.testing.assert_allclose(stats["mean"], train.mean(0), atol=1e-6)
        assert np.all(stats["std"] > 0)
    whole = np.load(tmp_path / "a" / "whole" / "train.npz")
    assert whole["model"].shape == (20 + 6 + 4, MODEL_DIM)
    # Single hands alternate between the right and the left slot (3 each), never both.
    hands = whole["present"][:, 1:3]
    assert hands[:, 0].sum() == 3 and hands[:, 1].sum() == 3 and not np.any(hands.all(1))
    assert first["sizes"]["hand/train"] == 6
    changed = _collected()
    changed.model["train"][0][0, 0] += 1.0
    assert write_outputs(changed, tmp_path / "c", {"test": True})["content_sha256"] != first["content_sha256"]


def test_glitch_frames_flag_impossible_jumps_only():
    t = np.arange(30) / 30.0
    poses = np.zeros((30, 165))
    poses[:, 3 * 4] = 2.0 * np.sin(2 * np.pi * t)  # a fast but human knee swing: < 25 deg per frame
    assert not dataset.glitch_frames(poses).any()
    poses[12, 3 * 4] += 1.2  # a 69 degree spike for one frame
    assert dataset.glitch_frames(poses).nonzero()[0].tolist() == [12, 13]


def test_a_held_out_take_keeps_its_longest_clean_run():
    poses = np.zeros((40, 165))
    glitches = np.zeros(40, bool)
    glitches[5] = True                  # a jump into frame 5: frames 0-4 and 5-... are separate runs
    poses[20, 3 * 4] = -1.0             # frame 20: a knee bent 57 degrees forwards (outside the bounds)
    glitches[31] = True
    assert dataset.longest_clean_run(poses, glitches) == slice(5, 20)
    assert dataset.longest_clean_run(poses[:3], np.zeros(3, bool)) == slice(0, 3)
