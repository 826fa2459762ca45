"""Bone layouts of users' rigs named like the presets, built from the project's rest skeleton (core.skeleton), for
the rig-map tests in core (numpy) and blender (edit bones, `build_rig`; `rigify_rig` generates Rigify's), and
bench.rig_map_overhead. No rig files: every layout is generated here. bpy is imported only by the builders.

A layout is a list of Bone(name, parent, head, tail) in Blender's Z-up armature space (the character faces -Y),
parents first. Rest options: an A-pose (arms lowered), a unit scale, and helper bones the maps leave out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from dposerx_blender.core.mocap.retarget import AIM_CHOICES, load_joint_maps
from dposerx_blender.core.skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS, REST_JOINTS, TIP_OFFSETS

CANONICAL_TO_ZUP = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # SMPL-X (Y up, faces +Z) -> Z up, faces -Y


@dataclass
class Bone:
    name: str
    parent: str | None
    head: np.ndarray
    tail: np.ndarray


def _first(entry):
    if isinstance(entry, list):
        return entry[0]
    return entry


def joint_positions(a_pose_degrees: float = 0.0) -> np.ndarray:
    """(55, 3) SMPL-X rest joints (canonical axes) with both arms lowered by `a_pose_degrees` at the shoulder."""
    joints = REST_JOINTS.copy()
    for side, sign in (("left", -1), ("right", 1)):
        pivot = joints[JOINT_INDEX[f"{side}_shoulder"]]
        turn = Rotation.from_euler("z", sign * a_pose_degrees, degrees=True).as_matrix()
        for j, name in enumerate(JOINT_NAMES):
            below = j
            while below >= 0 and JOINT_NAMES[below] != f"{side}_shoulder":
                below = PARENTS[below]
            if below >= 0 and name != f"{side}_shoulder":
                joints[j] = pivot + turn @ (joints[j] - pivot)
    return joints


def preset_layout(preset: str, a_pose_degrees: float = 0.0, scale: float = 1.0, skip=(), inserts=None,
                  leaves=None, origin_bone: str | None = None) -> list[Bone]:
    """Bones named by preset `preset` (first alternative of each joint), one per mapped SMPL-X joint (a twist pair
    gives two), joints in `skip` left out; inserts {bone: [names]}: unmapped bones placed on the segment from the
    bone's parent to it, in chain; leaves {bone: [names]}: unmapped helper bones hanging from it; origin_bone: an
    extra root bone at the floor."""
    joint_map = load_joint_maps()[preset]
    positions = joint_positions(a_pose_degrees)
    tips = {j: positions[j] + TIP_OFFSETS[j] for j in TIP_OFFSETS}
    tips.update({JOINT_INDEX[n]: positions[JOINT_INDEX[t]] for n, t in
                 (("left_wrist", "left_middle1"), ("right_wrist", "right_middle1"),
                  ("left_ankle", "left_foot"), ("right_ankle", "right_foot"))})
    mapped = {n: e for n, e in joint_map.joints.items() if n not in skip}
    bones: dict[str, Bone] = {}
    last_bone = {}  # joint -> the bone its children hang from
    to_blender = lambda p: CANONICAL_TO_ZUP @ p * scale  # noqa: E731
    if origin_bone:
        bones[origin_bone] = Bone(origin_bone, None, to_blender(positions[0] * [0, 0, 0] - [0, 0.95, 0]),
                                  to_blender(positions[0] * [0, 0, 0] - [0, 0.85, 0]))
    for j, name in enumerate(JOINT_NAMES):
        if name not in mapped:
            last_bone[j] = last_bone.get(PARENTS[j]) if PARENTS[j] >= 0 else origin_bone
            continue
        entry = mapped[name]
        head = positions[j]
        # Tail: the next mapped joint down the chain, else the tip.
        tail = None
        for _, targets in AIM_CHOICES[name]:
            if targets and targets[0] in mapped and name != "pelvis":
                tail = positions[JOINT_INDEX[targets[0]]]
                break
        if tail is None:
            tail = tips.get(j, head + (0, 0.05, 0) if name == "pelvis" else None)
        if tail is None:
            tail = head + 0.3 * (head - positions[PARENTS[j]])
        parent = last_bone.get(PARENTS[j]) if PARENTS[j] >= 0 else origin_bone
        main = entry["bone"] if isinstance(entry, dict) else _first(entry)
        if isinstance(entry, dict):  # a bend/twist pair splits the segment in two
            middle = (head + tail) / 2
            bones[main] = Bone(main, parent, to_blender(head), to_blender(middle))
            bones[entry["twist"]] = Bone(entry["twist"], main, to_blender(middle), to_blender(tail))
            last_bone[j] = entry["twist"]
        else:
            bones[main] = Bone(main, parent, to_blender(head), to_blender(tail))
            last_bone[j] = main
    for bone_name, names in (inserts or {}).items():
        bone = bones[bone_name]
        start = bones[bone.parent].head
        parent = bone.parent
        for k, name in enumerate(names, start=1):
            point = start + (bone.head - start) * k / (len(names) + 1)
            bones[name] = Bone(name, parent, point, point + (bone.head - start) / (len(names) + 1))
            parent = name
        bone.parent = parent
    for bone_name, names in (leaves or {}).items():
        bone = bones[bone_name]
        for name in names:
            bones[name] = Bone(name, bone_name, bone.head.copy(), (bone.head + bone.tail) / 2)
    return _parents_first(list(bones.values()))


def _parents_first(bones: list[Bone]) -> list[Bone]:
    by_name, out, seen = {b.name: b for b in bones}, [], set()

    def place(bone):
        if bone.name in seen:
            return
        if bone.parent is not None:
            place(by_name[bone.parent])
        seen.add(bone.name)
        out.append(bone)

    for bone in bones:
        place(bone)
    return out


def mapped_pose(joint_map_mapped: np.ndarray, seed: int, scale: float = 0.35) -> np.ndarray:
    """A random pose (165,) on the joints `joint_map_mapped` (55,) bool, identity elsewhere (not modelled)."""
    pose = np.random.default_rng(seed).normal(size=(55, 3)) * scale
    pose[~joint_map_mapped] = 0.0
    return pose.reshape(-1)


def rotation_errors_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (degrees) between the rotations of axis-angle arrays (..., 165) -> (..., 55)."""
    ra = Rotation.from_rotvec(a.reshape(-1, 3))
    rb = Rotation.from_rotvec(b.reshape(-1, 3))
    return np.degrees((ra.inv() * rb).magnitude()).reshape(a.shape[:-1] + (55,))


# The test rigs of the issue: named like each preset, A-pose for Mixamo, helper and in-chain twist bones.
TEST_RIGS = {
    "mixamo": dict(preset="mixamo", a_pose_degrees=45.0, scale=100.0, skip=("left_eye_smplhf", "right_eye_smplhf")),
    "ue4_mannequin": dict(preset="ue4_mannequin", scale=100.0, origin_bone="root",
                          skip=("left_eye_smplhf", "right_eye_smplhf"),
                          leaves={"upperarm_l": ["upperarm_twist_01_l"], "thigh_r": ["thigh_twist_01_r"]}),
    "vrm_humanoid": dict(preset="vrm_humanoid", a_pose_degrees=10.0, skip=("spine3",)),
    "mpfb_default": dict(preset="mpfb_default", a_pose_degrees=40.0, scale=10.0, skip=("jaw",),
                         inserts={"spine03": ["spine05", "spine04"], "lowerarm01.L": ["upperarm02.L"],
                                  "lowerleg01.R": ["upperleg02.R"]}),
}


def build_rig(name: str, prefix: str = "", roll_seed: int = 3):
    """An armature from a TEST_RIGS layout: random bone rolls, bones not connected."""
    import bpy

    rng = np.random.default_rng(roll_seed)
    armature = bpy.data.armatures.new(name)
    ob = bpy.data.objects.new(name, armature)
    bpy.context.scene.collection.objects.link(ob)
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode='EDIT')
    for bone in preset_layout(**TEST_RIGS[name]):
        edit = armature.edit_bones.new(prefix + bone.name)
        edit.head, edit.tail = bone.head, bone.tail
        edit.roll = rng.uniform(-np.pi, np.pi)
        if bone.parent:
            edit.parent = armature.edit_bones[prefix + bone.parent]
    bpy.ops.object.mode_set(mode='OBJECT')
    return ob


def rigify_rig(fk=True):
    """Rigify's generated rig from the Human metarig (Blender's bundled add-on), limbs switched to FK."""
    import addon_utils
    import bpy

    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    bpy.ops.pose.rigify_generate()
    ob = bpy.context.object
    if fk:
        for bone in ("upper_arm_parent.L", "upper_arm_parent.R", "thigh_parent.L", "thigh_parent.R"):
            ob.pose.bones[bone]["IK_FK"] = 1.0
    bpy.ops.object.mode_set(mode='OBJECT')
    return ob
