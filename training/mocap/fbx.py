"""FBX reader: armature animation -> `Motion`, through Blender's own FBX importer (bpy as a Python module).

What the reader does:
- Imports the file into a fresh empty scene (the current scene is wiped before and after: run it in a bpy
  process of its own, never in an artist's session).
- One `Motion` per action that animates an armature; frames are sampled at every integer frame of the action's
  key range, at the fps the importer sets from the file's time mode (scene fps / fps_base).
- Joints are the bones (joint at the bone head) plus an end site "<bone>_end" at the tail of every leaf bone.
  Names are kept as Blender gives them (namespace prefixes such as "mixamorig:" included).
- Everything is in world space: the armature object's matrix (the importer's axis conversion to Blender's
  Z-up and the file's unit scale) is baked into offsets and positions, so units are the file's scene units
  after Blender's unit conversion (metres for a centimetre FBX whose scale sits on the object).
- The global rotation delta of bone j at frame t is G_j = W3(t) Mpose_j(t) Mrest_j^-1 W3(first)^-1
  (armature-space pose and rest matrices, W3 = the object's rotation, followed when the object itself is
  animated; its scale must stay uniform and constant), and the local one is R_j = G_parent^T G_j (`Motion`
  convention). The rest skeleton is placed with the object's transform at the first frame.

Importer options, chosen deliberately:
- automatic_bone_orientation=True: the importer then points each bone at its children and a leaf bone along
  its parent. Bone heads and the deltas G_j do not depend on how a bone is oriented (the orientation cancels in
  Mpose Mrest^-1), so the only effect is on leaf tails, i.e. our end sites. Without it a leaf's tail follows the
  node's local Y axis, which MotionBuilder-style rigs (bones along X) point sideways or backwards.
- ignore_leaf_bones=False: explicit end nodes ("Head_end" in BVH-derived files) are real end sites; keep them.
- force_connect_children=False: it would move tails onto children.
"""
from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from bpy_extras import anim_utils

from dposerx_blender.core.errors import DPoserError
from dposerx_blender.core.mocap.motion import Motion

IMPORT_OPTIONS = {
    "use_anim": True,
    "automatic_bone_orientation": True,
    "ignore_leaf_bones": False,
    "force_connect_children": False,
    "use_custom_props": False,
    "use_image_search": False,
}


def read_fbx(path) -> list[Motion]:
    """Read every armature animation in an FBX file (usually one) as a `Motion` each."""
    path = Path(path)
    if not path.is_file():
        raise DPoserError(f"{path}: no such FBX file")
    _reset_scene()
    try:
        _import(path)
        animations = [(armature, action, slot)
                      for armature in _armatures(path)
                      for action, slot in _armature_actions(armature)]
        if not animations:
            raise DPoserError(f"{path}: no animation on the armature(s)")
        return [_sample(path, armature, action, slot, name=path.stem if len(animations) == 1
                        else f"{path.stem}/{action.name}")
                for armature, action, slot in animations]
    finally:
        _reset_scene()


def _reset_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)


def _import(path: Path):
    try:
        result = bpy.ops.import_scene.fbx(filepath=str(path), **IMPORT_OPTIONS)
    except RuntimeError as exc:  # the operator's error report, e.g. "ASCII FBX files are not supported"
        reason = str(exc).strip().splitlines()[0].removeprefix("Error: ")
        raise DPoserError(f"{path}: Blender's FBX importer failed: {reason}") from None
    if result != {"FINISHED"}:
        raise DPoserError(f"{path}: Blender's FBX importer did not finish ({', '.join(result)})")


def _armatures(path: Path) -> list:
    armatures = [obj for obj in bpy.context.scene.objects if obj.type == "ARMATURE"]
    if not armatures:
        raise DPoserError(f"{path}: no armature in the file")
    return armatures


def _armature_actions(armature) -> list:
    """(action, slot) pairs whose F-curves drive this armature's pose bones."""
    bone_names = set(armature.data.bones.keys())
    found = []
    for action in bpy.data.actions:
        for slot in action.slots:
            channelbag = anim_utils.action_get_channelbag_for_slot(action, slot)
            if slot.target_id_type in {"OBJECT", "UNSPECIFIED"} and channelbag is not None and any(
                    _pose_bone_name(fcurve.data_path) in bone_names for fcurve in channelbag.fcurves):
                found.append((action, slot))
    return found


def _pose_bone_name(data_path: str) -> str | None:
    prefix = 'pose.bones["'
    return data_path[len(prefix):data_path.find('"]')] if data_path.startswith(prefix) else None


def _key_range(action, slot) -> tuple[int, int]:
    """First and last keyed frame (Action.frame_range pads single-key actions by one frame)."""
    channelbag = anim_utils.action_get_channelbag_for_slot(action, slot)
    ranges = np.array([fcurve.range() for fcurve in channelbag.fcurves])
    return int(round(ranges[:, 0].min())), int(round(ranges[:, 1].max()))


def _joint_table(path: Path, armature) -> tuple[list, list, list]:
    """Bones depth-first (parents before children), an end site after each leaf.

    Returns joint names, parent indices and, per joint, the bone it belongs to (a leaf for its end site).
    """
    roots = [bone for bone in armature.data.bones if bone.parent is None]
    if len(roots) != 1:
        raise DPoserError(f"{path}: armature '{armature.name}' has several root bones "
                          f"({', '.join(bone.name for bone in roots)})")
    names, parents, bone_of_joint = [], [], []

    def visit(bone, parent: int):
        names.append(bone.name)
        parents.append(parent)
        bone_of_joint.append(bone.name)
        index = len(names) - 1
        for child in bone.children:
            visit(child, index)
        if not bone.children:
            names.append(f"{bone.name}_end")
            parents.append(index)
            bone_of_joint.append(bone.name)

    visit(roots[0], -1)
    return names, parents, bone_of_joint


def _sample(path: Path, armature, action, slot, name: str) -> Motion:
    animation = armature.animation_data or armature.animation_data_create()
    animation.action = action
    animation.action_slot = slot
    names, parents, bone_of_joint = _joint_table(path, armature)
    parents = np.array(parents)
    is_end = np.array([joint != bone for joint, bone in zip(names, bone_of_joint)])

    # Evaluated object and armature-space pose matrices, every frame (foreach_get: one call for all bones).
    scene = bpy.context.scene
    pose_bones = armature.pose.bones
    first, last = _key_range(action, slot)
    n_frames = last - first + 1
    flat = np.empty(len(pose_bones) * 16, dtype=np.float32)
    pose_matrices = np.empty((n_frames, len(pose_bones), 4, 4))
    worlds = np.empty((n_frames, 4, 4))
    for t, frame in enumerate(range(first, last + 1)):
        scene.frame_set(frame)
        worlds[t] = armature.matrix_world
        pose_bones.foreach_get("matrix", flat)
        pose_matrices[t] = flat.reshape(-1, 4, 4).transpose(0, 2, 1)  # Blender matrices are column-major
    pose_index = {pose_bone.name: i for i, pose_bone in enumerate(pose_bones)}
    pose_matrices = pose_matrices[:, [pose_index[bone] for bone in bone_of_joint]]
    world_rotations = worlds[:, :3, :3] / np.linalg.norm(worlds[:, :3, :3], axis=-2, keepdims=True)  # W3

    # Rest skeleton, placed by the object's transform at the first frame.
    bones = armature.data.bones
    rest_points = np.array([bones[bone].tail_local if end else bones[bone].head_local
                            for bone, end in zip(bone_of_joint, is_end)]) @ worlds[0, :3, :3].T + worlds[0, :3, 3]
    offsets = rest_points - np.where(parents[:, None] >= 0, rest_points[parents], 0.0)
    rest_inverse = np.linalg.inv(np.array([np.array(bones[bone].matrix_local)[:3, :3] for bone in bone_of_joint]))

    global_rotations = (world_rotations[:, None] @ pose_matrices[..., :3, :3] @ rest_inverse
                        @ world_rotations[0].T)
    rotations = global_rotations.copy()
    rotations[:, 1:] = np.swapaxes(global_rotations[:, parents[1:]], -1, -2) @ global_rotations[:, 1:]
    rotations[:, is_end] = np.eye(3)
    root_translation = np.einsum("tij,tj->ti", worlds[:, :3, :3], pose_matrices[:, 0, :3, 3]) + worlds[:, :3, 3]
    fps = scene.render.fps / scene.render.fps_base
    return Motion(name, names, parents, offsets, rotations, root_translation, fps, str(path))
