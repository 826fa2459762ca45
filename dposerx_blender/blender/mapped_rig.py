"""Users' armatures (Rigify, Mixamo, Unreal, VRM, MPFB...) through a rig map: `MappedRig`, the counterpart of
rig_bridge's SMPL-X `Rig`, with the same conversions (rig_bridge routes a MappedRig here), so solvers, tasks and
operators see the usual (N, 165) pose vectors and (55,) masks. The maths is core.rig_map.

The map is the object's own (Object.dposerx_rig_map, edited in the Rig Map panel) or the preset its bone names
match. Reading takes the evaluated pose (pose_bone.matrix: constraints, IK and drivers included) of the bones the
map reads (a plain FK rig's track: from its F-curves, the same pose without evaluating the scene); writing sets
the bones it writes (Rigify: the FK controls), then checks that the evaluated pose follows. Joints that cannot
follow (no bone of their own, a limb in IK, a constrained bone) are unwritable: the jobs keep them as they are
and say so, and a write that does not take is undone with an error.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field

import bpy
import numpy as np
from scipy.spatial.transform import Rotation

from ..core import rig_math
from ..core.errors import DPoserError
from ..core.mocap.retarget import JointMap, detected_maps, load_joint_maps
from ..core.rig_map import ArmatureMap, ArmatureRest, bases_for, pass_steps, stepped
from ..core.skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS, REST_OFFSETS
from . import keyframes

REFERENCE_KEY = "dposerx_rest_reference"  # object ID property: bone -> (w, x, y, z) of the calibrated rest pose
WRITE_TOLERANCE_DEGREES = 0.5
PASSES, SETTLED_DEGREES = 13, 0.01  # a write's passes at most, and the error (every joint) that ends them
presets = functools.cache(load_joint_maps)  # the shipped joint maps never change while Blender runs


@dataclass(frozen=True)
class MappedRig:
    object: object
    converter: ArmatureMap
    bone_names: tuple[str, ...]  # (55,) bone written for each joint, "" where none
    overridden: dict  # joint index -> why its bone cannot pose it (IK on, a constraint)
    lacking: tuple[str, ...]  # optional joints of the preset this armature has no bone for
    metres_per_unit: float
    pose_order: np.ndarray  # (B,) index in object.pose.bones of each bone of converter.armature
    evaluated: np.ndarray  # indices of the bones whose evaluated rotation the conversions use
    copies: dict  # bone -> ((bone whose rotation it copies, influence), ...): see rig_map.bases_for
    # A bone the conversions evaluate has a constraint (Rigify's controls drive its ORG and DEF bones): a write
    # may need passes to settle there; plain FK rigs (Mixamo, Unreal, MPFB, SMPL-X...) follow in one.
    constrained: bool
    # read_track's measurement, for the write of the same frames that follows it (see _measured_track)
    track: dict = field(default_factory=dict, compare=False, repr=False)

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


_CONVERTERS: dict = {}


def _converter(ob, joint_map: JointMap, armature: ArmatureRest, reference: np.ndarray | None) -> ArmatureMap:
    """The map fitted to the armature, kept while its map, rest and calibration stay the same (fitting takes
    longer than a job's conversions)."""
    key = (joint_map.to_toml(), armature.names, armature.parents.tobytes(), armature.rest.tobytes(),
           armature.heads.tobytes(), armature.tails.tobytes(), None if reference is None else reference.tobytes())
    if key not in _CONVERTERS:
        try:
            converter = ArmatureMap(joint_map, armature, reference)
        except ValueError as exc:
            raise DPoserError(f"'{ob.name}': map '{joint_map.name}' does not fit this armature ({exc}).") from None
        if len(_CONVERTERS) >= 8:  # bounded: a session may fit many rigs or maps
            _CONVERTERS.clear()
        _CONVERTERS[key] = converter
    return _CONVERTERS[key]


def find_mapped_rig(ob) -> MappedRig:
    joint_map, lacking = choose_map(ob)
    armature = armature_rest(ob)
    reference = None
    if REFERENCE_KEY in ob:
        stored = ob[REFERENCE_KEY]
        quats = np.array([stored.get(name, (1.0, 0.0, 0.0, 0.0)) for name in armature.names], dtype=np.float64)
        reference = Rotation.from_quat(quats, scalar_first=True).as_matrix()
    converter = _converter(ob, joint_map, armature, reference)
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
    position = {name: i for i, name in enumerate(pose_bones.keys())}
    # The bones read and written, and every bone they turn with (bases_for places bones in their parents' space).
    copies, evaluated = {}, set()
    waiting = [*converter.bones, *(armature.index(n) for n in names if n),
               *(b for sources in converter.written.values() for b in sources)]
    while waiting:
        b = waiting.pop()
        if b < 0 or b in evaluated:
            continue
        evaluated.add(b)
        copies[b] = _copied(ob, armature, b)
        waiting += [armature.parents[b], *(copied for copied, _ in copies[b])]
    constrained = any(c.enabled and c.influence > 0 for b in evaluated
                      for c in pose_bones[armature.names[b]].constraints)
    return MappedRig(ob, converter, tuple(names), overridden, lacking, float(np.mean(ob.matrix_world.to_scale())),
                     np.array([position[name] for name in armature.names]), np.array(sorted(evaluated)),
                     {b: found for b, found in copies.items() if found}, constrained)


def _copied(ob, armature: ArmatureRest, b: int) -> tuple:
    """((bone, influence), ...): the bones whose whole rotation bone `b` copies, in constraint order (Copy Rotation
    of every axis or Copy Transforms, replacing, world or pose space, from a bone of the same armature)."""
    return tuple((armature.index(c.subtarget), c.influence) for c in ob.pose.bones[armature.names[b]].constraints
                 if c.type in ('COPY_ROTATION', 'COPY_TRANSFORMS') and c.enabled and c.influence > 0
                 and getattr(c, "target", None) == ob and c.subtarget in armature.names and c.mix_mode == 'REPLACE'
                 and {c.owner_space, c.target_space} <= {'WORLD', 'POSE'}
                 and (c.type == 'COPY_TRANSFORMS' or (c.use_x and c.use_y and c.use_z and not c.invert_x
                                                      and not c.invert_y and not c.invert_z)))


# --- Reading: the evaluated pose ---------------------------------------------------------------------------


def evaluated_deltas(rig: MappedRig, every: bool = False) -> np.ndarray:
    """(B, 3, 3) the bones' rotations from their rest, as evaluated now (constraints included): those the
    conversions use (rig.evaluated), the others identity; or with `every`, every bone's."""
    chosen = slice(None) if every else rig.evaluated
    return _deltas(rig, _posed(rig, chosen)[None], chosen)[0]


def _posed(rig: MappedRig, chosen) -> np.ndarray:
    """(n, 3, 3) float32: the `chosen` bones' armature-space matrices (rotation and scale), as evaluated now."""
    bpy.context.view_layer.update()
    bones = rig.object.pose.bones
    matrices = np.empty(len(bones) * 16, dtype=np.float32)
    bones.foreach_get("matrix", matrices)
    return matrices.reshape(-1, 4, 4)[rig.pose_order[chosen], :3, :3].transpose(0, 2, 1)


def _deltas(rig: MappedRig, posed: np.ndarray, chosen) -> np.ndarray:
    """(T, B, 3, 3) rotation deltas from the `chosen` bones' matrices posed (T, n, 3, 3) (_posed at T frames: one
    batch), the other bones' identity."""
    rest = rig.converter.armature.rest
    deltas = np.broadcast_to(np.eye(3), (len(posed), *rest.shape)).copy()
    deltas[:, chosen] = rig_math.nearest_rotation(posed.astype(np.float64)) @ np.swapaxes(rest[chosen], -1, -2)
    return deltas


def read_pose(rig: MappedRig, visual: bool = True) -> np.ndarray:
    """The evaluated pose (165,), whatever `visual` says: a mapped rig's channels alone (Rigify's FK controls) are
    no pose of their own, and its writes are checked to be followed (apply_pose)."""
    return rig.converter.read(evaluated_deltas(rig)[None])[0]


def _at_frames(rig: MappedRig, frames: np.ndarray, measure):
    """[measure() at each of `frames`] with the scene evaluated there, the rig's skins (_skins) disabled in the
    viewport meanwhile; the scene returns to its current frame with the skins as they were (disabling one
    deselects it)."""
    scene = bpy.context.scene
    current = scene.frame_current, scene.frame_subframe
    skins = _skins(rig)
    selected = [skin for skin in skins if skin.select_get()]
    try:
        for skin in skins:
            skin.hide_viewport = True
        out = []
        for frame in frames:
            scene.frame_set(int(np.floor(frame)), subframe=float(frame - np.floor(frame)))
            out.append(measure())
        return out
    finally:
        for skin in skins:
            skin.hide_viewport = False
        for skin in selected:
            skin.select_set(True)
        scene.frame_set(current[0], subframe=current[1])


def _skins(rig: MappedRig) -> list:
    """The meshes of the view layer that the rig deforms (an Armature modifier) and that nothing the rig's pose
    depends on reads (_inputs): evaluating the scene at a frame re-deforms them, a cost as large as the rig's own
    on a character, for nothing a read measures. Local, enabled in the viewport and in Object Mode (not being
    weight-painted): the ones _at_frames may disable. None in a scene that simulates (_simulates)."""
    skins = [ob for ob in bpy.context.view_layer.objects
             if ob.type == 'MESH' and ob.mode == 'OBJECT' and not ob.hide_viewport and ob.library is None
             and ob.override_library is None
             and any(m.type == 'ARMATURE' and m.object == rig.object and m.show_viewport for m in ob.modifiers)]
    if not skins or _simulates(bpy.context.scene, bpy.context.view_layer):
        return []
    inputs = _inputs(rig.object)
    return [ob for ob in skins if ob not in inputs and ob.data not in inputs]


SIMULATIONS = {'CLOTH', 'SOFT_BODY', 'COLLISION', 'DYNAMIC_PAINT', 'FLUID', 'PARTICLE_SYSTEM'}


def _simulates(scene, view_layer) -> bool:
    """Whether evaluating the scene at a frame may cache a simulation's state there (physics, particles, rigid
    bodies, geometry-node simulation zones): a disabled skin would not collide in the frames cached."""
    if scene.rigidbody_world is not None:
        return True
    trees, seen = [], set()
    for ob in view_layer.objects:
        if any(m.type in SIMULATIONS for m in ob.modifiers):
            return True
        trees += [m.node_group for m in ob.modifiers if m.type == 'NODES' and m.node_group is not None]
    while trees:
        tree = trees.pop()
        if tree not in seen:
            seen.add(tree)
            if any(node.bl_idname == 'GeometryNodeSimulationOutput' for node in tree.nodes):
                return True
            trees += [node.node_tree for node in tree.nodes if getattr(node, "node_tree", None) is not None]
    return False


def _inputs(ob) -> set:
    """The data-blocks the armature's evaluation may read: its parents, its constraints' (and its bones') targets,
    its drivers' targets, and theirs in turn."""
    found, waiting = set(), [ob]
    while waiting:
        item = waiting.pop()
        if item is None or item in found:
            continue
        found.add(item)
        if isinstance(item, bpy.types.Object):
            bones = item.pose.bones if item.pose else ()
            constraints = [*item.constraints, *(c for pose_bone in bones for c in pose_bone.constraints)]
            waiting += [item.parent, item.data, *(getattr(c, name, None) for c in constraints
                                                   for name in ("target", "pole_target")),
                        *(t.target for c in constraints for t in getattr(c, "targets", ()))]
        anim = getattr(item, "animation_data", None)
        waiting += [t.id for d in (anim.drivers if anim is not None else ()) for v in d.driver.variables
                    for t in v.targets]
    return found


def read_track(rig: MappedRig, frames: np.ndarray) -> np.ndarray:
    """The evaluated poses at `frames` (T,) -> (T, 165)."""
    measured = _measure(rig, frames)
    rig.track.clear()
    rig.track.update(frames=np.array(frames, dtype=np.float64), measured=measured, fingerprint=_fingerprint(rig))
    return rig.converter.read(measured[0])


def _fingerprint(rig: MappedRig) -> bytes:
    """What the rig's evaluated animation depends on that a script or the user may change: its bones' channels
    and the keys of its action."""
    bones = rig.object.pose.bones
    parts = []
    for prop, size in (("location", 3), ("rotation_quaternion", 4), ("rotation_euler", 3),
                       ("rotation_axis_angle", 4), ("scale", 3)):
        values = np.empty(len(bones) * size, dtype=np.float32)
        bones.foreach_get(prop, values)
        parts.append(values.tobytes())
    channelbag = keyframes.object_channelbag(rig.object, create=False)
    for fcurve in channelbag.fcurves if channelbag is not None else ():
        co = np.empty(2 * len(fcurve.keyframe_points), dtype=np.float32)
        fcurve.keyframe_points.foreach_get("co", co)
        parts += [fcurve.data_path.encode(), co.tobytes()]
    return hashlib.sha1(b"".join(parts)).digest()


def _measured_track(rig: MappedRig, frames: np.ndarray):
    """_measure(rig, frames), taken from the read_track that preceded this write when it read the same frames of the
    rig as it still is (a job reads the track, solves and writes it back, with editing held in between: evaluating
    every frame once, not twice)."""
    track = dict(rig.track)
    rig.track.clear()  # a write follows: the measurement is stale after it
    if track and np.array_equal(track["frames"], frames) and track["fingerprint"] == _fingerprint(rig):
        return track["measured"]
    return _measure(rig, frames)


# --- Writing: the mapped bones' channels ------------------------------------------------------------------


def _written_bones(rig: MappedRig) -> list[int]:
    """The bones a write may set: every joint's write bone and the twist bones."""
    armature = rig.converter.armature
    return sorted({armature.index(n) for n in rig.bone_names if n} | {
        b for sources in rig.converter.written.values() for b in sources[1:]})


def _measure(rig: MappedRig, frames: np.ndarray | None = None) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The rig as evaluated at `frames` (T,) (None: as it is now, T = 1): the bones' rotation deltas
    (T, B, 3, 3) (evaluated_deltas) and the rotation channels {bone: (T, k)} of the bones a write may set.
    A plain FK rig's track comes from its F-curves (_channel_measure), without evaluating the scene."""
    from .rig_bridge import current_channels

    bones = _written_bones(rig)
    if frames is not None and _follows_channels(rig):
        measured = _channel_measure(rig, np.asarray(frames, dtype=np.float64), bones)
        if measured is not None:
            return measured
    pose_bones = [rig.object.pose.bones[rig.converter.armature.names[b]] for b in bones]

    def state():
        return _posed(rig, rig.evaluated), [current_channels(pose_bone) for pose_bone in pose_bones]

    states = _at_frames(rig, frames, state) if frames is not None else [state()]
    return (_deltas(rig, np.stack([posed for posed, _ in states]), rig.evaluated),
            {b: np.stack([channels[i] for _, channels in states]) for i, b in enumerate(bones)})


def _follows_channels(rig: MappedRig) -> bool:
    """Whether the bones the conversions evaluate turn by their own rotation channels and their parents' alone
    (plain FK: no constraint, driver or NLA track moves them, each inherits its parent's rotation), so their
    F-curves give the evaluated pose: the assumption rig_bridge.read_track makes on SMPL-X armatures."""
    anim = rig.object.animation_data
    if rig.constrained or (anim is not None and anim.use_nla and any(not t.mute for t in anim.nla_tracks)):
        return False
    names = [rig.converter.armature.names[b] for b in rig.evaluated]
    driven = tuple(f'pose.bones["{name}"]' for name in names)
    bones = rig.object.data.bones
    return (not any(d.data_path.startswith(driven) for d in (anim.drivers if anim is not None else ()))
            and all(bones[name].use_inherit_rotation or bones[name].parent is None for name in names))


def _channel_measure(rig: MappedRig, frames: np.ndarray, written: list[int]):
    """_measure at `frames` of a rig that _follows_channels, from its action's F-curves (current values where
    unkeyed) and its rest: each bone turns from rest by its parent's turn and its basis rotation expressed in
    armature space, batched over frames. None where a bone is scaled (its children's rotations would shear:
    the evaluated path handles that)."""
    from .rig_bridge import rotation_channels

    armature = rig.converter.armature
    channelbag = keyframes.object_channelbag(rig.object, create=False)
    deltas = np.broadcast_to(np.eye(3), (len(frames), *armature.rest.shape)).copy()
    channels = {}
    for b in rig.evaluated:  # parents first (ArmatureRest order)
        pose_bone = rig.object.pose.bones[armature.names[b]]
        scale = keyframes.evaluate_channel(channelbag, f'pose.bones["{pose_bone.name}"].scale', 3, frames,
                                           pose_bone.scale)
        if np.abs(scale - 1).max() > 1e-6:
            return None
        channels[b] = rotation_channels(pose_bone, channelbag, frames)
        rest = armature.rest[b]
        turn = rest @ rig_math.channels_to_matrix(pose_bone.rotation_mode, channels[b]) @ rest.T
        parent = armature.parents[b]
        deltas[:, b] = turn if parent < 0 else deltas[:, parent] @ turn
    return deltas, {b: channels[b] for b in written}


def _writable(rig: MappedRig, joints) -> list[int]:
    unwritable = rig.unwritable
    return [j for j in np.asarray(list(joints), dtype=int).tolist() if not unwritable[j]]


def _targets(rig: MappedRig, poses: np.ndarray, joints, current: np.ndarray) -> tuple[dict, dict]:
    """({write bone index: (T, 3, 3) rotation delta}, {read bone index: its expected delta}) for the writable
    `joints`.

    A write bone other than the bone read (Rigify's FK control and the ORG bone that copies it) turns in
    armature space as the read bone must turn from its `current` (T or 1, B, 3, 3) evaluated rotation."""
    chosen = _writable(rig, joints)
    armature = rig.converter.armature
    deltas = rig.converter.write(poses, chosen)
    targets, expected = {}, {}
    for name, sources in rig.converter.written.items():
        if JOINT_INDEX[name] in chosen:
            read, write = sources[0], armature.index(rig.bone_names[JOINT_INDEX[name]])
            turn = np.swapaxes(current[:, read], -1, -2)
            targets[write] = deltas[read] if write == read else deltas[read] @ turn @ current[:, write]
            targets.update({s: deltas[s] for s in sources[1:]})  # twist bones straighten
            expected[read] = deltas[read]
    return targets, expected


def pose_channels(rig: MappedRig, poses: np.ndarray, joints, reference_frame: float | None = None,
                  frames: np.ndarray | None = None) -> list[keyframes.Channel]:
    """Channels of the written bones for poses (T, 165) at `frames` (T,) (None: the current pose), continuous
    along T (see rig_bridge.pose_channels); bones not written keep their place relative to their parents as they
    are at each frame (bones not written keep their animation: with `frames`, the rig is measured at each).

    Without `frames`, on a rig whose bones follow their controls only through constraints (Rigify's spine), each
    pose is set on the rig as apply_pose sets it (in passes), its channels are taken there, and the rig's pose is
    restored: channels that reproduce the pose once set (a pose asset's), each pose's as set. Plain FK rigs take
    one measurement."""
    if frames is not None:
        return _channels(rig, poses, joints, _measured_track(rig, np.asarray(frames, dtype=np.float64)),
                         reference_frame)
    if not rig.constrained:
        return _channels(rig, poses, joints, _measure(rig), reference_frame)
    chosen = _writable(rig, joints)
    settled = [_settled_channels(rig, pose, chosen, reference_frame) for pose in poses]
    return [keyframes.Channel(channel.data_path, channel.group, np.concatenate([s[i].values for s in settled]))
            for i, channel in enumerate(settled[0])]


def _channels(rig: MappedRig, poses: np.ndarray, joints, measured, reference_frame: float | None):
    """pose_channels from the rig as `_measure` found it."""
    from .rig_bridge import bone_channels

    current, channels = measured
    targets, expected = _targets(rig, poses, joints, current)
    current_bases = {b: rig_math.channels_to_matrix(rig.object.pose.bones[rig.converter.armature.names[b]]
                                                    .rotation_mode, channels[b]) for b in targets}
    bases = bases_for(rig.converter.armature, current, current_bases, targets, expected, rig.copies)
    channelbag = keyframes.object_channelbag(rig.object, create=False) if reference_frame is not None else None
    if not bases:
        return []
    return bone_channels([rig.object.pose.bones[rig.converter.armature.names[b]] for b in bases],
                         np.stack(list(bases.values()), axis=1), channelbag, reference_frame)


def _set(rig: MappedRig, channels) -> None:
    for channel in channels:
        owner, prop = channel.data_path.rsplit(".", 1)
        setattr(rig.object.path_resolve(owner), prop, channel.values[0])


def _aim(rig: MappedRig, poses: np.ndarray, chosen: list[int], measured, previous: np.ndarray | None,
         steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass of writing the `chosen` joints of poses (T, 165) to the rig as `measured` (_measure, the same T
    frames): (the poses to write (T, 165), the errors (T, J, 3) from each joint's pose as read to its goal, the
    step sizes (T, J) taken; see rig_map.pass_steps, with the last pass's errors `previous` and `steps`).

    Joints not written keep their local rotations as the rig now has them (a limb in IK keeps its hand in place
    as the chest turns), and the others are placed relative to that."""
    count = len(poses)
    achieved = rig.converter.read(measured[0]).reshape(count, NUM_JOINTS, 3)
    goal = poses.reshape(count, NUM_JOINTS, 3).copy()
    kept = np.setdiff1d(np.arange(NUM_JOINTS), chosen)
    goal[:, kept] = achieved[:, kept]
    reached, wanted = achieved[:, chosen].reshape(-1, 3), goal[:, chosen].reshape(-1, 3)
    remaining = (Rotation.from_rotvec(reached).inv() * Rotation.from_rotvec(wanted)).as_rotvec()
    steps = pass_steps(remaining, None if previous is None else previous.reshape(-1, 3), steps.reshape(-1))
    longer = steps != 1
    wanted[longer] = stepped(reached[longer], remaining[longer], steps[longer])
    goal[:, chosen] = wanted.reshape(count, len(chosen), 3)
    return goal.reshape(count, -1), remaining.reshape(count, len(chosen), 3), steps.reshape(count, len(chosen))


def _errors_degrees(remaining: np.ndarray) -> np.ndarray:
    return np.degrees(np.linalg.norm(remaining, axis=-1))


def _pose_state(rig: MappedRig) -> dict:
    """The rotation channels of the bones a write may set (_written_bones: the others stay as they are),
    {bone: (property, values)}, for _restore."""
    from .rig_bridge import current_channels, rotation_path

    bones = [rig.object.pose.bones[rig.converter.armature.names[b]] for b in _written_bones(rig)]
    return {pb.name: (rotation_path(pb.rotation_mode), current_channels(pb)) for pb in bones}


def _restore(rig: MappedRig, state: dict) -> None:
    for name, (path, values) in state.items():
        setattr(rig.object.pose.bones[name], path, values)
    bpy.context.view_layer.update()


def _settle(rig: MappedRig, pose: np.ndarray, chosen: list[int]) -> tuple[np.ndarray, tuple | None]:
    """Set the `chosen` joints (writable, at least one) to pose (165,) (constrained parents and stretchy spines
    need more passes: up to PASSES, until within SETTLED_DEGREES; joints that follow their controls in part take
    longer steps, see _aim); returns each joint's error in degrees at the last measurement, and that measurement
    (_measure) where it is of the rig as left (settled), else None."""
    previous, steps = None, np.ones((1, len(chosen)))
    for _ in range(PASSES):
        measured = _measure(rig)
        aimed, remaining, steps = _aim(rig, pose[None], chosen, measured, previous, steps)
        errors = _errors_degrees(remaining)[0]
        if errors.max() < SETTLED_DEGREES:
            return errors, measured
        _set(rig, _channels(rig, aimed, chosen, measured, None))
        previous = remaining
    return errors, None


def _check_followed(rig: MappedRig, chosen: list[int], errors: np.ndarray) -> None:
    """DPoserError when a joint is off its pose by more than the tolerance (the caller restores the rig)."""
    stray = [JOINT_NAMES[j] for j, e in zip(chosen, errors) if e > WRITE_TOLERANCE_DEGREES]
    if stray:
        raise DPoserError(f"'{rig.object.name}': {', '.join(stray)} did not follow the bones DPoser-X wrote (a "
                          f"constraint or IK drives them): nothing was changed. Check the rig map's write bones.")


def _channels_as_set(rig: MappedRig, chosen: list[int], reference_frame: float | None, measured=None):
    """The channels of the `chosen` joints' bones as the rig now has them (as `measured`, when given: _settle's
    measurement), on every written bone."""
    measured = _measure(rig) if measured is None else measured
    return _channels(rig, rig.converter.read(measured[0]), chosen, measured, reference_frame)


def _settled_channels(rig: MappedRig, pose: np.ndarray, chosen: list[int], reference_frame: float | None):
    """The channels (one sample) that set the `chosen` joints to pose (165,) as apply_pose does, found on the rig
    itself, whose pose is restored exactly afterwards (DPoserError as apply_pose's)."""
    if not chosen:
        return []
    state = _pose_state(rig)
    try:
        errors, measured = _settle(rig, pose, chosen)
        channels = _channels_as_set(rig, chosen, reference_frame, measured)
    finally:
        _restore(rig, state)
    _check_followed(rig, chosen, errors)
    return channels


def apply_pose(rig: MappedRig, pose: np.ndarray, joints, key_frame: float | None = None) -> None:
    """Set the writable `joints` to pose (165,) in passes (_settle), and key them at `key_frame`. DPoserError, with
    the rig as it was, when a joint does not follow."""
    chosen = _writable(rig, joints)
    if not chosen:
        return
    state = _pose_state(rig)
    try:
        errors, measured = _settle(rig, pose, chosen)
        _check_followed(rig, chosen, errors)
    except Exception:
        _restore(rig, state)
        raise
    if key_frame is not None:
        keyframes.write_channels(keyframes.object_channelbag(rig.object),
                                 _channels_as_set(rig, chosen, None, measured), np.array([key_frame]))


def write_track(rig: MappedRig, poses: np.ndarray, joints, frames: np.ndarray, write):
    """Write the writable `joints` of poses (T, 165) at `frames` (T,) with write(channels, frames) (see
    rig_bridge.write_track), in passes as apply_pose sets a pose. After the first write, each pass evaluates the rig
    once at each keyed frame still off its pose (the frames where the written bones have keys: a curve's other
    frames follow its interpolation; see _keyed for the frames that drop out once settled) and writes the keyed
    frames again, those still off corrected, the others as they are (one write: its cost hardly depends on the
    frames it takes). One pass, with no evaluation after it, on a rig without constraints (plain FK follows
    exactly). Returns what the first write returned (the later ones set the same keys)."""
    from .rig_bridge import nearest_equivalent

    frames = np.asarray(frames, dtype=np.float64)
    chosen = _writable(rig, joints)
    if not chosen:
        return write([], frames)
    measured = _measured_track(rig, frames)
    aimed, remaining, steps = _aim(rig, poses, chosen, measured, None, np.ones((len(frames), len(chosen))))
    channels = _channels(rig, aimed, chosen, measured, frames[0])
    result = write(channels, frames)
    if not rig.constrained:
        return result
    keyed, own = _keyed(rig, channels, frames)
    at = keyed = np.flatnonzero(keyed)  # the frames corrected, with their last errors and steps (rig_map.pass_steps)
    remaining, steps = remaining[at], steps[at]
    keys = {}  # bone -> its channels at the keyed frames, as last measured
    for _ in range(PASSES - 1 if at.size else 0):
        measured = _measure(rig, frames[at])
        rows = np.searchsorted(keyed, at)
        for b, values in measured[1].items():
            keys.setdefault(b, values)[rows] = values
        aimed, remaining, steps = _aim(rig, poses[at], chosen, measured, remaining, steps)
        off = _errors_degrees(remaining).max(axis=1) >= SETTLED_DEGREES
        if not off.any():
            break
        off |= ~own[at]
        at, rows, aimed, remaining, steps = at[off], rows[off], aimed[off], remaining[off], steps[off]
        corrected = _channels(rig, aimed, chosen, (measured[0][off], {b: v[off] for b, v in measured[1].items()}),
                              frames[0])
        channels = []
        for channel in corrected:
            values = keys[rig.converter.armature.index(channel.group)].copy()
            values[rows] = nearest_equivalent(channel, values[rows])
            channels.append(keyframes.Channel(channel.data_path, channel.group, values))
        write(channels, frames[keyed])
    return result


def _keyed(rig: MappedRig, channels, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T,) bool each: `frames` next to a key of the channels' F-curves (sub-frame keys take both their neighbours),
    and those where every one of these curves has a key: their pose there is their keys' alone, so a pass that
    rewrites other frames leaves it as it was (the others are corrected while any frame is)."""
    channelbag = keyframes.object_channelbag(rig.object, create=False)
    keys = [keyframes.key_frames(channelbag.fcurves.find(channel.data_path, index=i))
            for channel in channels for i in range(channel.values.shape[1])] if channelbag is not None else []
    keys = [k for k in keys if k is not None]
    every = np.concatenate(keys or [np.empty(0)])
    near = np.isin(frames, np.floor(every)) | np.isin(frames, np.ceil(every))
    return near, near & np.logical_and.reduce([np.isin(frames, k) for k in keys])


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
