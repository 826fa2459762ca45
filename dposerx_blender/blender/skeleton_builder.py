"""Add > Armature > SMPL-X Skeleton: the project's licence-free rest skeleton with MPI bone names and conventions
(every bone points +Z with roll 0, so bone axes equal SMPL-X axes, and a "root" bone above the pelvis)."""
from __future__ import annotations

import bmesh
import bpy
import numpy as np
from bpy.props import BoolProperty

from ..core.rig_math import Z_UP_TO_Y_UP
from ..core.skeleton import BODY_JOINTS, JOINT_NAMES, PARENTS, REST_JOINTS, TIP_OFFSETS

BODY_BONE_LENGTH = 0.1  # the MPI rig's bone length
SMALL_BONE_LENGTH = 0.02  # fingers, jaw and eyes, so they do not hide each other
SHAPE_NAME = "DPoser-X Joint"


def _joint_shape():
    """A small wire sphere shared by all bones as their custom shape."""
    mesh = bpy.data.meshes.get(SHAPE_NAME)
    if mesh is None:
        mesh = bpy.data.meshes.new(SHAPE_NAME)
        shape = bmesh.new()
        bmesh.ops.create_icosphere(shape, subdivisions=1, radius=0.02)
        shape.to_mesh(mesh)
        shape.free()
    return bpy.data.objects.get(SHAPE_NAME) or bpy.data.objects.new(SHAPE_NAME, mesh)


def build_skeleton(context, name: str = "SMPL-X"):
    # Stand on the floor: the lowest toe tip at z = 0.
    tips = [REST_JOINTS[j] + offset for j, offset in TIP_OFFSETS.items()]
    heads = (REST_JOINTS - np.vstack([REST_JOINTS, tips])[:, 1].min() * np.array([0, 1, 0])) @ Z_UP_TO_Y_UP  # to Z-up
    armature = bpy.data.armatures.new(name)
    ob = bpy.data.objects.new(name, armature)
    ob.location = context.scene.cursor.location
    context.collection.objects.link(ob)
    context.view_layer.objects.active = ob
    ob.select_set(True)
    bpy.ops.object.mode_set(mode='EDIT')
    root = armature.edit_bones.new("root")
    root.tail = (0, 0, BODY_BONE_LENGTH)
    edit_bones = []
    for j, joint in enumerate(JOINT_NAMES):
        bone = armature.edit_bones.new(joint)
        bone.head = heads[j]
        length = BODY_BONE_LENGTH if j in BODY_JOINTS or j == 0 else SMALL_BONE_LENGTH
        bone.tail = heads[j] + (0, 0, length)
        bone.roll = 0.0
        bone.parent = root if PARENTS[j] < 0 else edit_bones[PARENTS[j]]
        edit_bones.append(bone)
    bpy.ops.object.mode_set(mode='OBJECT')
    shape = _joint_shape()
    for pose_bone in ob.pose.bones:
        pose_bone.custom_shape = shape
        pose_bone.use_custom_shape_bone_size = False
    return ob


class DPOSERX_OT_add_skeleton(bpy.types.Operator):
    """Add the licence-free SMPL-X skeleton (DPoser-X's own rest pose, SMPL-X bone names) at the 3D cursor"""
    bl_idname = "dposerx.add_skeleton"
    bl_label = "SMPL-X Skeleton"
    bl_options = {'REGISTER', 'UNDO'}

    body: BoolProperty(name="Mannequin Body", default=True,
                       description="Add a simple skinned mannequin mesh, to judge volume, contact and intersections")

    @classmethod
    def poll(cls, context):
        if context.mode != 'OBJECT':
            cls.poll_message_set("Switch to Object Mode to add a skeleton")
            return False
        return True

    def execute(self, context):
        for other in context.selected_objects:
            other.select_set(False)
        ob = build_skeleton(context)
        if self.body:
            from . import mannequin, rig_bridge

            mannequin.add_mannequin(rig_bridge.find_rig(ob))
        return {'FINISHED'}


def draw_add_menu(self, context):
    self.layout.operator(DPOSERX_OT_add_skeleton.bl_idname, icon='ARMATURE_DATA')


classes = (DPOSERX_OT_add_skeleton,)
