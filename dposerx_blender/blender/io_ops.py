"""Animation files in and out: SMPL-X npz and BVH onto an SMPL-X armature (or a new SMPL-X skeleton), and the
armature's action back out as an AMASS-style npz, and their File > Import/Export entries (the sidebar's
Animation Files panel is in panels.py).

Each operator is a jobs.Plan: the file is read and converted off the main thread (Esc cancels), then every key
is written at once in one undo step. A bad file raises DPoserError before anything is written.
"""
from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..core.errors import DPoserError
from . import keyframes, rig_bridge
from .jobs import JobOperator, Plan
from .skeleton_builder import build_skeleton

HAND_ITEMS = [
    ('FLAT', "Flat", "Hand rotations are absolute: zero is a flat hand (smplx's flat_hand_mean=True)"),
    ('RELAXED', "Relaxed", "Hand rotations are relative to a relaxed hand, added to them like SMPL-X's hand mean "
                           "(DPoser-X's relaxed hand: fingers bent 20/20/10 degrees, thumb 10 per joint)"),
]
TRANSLATION_ITEMS = [
    ('PELVIS', "Pelvis", "Translation on the pelvis bone's location, as the SMPL-X add-on keys it"),
    ('ROOT', "Root", "Translation on the location of the 'root' bone above the pelvis"),
]
UP_ITEMS = [
    ('Z', "Z Up (AMASS)", "The file's world is Z-up, as in AMASS: it is turned upright about the armature origin"),
    ('Y', "Y Up (SMPL-X)", "The file uses SMPL-X's own Y-up frame, as many video capture tools do"),
]


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def _target_rig(context):
    """The active SMPL-X armature, or None when no armature is active (a new skeleton is added then)."""
    ob = context.object
    return rig_bridge.find_rig(ob) if ob is not None and ob.type == 'ARMATURE' else None


def _key_animation(rig, poses: np.ndarray, trans: np.ndarray, up_axis: str, on_root: bool, extend_scene: bool,
                   pelvis_positions: bool = False) -> str:
    """Key poses (T, 165) and trans (T, 3) (SMPL-X conventions, `up_axis` world) on `rig` (None: a new skeleton)
    from the scene's start frame; returns the report's description of where they went. Runs in a plan's apply,
    so it reads bpy.context: a modal job's invoke context is gone by then.

    trans is the pelvis's offset from its rest position (AMASS), or with `pelvis_positions` its position from
    the armature origin (the retargeter's). `extend_scene` makes the scene's range reach the last frame."""
    from ..core.mocap.conventions import to_y_up

    context = bpy.context
    if rig is None:
        for other in context.selected_objects:
            other.select_set(False)
        rig = rig_bridge.find_rig(build_skeleton(context))
    if pelvis_positions:
        trans = trans - rig_bridge.rest_pelvis(rig)  # in the source's axes: to_y_up adds it back before turning
    if up_axis == 'Z':
        poses, trans = to_y_up(poses, trans, rig_bridge.rest_pelvis(rig))
    scene = context.scene
    frames = scene.frame_start + np.arange(len(poses), dtype=np.float64)
    translation = rig_bridge.translation_channel(rig, trans, on_root, frames)  # raises before any key is written
    rig_bridge.key_track(rig, poses, range(55), frames)
    keyframes.write_channels(keyframes.object_channelbag(rig.object), [translation], frames)
    last = int(frames[-1])
    if extend_scene:
        scene.frame_end = max(scene.frame_end, last)
    scene.dposerx.clean_start, scene.dposerx.clean_end = scene.frame_start, last  # ready for Clean Mocap
    return f"'{rig.object.name}', frames {scene.frame_start}..{last}"


class _FileJob:
    """A file browser first, then the job: modal with progress and Esc when the browser started it, synchronous
    when run from a script or redone.

    Blender calls `execute` both for a script and when the browser (opened by ImportHelper/ExportHelper's
    `invoke`) confirms; the operator's properties are what it carries from `invoke` to that call, so a hidden one
    (not saved for redo) says which it is."""

    from_browser: BoolProperty(default=False, options={'HIDDEN', 'SKIP_SAVE'})

    def invoke(self, context, event):
        self.from_browser = True
        return super().invoke(context, event)

    def execute(self, context):
        if self.from_browser:
            self.from_browser = False
            return self.start_modal(context)
        return self.run_now(context)


class _ImportJob(_FileJob):
    """Imports run without an active armature too (a new skeleton is added) and draw their `option_names`."""

    extend_scene: BoolProperty(name="Update Scene Duration", default=True,
                               description="Extend the scene's frame range to the imported animation (never "
                                           "shortens it), as Blender's BVH importer does")

    @classmethod
    def poll(cls, context):
        if context.mode not in {'OBJECT', 'POSE'}:
            cls.poll_message_set("Switch to Object or Pose Mode")
            return False
        return True

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        for name in self.option_names:
            layout.prop(self, name)

    def read_path(self) -> Path:
        path = Path(bpy.path.abspath(self.filepath))
        if not path.is_file():
            raise DPoserError(f"{path}: file not found")
        return path


class DPOSERX_OT_import_smplx_npz(_ImportJob, ImportHelper, JobOperator, bpy.types.Operator):
    """Import an SMPL-X animation (.npz: AMASS poses/trans or split keys) onto the active SMPL-X armature, or onto
    a new SMPL-X skeleton when no armature is active"""
    bl_idname = "dposerx.import_smplx_npz"
    bl_label = "Import SMPL-X Animation"
    filename_ext = ".npz"
    option_names = ("hand_reference", "translation_bone", "up_axis", "extend_scene")

    filter_glob: StringProperty(default="*.npz", options={'HIDDEN'})
    hand_reference: EnumProperty(name="Hands", items=HAND_ITEMS, default='FLAT')
    translation_bone: EnumProperty(name="Translation", items=TRANSLATION_ITEMS, default='PELVIS')
    up_axis: EnumProperty(name="Source Up", items=UP_ITEMS, default='Z')

    def plan(self, context):
        path, rig, fps = self.read_path(), _target_rig(context), scene_fps(context.scene)
        relaxed, up_axis, on_root = self.hand_reference == 'RELAXED', self.up_axis, self.translation_bone == 'ROOT'
        extend_scene = self.extend_scene

        def work(_prior, progress):
            from ..core.amass import read_amass_npz
            from ..core.mocap.conventions import add_hand_reference, resample_poses, resample_translation

            motion = read_amass_npz(path)
            progress(1, 3)
            poses = resample_poses(add_hand_reference(motion.poses, relaxed), motion.fps, fps)
            progress(2, 3)
            return motion, poses, resample_translation(motion.trans, motion.fps, fps)

        def apply(result):
            motion, poses, trans = result
            where = _key_animation(rig, poses, trans, up_axis, on_root, extend_scene)
            return f"Imported {len(motion.poses)} frames at {motion.fps:g} fps as {len(poses)} at {fps:g} fps onto " \
                   + where

        return Plan(work, apply, uses_prior=False)


def _preset_items(_self, _context):
    """'AUTO' and one item per joint map (loaded once; Blender needs the strings kept alive)."""
    if not _PRESET_ITEMS:
        from ..core.mocap.retarget import load_joint_maps

        _PRESET_ITEMS.append(('AUTO', "Auto-Detect", "Choose the preset from the file's joint names"))
        _PRESET_ITEMS.extend((name, name, joint_map.description.split(";")[0][:200])
                             for name, joint_map in load_joint_maps().items())
    return _PRESET_ITEMS


_PRESET_ITEMS: list = []


class DPOSERX_OT_import_bvh(_ImportJob, ImportHelper, JobOperator, bpy.types.Operator):
    """Import a BVH file onto the active SMPL-X armature (or a new SMPL-X skeleton) through DPoser-X's retargeting
    presets (CMU, cgspeed, iClone, MakeHuman...)"""
    bl_idname = "dposerx.import_bvh"
    bl_label = "Import BVH onto SMPL-X"
    filename_ext = ".bvh"
    option_names = ("preset", "translation_bone", "extend_scene")

    filter_glob: StringProperty(default="*.bvh", options={'HIDDEN'})
    preset: EnumProperty(name="Preset", items=_preset_items, description="Source skeleton (joint map)")
    translation_bone: EnumProperty(name="Translation", items=TRANSLATION_ITEMS, default='PELVIS')

    def plan(self, context):
        path, rig, fps = self.read_path(), _target_rig(context), scene_fps(context.scene)
        preset, on_root, extend_scene = self.preset, self.translation_bone == 'ROOT', self.extend_scene

        def work(_prior, progress):
            from ..core.mocap.bvh import read_bvh
            from ..core.mocap.conventions import resample_poses, resample_translation
            from ..core.mocap.retarget import detect_joint_map, load_joint_maps, retarget

            motion = read_bvh(path)
            progress(1, 4)
            maps = load_joint_maps()
            joint_map = detect_joint_map(motion, maps) if preset == 'AUTO' else maps[preset]
            result = retarget(motion, joint_map)
            progress(3, 4)
            poses = resample_poses(result.poses, result.fps, fps)
            return motion, joint_map, result, poses, resample_translation(result.trans, result.fps, fps)

        def apply(outcome):
            motion, joint_map, result, poses, trans = outcome
            where = _key_animation(rig, poses, trans, 'Z', on_root, extend_scene, pelvis_positions=True)
            return (f"Imported {motion.num_frames} frames at {motion.fps:g} fps as {len(poses)} at {fps:g} fps with "
                    f"preset '{joint_map.name}' onto {where}. {unmapped_report(motion, joint_map, result.driven)}")

        return Plan(work, apply, uses_prior=False)


def unmapped_report(motion, joint_map, driven: np.ndarray, shown: int = 12) -> str:
    """Which source joints the preset ignores (the first `shown`; all of them go to the console) and which SMPL-X
    bones nothing drives (they keep their rest rotation), grouped by part."""
    from ..core.skeleton import JOINT_NAMES, PARTS

    ignored = [n for n in motion.joint_names if n not in joint_map.source_names() and not n.endswith("_end")]
    if len(ignored) > shown:
        print(f"DPoser-X: BVH joints that preset '{joint_map.name}' does not map: {', '.join(ignored)}")
    listed = ", ".join(ignored[:shown]) + (f" and {len(ignored) - shown} more (listed in the console)"
                                           if len(ignored) > shown else "")
    idle = set(np.flatnonzero(~driven).tolist())
    groups = []
    for part, joints in PARTS.items():
        if part != "body" and set(joints) <= idle:
            groups.append(part.replace("_", " "))
            idle -= set(joints)
    groups += [JOINT_NAMES[j] for j in sorted(idle)]
    return (f"Unmapped BVH joints ({len(ignored)}): {listed or 'none'}. "
            f"SMPL-X bones left at rest: {', '.join(groups) or 'none'}.")


class DPOSERX_OT_export_smplx_npz(_FileJob, ExportHelper, JobOperator, bpy.types.Operator):
    """Export the active SMPL-X armature's animation over a frame range as an AMASS-style npz (poses, trans,
    mocap_frame_rate)"""
    bl_idname = "dposerx.export_smplx_npz"
    bl_label = "Export SMPL-X Animation"
    bl_options = {'REGISTER'}  # writes a file, changes nothing in the scene
    filename_ext = ".npz"

    filter_glob: StringProperty(default="*.npz", options={'HIDDEN'})
    frame_start: IntProperty(name="Start", description="First frame to export (default: the action's first key)")
    frame_end: IntProperty(name="End", description="Last frame to export (default: the action's last key)")
    hand_reference: EnumProperty(name="Hands", items=HAND_ITEMS, default='FLAT')
    translation_bone: EnumProperty(name="Translation", items=TRANSLATION_ITEMS, default='PELVIS')
    up_axis: EnumProperty(name="Up", items=UP_ITEMS, default='Z')

    def frame_range(self, ob) -> tuple[int, int]:
        """The range to export: Start and End where set, else the action's keyed range."""
        keyed = keyframes.keyed_range(keyframes.object_channelbag(ob, create=False))
        if keyed is None:
            raise DPoserError(f"'{ob.name}' has no animation to export.")
        return tuple(getattr(self, name) if self.properties.is_property_set(name) else default
                     for name, default in zip(("frame_start", "frame_end"), keyed))

    def invoke(self, context, event):
        if context.object is not None and context.object.type == 'ARMATURE':
            try:
                self.frame_start, self.frame_end = self.frame_range(context.object)
            except DPoserError:
                pass  # reported when the export runs
        return super().invoke(context, event)

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        row = layout.row(align=True)
        row.prop(self, "frame_start")
        row.prop(self, "frame_end")
        for name in ("hand_reference", "translation_bone", "up_axis"):
            layout.prop(self, name)

    def plan(self, context):
        rig = rig_bridge.find_rig(context.object)
        scene = context.scene
        start, end = self.frame_range(rig.object)
        if end < start:
            raise DPoserError(f"The frame range {start}..{end} is reversed: End must not be before Start.")
        path = Path(bpy.path.abspath(self.filepath))
        if not path.parent.is_dir():
            raise DPoserError(f"{path.parent}: folder not found")
        frames = np.arange(start, end + 1, dtype=np.float64)
        on_root, up_axis, relaxed = self.translation_bone == 'ROOT', self.up_axis, self.hand_reference == 'RELAXED'
        poses = rig_bridge.read_track(rig, frames)
        trans, pelvis, fps = rig_bridge.read_translation(rig, frames, on_root), rig_bridge.rest_pelvis(rig), \
            scene_fps(scene)

        def work(_prior, progress):
            from ..core.amass import AmassMotion, write_amass_npz
            from ..core.mocap.conventions import add_hand_reference, to_y_up

            out_poses, out_trans = to_y_up(poses, trans, pelvis, inverse=True) if up_axis == 'Z' else (poses, trans)
            out_poses = add_hand_reference(out_poses, relaxed, sign=-1.0)
            progress(1, 2)
            write_amass_npz(path, AmassMotion(out_poses, out_trans, fps))
            return path

        def apply(written):
            return f"Exported frames {start}..{end} ({len(frames)} at {fps:g} fps) to {written}"

        return Plan(work, apply, uses_prior=False)


def draw_import_menu(self, context):
    self.layout.operator(DPOSERX_OT_import_smplx_npz.bl_idname, text="SMPL-X Animation (.npz)")
    self.layout.operator(DPOSERX_OT_import_bvh.bl_idname, text="BVH onto SMPL-X (.bvh)")


def draw_export_menu(self, context):
    self.layout.operator(DPOSERX_OT_export_smplx_npz.bl_idname, text="SMPL-X Animation (.npz)")


classes = (DPOSERX_OT_import_smplx_npz, DPOSERX_OT_import_bvh, DPOSERX_OT_export_smplx_npz)
