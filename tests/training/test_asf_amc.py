"""ASF/AMC reader: a tiny skeleton with known answers, every malformed case, and real CMU and HDM05 clips."""
import csv
import tomllib

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import training.mocap.asf_amc as asf_amc
from dposerx_blender.core.errors import DPoserError
from dposerx_blender.core.mocap.bvh import axis_rotations
from dposerx_blender.core.mocap.motion import Motion
from dposerx_blender.core.mocap.retarget import JOINT_MAP_DIR as JOINT_MAPS
from training.mocap.asf_amc import read_amc, read_asf, read_asf_amc
from training.mocap.sources import mocap_root
from text_fixtures import with_lines

TINY_ASF = """\
# a two-bone arm
:version 1.10
:name tiny
:units
  mass 1.0
  length 1.0
  angle deg
:documentation
   free text
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name upper
     direction 1 0 0
     length 2
     axis 0 0 90 XYZ
     dof rx tx
     limits (-180 180)
            (-1 1)
  end
  begin
     id 2
     name lower
     direction 0 1 0
     length 1
     axis 0 0 0 XYZ
     dof rx ry rz
     limits (-10 10)
            (-10 10)
            (-10 10)
  end
:hierarchy
  begin
    root upper
    upper lower
  end
"""

TINY_AMC = """\
:FULLY-SPECIFIED
:DEGREES
1
root 0 0 0 0 0 0
upper 90 5
lower 0 0 90
2
root 1 2 3 0 0 90
"""




def tiny(tmp_path, asf: str = TINY_ASF, amc: str = TINY_AMC, **kwargs) -> Motion:
    (tmp_path / "tiny.asf").write_text(asf)
    (tmp_path / "tiny.amc").write_text(amc)
    return read_asf_amc(tmp_path / "tiny.asf", tmp_path / "tiny.amc", **kwargs)


# --- known answers ----------------------------------------------------------------------------------------

def test_tiny_skeleton_joints_offsets_and_known_poses(tmp_path):
    motion = tiny(tmp_path)
    assert motion.joint_names == ["root", "upper", "lower", "lower_end"]
    assert motion.parents.tolist() == [-1, 0, 1, 2]
    np.testing.assert_allclose(motion.offsets, [[0, 0, 0], [0, 0, 0], [2, 0, 0], [0, 1, 0]])
    assert motion.num_frames == 2 and motion.fps == 120.0 and motion.name == "tiny"
    positions = motion.positions()
    # Frame 1: upper's rx 90 turns about its axis frame's x, which `axis 0 0 90` points along world +Y:
    # (2, 0, 0) -> (0, 0, -2). lower's rz 90 then turns its (0, 1, 0) to (-1, 0, 0), i.e. world (0, 0, 1).
    # upper's tx (a translation dof on a non-root bone) is ignored.
    np.testing.assert_allclose(positions[0], [[0, 0, 0], [0, 0, 0], [0, 0, -2], [0, 0, -1]], atol=1e-12)
    # Frame 2: the root moves to (1, 2, 3) and turns 90 about Z; the bones missing from the frame keep rest.
    np.testing.assert_allclose(positions[1], [[1, 2, 3], [1, 2, 3], [1, 4, 3], [0, 4, 3]], atol=1e-12)


def test_dofs_compose_in_listed_order_about_fixed_axes(tmp_path):
    # rx 90 then ry 90 (R = Ry @ Rx): (0, 1, 0) -> (0, 0, 1) -> (1, 0, 0). Rx @ Ry would give (0, 0, 1).
    motion = tiny(tmp_path, amc=TINY_AMC.replace("upper 90 5", "upper 0 5").replace("lower 0 0 90", "lower 90 90 0"))
    positions = motion.positions()[0]
    np.testing.assert_allclose(positions[3] - positions[2], [1, 0, 0], atol=1e-12)


def test_axis_angles_follow_their_order_letters(tmp_path):
    (tmp_path / "tiny.asf").write_text(TINY_ASF.replace("axis 0 0 90 XYZ", "axis 30 0 90 ZYX"))
    axis = read_asf(tmp_path / "tiny.asf").bones["upper"].axis
    # Z 30 first, then Y 0, then X 90, about fixed axes.
    np.testing.assert_allclose(axis, Rotation.from_euler("zyx", [30, 0, 90], degrees=True).as_matrix(), atol=1e-12)


def test_radians_in_asf_and_amc_give_the_same_motion(tmp_path):
    degrees = tiny(tmp_path).positions()
    asf = TINY_ASF.replace("angle deg", "angle rad").replace("axis 0 0 90 XYZ", f"axis 0 0 {np.pi / 2!r} XYZ")
    amc = (TINY_AMC.replace(":DEGREES", ":RADIANS").replace("upper 90", f"upper {np.pi / 2!r}")
           .replace("lower 0 0 90", f"lower 0 0 {np.pi / 2!r}").replace("0 0 90\n", f"0 0 {np.pi / 2!r}\n"))
    np.testing.assert_allclose(tiny(tmp_path, asf, amc).positions(), degrees, atol=1e-12)


def test_root_position_and_orientation_and_fps_keyword(tmp_path):
    asf = TINY_ASF.replace("position 0 0 0", "position 0 10 0").replace("orientation 0 0 0", "orientation 0 0 90")
    motion = tiny(tmp_path, asf, fps=30, name="clip")
    assert motion.fps == 30.0 and motion.name == "clip"
    np.testing.assert_allclose(motion.offsets[0], [0, 10, 0])
    np.testing.assert_allclose(motion.root_translation, [[0, 10, 0], [1, 12, 3]])
    # The root orientation is the root's axis frame: R_root = C M C^T, with M = Rz(90) in frame 2.
    np.testing.assert_allclose(motion.rotations[1, 0], axis_rotations("Z", [90]), atol=1e-12)


# --- malformed files --------------------------------------------------------------------------------------

ASF_ERRORS = {
    "no bonedata": (with_lines(TINY_ASF, {n: "" for n in range(15, 37)}), 38, "missing :bonedata section"),
    "no hierarchy": ("\n".join(TINY_ASF.splitlines()[:36]) + "\n", 36, "missing :hierarchy section"),
    "unknown parent": (with_lines(TINY_ASF, {40: "    uper lower"}), 40, "unknown bone 'uper' in :hierarchy"),
    "unconnected bone": (with_lines(TINY_ASF, {40: ""}), 41, "bone 'lower' is not connected to root"),
    "non-numeric": (with_lines(TINY_ASF, {19: "     direction 1 x 0"}), 19, "non-numeric value in direction"),
    "short direction": (with_lines(TINY_ASF, {19: "     direction 1 0"}), 19, "direction needs 3 numbers"),
    "unknown dof": (with_lines(TINY_ASF, {22: "     dof rx qq"}), 22, "unknown dof 'qq'"),
    "bad axis order": (with_lines(TINY_ASF, {21: "     axis 0 0 90 XYQ"}), 21, "permutation of XYZ"),
    "no end": (with_lines(TINY_ASF, {25: ""}), 26, "'begin' inside the bone opened at line 16"),
    "no length": (with_lines(TINY_ASF, {20: ""}), 25, "bone opened at line 16 has no length"),
    "bad angle unit": (with_lines(TINY_ASF, {7: "  angle grad"}), 7, "angle unit must be deg or rad"),
    "duplicate bone": (TINY_ASF.replace("name lower", "name upper"), 26, "duplicate bone name 'upper'"),
    "empty": ("", 1, "empty file"),
}


@pytest.mark.parametrize("case", ASF_ERRORS)
def test_malformed_asf_names_the_file_and_line(tmp_path, case):
    text, line, message = ASF_ERRORS[case]
    (tmp_path / "tiny.asf").write_text(text)
    with pytest.raises(DPoserError) as error:
        read_asf(tmp_path / "tiny.asf")
    assert str(error.value).startswith(f"tiny.asf:{line}: "), str(error.value)
    assert message in str(error.value)


AMC_ERRORS = {
    "unknown bone": (with_lines(TINY_AMC, {6: "lowr 0 0 90"}), 6, "unknown bone 'lowr'"),
    "too few values": (with_lines(TINY_AMC, {6: "lower 0 90"}), 6,
                       "bone 'lower' has 3 dofs (rx ry rz), found 2 values"),
    "too many values": (with_lines(TINY_AMC, {4: "root 0 0 0 0 0 0 0"}), 4, "bone 'root' has 6 dofs"),
    "non-numeric": (with_lines(TINY_AMC, {5: "upper ninety 5"}), 5, "non-numeric value 'ninety'"),
    "nan": (with_lines(TINY_AMC, {8: "root 1 2 3 0 0 nan"}), 8, "not finite"),
    "before first frame": (with_lines(TINY_AMC, {3: "upper 90 5"}), 3, "bone 'upper' before the first frame number"),
    "garbage": (with_lines(TINY_AMC, {3: "hello"}), 3, "expected a frame number"),
    "twice in a frame": (with_lines(TINY_AMC, {6: "upper 90 5"}), 6, "bone 'upper' appears twice in frame 1"),
    "no frames": (":FULLY-SPECIFIED\n:DEGREES\n", 1, "no frames"),
}


@pytest.mark.parametrize("case", AMC_ERRORS)
def test_malformed_amc_names_the_file_and_line(tmp_path, case):
    text, line, message = AMC_ERRORS[case]
    with pytest.raises(DPoserError) as error:
        tiny(tmp_path, amc=text)
    assert str(error.value).startswith(f"tiny.amc:{line}: "), str(error.value)
    assert message in str(error.value)


# --- real files (skipped without the data) ----------------------------------------------------------------

def manifest_row(local_path: str) -> dict:
    root = mocap_root()
    if not (root / local_path).is_file():
        pytest.skip(f"mocap data not found at {root} (set DPOSERX_MOCAP_DIR)")
    with open(root / "MANIFEST.tsv", newline="") as fh:
        return next(row for row in csv.DictReader(fh, delimiter="\t") if row["local_path"] == local_path)


CMU = ("cyun9601_cmu_asfamc/02/02.asf", "cyun9601_cmu_asfamc/02/02_05.amc")
HDM05_SNEAK = ("hdm05_cc-by-sa/asf/HDM_dg.asf", "hdm05_cc-by-sa/amc/HDM_dg_sneak2StepsLStart_007_120.amc")


def load(asf: str, amc: str) -> Motion:
    manifest_row(amc)
    return read_asf_amc(mocap_root() / asf, mocap_root() / amc)


def foot_metrics(motion: Motion) -> tuple[float, float]:
    """(p95 - p5 of the lower toe's height, median horizontal speed of a toe planted on the ground) in
    skeleton heights and skeleton heights per second."""
    positions = motion.positions()
    height = np.ptp(motion.rest_positions()[:, 1])
    toes = positions[:, [motion.index("ltoes"), motion.index("rtoes")]]
    lower = toes[..., 1].argmin(axis=1)
    lowest = toes[np.arange(len(toes)), lower, 1]
    speed = np.linalg.norm(np.diff(toes[..., [0, 2]], axis=0), axis=-1) * motion.fps
    planted = (lowest[:-1] < np.percentile(lowest, 2) + 0.02 * height) & (lower[:-1] == lower[1:])
    sliding = speed[np.flatnonzero(planted), lower[:-1][planted]]
    return (np.percentile(lowest, 95) - np.percentile(lowest, 5)) / height, np.median(sliding) / height


@pytest.mark.parametrize("asf, amc", [CMU, HDM05_SNEAK])
def test_real_asf_amc_clips(asf, amc):
    row = manifest_row(amc)
    motion = load(asf, amc)
    assert len(motion.joint_names) == 38  # root + 30 bones + 7 end sites
    assert motion.num_frames == int(row["frames"]) and motion.fps == float(row["fps"])
    assert np.isfinite(motion.rotations).all() and np.isfinite(motion.root_translation).all()
    positions = motion.positions()
    bones = np.linalg.norm(positions[:, 1:] - positions[:, motion.parents[1:]], axis=-1)
    np.testing.assert_allclose(bones, np.broadcast_to(np.linalg.norm(motion.offsets[1:], axis=-1), bones.shape),
                               atol=1e-9)
    # Y up with the floor at y = 0 (the ball-of-foot joints sit a few cm above it), AMC translation in the
    # ASF length unit: the lower toe stays at one height.
    spread, _ = foot_metrics(motion)
    assert spread < 0.02
    assert 0 < np.percentile(positions[:, motion.index("ltoes"), 1], 1) < 0.05 * np.ptp(positions[0, :, 1])
    joint_map = tomllib.loads((JOINT_MAPS / "cmu_asf.toml").read_text())
    mapped = set(joint_map["detect"]) | set(joint_map["joints"].values()) | set(joint_map["tips"].values())
    assert mapped <= set(motion.joint_names)


def test_hdm05_sneak_keeps_planted_feet_still_only_with_the_verified_composition(monkeypatch):
    _, slide = foot_metrics(load(*HDM05_SNEAK))
    assert slide < 0.05  # skeleton heights per second: ~5 cm/s
    # Reading every Euler triple the other way round (R = R_x @ R_y @ R_z for "XYZ") makes the foot slide.
    monkeypatch.setattr(asf_amc, "_fixed_axes_rotation", axis_rotations)
    _, reversed_slide = foot_metrics(load(*HDM05_SNEAK))
    assert reversed_slide > 4 * slide


def test_cmu_elbow_and_knee_flex_the_anatomical_way(tmp_path):
    """From the T-pose (facing +Z), positive lradius rx bends the forearm forward, positive ltibia rx the
    shin backward: the bone axis frames (axis 180 -30 -90 XYZ on the arm) are read in the right order."""
    manifest_row(CMU[0])
    (tmp_path / "pose.amc").write_text(":DEGREES\n1\nroot 0 0 0 0 0 0\nlradius 90\nltibia 90\n")
    motion = read_amc(tmp_path / "pose.amc", read_asf(mocap_root() / CMU[0]))
    positions = motion.positions()[0]

    def direction(a, b):
        vector = positions[motion.index(b)] - positions[motion.index(a)]
        return vector / np.linalg.norm(vector)

    assert direction("lradius", "lwrist")[2] > 0.8
    assert direction("ltibia", "lfoot")[2] < -0.9
