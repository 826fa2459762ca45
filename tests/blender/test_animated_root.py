"""An animated 'root' bone above the pelvis: reading a track and writing it back (key_track, Clean Mocap, npz
import) evaluates the root at each frame, so the pelvis keeps its world orientation (and position) frame by frame."""
import sys

import bpy
import numpy as np
import pytest
from conftest import make_rig, mpi_rig, random_pose
from scipy.spatial.transform import Rotation

from dposerx_blender.blender import rig_bridge
from dposerx_blender.core.amass import AmassMotion, write_amass_npz

FRAMES = np.arange(1, 6, dtype=float)
RIGS = {"mpi": mpi_rig, "random_roll": lambda: make_rig(bone_vector="random", roll="random")}
ROOT_MODES = ["QUATERNION", "XYZ"]


def animate_root(rig, mode, frames=FRAMES, seed=3):
    """Key the root bone's rotation (in `mode`) to a different, large rotation on each frame."""
    root = rig.object.pose.bones[rig.root]
    root.rotation_mode = mode
    rotations = Rotation.from_rotvec(np.random.default_rng(seed).normal(scale=0.8, size=(len(frames), 3)))
    for frame, rotation in zip(frames, rotations):
        if mode == "QUATERNION":
            x, y, z, w = rotation.as_quat()
            root.rotation_quaternion = (w, x, y, z)
        else:
            root.rotation_euler = rotation.as_euler(mode.lower())
        root.keyframe_insert(rig_bridge.rotation_path(mode), frame=frame)


def animated_rig(make, root_mode):
    rig = rig_bridge.find_rig(make())
    assert rig.root == "root"
    rig_bridge.key_track(rig, np.stack([random_pose(s, 0.3) for s in range(len(FRAMES))]), range(55), FRAMES)
    animate_root(rig, root_mode)
    bpy.context.scene.frame_set(3)  # the root's current rotation is frame 3's, unlike the other frames'
    return rig


def pelvis_world(rig, frames=FRAMES):
    """Blender's own evaluation: the pelvis bone's world rotation (T, 3, 3) and head position (T, 3) per frame."""
    scene, ob = bpy.context.scene, rig.object
    rotations, heads = [], []
    for frame in frames:
        scene.frame_set(int(frame))
        matrix = ob.matrix_world @ ob.pose.bones[rig.bone_names[0]].matrix
        rotations.append(np.array(matrix.to_3x3().normalized()))
        heads.append(np.array(matrix.translation))
    scene.frame_set(3)
    return np.array(rotations), np.array(heads)


@pytest.mark.parametrize("root_mode", ROOT_MODES)
@pytest.mark.parametrize("make", RIGS.values(), ids=RIGS.keys())
def test_track_written_back_keeps_the_pelvis_per_frame(make, root_mode):
    rig = animated_rig(make, root_mode)
    before, _ = pelvis_world(rig)
    track = rig_bridge.read_track(rig, FRAMES)
    rig_bridge.key_track(rig, track, range(55), FRAMES)
    after, _ = pelvis_world(rig)
    assert np.abs(after - before).max() < 1e-6
    assert np.abs(rig_bridge.read_track(rig, FRAMES) - track).max() < 1e-6


@pytest.mark.parametrize("root_mode", ROOT_MODES)
def test_clean_mocap_with_an_identity_solver_keeps_the_track(root_mode, calls, monkeypatch):
    """Clean Mocap reads the track with the root per frame and keys what the solver returns (here its input)."""
    monkeypatch.setattr(sys.modules["dposerx_blender.core.tasks"], "denoise_track",
                        lambda prior, track, **kwargs: np.array(track))
    rig = animated_rig(mpi_rig, root_mode)
    before, _ = pelvis_world(rig)
    track = rig_bridge.read_track(rig, FRAMES)
    settings = bpy.context.scene.dposerx
    settings.clean_start, settings.clean_end = int(FRAMES[0]), int(FRAMES[-1])
    assert bpy.ops.dposerx.clean_mocap() == {'FINISHED'}
    after, _ = pelvis_world(rig)
    assert np.abs(after - before).max() < 1e-6
    assert np.abs(rig_bridge.read_track(rig, FRAMES) - track).max() < 1e-6


@pytest.mark.parametrize("up_axis", ["Y", "Z"])
@pytest.mark.parametrize("translation_bone", ["PELVIS", "ROOT"])
def test_npz_import_onto_an_animated_root_matches_a_still_one(tmp_path, up_axis, translation_bone):
    """The file's global orientation and translation include the root: the pelvis ends where it does on a rig
    whose root stays at rest, on every frame, and the track and translation read back as imported."""
    rng = np.random.default_rng(0)
    motion = AmassMotion(rng.normal(scale=0.3, size=(len(FRAMES), 165)), rng.normal(scale=0.5, size=(len(FRAMES), 3)),
                         30.0)
    write_amass_npz(tmp_path / "in.npz", motion)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base, scene.frame_start = 30, 1.0, int(FRAMES[0])
    still, moving = rig_bridge.find_rig(mpi_rig()), rig_bridge.find_rig(mpi_rig())
    animate_root(moving, "QUATERNION")
    scene.frame_set(3)
    for rig in (still, moving):
        bpy.context.view_layer.objects.active = rig.object
        assert bpy.ops.dposerx.import_smplx_npz(filepath=str(tmp_path / "in.npz"), up_axis=up_axis,
                                                translation_bone=translation_bone) == {'FINISHED'}
    (still_rotation, still_head), (moving_rotation, moving_head) = pelvis_world(still), pelvis_world(moving)
    assert np.abs(moving_rotation - still_rotation).max() < 1e-6
    assert np.abs(moving_head - still_head).max() < 1e-6
    on_root = translation_bone == "ROOT"
    for read in (rig_bridge.read_track, lambda rig, frames: rig_bridge.read_translation(rig, frames, on_root)):
        assert np.abs(read(moving, FRAMES) - read(still, FRAMES)).max() < 1e-5
