"""The operators that run the prior: Complete Pose (and hypothesis cycling), Vary Pose, Pin to Target,
Clean Mocap and Generate Pose Library. Each reads the scene into a jobs.Plan; core.tasks does the work."""
from __future__ import annotations

import bpy
import numpy as np
from scipy.spatial.transform import Rotation

from ..core.errors import DPoserError
from ..core.skeleton import NUM_JOINTS, PART_JOINTS
from . import pose_library, rig_bridge
from .jobs import JobOperator, Plan, WarningReport
from .locks import locked_mask

HYPOTHESES_KEY = "dposerx_hypotheses"  # object ID property: poses to cycle through without recomputing
PIN_KEY = "dposerx_pin"  # empty ID property: the name of the bone it pulls
PIN_RIG_KEY = "dposerx_pin_rig"  # empty ID property: the armature object whose bone it pulls
EDIT_TOLERANCE_RAD = 1e-3  # a completed bone turned further than this since Complete Pose was edited by hand
PIN_REACHED_MM = 10.0  # a pin further than this from its bone after solving is reported as not reached


def parts(settings) -> tuple[str, ...]:
    """The chosen parts (core.skeleton.PART_JOINTS names), from the settings' part_<name> toggles."""
    return tuple(name for name in PART_JOINTS if getattr(settings, f"part_{name}"))


def part_mask(settings) -> np.ndarray:
    """(55,) bool, True for the joints of the parts the prior may change (never the global orientation)."""
    mask = np.zeros(NUM_JOINTS, dtype=bool)
    for name in parts(settings):
        mask[list(PART_JOINTS[name])] = True
    return mask


def free_joints(rig, settings, require_locked: bool) -> np.ndarray:
    """(55,) bool: unlocked joints of the chosen parts that the rig can pose (see rig_bridge.unwritable);
    DPoserError when there are none (or no locked bones and `require_locked`)."""
    locked = locked_mask(rig)
    free = part_mask(settings) & ~locked & ~rig_bridge.unwritable(rig)
    if not free.any():
        raise DPoserError("Nothing to change: every bone of the chosen parts is locked (or no part is chosen). "
                          + rig_bridge.notes(rig))
    if require_locked and not locked[1:].any():
        raise DPoserError("Lock the bones to keep first (Lock Selected): the prior completes the others.")
    return free


def bone_list(rig, joints, shown: int = 5) -> str:
    names = [rig.bone_names[j] for j in joints]
    return f"{len(names)} bone(s): {', '.join(names[:shown])}{' ...' if len(names) > shown else ''}"


def report_text(rig, written, text: str, notes=()) -> str:
    """The job's report: a warning when there are `notes` or constraints override bones it wrote (`written`)."""
    overridden = rig_bridge.overridden_joints(rig, written)
    if overridden:
        notes = (*notes, f"constraints override {bone_list(rig, overridden)} (the screen shows the constraint's "
                         f"result, not the written rotation)")
    return WarningReport("; ".join((text, *notes))) if notes else text


def noted(rig, apply):
    """`apply` whose report also says what the rig map kept (limbs in IK, constrained bones); a warning stays one."""
    def apply_and_note(result):
        report = apply(result)
        text = " ".join(filter(None, (report, rig_bridge.notes(rig))))
        return WarningReport(text) if isinstance(report, WarningReport) else text
    return apply_and_note


def should_key(context) -> bool:
    return context.scene.dposerx.key_result or context.scene.tool_settings.use_keyframe_insert_auto


def key_frame(context) -> float | None:
    return float(context.scene.frame_current) if should_key(context) else None


class DPOSERX_OT_complete_pose(JobOperator, bpy.types.Operator):
    """Complete every unlocked SMPL-X bone of the chosen parts from the locked ones, at the current frame"""
    bl_idname = "dposerx.complete_pose"
    bl_label = "Complete Pose"

    def plan(self, context):
        settings = context.scene.dposerx
        rig = rig_bridge.find_rig(context.object)
        free = free_joints(rig, settings, require_locked=True)
        pose, frame = rig_bridge.read_pose(rig), key_frame(context)
        hypotheses, seed, strength = settings.hypotheses, settings.seed, settings.strength

        def work(prior, progress):
            from ..core import tasks

            return tasks.complete(prior, pose, ~free, hypotheses=hypotheses, seed=seed, strength=strength,
                                  progress=progress)

        def apply(result):
            options = result.hypotheses[0]
            rig.object[HYPOTHESES_KEY] = {"poses": options.tolist(), "index": 0, "joints": np.flatnonzero(free).tolist()}
            rig_bridge.apply_pose(rig, options[0], np.flatnonzero(free), frame)
            return report_text(rig, np.flatnonzero(free),
                               f"Completed {int(free.sum())} bones; hypothesis 1 of {len(options)}")

        return Plan(work, noted(rig, apply))


class DPOSERX_OT_cycle_hypothesis(bpy.types.Operator):
    """Show the next (or previous) hypothesis of the last Complete Pose, without recomputing"""
    bl_idname = "dposerx.cycle_hypothesis"
    bl_label = "Next Hypothesis"
    bl_options = {'REGISTER', 'UNDO'}

    step: bpy.props.IntProperty(default=1, options={'SKIP_SAVE'})

    @classmethod
    def poll(cls, context):
        ob = rig_bridge.armature_of(context.object)
        if ob is None or HYPOTHESES_KEY not in ob:
            cls.poll_message_set("Run Complete Pose first")
            return False
        return JobOperator.poll.__func__(cls, context)

    def execute(self, context):
        try:
            rig = rig_bridge.find_rig(context.object)
        except DPoserError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        stored = rig.object[HYPOTHESES_KEY]
        options, joints = np.array(stored["poses"]), list(stored["joints"])
        edited = edited_joints(rig, options[stored["index"]], joints)
        index = (stored["index"] + self.step) % len(options)
        stored["index"] = index
        written = [j for j in joints if j not in edited]
        rig_bridge.apply_pose(rig, options[index], written, key_frame(context))
        notes = [f"kept your edits to {bone_list(rig, edited)} (lock them and run Complete Pose to re-solve around "
                 f"them)"] if edited else []
        text = report_text(rig, written, f"Hypothesis {index + 1} of {len(options)}", notes)
        self.report({'WARNING'} if isinstance(text, WarningReport) else {'INFO'}, text)
        return {'FINISHED'}


def edited_joints(rig, shown: np.ndarray, joints: list[int]) -> list[int]:
    """The joints among `joints` whose rotation no longer matches `shown` (165,), the hypothesis last applied:
    the animator changed them since (by hand, or on another frame of their animation)."""
    if not joints:
        return []
    current = Rotation.from_rotvec(rig_bridge.read_pose(rig, visual=False).reshape(55, 3)[joints])
    angles = (current.inv() * Rotation.from_rotvec(shown.reshape(55, 3)[joints])).magnitude()
    return [j for j, angle in zip(joints, angles) if angle > EDIT_TOLERANCE_RAD]


class DPOSERX_OT_vary_pose(JobOperator, bpy.types.Operator):
    """Replace the unlocked bones by a plausible variation of the current pose"""
    bl_idname = "dposerx.vary_pose"
    bl_label = "Vary Pose"

    def plan(self, context):
        settings = context.scene.dposerx
        rig = rig_bridge.find_rig(context.object)
        free = free_joints(rig, settings, require_locked=False)
        pose, frame = rig_bridge.read_pose(rig), key_frame(context)
        strength, seed = settings.vary_strength, settings.seed

        def work(prior, progress):
            from ..core import tasks

            return tasks.vary(prior, pose, strength=strength, observed=~free, seed=seed, count=1,
                              progress=progress)[0]

        def apply(result):
            rig_bridge.apply_pose(rig, result, np.flatnonzero(free), frame)
            return report_text(rig, np.flatnonzero(free), f"Varied {int(free.sum())} bones")

        return Plan(work, noted(rig, apply))


def pin_targets(context, rig) -> dict[int, np.ndarray]:
    """Joint index -> target (3,) in the rig's SMPL-X frame from this rig's pin empties and, if asked, the 3D
    cursor."""
    index = {name: j for j, name in enumerate(rig.bone_names)}
    targets = {index[ob[PIN_KEY]]: rig_bridge.world_to_smplx(rig, ob.matrix_world.translation)
               for ob in context.scene.objects
               if ob.type == 'EMPTY' and ob.get(PIN_RIG_KEY) == rig.object and ob.get(PIN_KEY) in index}
    if context.scene.dposerx.pin_cursor:
        active = context.active_pose_bone
        if active is None or active.name not in index:
            raise DPoserError("Pinning to the 3D cursor needs an active SMPL-X bone (Pose Mode).")
        targets[index[active.name]] = rig_bridge.world_to_smplx(rig, context.scene.cursor.location)
    if not targets:
        raise DPoserError(f"No targets for '{rig.object.name}': add a pin empty (Add Pin) to its bones or pin the "
                          f"active bone to the 3D cursor.")
    return targets


class DPOSERX_OT_pin_to_target(JobOperator, bpy.types.Operator):
    """Move bones to their pin empties (or the active bone to the 3D cursor), keeping the pose plausible"""
    bl_idname = "dposerx.pin_to_target"
    bl_label = "Pin to Target"

    def plan(self, context):
        settings = context.scene.dposerx
        rig = rig_bridge.find_rig(context.object)
        free = free_joints(rig, settings, require_locked=False)
        targets = pin_targets(context, rig)
        pose, rest, frame = rig_bridge.read_pose(rig), rig_bridge.rest_joints(rig), key_frame(context)
        seed = settings.seed

        def work(prior, progress):
            from ..core import tasks

            return tasks.solve_pins(prior, pose, targets, ~free, rest_joints=rest, seed=seed, progress=progress)

        def apply(result):
            rig_bridge.apply_pose(rig, result.pose, np.flatnonzero(free), frame)
            missed = {j: mm for j, mm in result.residual_mm.items() if mm > PIN_REACHED_MM}
            notes = ["not reached: " + ", ".join(f"{rig.bone_names[j]} ({mm:.0f} mm away)"
                                                 for j, mm in sorted(missed.items()))
                     + " (unlock more bones or move the pin closer)"] if missed else []
            worst = max(result.residual_mm.values(), default=0.0)
            return report_text(rig, np.flatnonzero(free), f"Pinned {len(targets)} bone(s); largest distance to a "
                                                          f"target {worst:.0f} mm", notes)

        return Plan(work, noted(rig, apply))


class DPOSERX_OT_add_pin(bpy.types.Operator):
    """Add an empty at the active bone that Pin to Target pulls the bone to"""
    bl_idname = "dposerx.add_pin"
    bl_label = "Add Pin"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        if context.active_pose_bone is None:
            cls.poll_message_set("Select a bone in Pose Mode")
            return False
        return True

    def execute(self, context):
        bone = context.active_pose_bone
        empty = bpy.data.objects.new(f"Pin {bone.name}", None)
        empty.empty_display_type = 'SPHERE'
        empty.empty_display_size = 0.03
        empty[PIN_KEY] = bone.name
        empty[PIN_RIG_KEY] = context.object
        empty.location = context.object.matrix_world @ bone.head
        context.collection.objects.link(empty)
        self.report({'INFO'}, f"Move '{empty.name}', then run Pin to Target")
        return {'FINISHED'}


class DPOSERX_OT_clean_mocap(JobOperator, bpy.types.Operator):
    """Clean the captured motion of the active action: remove jitter, re-fill glitches and frozen frames. Only
    keys that exist change (their frames and interpolation stay); locked bones stay untouched"""
    bl_idname = "dposerx.clean_mocap"
    bl_label = "Clean Mocap"

    def plan(self, context):
        from .keyframes import keyed_range, object_channelbag

        settings, scene = context.scene.dposerx, context.scene
        rig = rig_bridge.find_rig(context.object)
        if settings.clean_action_range:
            keyed = keyed_range(object_channelbag(rig.object, create=False))
            if keyed is None:
                raise DPoserError(f"'{rig.object.name}' has no animation to clean: key it or import a capture.")
            start, end = keyed
            if end <= start:
                raise DPoserError(f"'{rig.object.name}' is keyed on frame {start} only: nothing to clean.")
        else:
            start, end = settings.clean_start, settings.clean_end
            if end <= start:
                raise DPoserError(f"The frame range {start}..{end} is empty or reversed: End must be after Start.")
            if not _has_keys(rig.object, start, end):
                raise DPoserError(f"'{rig.object.name}' has no keys in frames {start}..{end}: nothing to clean.")
        add_curves = settings.clean_add_curves
        free = free_joints(rig, settings, require_locked=False)
        keyed = rig_bridge.keyed_joints(rig, start, end)
        if not add_curves:
            free &= keyed
            if not free.any():
                raise DPoserError(f"No unlocked bone of the chosen parts has rotation keys in frames {start}..{end}: "
                                  "nothing to clean (turn on Key Still Bones to key them).")
        frames = np.arange(start, end + 1, dtype=np.float64)
        track = rig_bridge.read_track(rig, frames)
        fps, strength, seed = scene.render.fps / scene.render.fps_base, settings.clean_strength, settings.seed

        def work(prior, progress):
            from ..core import tasks

            return tasks.denoise_track(prior, track, locked=~free, fps=fps, strength=strength, seed=seed,
                                       progress=progress)

        def apply(result):
            # Bones the cleaning left bit-exact keep their keys bit-exact too (nothing is re-derived for them).
            changed = np.any(result.reshape(-1, 55, 3) != track.reshape(-1, 55, 3), axis=(0, 2)) & free
            written = changed | (free & ~keyed) if add_curves else changed
            keys = rig_bridge.update_track_keys(rig, result, np.flatnonzero(written), frames, add_curves)
            return report_text(rig, np.flatnonzero(written),
                               f"Cleaned frames {start}..{end}: {int(changed.sum())} bones changed, {keys} keys written")

        return Plan(work, noted(rig, apply))


def _has_keys(ob, start: int, end: int) -> bool:
    from .keyframes import key_frames, object_channelbag

    channelbag = object_channelbag(ob, create=False)
    return channelbag is not None and any(((f >= start) & (f <= end)).any()
                                          for f in map(key_frames, channelbag.fcurves))


class DPOSERX_OT_generate_library(JobOperator, bpy.types.Operator):
    """Generate plausible poses as pose assets and/or keys on consecutive frames"""
    bl_idname = "dposerx.generate_library"
    bl_label = "Generate Pose Library"

    def plan(self, context):
        settings = context.scene.dposerx
        rig = rig_bridge.find_rig(context.object)
        if not (settings.library_assets or settings.library_keys):
            raise DPoserError("Choose an output: Pose Assets, Keys or both.")
        chosen = parts(settings)
        if not chosen:
            raise DPoserError("Choose at least one part to generate (Body, Hands or Face).")
        conditioned = settings.library_conditioned
        free = free_joints(rig, settings, require_locked=conditioned)
        pose = rig_bridge.read_pose(rig)
        count, seed, temperature = settings.library_count, settings.seed, settings.diversity
        catalog, as_assets, as_keys = settings.library_catalog, settings.library_assets, settings.library_keys
        first_frame = context.scene.frame_current

        def work(prior, progress):
            from ..core import tasks

            return tasks.generate(prior, count, seed=seed, temperature=temperature,
                                  condition=pose if conditioned else None, observed=~free if conditioned else None,
                                  parts=chosen, progress=progress)

        def apply(result):
            notes = []
            if as_assets:
                assets = pose_library.create_pose_assets(rig, result, np.flatnonzero(free), catalog,
                                                         "DPoser-X pose")
                saved = pose_library.ensure_catalog(catalog)
                notes.append(f"{len(assets)} pose assets in '{catalog}'"
                             + ("" if saved else " (save the file to create the catalog)"))
            if as_keys:
                rig_bridge.key_track(rig, result, np.flatnonzero(free), first_frame + np.arange(count, dtype=float))
                notes.append(f"keys on frames {first_frame}..{first_frame + count - 1}")
            return "Generated " + " and ".join(notes)

        return Plan(work, noted(rig, apply))


classes = (DPOSERX_OT_complete_pose, DPOSERX_OT_cycle_hypothesis, DPOSERX_OT_vary_pose, DPOSERX_OT_pin_to_target,
           DPOSERX_OT_add_pin, DPOSERX_OT_clean_mocap, DPOSERX_OT_generate_library)
