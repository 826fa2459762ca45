"""The "DPoser-X" tab of the 3D view sidebar: one panel per job, each drawing its settings and its button, and
one for animation files."""
from __future__ import annotations

import bpy

from ..core.skeleton import PART_JOINTS
from .rig_bridge import armature_of


class _Panel:
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "DPoser-X"

    @classmethod
    def poll(cls, context):
        ob = armature_of(context.object)  # a body mesh shows its armature's panels
        return ob is not None and ob.type == 'ARMATURE'


class DPOSERX_PT_main(_Panel, bpy.types.Panel):
    bl_label = "DPoser-X"

    @classmethod
    def poll(cls, context):
        return True

    def draw(self, context):
        layout = self.layout
        ob = armature_of(context.object)
        if ob is None or ob.type != 'ARMATURE':
            layout.label(text="Select an SMPL-X armature", icon='INFO')
            layout.operator("dposerx.add_skeleton", icon='ARMATURE_DATA')
            return
        settings = context.scene.dposerx
        row = layout.row(align=True)
        row.operator("dposerx.lock_selected", icon='LOCKED')
        row.operator("dposerx.unlock_selected", icon='UNLOCKED')
        layout.operator("dposerx.unlock_all")
        row = layout.row(align=True)
        for part in PART_JOINTS:
            row.prop(settings, f"part_{part}", toggle=True)
        layout.prop(settings, "seed")
        layout.prop(settings, "key_result")


class DPOSERX_PT_complete(_Panel, bpy.types.Panel):
    bl_label = "Complete Pose"
    bl_parent_id = "DPOSERX_PT_main"

    def draw(self, context):
        layout, settings = self.layout, context.scene.dposerx
        layout.prop(settings, "hypotheses")
        layout.prop(settings, "strength")
        layout.operator("dposerx.complete_pose", icon='ARMATURE_DATA')
        row = layout.row(align=True)
        row.operator("dposerx.cycle_hypothesis", text="Previous", icon='TRIA_LEFT').step = -1
        row.operator("dposerx.cycle_hypothesis", text="Next", icon='TRIA_RIGHT').step = 1


class DPOSERX_PT_vary(_Panel, bpy.types.Panel):
    bl_label = "Vary Pose"
    bl_parent_id = "DPOSERX_PT_main"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        self.layout.prop(context.scene.dposerx, "vary_strength")
        self.layout.operator("dposerx.vary_pose")


class DPOSERX_PT_pin(_Panel, bpy.types.Panel):
    bl_label = "Pin to Target"
    bl_parent_id = "DPOSERX_PT_main"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout = self.layout
        layout.operator("dposerx.add_pin", icon='EMPTY_AXIS')
        layout.prop(context.scene.dposerx, "pin_cursor")
        layout.operator("dposerx.pin_to_target", icon='PIVOT_CURSOR')


class DPOSERX_PT_clean(_Panel, bpy.types.Panel):
    bl_label = "Clean Mocap"
    bl_parent_id = "DPOSERX_PT_main"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout, settings = self.layout, context.scene.dposerx
        layout.prop(settings, "clean_action_range")
        row = layout.row(align=True)
        row.active = not settings.clean_action_range
        row.prop(settings, "clean_start")
        row.prop(settings, "clean_end")
        layout.prop(settings, "clean_strength")
        layout.prop(settings, "clean_add_curves")
        layout.operator("dposerx.clean_mocap", icon='MOD_SMOOTH')


class DPOSERX_PT_library(_Panel, bpy.types.Panel):
    bl_label = "Generate Pose Library"
    bl_parent_id = "DPOSERX_PT_main"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        layout, settings = self.layout, context.scene.dposerx
        for name in ("library_count", "diversity", "library_conditioned", "library_assets", "library_catalog",
                     "library_keys"):
            layout.prop(settings, name)
        layout.operator("dposerx.generate_library", icon='ASSET_MANAGER')


class DPOSERX_PT_animation_files(_Panel, bpy.types.Panel):
    bl_label = "Animation Files"
    bl_parent_id = "DPOSERX_PT_main"
    bl_options = {'DEFAULT_CLOSED'}

    @classmethod
    def poll(cls, context):
        return True  # imports also work without an armature (they add a skeleton)

    def draw(self, context):
        layout = self.layout
        layout.operator("dposerx.import_smplx_npz", text="Import SMPL-X (.npz)", icon='IMPORT')
        layout.operator("dposerx.import_bvh", text="Import BVH", icon='IMPORT')
        layout.operator("dposerx.export_smplx_npz", text="Export SMPL-X (.npz)", icon='EXPORT')


classes = (DPOSERX_PT_main, DPOSERX_PT_complete, DPOSERX_PT_vary, DPOSERX_PT_pin, DPOSERX_PT_clean,
           DPOSERX_PT_library, DPOSERX_PT_animation_files)
