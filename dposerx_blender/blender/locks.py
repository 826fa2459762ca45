"""Locked bones: the joints the prior must keep.

A bone is locked when Lock Selected put it in the "DPoser-X Locked" bone collection (it also turns red, like
Cascadeur's pins), or when all its rotation channels are locked with Blender's padlocks. Lock does not touch the
padlocks, so a locked bone can still be rotated by hand; Unlock gives back the colour Lock replaced and leaves the
padlocks, which belong to the rig, alone (docs/user_guide.md, "Locked bones", says why).
"""
from __future__ import annotations

import bpy
import numpy as np

from ..core.errors import DPoserError
from .rig_bridge import Rig, find_rig

LOCKED_COLLECTION = "DPoser-X Locked"
LOCKED_PALETTE = 'THEME01'  # red in the default theme
COLOR_KEY = "dposerx_color"  # pose bone ID property: the colour Lock replaced (palette, custom colours)


def is_padlocked(pose_bone) -> bool:
    """All rotation channels locked with Blender's padlocks (Bone > Transform)."""
    # Blender only honours the W lock of 4D modes when "4D rotation lock" is on.
    four_d = pose_bone.rotation_mode in {'QUATERNION', 'AXIS_ANGLE'} and pose_bone.lock_rotations_4d
    return all(pose_bone.lock_rotation) and (pose_bone.lock_rotation_w or not four_d)


def is_marked(pose_bone) -> bool:
    """Locked by Lock Selected: in the extension's bone collection."""
    return pose_bone.bone.collections.get(LOCKED_COLLECTION) is not None


def is_locked(pose_bone) -> bool:
    return is_marked(pose_bone) or is_padlocked(pose_bone)


def locked_mask(rig: Rig) -> np.ndarray:
    """(55,) bool, True where the SMPL-X joint's bone is locked (a mapped rig's joint without a bone: False)."""
    return np.array([pb is not None and is_locked(pb) for pb in rig.pose_bones])


def set_locked(armature_object, pose_bone, locked: bool) -> bool:
    """Mark or unmark the bone; Unlock restores the colour Lock replaced. False when there was nothing to do."""
    if is_marked(pose_bone) == locked:
        return False
    color = pose_bone.color
    collections = armature_object.data.collections
    if locked:
        custom = color.custom
        pose_bone[COLOR_KEY] = {"palette": color.palette,
                                "custom": [list(c) for c in (custom.normal, custom.select, custom.active)]}
        color.palette = LOCKED_PALETTE
        (collections.get(LOCKED_COLLECTION) or collections.new(LOCKED_COLLECTION)).assign(pose_bone)
        return True
    saved = pose_bone.get(COLOR_KEY)
    if saved is not None:
        color.palette = saved["palette"]
        color.custom.normal, color.custom.select, color.custom.active = (tuple(c) for c in saved["custom"])
        del pose_bone[COLOR_KEY]
    collections[LOCKED_COLLECTION].unassign(pose_bone)
    return True


def _rig_bones(context, selected_only: bool):
    rig = find_rig(context.object)
    names = set(rig.bone_names)
    chosen = (context.selected_pose_bones_from_active_object or []) if selected_only else rig.pose_bones
    bones = [pb for pb in chosen if pb.name in names]
    if not bones:
        raise DPoserError("Select the SMPL-X bones to lock or unlock in Pose Mode.")
    return rig, bones


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
            rig, bones = _rig_bones(context, self.selected_only)
        except DPoserError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        changed = sum(set_locked(rig.object, pose_bone, self.lock) for pose_bone in bones)
        text = f"{'Locked' if self.lock else 'Unlocked'} {changed} bone(s)"
        padlocked = [pb.name for pb in bones if is_padlocked(pb)] if not self.lock else []
        if padlocked:
            self.report({'WARNING'}, f"{text}; {len(padlocked)} stay locked by their rotation padlocks "
                                     f"(Bone > Transform): {', '.join(padlocked[:5])}"
                                     + (" ..." if len(padlocked) > 5 else ""))
        else:
            self.report({'INFO'}, text)
        return {'FINISHED'}


class DPOSERX_OT_lock_selected(_LockOperator, bpy.types.Operator):
    """Lock the selected bones: the prior keeps them as they are (you can still rotate them by hand)"""
    bl_idname = "dposerx.lock_selected"
    bl_label = "Lock Selected"


class DPOSERX_OT_unlock_selected(_LockOperator, bpy.types.Operator):
    """Unlock the selected bones: the prior may change them (bones with all rotation padlocks closed stay locked)"""
    bl_idname = "dposerx.unlock_selected"
    bl_label = "Unlock Selected"
    lock = False


class DPOSERX_OT_unlock_all(_LockOperator, bpy.types.Operator):
    """Unlock every bone that Lock Selected locked, giving back their colours"""
    bl_idname = "dposerx.unlock_all"
    bl_label = "Unlock All"
    lock = False
    selected_only = False


classes = (DPOSERX_OT_lock_selected, DPOSERX_OT_unlock_selected, DPOSERX_OT_unlock_all)
