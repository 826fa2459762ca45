"""BVH reader/writer: round trips, hand-made files with known answers, every malformed case, real files."""
import csv
import tomllib

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dposerx_blender.core.errors import DPoserError
from dposerx_blender.core.mocap.bvh import parse_bvh, read_bvh, write_bvh
from dposerx_blender.core.mocap.motion import Motion
from dposerx_blender.core.mocap.retarget import JOINT_MAP_DIR as JOINT_MAPS
from training.mocap.sources import mocap_root
from text_fixtures import with_lines

TWO_JOINTS = """\
HIERARCHY
ROOT hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT spine
  {
    OFFSET 0 1 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 1 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 0 0 0 0 0 0 0 0
1 0 0 0 0 90 0 90 0
"""




def by_name(motion: Motion) -> dict[str, np.ndarray]:
    positions = motion.positions()
    return {name: positions[:, j] for j, name in enumerate(motion.joint_names)}


def random_motion(seed: int, n_frames: int = 6) -> Motion:
    rng = np.random.default_rng(seed)
    names = ["hips", "spine", "chest", "head", "head_end", "arm", "hand", "hand_end", "leg", "leg_end"]
    parents = [-1, 0, 1, 2, 3, 2, 5, 6, 0, 8]
    rotations = Rotation.random(n_frames * len(names), random_state=seed).as_matrix().reshape(n_frames, -1, 3, 3)
    rotations[:, [names.index(n) for n in names if n.endswith("_end")]] = np.eye(3)
    return Motion("random", names, np.array(parents), rng.normal(size=(len(names), 3)), rotations,
                  rng.normal(size=(n_frames, 3)), 30.0)


# --- round trips ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["ZXY", "XYZ", "YZX", "ZYX", "YXZ", "XZY"])
def test_write_then_parse_gives_the_same_positions(tmp_path, order):
    motion = random_motion(seed=len(order) + ord(order[0]))
    path = tmp_path / "round.bvh"
    write_bvh(motion, path, order=order)
    back = read_bvh(path)
    assert back.num_frames == motion.num_frames and back.fps == pytest.approx(30.0)
    assert sorted(back.joint_names) == sorted(motion.joint_names)  # end sites come back with the same names
    expected, found = by_name(motion), by_name(back)
    for name in motion.joint_names:
        np.testing.assert_allclose(found[name], expected[name], atol=1e-6)
    assert f"CHANNELS 3 {' '.join(a + 'rotation' for a in order)}" in path.read_text()


def test_six_channels_on_every_joint_ignore_non_root_translations():
    six = TWO_JOINTS.replace("CHANNELS 3 Zrotation", "CHANNELS 6 Xposition Yposition Zposition Zrotation")
    six = with_lines(six, {19: "0 0 0 0 0 0 5 5 5 0 0 0", 20: "1 0 0 0 0 90 -7 8 9 0 90 0"})
    three, six = parse_bvh(TWO_JOINTS, "three"), parse_bvh(six, "six")
    np.testing.assert_allclose(six.positions(), three.positions(), atol=1e-12)


def test_write_then_parse_keeps_six_channel_files(tmp_path):
    six = parse_bvh(TWO_JOINTS.replace("CHANNELS 3 Zrotation", "CHANNELS 6 Xposition Yposition Zposition Zrotation")
                    .replace("0 0 0 0 0 0 0 0 0", "0 0 0 0 0 0 1 2 3 0 0 0").replace("1 0 0 0 0 90 0 90 0",
                                                                               "1 0 0 0 0 90 4 5 6 0 90 0"), "six")
    write_bvh(six, tmp_path / "six.bvh", order="XYZ")
    np.testing.assert_allclose(read_bvh(tmp_path / "six.bvh").positions(), six.positions(), atol=1e-6)


# --- known answers ----------------------------------------------------------------------------------------

def test_ninety_degrees_about_z_turns_x_into_y():
    text = TWO_JOINTS.replace("OFFSET 0 1 0\n    CHANNELS", "OFFSET 1 0 0\n    CHANNELS")
    text = with_lines(text, {19: "0 0 0 90 0 0 0 0 0"})
    motion = parse_bvh(text, "z90")
    np.testing.assert_allclose(motion.positions()[0, motion.index("spine")], [0, 1, 0], atol=1e-12)


def test_rotation_channels_compose_intrinsically_in_listed_order():
    # Zrotation 90 then Xrotation 90 on the root: R = Rz(90) @ Rx(90) takes (0, 0, 1) to (1, 0, 0);
    # the opposite product would give (0, -1, 0).
    text = TWO_JOINTS.replace("OFFSET 0 1 0\n    CHANNELS", "OFFSET 0 0 1\n    CHANNELS")
    motion = parse_bvh(with_lines(text, {19: "0 0 0 90 90 0 0 0 0"}), "zx")
    np.testing.assert_allclose(motion.positions()[0, motion.index("spine")], [1, 0, 0], atol=1e-12)
    flipped = text.replace("Zposition Zrotation Xrotation Yrotation", "Zposition Xrotation Zrotation Yrotation")
    motion = parse_bvh(with_lines(flipped, {19: "0 0 0 90 90 0 0 0 0"}), "xz")
    np.testing.assert_allclose(motion.positions()[0, motion.index("spine")], [0, -1, 0], atol=1e-12)


def test_root_position_channels_add_to_the_root_offset_and_end_sites_become_joints():
    text = TWO_JOINTS.replace("OFFSET 0 0 0", "OFFSET 0 100 0", 1)
    motion = parse_bvh(text, "walk", path="/data/walk.bvh")
    assert motion.joint_names == ["hips", "spine", "spine_end"]
    assert motion.parents.tolist() == [-1, 0, 1]
    np.testing.assert_allclose(motion.root_translation, [[0, 100, 0], [1, 100, 0]])
    np.testing.assert_allclose(motion.rotations[:, 2], np.broadcast_to(np.eye(3), (2, 3, 3)))
    # Frame 1: the root turns 90 degrees about Y, then the spine 90 about X: its end goes +Y -> +Z -> +X.
    np.testing.assert_allclose(motion.positions()[1], [[1, 100, 0], [1, 101, 0], [2, 101, 0]], atol=1e-12)
    assert motion.fps == 30.0 and motion.source_path == "/data/walk.bvh" and motion.name == "walk"


@pytest.mark.parametrize("frame_time, fps", [("0.00833333", 120.0), ("0.016667", 60.0), ("0.04", 25.0),
                                             ("0.041667", 24.0), ("0.0075", 1 / 0.0075)])
def test_frame_time_becomes_a_rounded_fps(frame_time, fps):
    motion = parse_bvh(TWO_JOINTS.replace("0.0333333", frame_time), "fps")
    assert motion.fps == pytest.approx(fps, rel=1e-12)


# --- malformed files --------------------------------------------------------------------------------------

MALFORMED = {
    "missing brace": (with_lines(TWO_JOINTS, {7: ""}), 8, "expected '{' after JOINT name"),
    "missing MOTION": ("\n".join(TWO_JOINTS.splitlines()[:15]) + "\n", 15, "missing MOTION section"),
    "frame count": (with_lines(TWO_JOINTS, {17: "Frames: 3"}), 17, "Frames says 3 but 2 motion lines follow"),
    "short line": (with_lines(TWO_JOINTS, {20: "1 0 0 0 0 90 0 0"}), 20, "expected 9 values, found 8"),
    "long line": (with_lines(TWO_JOINTS, {19: "0 0 0 0 0 0 0 0 0 0"}), 19, "expected 9 values, found 10"),
    "non-numeric": (with_lines(TWO_JOINTS, {19: "0 0 0 0 zero 0 0 0 0"}), 19, "non-numeric value 'zero'"),
    "nan": (with_lines(TWO_JOINTS, {20: "1 0 0 0 0 nan 0 0 0"}), 20, "not finite"),
    "inf": (with_lines(TWO_JOINTS, {20: "1 0 0 0 0 -inf 0 0 0"}), 20, "not finite"),
    "unknown channel": (TWO_JOINTS.replace("CHANNELS 3 Zrotation", "CHANNELS 3 Wrotation"), 9,
                        "unknown channel 'Wrotation'"),
    "zero frame time": (with_lines(TWO_JOINTS, {18: "Frame Time: 0"}), 18, "Frame Time must be > 0"),
    "negative frame time": (with_lines(TWO_JOINTS, {18: "Frame Time: -0.01"}), 18, "Frame Time must be > 0"),
    "bad frame time": (with_lines(TWO_JOINTS, {18: "Frame Time: fast"}), 18, "expected a number after 'Frame Time:'"),
    "unclosed brace": (with_lines(TWO_JOINTS, {14: ""}), 15, "unbalanced braces: 'hips' opened at line 3"),
    "extra brace": (with_lines(TWO_JOINTS, {15: "} }"}), 15, "unexpected '}' after the root joint"),
    "bad offset": (with_lines(TWO_JOINTS, {8: "    OFFSET 0 one 0"}), 8, "expected a number for OFFSET"),
    "no hierarchy": (TWO_JOINTS.replace("HIERARCHY", "HIERARCHIE"), 1, "expected HIERARCHY"),
    "duplicate joint": (TWO_JOINTS.replace("JOINT spine", "JOINT hips"), 6, "duplicate joint name 'hips'"),
    "empty": ("", 1, "empty file"),
    "blank": ("\n  \n", 1, "empty file"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_files_name_the_file_and_line(tmp_path, case):
    text, line, message = MALFORMED[case]
    path = tmp_path / "walk.bvh"
    path.write_text(text)
    with pytest.raises(DPoserError) as error:
        read_bvh(path)
    assert str(error.value).startswith(f"walk.bvh:{line}: "), str(error.value)
    assert message in str(error.value)


def test_parse_without_path_names_the_motion():
    with pytest.raises(DPoserError, match=r"^clip:1: empty file"):
        parse_bvh("", "clip")


def test_write_rejects_a_bad_rotation_order(tmp_path):
    with pytest.raises(DPoserError, match="permutation of XYZ"):
        write_bvh(random_motion(0), tmp_path / "x.bvh", order="XXY")


# --- real files (skipped without the data) ----------------------------------------------------------------

def manifest_row(local_path: str) -> dict:
    root = mocap_root()
    if not (root / local_path).is_file():
        pytest.skip(f"mocap data not found at {root} (set DPOSERX_MOCAP_DIR)")
    with open(root / "MANIFEST.tsv", newline="") as fh:
        return next(row for row in csv.DictReader(fh, delimiter="\t") if row["local_path"] == local_path)


def lowest_foot_range(motion: Motion, feet: tuple[str, str], up: int) -> float:
    """p95 - p5 over frames of the lower foot's height, as a fraction of the rest skeleton's height."""
    heights = motion.positions()[:, [motion.index(f) for f in feet], up].min(axis=1)
    return (np.percentile(heights, 95) - np.percentile(heights, 5)) / np.ptp(motion.rest_positions()[:, up])


def joint_map_names(map_name: str) -> tuple[set, set]:
    """(detect names, every source joint named in [joints] and [tips]) of a joint map."""
    data = tomllib.loads((JOINT_MAPS / f"{map_name}.toml").read_text())
    names = set()
    for entry in list(data["joints"].values()) + list(data.get("tips", {}).values()):
        names.update(entry["between"] if isinstance(entry, dict) else [entry])
    return set(data["detect"]), names


# (file, joints incl. end sites, its joint map, feet for a walking clip, up axis)
REAL_FILES = [
    ("przestr_cgspeed_daz_bvh/02_01.bvh", 57, "cgspeed_daz_bvh", ("lFoot_end", "rFoot_end"), 1),  # walk, Y up
    ("przestr_cgspeed_daz_bvh/16_01.bvh", 38, "cmu_bvh", None, 1),  # CMU bone names, 30 fps
    ("iclone_cmu_bvh/005_03.bvh", 141, "iclone_bvh", None, 1),  # modern dance
    ("makehuman_cc0_anims/makehuman/data/animations/walks/walk1.bvh", 91, "makehuman_anim_bvh",
     ("Toe_L_end", "Toe_R_end"), 2),  # in-place walk, Z up
    ("makehuman_assets_cc0_poses/base/poses/standing01.bvh", 212, "makehuman_bvh", None, 2),
]


@pytest.mark.parametrize("local_path, n_joints, map_name, feet, up", REAL_FILES)
def test_real_bvh_files(local_path, n_joints, map_name, feet, up):
    row = manifest_row(local_path)
    motion = read_bvh(mocap_root() / local_path)
    assert len(motion.joint_names) == n_joints
    assert motion.num_frames == int(row["frames"])
    assert motion.fps == pytest.approx(float(row["fps"]), rel=1e-3)
    assert np.isfinite(motion.rotations).all() and np.isfinite(motion.root_translation).all()
    positions = motion.positions()
    bones = np.linalg.norm(positions[:, 1:] - positions[:, motion.parents[1:]], axis=-1)
    np.testing.assert_allclose(bones, np.broadcast_to(np.linalg.norm(motion.offsets[1:], axis=-1), bones.shape),
                               atol=1e-9 * np.abs(positions).max())
    if feet:
        assert lowest_foot_range(motion, feet, up) < 0.04
    detect, mapped = joint_map_names(map_name)
    assert detect <= set(motion.joint_names) and mapped <= set(motion.joint_names)
