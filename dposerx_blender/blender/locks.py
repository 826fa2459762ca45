"""Locked bones: the joints the prior must keep. A bone is locked when its rotation is locked in Blender; locked
bones are marked with a red bone colour and the "DPoser-X Locked" bone collection, like Cascadeur's pins."""
from __future__ import annotations

import bpy
import numpy as np

from .rig_bridge import Rig, find_rig
from ..core.errors import DPoserError

LOCKED_COLLECTION = "DPoser-X Locked"
LOCKED_PALETTE = 'THEME01'  # red in the default theme


def is_locked(pose_bone) -> bool:
    # Blender only honours the W lock of 4D modes when "4D rotation lock" is on.
    four_d = pose_bone.rotation_mode in {'QUATERNION', 'AXIS_ANGLE'} and pose_bone.lock_rotations_4d
    return all(pose_bone.lock_rotation) and (pose_bone.lock_rotation_w or not four_d)


def locked_mask(rig: Rig) -> np.ndarray:
    """(55,) bool, True where the SMPL-X joint's bone is locked (a mapped rig's joint without a bone: False)."""
    return np.array([pb is not None and is_locked(pb) for pb in rig.pose_bones])


def set_locked(armature_object, pose_bone, locked: bool) -> None:
    pose_bone.lock_rotation = (locked,) * 3
    pose_bone.lock_rotation_w = locked
    pose_bone.color.palette = LOCKED_PALETTE if locked else 'DEFAULT'
    collections = armature_object.data.collections
    collection = collections.get(LOCKED_COLLECTION)
    if locked:
        (collection or collections.new(LOCKED_COLLECTION)).assign(pose_bone)
    elif collection:
        collection.unassign(pose_bone)


def _rig_bones(context, selected_only: bool):
    rig = find_rig(context.object)
    names = set(rig.bone_names)
    chosen = (context.selected_pose_bones_from_active_object or []) if selected_only else rig.pose_bones
    bones = [pb for pb in chosen if pb.name in names]
    if not bones:
        raise DPoserError("Select the SMPL-X bones to lock or unlock in Pose Mode.")
    return bones


class _LockOperator:
    bl_options = {'REGISTER', 'UNDO'}
    lock = True
    selected_only = True

    @classmethod
    def poll(cls, context):
        ob = context.object
        if ob is None or ob.type != 'ARMATURE' or ob.mode not in {'POSE', 'OBJECT'}:
            cls.poll_message_set("Select an SMPL-X armature in Object or Pose Mode")
            return False
        return True

    def execute(self, context):
        try:
            bones = _rig_bones(context, self.selected_only)
        except DPoserError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        for pose_bone in bones:
            set_locked(context.object, pose_bone, self.lock)
        self.report({'INFO'}, f"{'Locked' if self.lock else 'Unlocked'} {len(bones)} bone(s)")
        return {'FINISHED'}


class DPOSERX_OT_lock_selected(_LockOperator, bpy.types.Operator):
    """Lock the selected bones: the prior keeps them as they are"""
    bl_idname = "dposerx.lock_selected"
    bl_label = "Lock Selected"


class DPOSERX_OT_unlock_selected(_LockOperator, bpy.types.Operator):
    """Unlock the selected bones: the prior may change them"""
    bl_idname = "dposerx.unlock_selected"
    bl_label = "Unlock Selected"
    lock = False


class DPOSERX_OT_unlock_all(_LockOperator, bpy.types.Operator):
    """Unlock every SMPL-X bone of the armature"""
    bl_idname = "dposerx.unlock_all"
    bl_label = "Unlock All"
    lock = False
    selected_only = False


classes = (DPOSERX_OT_lock_selected, DPOSERX_OT_unlock_selected, DPOSERX_OT_unlock_all)
