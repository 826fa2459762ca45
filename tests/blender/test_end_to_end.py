"""Every solver operator once through the real core.tasks and the bundled weights, on the project's own skeleton,
with small settings and one torch thread (set in the preferences, as a user would): locked bones unchanged bit for
bit, keys on the right frames, results finite and different from the input, pins reached to the millimetre."""
from pathlib import Path

import bpy
import numpy as np
import pytest
from conftest import project_rig, select_bones, snapshot

from dposerx_blender.blender import keyframes, pose_library, rig_bridge
from dposerx_blender.blender.props import preferences
from dposerx_blender.core.skeleton import JOINT_INDEX

HELDOUT = np.load(Path(__file__).parents[1] / "fixtures" / "heldout.npz")  # CMU poses the prior never saw
ARMS = ("left_collar", "left_shoulder", "left_elbow", "right_collar", "right_shoulder", "right_elbow")


@pytest.fixture(autouse=True)
def one_thread():
    preferences(bpy.context).threads = 1


def skeleton(pose, locked=ARMS):
    """The project's skeleton in `pose` (165,), with `locked` bones locked; -> (object, rig, locked channels)."""
    ob = project_rig()
    rig = rig_bridge.find_rig(ob)
    rig_bridge.apply_pose(rig, pose, range(55))
    select_bones(ob, set(locked))
    bpy.ops.dposerx.lock_selected()
    return ob, rig, channels(rig, locked)


def channels(rig, names):
    return {name: np.array(rig.object.pose.bones[name].rotation_quaternion).tobytes() for name in names}


def free_rows(pose, locked=ARMS):
    keep = [0] + [JOINT_INDEX[name] for name in locked]
    return np.delete(pose.reshape(55, 3), keep, axis=0)


def rotation_error_deg(poses, reference, joints) -> float:
    """Mean geodesic angle (degrees) between the `joints` of pose tracks (T, 165)."""
    from scipy.spatial.transform import Rotation

    a, b = (Rotation.from_rotvec(p.reshape(-1, 55, 3)[:, joints].reshape(-1, 3)) for p in (poses, reference))
    return float(np.degrees((a.inv() * b).magnitude()).mean())


def key_frames(ob):
    return {key.co[0] for fc in keyframes.object_channelbag(ob).fcurves for key in fc.keyframe_points}


def test_complete_pose_and_cycle():
    pose = HELDOUT["poses"][3]
    ob, rig, before = skeleton(pose)
    settings = bpy.context.scene.dposerx
    settings.hypotheses, settings.key_result = 2, True
    bpy.context.scene.frame_set(5)
    assert bpy.ops.dposerx.complete_pose() == {'FINISHED'}
    first = rig_bridge.read_pose(rig)
    assert channels(rig, ARMS) == before
    assert np.isfinite(first).all() and np.abs(free_rows(first) - free_rows(pose)).max() > 0.05
    assert key_frames(ob) == {5.0}
    assert bpy.ops.dposerx.cycle_hypothesis(step=1) == {'FINISHED'}
    second = rig_bridge.read_pose(rig)
    assert channels(rig, ARMS) == before and np.abs(second - first).max() > 1e-3


def test_vary_pose():
    pose = HELDOUT["poses"][7]
    ob, rig, before = skeleton(pose)
    bpy.context.scene.dposerx.vary_strength = 0.3
    assert bpy.ops.dposerx.vary_pose() == {'FINISHED'}
    varied = rig_bridge.read_pose(rig)
    assert channels(rig, ARMS) == before
    assert np.isfinite(varied).all() and np.abs(free_rows(varied) - free_rows(pose)).max() > 0.02
    assert ob.animation_data is None  # no auto-keying, no Key Result: nothing keyed


def test_pin_to_target_reaches_the_pin():
    locked = ("right_collar", "right_shoulder", "right_elbow")
    ob, rig, before = skeleton(HELDOUT["poses"][11], locked)
    ob.rotation_euler.z = 0.7  # a turned, moved armature with a turned root bone: the pin lives in world space
    ob.location = (0.4, -0.2, 0.1)
    ob.pose.bones["root"].rotation_quaternion = (0.95, 0.1, 0.0, 0.3)
    bpy.context.view_layer.update()
    select_bones(ob, {"left_wrist"})
    ob.data.bones.active = ob.data.bones["left_wrist"]
    assert bpy.ops.dposerx.add_pin() == {'FINISHED'}
    pin = bpy.data.objects["Pin left_wrist"]
    pin.location += type(pin.location)((0.05, -0.08, 0.12))
    bpy.context.view_layer.objects.active = ob
    assert bpy.ops.dposerx.pin_to_target() == {'FINISHED'}
    bpy.context.view_layer.update()
    wrist = ob.matrix_world @ ob.pose.bones["left_wrist"].head
    assert (wrist - pin.location).length < 1e-3
    assert channels(rig, locked) == before


def test_clean_mocap_over_twelve_frames():
    track = HELDOUT["tracks"][0][:15]
    noisy = track + np.random.default_rng(0).normal(0, 0.05, track.shape) * (np.arange(165) >= 3)
    ob, rig, before = skeleton(noisy[0])
    rig_bridge.key_track(rig, noisy, range(55), np.arange(1, 16, dtype=float))
    settings = bpy.context.scene.dposerx
    settings.clean_action_range = False
    settings.clean_start, settings.clean_end = 2, 13
    snap = snapshot()
    assert bpy.ops.dposerx.clean_mocap() == {'FINISHED'}
    after = snapshot()
    changed_frames = set()
    for key in (k for k in snap if len(k) == 3 and snap[k] != after[k]):
        old, new = (np.frombuffer(s[key], np.float32).reshape(-1, 2) for s in (snap, after))
        assert np.array_equal(old[:, 0], new[:, 0]) and np.isfinite(new).all()
        assert not any(f'"{name}"' in key[1] for name in ARMS)  # locked bones: keys untouched
        changed_frames |= set(old[np.any(old != new, axis=1), 0])
    assert changed_frames and changed_frames <= set(range(2, 14))
    cleaned = rig_bridge.read_track(rig, np.arange(2, 14, dtype=float))
    # Closer to the clean track than the input was, on the bones it may change (the locked arms keep their noise,
    # which moves every joint below them: compare rotations, not positions).
    free = [j for j in range(1, 55) if j not in [JOINT_INDEX[name] for name in ARMS]]
    noisy_deg, cleaned_deg = (rotation_error_deg(p, track[1:13], free) for p in (noisy[1:13], cleaned))
    assert cleaned_deg < 0.7 * noisy_deg
    assert channels(rig, ARMS) == before


def test_generate_pose_library(tmp_path):
    ob, rig, before = skeleton(HELDOUT["poses"][0])
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "library.blend"))
    settings = bpy.context.scene.dposerx
    settings.library_count, settings.library_keys, settings.library_conditioned = 3, True, True
    bpy.context.scene.frame_set(10)
    assert bpy.ops.dposerx.generate_library() == {'FINISHED'}
    assets = [action for action in bpy.data.actions if action.asset_data]
    assert len(assets) == 3
    assert {a.asset_data.catalog_id for a in assets} == {pose_library.catalog_id(settings.library_catalog)}
    assert key_frames(ob) == {10.0, 11.0, 12.0}
    poses = rig_bridge.read_track(rig, np.array([10.0, 11.0, 12.0]))
    assert np.isfinite(poses).all() and np.abs(poses[0] - poses[1]).max() > 0.05
    for frame in (10, 11, 12):
        bpy.context.scene.frame_set(frame)
        assert channels(rig, ARMS) == before  # conditioned on the locked arms
