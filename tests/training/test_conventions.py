"""The SMPL-X convention report and the cross-conversion check (training/conventions.py)."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dposerx_blender.core.mocap.conventions import Z_UP_TO_Y_UP
from dposerx_blender.core.mocap.retarget import load_joint_maps
from dposerx_blender.core.skeleton import JOINT_INDEX, NUM_JOINTS
from training.conventions import amass_stats_path, compare, reexpressed, reexpression_differences, standing
from training.mocap.sources import mocap_root

ROOT = mocap_root()


def test_compare_measures_in_amass_standard_deviations():
    mean, std = np.full((21, 3), 10.0), np.full((21, 3), 5.0)
    rows = np.tile(np.radians(mean.reshape(-1)), (4, 1))
    rows[:, 3 * 2] += np.radians(5.0)  # spine1 x one std off
    out = compare({"a": rows}, mean, std)["a"]
    assert out["n"] == 4
    np.testing.assert_allclose(out["sigmas"][[0, 1, 3]], 0.0, atol=1e-9)
    assert abs(out["sigmas"][2] - 1.0) < 1e-9 and 4.0 < out["angle"][2] < 5.5


def test_standing_frames():
    poses = np.zeros((2, 3 * NUM_JOINTS))
    poses[:, :3] = Rotation.from_matrix(Z_UP_TO_Y_UP.T).as_rotvec()  # upright in AMASS's Z-up world
    poses[1, 3 * JOINT_INDEX["left_knee"]] = np.radians(90)
    assert standing(poses).tolist() == [True, False]


@pytest.mark.skipif(not amass_stats_path(ROOT).exists(), reason="AMASS reference statistics not found")
def test_amass_reference_loads_in_smplx_order():
    from training.conventions import load_amass_stats

    mean, std = load_amass_stats(amass_stats_path(ROOT))
    assert mean.shape == std.shape == (21, 3) and np.all(std > 0)


TAKE = ROOT / "cyun9601_cmu_asfamc" / "02" / "02_05.amc"


@pytest.mark.skipif(not TAKE.exists(), reason=f"mocap data not found at {ROOT}")
def test_same_take_on_another_rest_pose_gives_the_same_rotations():
    """The cross-conversion target on a real held-out take: under 5 degrees per body joint on average."""
    from training.mocap.asf_amc import read_amc, read_asf

    motion = read_amc(TAKE, read_asf(TAKE.with_name("02.asf")))
    motion = motion.slice(0, 600, 4)
    np.testing.assert_allclose(reexpressed(motion).positions(), motion.positions(), atol=1e-6)
    differences = reexpression_differences(motion, load_joint_maps()["cmu_asf"])
    assert differences.max() < 5.0, differences
