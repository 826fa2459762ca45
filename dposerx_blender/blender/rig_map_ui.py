"""The Rig Map panel: the object's own rig map (a bone per SMPL-X joint, picked with a bone search), filled from the
preset its bone names match, mirrored left to right, saved to and loaded from map files in the extension's user
folder, rest calibration from the current pose, and switching Rigify-style limbs from IK to FK.

The map lives on the object (Object.dposerx_rig_map); mapped_rig reads it and otherwise falls back to the
detected preset.
"""
from __future__ import annotations

import json
from pathlib import Path

import bpy
import numpy as np
from bpy.props import CollectionProperty, StringProperty
from bpy_extras.io_utils import ImportHelper
from scipy.spatial.transform import Rotation

from ..core.errors import DPoserError
from ..core.mocap.retarget import REQUIRED_JOINTS, JointMap
from ..core.skeleton import JOINT_NAMES
from . import mapped_rig, rig_bridge
from .props import ADDON_PACKAGE, register_with_pointer, unregister_with_pointer


class DPOSERX_PG_rig_joint(bpy.types.PropertyGroup):
    joint: StringProperty(name="Joint", description="SMPL-X joint")
    bone: StringProperty(name="Bone", description="The bone that shows this joint's rotation (read)")
    write: StringProperty(name="Write", description="The bone to pose (a control), if not the bone read")


class DPOSERX_PG_rig_map(bpy.types.PropertyGroup):
    name: StringProperty(name="Name", default="My rig")
    joints: CollectionProperty(type=DPOSERX_PG_rig_joint)
    extras: StringProperty(description="Map entries the panel does not edit (tips, twist pairs, IK switches), "
                                       "as JSON")


def store_map(ob, joint_map: JointMap) -> None:
    """Put `joint_map` (names resolved for this armature) on the object as its own map."""
    group = ob.dposerx_rig_map
    group.name, extras = joint_map.name, {}
    group.joints.clear()
    for joint in JOINT_NAMES:
        item = group.joints.add()
        item.joint = joint
        entry = joint_map.joints.get(joint, "")
        if isinstance(entry, str):
            item.bone, item.write = entry, joint_map.write.get(joint, "")
        else:
            extras.setdefault("joints", {})[joint] = entry
    extras.update({k: v for k, v in (("tips", joint_map.tips), ("fk_switches", joint_map.fk_switches),
                                     ("translation", joint_map.translation)) if v})
    group.extras = json.dumps(extras)


def user_map_dir() -> Path:
    """Where saved maps go: the extension's user folder, or Blender's config folder when not an extension."""
    try:
        return Path(bpy.utils.extension_path_user(ADDON_PACKAGE, path="rig_maps", create=True))
    except (ValueError, AttributeError):
        return Path(bpy.utils.user_resource('CONFIG', path="dposerx_rig_maps", create=True))


class _ArmatureOperator:
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        if context.object is None or context.object.type != 'ARMATURE':
            cls.poll_message_set("Select an armature")
            return False
        return True

    def execute(self, context):
        try:
            message = self.run(context, context.object)
        except DPoserError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        self.report({'INFO'}, message)
        return {'FINISHED'}


def _lacking(lacking) -> str:
    return f" It has no bone for: {', '.join(lacking)} (not modelled: kept as they are)." if lacking else ""


class DPOSERX_OT_rig_map_from_preset(_ArmatureOperator, bpy.types.Operator):
    """Fill this armature's rig map from the preset its bone names match, to edit it"""
    bl_idname = "dposerx.rig_map_from_preset"
    bl_label = "From Preset"

    def run(self, context, ob):
        if mapped_rig.has_map(ob):
            ob.dposerx_rig_map.joints.clear()  # detect from the bone names, not from an older map
        joint_map, lacking = mapped_rig.choose_map(ob)
        store_map(ob, joint_map)
        return f"Rig map from preset '{joint_map.name}'.{_lacking(lacking)}"


class DPOSERX_OT_rig_map_clear(_ArmatureOperator, bpy.types.Operator):
    """Remove this armature's own rig map (the preset its bone names match applies again)"""
    bl_idname = "dposerx.rig_map_clear"
    bl_label = "Clear"

    def run(self, context, ob):
        if mapped_rig.has_map(ob):
            ob.dposerx_rig_map.joints.clear()
        return "Rig map cleared"


class DPOSERX_OT_rig_map_mirror(_ArmatureOperator, bpy.types.Operator):
    """Map every right joint to the mirror name of its left joint's bone (hand.L -> hand.R, LeftArm -> RightArm)"""
    bl_idname = "dposerx.rig_map_mirror"
    bl_label = "Mirror Left to Right"

    def run(self, context, ob):
        items = {item.joint: item for item in ob.dposerx_rig_map.joints} if mapped_rig.has_map(ob) else {}
        if not items:
            raise DPoserError("No rig map to mirror: use From Preset or pick bones first.")
        bones, count = ob.data.bones, 0
        for joint, item in items.items():
            right = items.get(joint.replace("left_", "right_", 1)) if joint.startswith("left_") else None
            for field in ("bone", "write") if right else ():
                name = getattr(item, field)
                mirrored = _mirror_bone(name)
                if name and mirrored in bones:
                    setattr(right, field, mirrored)
                    count += 1
        return f"Mirrored {count} bone(s) from left to right"


def _mirror_bone(name: str) -> str:
    flipped = bpy.utils.flip_name(name)
    if flipped != name:
        return flipped
    for a, b in (("Left", "Right"), ("left", "right")):
        if a in name:
            return name.replace(a, b, 1)
    return name


class DPOSERX_OT_rig_map_save(_ArmatureOperator, bpy.types.Operator):
    """Save this armature's rig map as a map file in DPoser-X's user folder"""
    bl_idname = "dposerx.rig_map_save"
    bl_label = "Save Map"

    name: StringProperty(name="Name", default="My rig")

    def invoke(self, context, event):
        ob = context.object
        self.name = (ob.dposerx_rig_map.name if mapped_rig.has_map(ob) else "") or ob.name
        return context.window_manager.invoke_props_dialog(self)

    def run(self, context, ob):
        joint_map = mapped_rig.stored_map(ob)
        if joint_map is None:
            raise DPoserError("No rig map to save: use From Preset or pick bones first.")
        detect = [joint_map.joints[name] for name in REQUIRED_JOINTS if isinstance(joint_map.joints[name], str)]
        joint_map = JointMap.from_dict({**json.loads(ob.dposerx_rig_map.extras or "{}"), "joints": joint_map.joints,
                                        "write": joint_map.write, "name": self.name, "kind": "rig",
                                        "detect": detect}, self.name, self.name)
        path = user_map_dir() / (self.name.replace("/", "_").replace("\\", "_") + ".toml")
        path.write_text(joint_map.to_toml(), encoding="utf-8")
        ob.dposerx_rig_map.name = self.name
        return f"Saved rig map '{self.name}' to {path}"


class DPOSERX_OT_rig_map_load(_ArmatureOperator, ImportHelper, bpy.types.Operator):
    """Load a map file (saved maps, or any joint-map TOML) as this armature's rig map"""
    bl_idname = "dposerx.rig_map_load"
    bl_label = "Load Map"
    filename_ext = ".toml"

    filter_glob: StringProperty(default="*.toml", options={'HIDDEN'})

    def invoke(self, context, event):
        self.filepath = str(user_map_dir()) + "/"
        return super().invoke(context, event)

    def run(self, context, ob):
        joint_map, lacking = JointMap.load(bpy.path.abspath(self.filepath)).resolve([b.name for b in ob.data.bones])
        store_map(ob, joint_map)
        return f"Loaded rig map '{joint_map.name}'.{_lacking(lacking)}"


class DPOSERX_OT_rig_calibrate_rest(_ArmatureOperator, bpy.types.Operator):
    """Use the current pose as the rig's rest for DPoser-X (pose the rig in a T- or A-pose first, palms down):
    for rigs whose own rest pose is not a human stance or whose bones are twisted at rest. Bone directions are
    aligned to SMPL-X's, so a T-pose and an A-pose both work"""
    bl_idname = "dposerx.rig_calibrate_rest"
    bl_label = "Calibrate Rest from Pose"

    def run(self, context, ob):
        if mapped_rig.REFERENCE_KEY in ob:
            del ob[mapped_rig.REFERENCE_KEY]
        rig = rig_bridge.find_rig(ob)
        if not isinstance(rig, mapped_rig.MappedRig):
            raise DPoserError(f"'{ob.name}' is an SMPL-X armature: its rest pose is SMPL-X's already.")
        deltas = mapped_rig.evaluated_deltas(rig, every=True)
        quats = Rotation.from_matrix(deltas).as_quat(canonical=True, scalar_first=True)
        ob[mapped_rig.REFERENCE_KEY] = {name: quats[b].tolist() for b, name in enumerate(rig.converter.armature.names)
                                        if not np.allclose(quats[b], (1, 0, 0, 0), atol=1e-7)}
        return "The current pose is now the rig's rest for DPoser-X (the bones themselves are unchanged)"


class DPOSERX_OT_rig_calibrate_clear(_ArmatureOperator, bpy.types.Operator):
    """Go back to the armature's own rest pose"""
    bl_idname = "dposerx.rig_calibrate_clear"
    bl_label = "Clear Calibration"

    def run(self, context, ob):
        ob.pop(mapped_rig.REFERENCE_KEY, None)
        return "Rest calibration cleared"


class DPOSERX_OT_rig_switch_to_fk(_ArmatureOperator, bpy.types.Operator):
    """Switch the limbs that IK poses to FK (Rigify's IK_FK switch), keeping their visual pose: DPoser-X can
    then pose them"""
    bl_idname = "dposerx.rig_switch_to_fk"
    bl_label = "Switch Limbs to FK"

    def run(self, context, ob):
        rig = rig_bridge.find_rig(ob)
        if not isinstance(rig, mapped_rig.MappedRig):
            raise DPoserError(f"'{ob.name}' is an SMPL-X armature: it has no IK limbs to switch.")
        switches = {bone: s for bone, s in rig.converter.joint_map.fk_switches.items() if bone in ob.pose.bones
                    and abs(float(ob.pose.bones[bone].get(s["property"], s["fk"])) - s["fk"]) > 1e-6}
        if not switches:
            return "Every limb is in FK already"
        pose = rig_bridge.read_pose(rig)
        for bone, switch in switches.items():
            ob.pose.bones[bone][switch["property"]] = switch["fk"]
        rig = rig_bridge.find_rig(ob)
        joints = [JOINT_NAMES.index(n) for s in switches.values() for n in s["joints"]]
        rig_bridge.apply_pose(rig, pose, sorted(set(joints)))
        return f"Switched {', '.join(switches)} to FK, keeping the pose"


class DPOSERX_PT_rig_map(bpy.types.Panel):
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "DPoser-X"
    bl_label = "Rig Map"
    bl_parent_id = "DPOSERX_PT_main"
    bl_options = {'DEFAULT_CLOSED'}

    @classmethod
    def poll(cls, context):
        return context.object is not None and context.object.type == 'ARMATURE'

    def draw(self, context):
        layout, ob = self.layout, context.object
        layout.label(text=_status(ob), icon='ARMATURE_DATA')
        row = layout.row(align=True)
        row.operator(DPOSERX_OT_rig_map_from_preset.bl_idname, icon='IMPORT')
        row.operator(DPOSERX_OT_rig_map_clear.bl_idname, icon='X')
        row = layout.row(align=True)
        row.operator(DPOSERX_OT_rig_map_save.bl_idname, icon='FILE_TICK')
        row.operator(DPOSERX_OT_rig_map_load.bl_idname, icon='FILE_FOLDER')
        layout.operator(DPOSERX_OT_rig_map_mirror.bl_idname, icon='MOD_MIRROR')
        row = layout.row(align=True)
        row.operator(DPOSERX_OT_rig_calibrate_rest.bl_idname, icon='OUTLINER_OB_ARMATURE')
        row.operator(DPOSERX_OT_rig_calibrate_clear.bl_idname, text="", icon='X')
        layout.operator(DPOSERX_OT_rig_switch_to_fk.bl_idname, icon='CON_KINEMATIC')
        if mapped_rig.has_map(ob):
            group = ob.dposerx_rig_map
            layout.prop(group, "name")
            column = layout.column(align=True)
            for item in group.joints:
                column.prop_search(item, "bone", ob.data, "bones", text=item.joint)


def _status(ob) -> str:
    problem = rig_bridge.rig_problem(ob)
    if problem:
        return "Not mapped: see the solver buttons' tooltip"
    if not mapped_rig.has_map(ob) and len(rig_bridge._smplx_bones(ob)[0]) >= len(JOINT_NAMES) / 2:
        return "SMPL-X armature: no map needed"
    source = "own map" if mapped_rig.has_map(ob) else "preset"
    return f"{mapped_rig.choose_map(ob)[0].name} ({source})"


classes = (DPOSERX_OT_rig_map_from_preset, DPOSERX_OT_rig_map_clear, DPOSERX_OT_rig_map_mirror,
           DPOSERX_OT_rig_map_save, DPOSERX_OT_rig_map_load, DPOSERX_OT_rig_calibrate_rest,
           DPOSERX_OT_rig_calibrate_clear, DPOSERX_OT_rig_switch_to_fk, DPOSERX_PT_rig_map)
_PROPERTY_CLASSES = (DPOSERX_PG_rig_joint, DPOSERX_PG_rig_map)


def register_properties():
    register_with_pointer(_PROPERTY_CLASSES, bpy.types.Object, "dposerx_rig_map", DPOSERX_PG_rig_map)


def unregister_properties():
    unregister_with_pointer(_PROPERTY_CLASSES, bpy.types.Object, "dposerx_rig_map")
