"""Run by test_install.py, twice, each time in a fresh process with BLENDER_USER_RESOURCES set to a throw-away
folder, as a user installs and then restarts Blender:

    python install_and_run.py install EXTENSION.zip   Install from Disk, enabled, preferences saved
    python install_and_run.py run                     add the SMPL-X skeleton, lock a bent left arm, Complete Pose

`run` prints one JSON line with what it saw. Any failure exits non-zero. Blender puts the extensions'
site-packages first on sys.path at start-up, so after the restart the zip's wheels shadow this environment's.
"""
import json
import sys

import bpy
import numpy as np

MODULE = "bl_ext.user_default.dposerx_blender"
LOCKED = {"left_shoulder": (0.0, 0.0, -0.6), "left_elbow": (0.0, -1.2, 0.0)}  # SMPL-X axis-angle


def install(zip_path: str) -> None:
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                      enable_on_install=True)
    assert result == {'FINISHED'}, f"install: {result}"
    assert MODULE in bpy.context.preferences.addons, "the extension is not enabled after installing"
    bpy.ops.wm.save_userpref()


def run() -> dict:
    bpy.ops.wm.read_userpref()  # what Blender does at start-up (the bpy module starts without them)
    assert MODULE in bpy.context.preferences.addons, "the extension is not enabled after a restart"
    extension = sys.modules[MODULE]
    import safetensors

    bpy.context.preferences.addons[MODULE].preferences.threads = 1
    bpy.ops.dposerx.add_skeleton()
    rig = bpy.context.object
    bpy.ops.object.mode_set(mode='POSE')
    for pose_bone in rig.pose.bones:
        target = pose_bone if hasattr(pose_bone, "select") else pose_bone.bone  # PoseBone.select is 5.0+
        target.select = pose_bone.name in LOCKED
        if pose_bone.name in LOCKED:
            pose_bone.rotation_mode = 'XYZ'
            pose_bone.rotation_euler = LOCKED[pose_bone.name]
    assert bpy.ops.dposerx.lock_selected() == {'FINISHED'}
    settings = bpy.context.scene.dposerx
    settings.hypotheses = 2
    before = {pb.name: pb.matrix_basis.copy() for pb in rig.pose.bones}
    completed = bpy.ops.dposerx.complete_pose()
    changed = [pb.name for pb in rig.pose.bones if not np.allclose(before[pb.name], pb.matrix_basis)]
    return {
        "completed": sorted(completed),
        "extension_file": extension.__file__,
        "safetensors_file": safetensors.__file__,
        "bones_changed": len(changed),
        "locked_changed": sorted(set(changed) & set(LOCKED)),
    }


if __name__ == "__main__":
    if sys.argv[1] == "install":
        install(sys.argv[2])
    else:
        print("RESULT " + json.dumps(run()), flush=True)
