"""Bulk keyframes (frames, untouched neighbours, quaternion continuity), locked bones, register/unregister."""
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from conftest import mpi_rig, project_rig, select_bones
from scipy.spatial.transform import Rotation

import dposerx_blender
from dposerx_blender.blender import keyframes, locks, rig_bridge, skeleton_builder


def keys(fcurve):
    co = np.zeros(2 * len(fcurve.keyframe_points), dtype=np.float32)
    fcurve.keyframe_points.foreach_get("co", co)
    return co.reshape(-1, 2)


def test_register_unregister_register():
    ours = [name for name in dir(bpy.types) if name.startswith("DPOSERX_")]
    assert len(ours) == 30  # 22 operators (8 of the Rig Map), 8 panels (property groups are not listed)
    dposerx_blender.unregister()
    try:
        assert not [name for name in dir(bpy.types) if name.startswith("DPOSERX_")]
        assert not hasattr(bpy.types.Scene, "dposerx") and not hasattr(bpy.types.Object, "dposerx_rig_map")
        assert skeleton_builder.draw_add_menu not in bpy.types.VIEW3D_MT_armature_add._dyn_ui_initialize()
    finally:
        dposerx_blender.register()
    assert [name for name in dir(bpy.types) if name.startswith("DPOSERX_")] == ours
    assert bpy.ops.dposerx.complete_pose.poll() is False


def test_registering_waits_for_no_torch():
    """Blender registers extensions at start-up; torch and smplx (seconds to import) wait for the first job."""
    # bpy 4.5 hangs at exit when the add-on is left registered: unregister, and time out rather than wait.
    code = ("import sys, dposerx_blender; dposerx_blender.register(); "
            "print('heavy:', {'torch', 'smplx'} & set(sys.modules)); dposerx_blender.unregister()")
    run = subprocess.run([sys.executable, "-c", code], cwd=Path(dposerx_blender.__file__).parents[1],
                         capture_output=True, text=True, check=True, timeout=120)
    assert "heavy: set()" in run.stdout


def test_keys_on_the_right_frames_and_neighbours_untouched():
    rig = rig_bridge.find_rig(mpi_rig())
    knee = rig.pose_bones[4]
    for frame, angle in ((1, 0.1), (5, 0.2), (30, 0.3)):
        knee.rotation_quaternion = (np.cos(angle), np.sin(angle), 0, 0)
        knee.keyframe_insert("rotation_quaternion", frame=frame)
    fcurve = keyframes.object_channelbag(rig.object).fcurves.find(
        'pose.bones["left_knee"].rotation_quaternion', index=1)
    before = keys(fcurve)
    poses = np.zeros((11, 165))
    poses[:, 12] = np.linspace(0.5, 1.5, 11)  # left_knee about x
    rig_bridge.key_track(rig, poses, [4], np.arange(5, 16, dtype=float))
    after = keys(fcurve)
    assert after[:, 0].tolist() == [1, *range(5, 16), 30]
    assert np.array_equal(after[0], before[0]) and np.array_equal(after[-1], before[-1])
    assert np.allclose(after[1:-1, 1], np.sin(poses[:, 12] / 2), atol=1e-6)
    # Only the written joint got channels.
    paths = {fc.data_path for fc in keyframes.object_channelbag(rig.object).fcurves}
    assert paths == {'pose.bones["left_knee"].rotation_quaternion'}


def test_quaternion_keys_are_sign_continuous():
    rig = rig_bridge.find_rig(mpi_rig())
    poses = np.zeros((60, 165))
    poses[:, 3 * 15 + 1] = np.linspace(0, 4 * np.pi, 60)  # head spins twice about y
    rig_bridge.key_track(rig, poses, [15], np.arange(60, dtype=float))
    channelbag = keyframes.object_channelbag(rig.object)
    quats = np.stack([keys(channelbag.fcurves.find('pose.bones["head"].rotation_quaternion', index=i))[:, 1]
                      for i in range(4)], axis=1)
    assert ((quats[1:] * quats[:-1]).sum(1) > 0).all()
    assert np.allclose(Rotation.from_quat(quats, scalar_first=True).as_matrix(),
                       Rotation.from_rotvec(poses[:, 45:48]).as_matrix(), atol=1e-6)


@pytest.mark.parametrize("mode", ["QUATERNION", "AXIS_ANGLE", "XYZ"])
def test_lock_operators_and_mark(mode):
    ob = project_rig()
    for pb in ob.pose.bones:
        pb.rotation_mode = mode
    select_bones(ob, {"left_knee", "head"})
    bpy.ops.dposerx.lock_selected()
    rig = rig_bridge.find_rig(ob)
    assert np.flatnonzero(locks.locked_mask(rig)).tolist() == [4, 15]
    collection = ob.data.collections[locks.LOCKED_COLLECTION]
    assert sorted(b.name for b in collection.bones) == ["head", "left_knee"]
    assert ob.pose.bones["head"].color.palette == locks.LOCKED_PALETTE
    select_bones(ob, {"head"})
    bpy.ops.dposerx.unlock_selected()
    assert np.flatnonzero(locks.locked_mask(rig)).tolist() == [4]
    bpy.ops.dposerx.unlock_all()
    assert not locks.locked_mask(rig).any() and not collection.bones
    assert ob.pose.bones["left_knee"].color.palette == 'DEFAULT'


def test_manual_three_axis_lock_counts_without_4d_lock():
    rig = rig_bridge.find_rig(mpi_rig())
    knee = rig.pose_bones[4]
    knee.lock_rotation = (True, True, True)
    assert knee.lock_rotations_4d and not locks.locked_mask(rig)[4]  # 4D lock on: W must be locked too
    knee.lock_rotations_4d = False
    assert locks.locked_mask(rig)[4]


def test_add_skeleton_stands_on_the_floor_with_mpi_conventions():
    ob = project_rig()
    rig = rig_bridge.find_rig(ob)
    assert rig.root == "root" and len(ob.data.bones) == 56
    heads = np.array([b.head_local for b in ob.data.bones])
    assert -0.05 < heads[:, 2].min() < 0.1
    assert all(np.allclose((b.tail_local - b.head_local).normalized(), (0, 0, 1)) and abs(b.AxisRollFromMatrix(
        b.matrix_local.to_3x3())[1]) < 1e-6 for b in ob.data.bones)
