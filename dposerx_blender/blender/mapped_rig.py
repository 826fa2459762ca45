"""Users' armatures (Rigify, Mixamo, Unreal, VRM, MPFB...) through a rig map: `MappedRig`, the counterpart of
rig_bridge's SMPL-X `Rig`, with the same conversions (rig_bridge routes a MappedRig here), so solvers, tasks and
operators see the usual (N, 165) pose vectors and (55,) masks. The maths is core.rig_map.

The map is the object's own (Object.dposerx_rig_map, edited in the Rig Map panel) or the preset its bone names
match. Reading takes the evaluated pose (pose_bone.matrix: constraints, IK and drivers included) of the bones the
map reads; writing sets the bones it writes (Rigify: the FK controls), then checks that the evaluated pose
follows. Joints that cannot follow (no bone of their own, a limb in IK, a constrained bone) are unwritable: the
jobs keep them as they are and say so, and a write that does not take is undone with an error.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import bpy
import numpy as np
from scipy.spatial.transform import Rotation

from ..core import rig_math
from ..core.errors import DPoserError
from ..core.mocap.retarget import JointMap, detected_maps, load_joint_maps
from ..core.rig_map import ArmatureMap, ArmatureRest, bases_for
from ..core.skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS, REST_OFFSETS
from . import keyframes

REFERENCE_KEY = "dposerx_rest_reference"  # object ID property: bone -> (w, x, y, z) of the calibrated rest pose
WRITE_TOLERANCE_DEGREES = 0.5
presets = functools.cache(load_joint_maps)  # the shipped joint maps never change while Blender runs


@dataclass(frozen=True)
class MappedRig:
    object: object
    converter: ArmatureMap
    bone_names: tuple[str, ...]  # (55,) bone written for each joint, "" where none
    overridden: dict  # joint index -> why its bone cannot pose it (IK on, a constraint)
    lacking: tuple[str, ...]  # optional joints of the preset this armature has no bone for
    metres_per_unit: float

    @property
    def name(self) -> str:
        return self.converter.joint_map.name

    @property
    def axes(self) -> np.ndarray:
        return self.converter.axes

    @property
    def pose_bones(self):
        return [self.object.pose.bones[n] if n else None for n in self.bone_names]

    @property
    def unwritable(self) -> np.ndarray:
        """(55,) bool: joints the jobs must keep (no bone to write, or IK or a constraint overrides it)."""
        out = ~self.converter.writable
        out[list(self.overridden)] = True
        return out

    def notes(self) -> str:
        """What the jobs leave alone on this rig, for their reports ("" when nothing)."""
        reasons = {}
        for j, why in self.overridden.items():
            reasons.setdefault(why, []).append(JOINT_NAMES[j])
        return " ".join(f"Kept {', '.join(joints)}: {why}." for why, joints in reasons.items())


def has_map(ob) -> bool:
    # is_property_set first: reading the group would create it, and Blender 4.5 lists it as a custom property.
    return ob.is_property_set("dposerx_rig_map") and bool(ob.dposerx_rig_map.joints)


def stored_map(ob) -> JointMap | None:
    """The object's own map (Rig Map panel, rig_map_ui), or None."""
    if not has_map(ob):
        return None
    group = ob.dposerx_rig_map
    extras = json.loads(group.extras or "{}")
    joints = {item.joint: item.bone for item in group.joints if item.bone} | extras.pop("joints", {})
    write = {item.joint: item.write for item in group.joints if item.write}
    return JointMap.from_dict({**extras, "name": group.name or ob.name, "joints": joints, "write": write,
                               "kind": "rig"}, ob.name, f"'{ob.name}' rig map")


def map_signature(ob) -> str:
    """Changes whenever the object's own map does (for caches)."""
    if not has_map(ob):
        return ""
    group = ob.dposerx_rig_map
    return group.name + group.extras + "".join(f"{i.joint}={i.bone}/{i.write};" for i in group.joints)


def choose_map(ob) -> tuple[JointMap, tuple[str, ...]]:
    """(map narrowed to the armature's bones, optional joints it lacks); DPoserError says why none fits."""
    names = [bone.name for bone in ob.data.bones]
    own = stored_map(ob)
    if own is not None:
        return own.resolve(names)
    found = detected_maps(names, presets(), prefer="rig")
    if not found:
        smplx = sum(name in ob.data.bones for name in JOINT_NAMES)
        raise DPoserError(f"'{ob.name}' is not an SMPL-X armature (it has {smplx} of the 55 SMPL-X bones) nor a "
                          f"rig a preset recognises (Rigify, Mixamo, Auto-Rig Pro, Unreal, VRM, Character Creator, "
                          f"Daz, MakeHuman/MPFB). Map its bones in DPoser-X > Rig Map, or add an SMPL-X skeleton "
                          f"with Add > Armature > SMPL-X Skeleton.")
    return found[0].resolve(names)


def armature_rest(ob) -> ArmatureRest:
    bones = ob.data.bones
    count = len(bones)
    matrices = np.empty(count * 16, dtype=np.float32)
    bones.foreach_get("matrix_local", matrices)
    heads, tails = np.empty(count * 3, dtype=np.float32), np.empty(count * 3, dtype=np.float32)
    bones.foreach_get("head_local", heads)
    bones.foreach_get("tail_local", tails)
    rest = rig_math.nearest_rotation(matrices.reshape(count, 4, 4).transpose(0, 2, 1)[:, :3, :3].astype(np.float64))
    return ArmatureRest.from_bones([b.name for b in bones], [b.parent.name if b.parent else None for b in bones],
                                   rest, heads.reshape(count, 3), tails.reshape(count, 3))


def find_mapped_rig(ob) -> MappedRig:
    joint_map, lacking = choose_map(ob)
    armature = armature_rest(ob)
    reference = None
    if REFERENCE_KEY in ob:
        stored = ob[REFERENCE_KEY]
        quats = np.array([stored.get(name, (1.0, 0.0, 0.0, 0.0)) for name in armature.names], dtype=np.float64)
        reference = Rotation.from_quat(quats, scalar_first=True).as_matrix()
    try:
        converter = ArmatureMap(joint_map, armature, reference)
    except ValueError as exc:
        raise DPoserError(f"'{ob.name}': map '{joint_map.name}' does not fit this armature ({exc}).") from None
    names, overridden = [""] * NUM_JOINTS, {}
    pose_bones = ob.pose.bones
    for name, sources in converter.written.items():
        j = JOINT_INDEX[name]
        bone = joint_map.write.get(name) or armature.names[sources[0]]
        if bone not in pose_bones:
            overridden[j] = f"map '{joint_map.name}' writes bone '{bone}', which '{ob.name}' lacks"
            continue
        names[j] = bone
        constraint = next((c for c in pose_bones[bone].constraints if c.enabled and c.influence > 0), None)
        if constraint is not None:
            overridden[j] = f"constraint '{constraint.name}' on bone '{bone}' overrides its rotation"
    for bone, switch in joint_map.fk_switches.items():
        value = pose_bones[bone].get(switch["property"]) if bone in pose_bones else None
        if value is not None and abs(float(value) - switch["fk"]) > 1e-6:
            why = (f"IK is on for this limb ({bone} {switch['property']} = {float(value):g}, FK = {switch['fk']:g}), "
                   f"so IK poses it, not DPoser-X; use Switch Limbs to FK in DPoser-X > Rig Map")
            overridden.update({JOINT_INDEX[n]: why for n in switch["joints"] if n in converter.written})
    return MappedRig(ob, converter, tuple(names), overridden, lacking, float(np.mean(ob.matrix_world.to_scale())))


# --- Reading: the evaluated pose ---------------------------------------------------------------------------


def evaluated_deltas(rig: MappedRig) -> np.ndarray:
    """(B, 3, 3) every bone's rotation from its rest, as evaluated now (constraints included)."""
    bpy.context.view_layer.update()
    bones = rig.object.pose.bones
    matrices = np.empty(len(bones) * 16, dtype=np.float32)
    bones.foreach_get("matrix", matrices)
    posed = matrices.reshape(-1, 4, 4).transpose(0, 2, 1)[:, :3, :3].astype(np.float64)
    order = [bones.find(name) for name in rig.converter.armature.names]
    return rig_math.nearest_rotation(posed[order]) @ np.swapaxes(rig.converter.armature.rest, -1, -2)


def read_pose(rig: MappedRig, visual: bool = True) -> np.ndarray:
    """The evaluated pose (165,), whatever `visual` says: a mapped rig's channels alone (Rigify's FK controls) are
    no pose of their own, and its writes are checked to be followed (apply_pose)."""
    return rig.converter.read(evaluated_deltas(rig)[None])[0]


def _at_frames(rig: MappedRig, frames: np.ndarray, measure):
    """[measure() at each of `frames`] with the scene evaluated there; the scene returns to its current frame."""
    scene = bpy.context.scene
    current = scene.frame_current, scene.frame_subframe
    try:
        out = []
        for frame in frames:
            scene.frame_set(int(np.floor(frame)), subframe=float(frame - np.floor(frame)))
            out.append(measure())
        return out
    finally:
        scene.frame_set(current[0], subframe=current[1])


def read_track(rig: MappedRig, frames: np.ndarray) -> np.ndarray:
    """The evaluated poses at `frames` (T,) -> (T, 165)."""
    return rig.converter.read(np.stack(_at_frames(rig, frames, lambda: evaluated_deltas(rig))))


# --- Writing: the mapped bones' channels ------------------------------------------------------------------


def _targets(rig: MappedRig, poses: np.ndarray, joints, current: np.ndarray) -> tuple[dict, list[int]]:
    """{write bone index: (T, 3, 3) rotation delta} for the writable `joints`, and those joints.

    A write bone other than the bone read (Rigify's FK control and the ORG bone that copies it) turns in
    armature space as the read bone must turn from its `current` ((T,) B, 3, 3) evaluated rotation."""
    chosen = [j for j in np.asarray(list(joints), dtype=int).tolist() if not rig.unwritable[j]]
    armature = rig.converter.armature
    deltas = rig.converter.write(poses, chosen)
    targets = {}
    for name, sources in rig.converter.written.items():
        if JOINT_INDEX[name] in chosen:
            read, write = sources[0], armature.index(rig.bone_names[JOINT_INDEX[name]])
            turn = np.swapaxes(current[..., read, :, :], -1, -2)
            targets[write] = deltas[read] if write == read else deltas[read] @ turn @ current[..., write, :, :]
            targets.update({s: deltas[s] for s in sources[1:]})  # twist bones straighten
    return targets, chosen


def pose_channels(rig: MappedRig, poses: np.ndarray, joints, reference_frame: float | None = None,
                  frames: np.ndarray | None = None) -> list[keyframes.Channel]:
    """Channels of the written bones for poses (T, 165) at `frames` (T,) (None: the current pose), continuous
    along T (see rig_bridge.pose_channels); bones not written keep their place relative to their parents as they
    are at each frame."""
    from .rig_bridge import bone_channel, current_channels

    armature, pose_bones = rig.converter.armature, rig.object.pose.bones
    candidates = {armature.index(n) for n in rig.bone_names if n} | {
        b for sources in rig.converter.written.values() for b in sources[1:]}

    def state():
        bases = {b: rig_math.channels_to_matrix(pose_bones[armature.names[b]].rotation_mode,
                                                current_channels(pose_bones[armature.names[b]])) for b in candidates}
        return evaluated_deltas(rig), bases

    # Bones not written keep their animation: with `frames`, the state is measured at each frame.
    states = _at_frames(rig, frames, state) if frames is not None else [state()]
    current = np.stack([deltas for deltas, _ in states])
    targets, _ = _targets(rig, poses, joints, current if frames is not None else current[0])
    current_bases = {b: np.stack([bases[b] for _, bases in states]) for b in targets}
    bases = bases_for(rig.converter.armature, current, current_bases, targets)
    channelbag = keyframes.object_channelbag(rig.object, create=False) if reference_frame is not None else None
    return [bone_channel(rig.object.pose.bones[rig.converter.armature.names[b]], basis, channelbag, reference_frame)
            for b, basis in bases.items()]


def _set(rig: MappedRig, channels) -> None:
    for channel in channels:
        owner, prop = channel.data_path.rsplit(".", 1)
        setattr(rig.object.path_resolve(owner), prop, channel.values[0])


def apply_pose(rig: MappedRig, pose: np.ndarray, joints, key_frame: float | None = None) -> None:
    """Set the writable `joints` to pose (165,) (parents first; constrained parents and stretchy spines need more
    passes: up to thirteen, until within 0.01 degrees), and key them at `key_frame`. DPoserError, with the rig as it
    was, when a joint does not follow."""
    from .rig_bridge import current_channels, rotation_path

    chosen = [j for j in np.asarray(list(joints), dtype=int).tolist() if not rig.unwritable[j]]
    if not chosen:
        return
    before = {pb.name: (rotation_path(pb.rotation_mode), current_channels(pb)) for pb in rig.object.pose.bones}
    kept = np.setdiff1d(np.arange(NUM_JOINTS), chosen)
    channels = []
    for _ in range(13):
        # Joints not written keep their local rotations as the rig now has them (a limb in IK keeps its hand in
        # place as the chest turns), and the others are placed relative to that.
        achieved = read_pose(rig).reshape(NUM_JOINTS, 3)
        goal = pose.reshape(NUM_JOINTS, 3).copy()
        goal[kept] = achieved[kept]
        errors = _rotation_errors(goal.reshape(-1), achieved.reshape(-1))[chosen]
        if errors.max() < 0.01:
            break
        written = pose_channels(rig, goal.reshape(1, -1), chosen)
        _set(rig, written)
        channels = written
    stray = [JOINT_NAMES[j] for j, e in zip(chosen, errors) if e > WRITE_TOLERANCE_DEGREES]
    if stray:
        for name, (path, values) in before.items():
            setattr(rig.object.pose.bones[name], path, values)
        bpy.context.view_layer.update()
        raise DPoserError(f"'{rig.object.name}': {', '.join(stray)} did not follow the bones DPoser-X wrote (a "
                          f"constraint or IK drives them): nothing was changed. Check the rig map's write bones.")
    if key_frame is not None:
        channels = pose_channels(rig, read_pose(rig)[None], chosen)  # the pose as it now is, on every written bone
        keyframes.write_channels(keyframes.object_channelbag(rig.object), channels, np.array([key_frame]))


def _rotation_errors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(55,) degrees between the joint rotations of poses a and b (165,)."""
    return np.degrees((Rotation.from_rotvec(a.reshape(55, 3)).inv() * Rotation.from_rotvec(b.reshape(55, 3)))
                      .magnitude())


def key_track(rig: MappedRig, poses: np.ndarray, joints, frames: np.ndarray) -> None:
    channels = pose_channels(rig, poses, joints, frames[0], frames)
    keyframes.write_channels(keyframes.object_channelbag(rig.object), channels, frames)


# --- Geometry: rest joints, pins, translation ---------------------------------------------------------------


def _pelvis_bone(rig: MappedRig) -> str:
    return rig.bone_names[0] or rig.converter.armature.names[rig.converter.written["pelvis"][0]]


def rest_joints(rig: MappedRig) -> np.ndarray:
    """(55, 3) metres, SMPL-X frame, pelvis at the origin: SMPL-X's rest directions with this rig's segment
    lengths where the map measures them (the prior's FK stands on a T-pose)."""
    motion = rig.converter.rest_motion
    points = {name: motion.rest_positions()[motion.index(entry if isinstance(entry, str) else
                                                         entry.get("bone") or entry["between"][0])]
              for name, entry in rig.converter.joint_map.joints.items()}
    joints = np.zeros((NUM_JOINTS, 3))
    for j in range(1, NUM_JOINTS):
        offset = REST_OFFSETS[j]
        name, parent = JOINT_NAMES[j], JOINT_NAMES[PARENTS[j]]
        if name in points and parent in points:
            length = np.linalg.norm(points[name] - points[parent]) * rig.metres_per_unit
            offset = offset / np.linalg.norm(offset) * length if length > 0 else offset
        joints[j] = joints[PARENTS[j]] + offset
    return joints


def world_to_smplx(rig: MappedRig, point) -> np.ndarray:
    from mathutils import Vector

    local = rig.object.matrix_world.inverted() @ Vector(point)
    pelvis = rig.object.pose.bones[_pelvis_bone(rig)].head
    return rig.axes @ np.array(local - pelvis) * rig.metres_per_unit


def rest_pelvis(rig: MappedRig) -> np.ndarray:
    return rig.axes @ np.array(rig.object.data.bones[_pelvis_bone(rig)].head_local) * rig.metres_per_unit


def _location_frame(rig: MappedRig, on_root: bool):
    name = rig.converter.joint_map.translation or _pelvis_bone(rig)
    if on_root:
        raise DPoserError(f"'{rig.object.name}' is mapped by '{rig.name}': its translation goes on the bone that "
                          f"moves the body ({name}); choose Translation: Pelvis.")
    rest = rig_math.nearest_rotation(np.array(rig.object.data.bones[name].matrix_local.to_3x3()))
    return name, rig.axes @ rest  # offset (SMPL-X frame) = location @ to_bone.T * metres_per_unit


def translation_channel(rig: MappedRig, trans: np.ndarray, on_root: bool = False,
                        frames: np.ndarray | None = None) -> keyframes.Channel:
    name, to_bone = _location_frame(rig, on_root)
    return keyframes.Channel(f'pose.bones["{name}"].location', name, trans @ to_bone / rig.metres_per_unit)


def read_translation(rig: MappedRig, frames: np.ndarray, on_root: bool = False) -> np.ndarray:
    name, to_bone = _location_frame(rig, on_root)
    location = keyframes.evaluate_channel(keyframes.object_channelbag(rig.object, create=False),
                                          f'pose.bones["{name}"].location', 3, frames,
                                          rig.object.pose.bones[name].location)
    return location * rig.metres_per_unit @ to_bone.T
