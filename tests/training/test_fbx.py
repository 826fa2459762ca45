"""FBX reader: one real CMU file per rig (skipped without the data), bad input, and a Blender export round trip."""
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from dposerx_blender.core.errors import DPoserError  # noqa: E402
from training.mocap.fbx import read_fbx  # noqa: E402
from dposerx_blender.core.mocap.retarget import JOINT_MAP_DIR, JointMap  # noqa: E402
from training.mocap.sources import mocap_root  # noqa: E402

# joint map -> (sample file, joints incl. end sites, frames, fps)
RIGS = {
    "keijiro_fbx": ("keijiro_cmu_fbx/85_03.fbx", 27, 813, 30.0),
    "poselib_fbx": ("poselib_cmu_fbx/55_01_cmu.fbx", 45, 1807, 120.0),
    "mesh2motion_fbx": ("mesh2motion_cmu_fbx/91_48.fbx", 57, 110, 30.0),
}


@pytest.fixture(scope="module", params=sorted(RIGS))
def rig(request):
    """(joint map, motion, expected (file, joints, frames, fps)) for one sample file."""
    expected = RIGS[request.param]
    path = mocap_root() / expected[0]
    if not path.is_file():
        pytest.skip(f"mocap data not found: {path}")
    motions = read_fbx(path)
    assert len(motions) == 1
    return JointMap.load(JOINT_MAP_DIR / f"{request.param}.toml"), motions[0], expected


def _point(positions, motion, entry):
    """Positions of a joint-map entry: a joint name or {between = [a, b], at = f}."""
    if isinstance(entry, dict):
        a, b = (motion.index(name) for name in entry["between"])
        return (1 - entry["at"]) * positions[:, a] + entry["at"] * positions[:, b]
    return positions[:, motion.index(entry)]


def test_real_file_counts_and_values(rig):
    _, motion, (file, n_joints, n_frames, fps) = rig
    assert len(motion.joint_names) == n_joints
    assert motion.num_frames == n_frames
    assert motion.fps == fps
    assert motion.name == Path(file).stem
    for array in (motion.offsets, motion.rotations, motion.root_translation):
        assert np.all(np.isfinite(array))
    # End sites, and the files' own end nodes, never rotate.
    ends = [j for j, name in enumerate(motion.joint_names) if name.endswith("_end")]
    np.testing.assert_allclose(motion.rotations[:, ends], np.broadcast_to(np.eye(3), (n_frames, len(ends), 3, 3)),
                               atol=1e-5)


def test_bone_lengths_stay_at_rest_lengths(rig):
    _, motion, _ = rig
    positions = motion.positions()
    lengths = np.linalg.norm(positions[:, 1:] - positions[:, motion.parents[1:]], axis=-1)
    rest_lengths = np.linalg.norm(motion.offsets[1:], axis=-1)
    scale = np.ptp(motion.rest_positions(), axis=0).max()
    np.testing.assert_allclose(lengths, np.broadcast_to(rest_lengths, lengths.shape), atol=1e-5 * scale)


def test_body_stands_upright_along_blender_z(rig):
    joint_map, motion, _ = rig
    positions = motion.positions()
    head = _point(positions, motion, joint_map.joints["head"])
    feet = (_point(positions, motion, joint_map.joints["left_ankle"])
            + _point(positions, motion, joint_map.joints["right_ankle"])) / 2
    rise = head - feet
    up_axis = int(np.argmax(np.abs(rise.mean(0))))
    assert up_axis == 2  # the importer converts every file to Blender's Z-up
    assert np.mean(rise[:, up_axis] > 0) > 0.9


def test_joint_map_names_exist_in_the_rig(rig):
    joint_map, motion, _ = rig
    names = set(motion.joint_names)
    assert set(joint_map.detect) <= names
    assert joint_map.source_names() <= names


def test_text_renamed_fbx_is_rejected(tmp_path):
    path = tmp_path / "notes.fbx"
    path.write_text("not an FBX file\n")
    with pytest.raises(DPoserError, match="notes.fbx"):
        read_fbx(path)


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(DPoserError, match="absent.fbx"):
        read_fbx(tmp_path / "absent.fbx")


# --- Files written by Blender's own FBX exporter -------------------------------------------------------------

def _new_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 10
    return scene


def _add_rig(scene):
    """A small rig: root with a spine and an arm bone that starts away from its parent's tail (not connected),
    on an object that is moved, rotated and uniformly scaled."""
    armature = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    scene.collection.objects.link(armature)
    armature.location, armature.rotation_euler, armature.scale = (1.0, -2.0, 0.5), (0.3, -0.2, 0.8), (1.5,) * 3
    bpy.context.view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    bones = armature.data.edit_bones
    for name, head, tail, parent, roll in (("root", (0, 0, 1), (0, 0, 1.2), None, 0.0),
                                           ("spine", (0, 0, 1.2), (0, 0.1, 1.7), "root", 0.4),
                                           ("arm", (0.2, 0, 1.6), (0.7, 0, 1.55), "spine", -0.7),
                                           ("hand", (0.7, 0, 1.55), (0.9, 0.05, 1.5), "arm", 0.0)):
        bone = bones.new(name)
        bone.head, bone.tail, bone.roll = head, tail, roll
        bone.parent = bones[parent] if parent else None
    bpy.ops.object.mode_set(mode="OBJECT")
    return armature


def _animate(armature):
    """Random bone rotations, root bone moves, and the object itself moves and turns."""
    rng = np.random.default_rng(0)
    for frame in (1, 5, 10):
        armature.location = rng.normal(size=3)
        armature.rotation_euler = rng.normal(scale=0.5, size=3)
        armature.keyframe_insert("location", frame=frame)
        armature.keyframe_insert("rotation_euler", frame=frame)
        for pose_bone in armature.pose.bones:
            quaternion = rng.normal(size=4)
            pose_bone.rotation_quaternion = quaternion / np.linalg.norm(quaternion)
            pose_bone.keyframe_insert("rotation_quaternion", frame=frame)
        armature.pose.bones["root"].location = rng.normal(scale=0.3, size=3)
        armature.pose.bones["root"].keyframe_insert("location", frame=frame)


def _export(path, animated=True):
    bpy.ops.export_scene.fbx(filepath=str(path), object_types={"ARMATURE", "MESH"}, add_leaf_bones=False,
                             bake_anim=animated, bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False,
                             bake_anim_simplify_factor=0.0)


def test_round_trip_matches_blender_bone_heads(tmp_path):
    scene = _new_scene()
    armature = _add_rig(scene)
    _animate(armature)
    frames = (1, 3, 10)
    expected = {}
    for frame in frames:
        scene.frame_set(frame)
        expected[frame] = {b.name: np.array(armature.matrix_world @ b.head) for b in armature.pose.bones}
    path = tmp_path / "rig.fbx"
    _export(path)

    motion, = read_fbx(path)
    assert motion.num_frames == 10
    assert motion.joint_names == ["root", "spine", "arm", "hand", "hand_end"]
    positions = motion.positions()
    for frame in frames:
        for name, head in expected[frame].items():
            np.testing.assert_allclose(positions[frame - 1, motion.index(name)], head, atol=1e-4)


def test_fbx_without_armature_is_rejected(tmp_path):
    _new_scene()
    bpy.ops.mesh.primitive_cube_add()
    path = tmp_path / "cube.fbx"
    _export(path, animated=False)
    with pytest.raises(DPoserError, match="cube.fbx.*no armature"):
        read_fbx(path)


def test_armature_without_animation_is_rejected(tmp_path):
    _add_rig(_new_scene())
    path = tmp_path / "still.fbx"
    _export(path, animated=False)
    with pytest.raises(DPoserError, match="still.fbx.*no animation"):
        read_fbx(path)
