"""Bad input: each case gives a clear report (or a poll message) and leaves the scene exactly as it was."""
import bpy
import numpy as np
import pytest
from conftest import make_rig, mpi_rig, posed_rig, random_pose, select_bones, snapshot

from dposerx_blender.blender import rig_bridge
from dposerx_blender.blender.props import preferences


def no_armature():
    bpy.context.view_layer.objects.active = None


def mesh_active():
    ob = bpy.data.objects.new("Mesh", bpy.data.meshes.new("Mesh"))
    bpy.context.scene.collection.objects.link(ob)
    bpy.context.view_layer.objects.active = ob


def edit_mode():
    posed_rig(mpi_rig)
    bpy.ops.object.mode_set(mode='EDIT')


def non_smplx():
    make_rig(skip=tuple(rig_bridge.JOINT_NAMES[2:]))


def missing_bones():
    make_rig(skip=("left_knee", "jaw"))


def nothing_locked():
    mpi_rig()


def all_locked():
    ob = mpi_rig()
    select_bones(ob, {pb.name for pb in ob.pose.bones})
    bpy.ops.dposerx.lock_selected()


def nan_pose():
    ob, rig = posed_rig(mpi_rig)
    rig.pose_bones[18].rotation_quaternion = (float("nan"), 0, 0, 0)


def nan_key():
    ob, rig = posed_rig(mpi_rig)
    rig_bridge.key_track(rig, np.stack([random_pose(s) for s in range(5)]), range(55), np.arange(1, 6.0))
    fcurve = ob.animation_data.action.layers[0].strips[0].channelbags[0].fcurves[9]
    fcurve.keyframe_points[2].co[1] = float("nan")
    bpy.context.scene.dposerx.clean_start, bpy.context.scene.dposerx.clean_end = 1, 5


def frame_range(start, end, keyed=True):
    def setup():
        ob, rig = posed_rig(mpi_rig)
        if keyed:
            rig_bridge.key_track(rig, np.zeros((3, 165)), range(55), np.array([1.0, 2.0, 3.0]))
        bpy.context.scene.dposerx.clean_action_range = False
        bpy.context.scene.dposerx.clean_start, bpy.context.scene.dposerx.clean_end = start, end
    return setup


def missing_weights(tmp_path):
    posed_rig(mpi_rig)
    preferences(bpy.context).weights_dir = str(tmp_path)


def settings(**values):
    def setup():
        posed_rig(mpi_rig)
        for name, value in values.items():
            setattr(bpy.context.scene.dposerx, name, value)
    return setup


def conditioned_without_locks():
    mpi_rig()
    bpy.context.scene.dposerx.library_conditioned = True


CASES = {
    "no armature": (no_armature, "complete_pose", "Select an SMPL-X armature"),
    "mesh active": (mesh_active, "vary_pose", "Select an SMPL-X armature"),
    "edit mode": (edit_mode, "complete_pose", "Switch to Object or Pose Mode"),
    "non-SMPL-X rig": (non_smplx, "complete_pose", "not an SMPL-X armature"),
    "missing bones": (missing_bones, "clean_mocap", "lacks SMPL-X bones: left_knee, jaw"),
    "missing bones (lock)": (missing_bones, "unlock_all", "lacks SMPL-X bones: left_knee, jaw"),
    "no bones locked": (nothing_locked, "complete_pose", "Lock the bones to keep first"),
    "all bones locked": (all_locked, "complete_pose", "every bone of the chosen parts is locked"),
    "all bones locked (clean)": (all_locked, "vary_pose", "every bone of the chosen parts is locked"),
    "no part chosen": (settings(part_body=False, part_hands=False, part_face=False), "complete_pose",
                       "no part is chosen"),
    "NaN rotation": (nan_pose, "complete_pose", "'left_elbow' has an invalid"),
    "NaN key": (nan_key, "clean_mocap", "invalid .* at frame 3"),
    "reversed frame range": (frame_range(10, 2), "clean_mocap", "10..2 is empty or reversed"),
    "empty frame range": (frame_range(4, 4), "clean_mocap", "4..4 is empty or reversed"),
    "no keys in range": (frame_range(20, 40), "clean_mocap", "no keys in frames 20..40"),
    "no pin targets": (settings(), "pin_to_target", "No targets"),
    "cursor pin without active bone": (settings(pin_cursor=True), "pin_to_target", "needs an active SMPL-X bone"),
    "library without output": (settings(library_assets=False), "generate_library", "Choose an output"),
    "library without parts": (settings(part_body=False, part_hands=False, part_face=False), "generate_library",
                              "at least one part"),
    "conditioned library without locks": (conditioned_without_locks, "generate_library",
                                          "Lock the bones to keep first"),
    "no hypotheses to cycle": (settings(), "cycle_hypothesis", "Run Complete Pose first"),
    "missing weights": (missing_weights, "complete_pose", "Prior weights incomplete"),
}


@pytest.mark.parametrize("case", CASES, ids=CASES.keys())
def test_bad_input_is_reported_and_changes_nothing(case, calls, tmp_path, monkeypatch):
    setup, operator, message = CASES[case]
    if setup is missing_weights:
        from dposerx_blender.blender import jobs

        monkeypatch.undo()  # the real weight loader, pointed at an empty folder
        setup(tmp_path)
        jobs.clear_priors()
    else:
        setup()
    bpy.context.scene.frame_set(bpy.context.scene.frame_current)  # pose properties = animation, as in the UI
    before = snapshot()
    with pytest.raises(RuntimeError, match=message):
        getattr(bpy.ops.dposerx, operator)()
    assert snapshot() == before
