"""SMPL-X armatures <-> pose arrays: the only place where Blender axes, units, bone rolls and rotation modes meet
SMPL-X conventions (the maths, and the one axes change, is in core.rig_math).

Pose arrays are (..., 165) float64 axis-angle in SMPL-X joint order, joint 0 = global orientation (pelvis,
including an optional parent bone "root"), in the rig's own SMPL-X frame (see rig_math.smplx_axes).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..core import rig_math
from ..core.errors import DPoserError
from ..core.skeleton import JOINT_NAMES
from . import keyframes, mapped_rig

ROOT_BONE = "root"
# The Meshcapade add-on drops the "_smplhf" suffix of the eye joints.
EYE_ALIASES = {"left_eye_smplhf": "left_eye", "right_eye_smplhf": "right_eye"}
QUATERNION_PATHS = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}


def rotation_path(mode: str) -> str:
    return QUATERNION_PATHS.get(mode, "rotation_euler")


def current_channels(pose_bone) -> np.ndarray:
    """The pose bone's rotation channels in its own mode, (k,)."""
    return np.array(getattr(pose_bone, rotation_path(pose_bone.rotation_mode)), dtype=np.float64)


@dataclass(frozen=True)
class Rig:
    """An armature object recognised as SMPL-X, with what the conversions need."""

    object: object
    bone_names: tuple[str, ...]  # (55,) bone of each SMPL-X joint
    axes: np.ndarray  # (3, 3) armature -> SMPL-X axes
    rest: np.ndarray  # (55, 3, 3) bone rest orientations in armature space
    root: str | None  # optional parent bone of the pelvis, counted in the global orientation
    metres_per_unit: float

    @property
    def pose_bones(self):
        return [self.object.pose.bones[name] for name in self.bone_names]


def armature_of(ob):
    """The armature a job works on: `ob` itself, or for a body mesh (the mannequin, the SMPL-X add-on's mesh) the
    armature deforming it or its armature parent; anything else as it is."""
    if ob is not None and ob.type == 'MESH':
        deforming = [m.object for m in ob.modifiers if m.type == 'ARMATURE' and m.object is not None]
        parent = [ob.parent] if ob.parent is not None and ob.parent.type == 'ARMATURE' else []
        return (deforming + parent + [ob])[0]
    return ob


# --- Users' rigs: a rig map (mapped_rig) stands between their bones and these same pose vectors --------------


def _or_mapped(function):
    """Route a call with a MappedRig (a user's rig through a rig map) to mapped_rig's function of the same name."""
    @functools.wraps(function)
    def routed(rig, *args, **kwargs):
        if isinstance(rig, mapped_rig.MappedRig):
            return getattr(mapped_rig, function.__name__)(rig, *args, **kwargs)
        return function(rig, *args, **kwargs)
    return routed


def unwritable(rig) -> np.ndarray:
    """(55,) bool: joints no job may change on this rig besides locked ones (a mapped rig's unmapped joints and
    those IK or a constraint overrides); none on an SMPL-X armature."""
    return rig.unwritable if isinstance(rig, mapped_rig.MappedRig) else np.zeros(55, bool)


def notes(rig) -> str:
    return rig.notes() if isinstance(rig, mapped_rig.MappedRig) else ""


_PROBLEMS: dict = {}


def rig_problem(ob) -> str | None:
    """Why no job can run on armature `ob` (neither SMPL-X nor matched by a rig map), or None; cheap enough for
    poll (cached per armature, its bone names and its map)."""
    key = (ob.as_pointer(), hash(tuple(ob.data.bones.keys())), mapped_rig.map_signature(ob))
    if key not in _PROBLEMS:
        problem = None
        if len(_smplx_bones(ob)[0]) < len(JOINT_NAMES) / 2 or mapped_rig.has_map(ob):
            try:
                mapped_rig.choose_map(ob)
            except DPoserError as exc:
                problem = str(exc)
        _PROBLEMS.clear() if len(_PROBLEMS) > 64 else None
        _PROBLEMS[key] = problem
    return _PROBLEMS[key]


def find_rig(ob):
    """The active armature (or the armature of an active body mesh) as an SMPL-X `Rig`, or a user's rig through
    its rig map (`mapped_rig.MappedRig`); DPoserError says what is wrong."""
    ob = armature_of(ob)
    if ob is None or ob.type != 'ARMATURE':
        raise DPoserError("Select an SMPL-X armature (the active object is not an armature).")
    if len(_smplx_bones(ob)[0]) < len(JOINT_NAMES) / 2 or mapped_rig.has_map(ob):
        return mapped_rig.find_mapped_rig(ob)
    return find_smplx_rig(ob)


def _smplx_bones(ob) -> tuple[list[str], list[str]]:
    bones = ob.data.bones
    names, missing = [], []
    for name in JOINT_NAMES:
        found = next((n for n in (name, EYE_ALIASES.get(name, name)) if n in bones), None)
        (names if found else missing).append(found or name)
    return names, missing


def find_smplx_rig(ob) -> Rig:
    """Recognise an SMPL-X armature by its bone names; DPoserError says what is wrong."""
    bones = ob.data.bones
    names, missing = _smplx_bones(ob)
    if missing:
        raise DPoserError(f"'{ob.name}' lacks SMPL-X bones: {', '.join(missing)}.")
    head = {name: np.array(bones[name].head_local) for name in names}
    left = head["left_hip"] - head["right_hip"]
    up = head["neck"] - head["pelvis"]
    try:
        axes = rig_math.smplx_axes(left, up)
    except ValueError:
        raise DPoserError(f"'{ob.name}': the hips and the spine of the rest pose are not at right angles; "
                          f"cannot tell which way is up.") from None
    rest = rig_math.nearest_rotation(np.array([bones[name].matrix_local.to_3x3() for name in names]))
    root = ROOT_BONE if ROOT_BONE in bones and bones[names[0]].parent == bones.get(ROOT_BONE) else None
    return Rig(ob, tuple(names), axes, rest, root, float(np.mean(ob.matrix_world.to_scale())))


def _to_smplx(rig: Rig, basis: np.ndarray, root: np.ndarray | None, frames=None) -> np.ndarray:
    """basis (T, 55, 3, 3), root rotation (T or 1, 3, 3) or None (see root_rotation) -> poses (T, 165);
    DPoserError naming the bone (and the frame of `frames`) for an invalid rotation."""
    local = rig_math.basis_to_smplx(basis, rig.rest, rig.axes)
    if root is not None:
        local[:, 0] = root @ local[:, 0]
    bad = ~np.isfinite(local).all((-1, -2))
    if bad.any():
        t, j = np.argwhere(bad)[0]
        where = f" at frame {frames[t]:g}" if frames is not None else ""
        raise DPoserError(f"Bone '{rig.bone_names[j]}' has an invalid (NaN or infinite) rotation{where}.")
    return Rotation.from_matrix(local).as_rotvec().reshape(len(basis), -1)


def rotation_channels(pose_bone, channelbag, frames: np.ndarray | None) -> np.ndarray:
    """The bone's rotation channels (T, k) in its own mode at `frames` from its F-curves in `channelbag` (its
    current value where unkeyed), or its current value (1, k) when `frames` is None."""
    mode, current = pose_bone.rotation_mode, current_channels(pose_bone)
    if frames is None:
        return current[None]
    path = f'pose.bones["{pose_bone.name}"].{rotation_path(mode)}'
    return keyframes.evaluate_channel(channelbag, path, rig_math.CHANNEL_SIZES[mode], frames, current)


def _bone_basis(pose_bone, channelbag, frames: np.ndarray | None) -> np.ndarray:
    """The bone's basis rotation (T, 3, 3) at `frames` (rotation_channels), (1, 3, 3) when `frames` is None."""
    return rig_math.channels_to_matrix(pose_bone.rotation_mode, rotation_channels(pose_bone, channelbag, frames))


def _object_channelbag(rig: Rig, frames):
    return keyframes.object_channelbag(rig.object, create=False) if frames is not None else None


def root_rotation(rig: Rig, frames: np.ndarray | None = None) -> np.ndarray | None:
    """The root bone's rotation in the rig's SMPL-X frame, (T, 3, 3) at `frames` (T,) from its animation, or
    (1, 3, 3) from its current value when `frames` is None; None for a rig without a root.

    The one evaluation of the root that reading (read_pose, read_track, read_translation) and writing
    (pose_channels, translation_channel) share, so a track written at some frames reads back the same there even
    when the root is animated."""
    if not rig.root:
        return None
    basis = _bone_basis(rig.object.pose.bones[rig.root], _object_channelbag(rig, frames), frames)
    rest = rig_math.nearest_rotation(np.array(rig.object.data.bones[rig.root].matrix_local.to_3x3()))[None]
    return rig_math.basis_to_smplx(basis[:, None], rest, rig.axes)[:, 0]


# --- Constraints: the pose on screen (evaluated) can differ from the rotation channels -------------------------
CONSTRAINT_TOLERANCE_RAD = 1e-3


def has_constraints(rig: Rig) -> bool:
    """Any active bone constraint (IK, Copy Rotation, ...): the visual pose may differ from the channels."""
    return any(c.enabled and c.influence > 0 for pb in rig.object.pose.bones for c in pb.constraints)


def _visual_basis(rig: Rig, pose_bones) -> np.ndarray:
    """The bones' evaluated rotations (constraints included) as basis rotations (n, 3, 3): what Visual Transform
    would key."""
    import bpy

    bpy.context.view_layer.update()
    ob = rig.object
    local = [ob.convert_space(pose_bone=pb, matrix=pb.matrix, from_space='POSE', to_space='LOCAL').to_3x3()
             for pb in pose_bones]
    return rig_math.nearest_rotation(np.array(local))


def overridden_joints(rig: Rig, joints) -> list[int]:
    """The joints among `joints` whose visual rotation differs from their channels: a constraint overrides what
    a job wrote there. None on a mapped rig: its constrained joints are unwritable, and its writes are checked
    against the evaluated pose (mapped_rig.apply_pose)."""
    joints = list(joints)
    if not joints or isinstance(rig, mapped_rig.MappedRig) or not has_constraints(rig):
        return []
    pose_bones = [rig.pose_bones[j] for j in joints]
    channels = np.concatenate([_bone_basis(pb, None, None) for pb in pose_bones])
    angles = rig_math.rotation_difference(channels, _visual_basis(rig, pose_bones))
    return [j for j, angle in zip(joints, angles) if angle > CONSTRAINT_TOLERANCE_RAD]


@_or_mapped
def read_pose(rig: Rig, visual: bool = True) -> np.ndarray:
    """The rig's current pose (165,): as seen on screen (constraints included), or with `visual` False from the
    rotation channels alone."""
    if visual and has_constraints(rig):
        basis = _visual_basis(rig, rig.pose_bones)
    else:
        basis = np.concatenate([_bone_basis(pb, None, None) for pb in rig.pose_bones])
    return _to_smplx(rig, basis[None], root_rotation(rig))[0]


@_or_mapped
def read_track(rig: Rig, frames: np.ndarray) -> np.ndarray:
    """The rig's animated poses at `frames` (T,) from its action's F-curves -> (T, 165)."""
    channelbag = _object_channelbag(rig, frames)
    basis = np.stack([_bone_basis(pb, channelbag, frames) for pb in rig.pose_bones], axis=1)
    return _to_smplx(rig, basis, root_rotation(rig, frames), frames)


@_or_mapped
def pose_channels(rig: Rig, poses: np.ndarray, joints, reference_frame: float | None = None,
                  frames: np.ndarray | None = None) -> list[keyframes.Channel]:
    """Channels for `joints` from poses (T, 165), in each bone's own rotation mode, continuous along T.

    The global orientation is taken apart from the root's rotation at `frames` (T,) (its animation there, as
    read_track reads it), or from its current rotation when `frames` is None (a single pose, as read_pose).
    The first sample follows the bone's value just before `reference_frame` (its animation there, if keyed)
    or its current value, so keys interpolate the short way from what precedes them.
    """
    if frames is not None and len(frames) != len(poses):
        raise ValueError(f"{len(poses)} poses for {len(frames)} frames")
    local = Rotation.from_rotvec(poses.reshape(len(poses), 55, 3)).as_matrix()
    root = root_rotation(rig, frames)
    if root is not None:
        local[:, 0] = np.swapaxes(root, -1, -2) @ local[:, 0]
    basis = rig_math.smplx_to_basis(local, rig.rest, rig.axes)
    channelbag = keyframes.object_channelbag(rig.object, create=False) if reference_frame is not None else None
    joints = list(joints)
    return bone_channels([rig.object.pose.bones[rig.bone_names[j]] for j in joints], basis[:, joints], channelbag,
                         reference_frame)


def bone_channels(pose_bones, basis: np.ndarray, channelbag, reference_frame) -> list[keyframes.Channel]:
    """The bones' rotation channels for basis rotations (T, n, 3, 3), each in its own rotation mode, continuous
    from its value just before `reference_frame` (its animation in `channelbag`, when given) or its current value
    (converted a rotation mode at a time)."""
    paths, references = [], []
    for pose_bone in pose_bones:
        paths.append(f'pose.bones["{pose_bone.name}"].{rotation_path(pose_bone.rotation_mode)}')
        reference = current_channels(pose_bone)
        if channelbag is not None:
            reference = keyframes.evaluate_channel(channelbag, paths[-1], len(reference), [reference_frame - 1],
                                                   reference)[0]
        references.append(reference)
    modes = [pose_bone.rotation_mode for pose_bone in pose_bones]
    values = [None] * len(modes)
    for mode in set(modes):
        same = [i for i, m in enumerate(modes) if m == mode]
        converted = rig_math.matrix_to_channels(mode, basis[:, same], np.stack([references[i] for i in same]))
        for k, i in enumerate(same):
            values[i] = converted[:, k]
    return [keyframes.Channel(path, pose_bone.name, value) for path, pose_bone, value in zip(paths, pose_bones, values)]


@_or_mapped
def apply_pose(rig: Rig, pose: np.ndarray, joints, key_frame: float | None = None) -> None:
    """Set `joints` of the rig to pose (165,); with `key_frame`, also key them there."""
    channels = pose_channels(rig, pose[None], joints, key_frame)
    for channel in channels:
        owner, prop = channel.data_path.rsplit(".", 1)
        setattr(rig.object.path_resolve(owner), prop, channel.values[0])
    if key_frame is not None:
        keyframes.write_channels(keyframes.object_channelbag(rig.object), channels, np.array([key_frame]))


@_or_mapped
def write_track(rig: Rig, poses: np.ndarray, joints, frames: np.ndarray, write):
    """Write `joints` of poses (T, 165) at `frames` (T,) with write(channels, frames) (channels sampled at those
    frames, see pose_channels; it keys them: key_track, update_track_keys) and return what it returns. A mapped
    rig whose controls drive its bones through constraints is written again where it did not follow
    (mapped_rig.write_track)."""
    return write(pose_channels(rig, poses, joints, frames[0], frames), frames)


def key_track(rig: Rig, poses: np.ndarray, joints, frames: np.ndarray) -> None:
    """Key `joints` of poses (T, 165) at `frames` (T,), replacing keys in that span only."""
    channelbag = keyframes.object_channelbag(rig.object)
    write_track(rig, poses, joints, frames, lambda channels, at: keyframes.write_channels(channelbag, channels, at))


def keyed_joints(rig: Rig, start: float, end: float) -> np.ndarray:
    """(55,) bool: the joints whose bone has a rotation F-curve with keys in [start, end] (a mapped rig: the bone
    it writes)."""
    channelbag = keyframes.object_channelbag(rig.object, create=False)
    keyed = np.zeros(55, bool)
    if channelbag is None:
        return keyed
    for j, name in enumerate(rig.bone_names):
        if not name:
            continue
        mode = rig.object.pose.bones[name].rotation_mode
        path = f'pose.bones["{name}"].{rotation_path(mode)}'
        curves = [channelbag.fcurves.find(path, index=i) for i in range(4 if mode in ("QUATERNION", "AXIS_ANGLE")
                                                                         else 3)]
        keyed[j] = any(((f >= start - 1e-3) & (f <= end + 1e-3)).any() for f in map(keyframes.key_frames, curves)
                       if f is not None)
    return keyed


def update_track_keys(rig: Rig, poses: np.ndarray, joints, frames: np.ndarray, add_curves: bool = False) -> int:
    """Write `joints` of poses (T, 165), sampled at every frame of `frames` (T,), into the keys the rig's
    rotation curves already have in that span (see keyframes.update_keys): sparse or dense, each curve keeps
    its keys' frames and interpolation. Bones without a rotation curve get none, unless `add_curves`: then
    they are keyed on every frame (key_track). Returns the number of keys written."""
    channelbag = keyframes.object_channelbag(rig.object)

    def write(channels, at: np.ndarray) -> int:
        written, missing = 0, []
        for channel in channels:
            curves = [channelbag.fcurves.find(channel.data_path, index=i) for i in range(channel.values.shape[1])]
            if not any(curves):
                missing.append(channel)
                continue
            current = keyframes.evaluate_channel(channelbag, channel.data_path, len(curves), at, channel.values[0])
            values = nearest_equivalent(channel, current)
            written += sum(keyframes.update_keys(c, at, values[:, i]) for i, c in enumerate(curves) if c)
        if add_curves and missing:
            keyframes.write_channels(channelbag, missing, at)
            written += sum(c.values.size for c in missing)
        return written

    return write_track(rig, poses, joints, frames, write)


def nearest_equivalent(channel: keyframes.Channel, current: np.ndarray) -> np.ndarray:
    """The channel's values as the same rotations written nearest to the curves' current values: quaternion
    sign per frame, Euler angles by whole turns (so sparse keys keep interpolating the way they did)."""
    values = channel.values
    if channel.data_path.endswith("rotation_quaternion"):
        return np.where(((values * current).sum(1) < 0)[:, None], -values, values)
    if channel.data_path.endswith("rotation_euler"):
        return values + 2 * np.pi * np.round((current - values) / (2 * np.pi))
    return values


@_or_mapped
def rest_joints(rig: Rig) -> np.ndarray:
    """Rest joint positions (55, 3) in metres, SMPL-X frame, pelvis at the origin (for FK on this skeleton)."""
    heads = np.array([rig.object.data.bones[name].head_local for name in rig.bone_names])
    return (heads - heads[0]) @ rig.axes.T * rig.metres_per_unit


@_or_mapped
def world_to_smplx(rig: Rig, point) -> np.ndarray:
    """A world-space point -> (3,) metres in the rig's SMPL-X frame relative to the posed pelvis."""
    from mathutils import Vector

    local = rig.object.matrix_world.inverted() @ Vector(point)
    pelvis = rig.object.pose.bones[rig.bone_names[0]].head
    return rig.axes @ np.array(local - pelvis) * rig.metres_per_unit


# --- Translation: the pelvis's offset from its rest position (AMASS `trans`), in metres, SMPL-X frame -------


@_or_mapped
def rest_pelvis(rig: Rig) -> np.ndarray:
    """The pelvis's rest position from the armature origin, (3,) metres in the rig's SMPL-X frame."""
    return rig.axes @ np.array(rig.object.data.bones[rig.bone_names[0]].head_local) * rig.metres_per_unit


def _translation_frame(rig: Rig, on_root: bool, frames: np.ndarray | None):
    """(bone, turn (T, 3, 3), shift (T, 3), to_bone (3, 3)): the bone that carries the translation and the maps
    offset = trans @ turn + shift (SMPL-X frame, metres, what the bone's location moves) and
    location = offset @ to_bone / metres_per_unit, per frame of `frames` (T,) (T = 1 for the current pose when
    None). A rotated root turns the pelvis about the root's head, as it does for the rotations (see
    root_rotation, evaluated at the same frames)."""
    if on_root and not rig.root:
        raise DPoserError(f"'{rig.object.name}' has no '{ROOT_BONE}' bone above the pelvis: put the translation "
                          f"on the pelvis.")
    turn, lever = np.eye(3)[None], np.zeros(3)
    if rig.root:
        turn = root_rotation(rig, frames)
        bones = rig.object.data.bones
        lever = rig.axes @ (np.array(bones[rig.bone_names[0]].head_local) - np.array(bones[rig.root].head_local))
        lever = lever * rig.metres_per_unit
    name = rig.root if on_root else rig.bone_names[0]
    rest = rig_math.nearest_rotation(np.array(rig.object.data.bones[name].matrix_local.to_3x3()))
    if on_root:  # the root's location moves everything; its rotation still turns the pelvis about its head
        return name, np.eye(3)[None], lever - turn @ lever, rig.axes @ rest
    return name, turn, lever @ turn - lever, rig.axes @ rest


@_or_mapped
def translation_channel(rig: Rig, trans: np.ndarray, on_root: bool = False,
                        frames: np.ndarray | None = None) -> keyframes.Channel:
    """trans (T, 3) -> the location channel of the pelvis (as the SMPL-X add-on keys it) or of the root bone, for
    keys at `frames` (T,) (the root's rotation there; its current one when None)."""
    name, turn, shift, to_bone = _translation_frame(rig, on_root, frames)
    values = ((trans[:, None] @ turn)[:, 0] + shift) @ to_bone / rig.metres_per_unit
    return keyframes.Channel(f'pose.bones["{name}"].location', name, values)


@_or_mapped
def read_translation(rig: Rig, frames: np.ndarray, on_root: bool = False) -> np.ndarray:
    """The translation (T, 3) at `frames` from the pelvis's (or root's) location F-curves; inverse of
    `translation_channel` at the same frames."""
    name, turn, shift, to_bone = _translation_frame(rig, on_root, frames)
    path = f'pose.bones["{name}"].location'
    location = keyframes.evaluate_channel(keyframes.object_channelbag(rig.object, create=False), path, 3, frames,
                                          rig.object.pose.bones[name].location)
    offset = location * rig.metres_per_unit @ to_bone.T - shift
    return (offset[:, None] @ np.swapaxes(turn, -1, -2))[:, 0]
