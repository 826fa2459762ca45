"""The SMPL-X skeleton as tables: 55 joint names and parents, part groups, occlusion groups, mirroring,
a licence-free rest skeleton and batched forward kinematics.

Frame (SMPL-X canonical): +Y up, +X the subject's left, +Z forward (the face looks along +Z). Rest pose is a
T-pose with palms down and thumbs forward.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# torch and smplx are imported inside forward_kinematics only: the tables load without them (Blender registers
# the extension without waiting for torch).
FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # SMPL-X order within each hand
# The 55 skeleton joints of SMPL-X (smplx's JOINT_NAMES[:55]): body, jaw and eyes, then three joints per finger.
JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw", "left_eye_smplhf",
    "right_eye_smplhf",
) + tuple(f"{side}_{finger}{k}" for side in ("left", "right") for finger in FINGERS for k in (1, 2, 3))
NUM_JOINTS = 55
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

_PARENT_NAMES = {
    "left_hip": "pelvis", "right_hip": "pelvis", "spine1": "pelvis",
    "left_knee": "left_hip", "right_knee": "right_hip", "spine2": "spine1",
    "left_ankle": "left_knee", "right_ankle": "right_knee", "spine3": "spine2",
    "left_foot": "left_ankle", "right_foot": "right_ankle",
    "neck": "spine3", "left_collar": "spine3", "right_collar": "spine3", "head": "neck",
    "left_shoulder": "left_collar", "right_shoulder": "right_collar",
    "left_elbow": "left_shoulder", "right_elbow": "right_shoulder",
    "left_wrist": "left_elbow", "right_wrist": "right_elbow",
    "jaw": "head", "left_eye_smplhf": "head", "right_eye_smplhf": "head",
}
for _side in ("left", "right"):
    for _finger in FINGERS:
        _PARENT_NAMES[f"{_side}_{_finger}1"] = f"{_side}_wrist"
        _PARENT_NAMES[f"{_side}_{_finger}2"] = f"{_side}_{_finger}1"
        _PARENT_NAMES[f"{_side}_{_finger}3"] = f"{_side}_{_finger}2"

PARENTS: tuple[int, ...] = tuple(-1 if n == "pelvis" else JOINT_INDEX[_PARENT_NAMES[n]] for n in JOINT_NAMES)

# Part groups (joint indices). Global orientation (pelvis, index 0) belongs to no part: it is not modelled.
BODY_JOINTS = tuple(range(1, 22))
JAW_JOINT = JOINT_INDEX["jaw"]
EYE_JOINTS = (JOINT_INDEX["left_eye_smplhf"], JOINT_INDEX["right_eye_smplhf"])
LEFT_HAND_JOINTS = tuple(range(25, 40))
RIGHT_HAND_JOINTS = tuple(range(40, 55))
# The one part -> joints table, in the model vector's order (core.layout slices it in this order).
PARTS = {
    "body": BODY_JOINTS,
    "left_hand": LEFT_HAND_JOINTS,
    "right_hand": RIGHT_HAND_JOINTS,
    "jaw": (JAW_JOINT,),
    "eyes": EYE_JOINTS,
}
# The parts a user switches on and off (tasks.generate's `parts`, the panel's toggles), as unions of PARTS.
PART_JOINTS = {"body": PARTS["body"], "hands": PARTS["left_hand"] + PARTS["right_hand"],
               "face": PARTS["jaw"] + PARTS["eyes"]}


def _joints(*names: str) -> tuple[int, ...]:
    return tuple(JOINT_INDEX[n] for n in names)


# Occlusion groups of the DPoser papers' completion protocol (body joints); "hands" also covers the finger
# joints, as in DPoser-X's whole-body protocol, which masks a hand together with its wrist.
OCCLUSION_GROUPS = {
    "left_leg": _joints("left_hip", "left_knee", "left_ankle", "left_foot"),
    "right_leg": _joints("right_hip", "right_knee", "right_ankle", "right_foot"),
    "left_arm": _joints("left_collar", "left_shoulder", "left_elbow", "left_wrist"),
    "right_arm": _joints("right_collar", "right_shoulder", "right_elbow", "right_wrist"),
    "trunk": _joints("spine1", "spine2", "spine3", "left_shoulder", "right_shoulder"),
    "hands": _joints("left_wrist", "right_wrist") + LEFT_HAND_JOINTS + RIGHT_HAND_JOINTS,
}
OCCLUSION_GROUPS["legs"] = OCCLUSION_GROUPS["left_leg"] + OCCLUSION_GROUPS["right_leg"]
OCCLUSION_GROUPS["arms"] = OCCLUSION_GROUPS["left_arm"] + OCCLUSION_GROUPS["right_arm"]


def _mirror_name(name: str) -> str:
    for a, b in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(a):
            return b + name[len(a):]
    return name


# MIRROR_INDEX[j]: the joint that j becomes under a left/right reflection (itself for centre joints).
MIRROR_INDEX: tuple[int, ...] = tuple(JOINT_INDEX[_mirror_name(n)] for n in JOINT_NAMES)

# --- Licence-free rest skeleton -------------------------------------------------------------------------
# Our own anthropometric T-pose for an adult of about 1.70 m, in metres, child offset from its parent,
# written for the centre line and the LEFT side; the right side is its mirror image (x -> -x).
# Segment lengths follow common anthropometric proportions of stature (thigh ~0.245 H, shank ~0.246 H,
# upper arm ~0.17 H, forearm ~0.15 H, hand ~0.11 H); no numbers come from SMPL-X model files.
# The directions of the spine, neck, head, collar, ankle and foot bones (spine2, spine3, neck, head,
# left_shoulder, left_foot offsets, the head and foot tips; a joint's other children turn with its bone) are the
# SMPL-X convention as estimated by `python -m training.calibrate_skeleton`: the directions for which the CMU
# training split, retargeted, has per-joint mean rotations equal to the AMASS training mean of DPoser-X
# (../shared/reference/amass_body_pose_stats.npz; only the directions were estimated, the lengths are ours).
_LEFT_AND_CENTRE_OFFSETS = {
    "pelvis": (0.0, 0.0, 0.0),
    "left_hip": (0.085, -0.075, -0.005),
    "spine1": (0.0, 0.105, -0.025),
    "left_knee": (0.01, -0.405, 0.005),
    "spine2": (0.0, 0.1333, -0.0222),
    "left_ankle": (-0.005, -0.41, -0.035),
    "spine3": (0.0, 0.0559, -0.0005),
    "left_foot": (-0.0002, -0.0318, 0.1353),
    "neck": (0.0, 0.2167, -0.0133),
    "left_collar": (0.07, 0.1208, -0.0057),
    "head": (0.0, 0.0996, -0.0136),
    "left_shoulder": (0.0955, 0.0701, -0.0253),
    "left_elbow": (0.27, 0.0, -0.01),
    "left_wrist": (0.25, 0.0, 0.005),
    "jaw": (0.0, 0.0081, 0.0344),
    "left_eye_smplhf": (0.032, 0.0823, 0.0779),
    # Fingers: T-pose hand along +X, palm down (-Y), thumb forward (+Z).
    "left_index1": (0.095, -0.008, 0.026),
    "left_index2": (0.038, -0.002, 0.0),
    "left_index3": (0.024, -0.002, 0.0),
    "left_middle1": (0.097, -0.008, 0.005),
    "left_middle2": (0.042, -0.002, 0.0),
    "left_middle3": (0.027, -0.002, 0.0),
    "left_pinky1": (0.082, -0.01, -0.035),
    "left_pinky2": (0.03, -0.002, -0.003),
    "left_pinky3": (0.019, -0.002, -0.002),
    "left_ring1": (0.091, -0.009, -0.016),
    "left_ring2": (0.039, -0.002, -0.002),
    "left_ring3": (0.025, -0.002, -0.001),
    "left_thumb1": (0.022, -0.014, 0.025),
    "left_thumb2": (0.03, -0.006, 0.026),
    "left_thumb3": (0.027, -0.002, 0.016),
}
# Far ends of the leaf segments (head top, toe tips, finger tips...), used to aim and draw leaf bones.
_LEFT_AND_CENTRE_TIPS = {
    "head": (0.0, 0.1702, -0.0052),
    "left_foot": (-0.001, -0.0094, 0.0611),
    "jaw": (0.0, -0.06, 0.085),
    "left_eye_smplhf": (0.0, 0.0, 0.025),
    "left_index3": (0.021, -0.002, 0.0),
    "left_middle3": (0.023, -0.002, 0.0),
    "left_pinky3": (0.018, -0.002, -0.001),
    "left_ring3": (0.022, -0.002, -0.001),
    "left_thumb3": (0.024, -0.002, 0.012),
}


def _mirrored_table(table: dict) -> dict:
    """Full table over both sides from the left/centre entries."""
    out = {}
    for name, offset in table.items():
        out[name] = offset
        if name != _mirror_name(name):
            out[_mirror_name(name)] = (-offset[0], offset[1], offset[2])
    return out


_OFFSETS = _mirrored_table(_LEFT_AND_CENTRE_OFFSETS)
REST_OFFSETS = np.array([_OFFSETS[n] for n in JOINT_NAMES], dtype=np.float64)  # (55, 3)
TIP_OFFSETS = {JOINT_INDEX[n]: np.array(o) for n, o in _mirrored_table(_LEFT_AND_CENTRE_TIPS).items()}


def rest_joints(offsets: np.ndarray = REST_OFFSETS) -> np.ndarray:
    """Rest joint positions from per-joint offsets. offsets (55, 3) -> joints (55, 3)."""
    joints = np.zeros_like(offsets)
    for j, p in enumerate(PARENTS):
        joints[j] = offsets[j] if p < 0 else joints[p] + offsets[j]
    return joints


REST_JOINTS = rest_joints()  # (55, 3), pelvis at the origin


TIP_JOINTS = tuple(TIP_OFFSETS)  # joints carrying a tip point, in the order forward_kinematics appends them
_TIP_VECTORS = np.stack([TIP_OFFSETS[j] for j in TIP_JOINTS])


def forward_kinematics(rot_mats: torch.Tensor, rest: torch.Tensor | np.ndarray | None = None,
                       tips: bool = False) -> torch.Tensor:
    """Posed joint positions from local joint rotations (global orientation = rot_mats[:, 0]).

    rot_mats (B, 55, 3, 3), rest (55, 3) or (B, 55, 3) rest joint positions (default: REST_JOINTS)
    -> joints (B, 55, 3), pelvis kept at its rest position; with tips=True (B, 55 + len(TIP_JOINTS), 3), the
    far ends of the leaf segments (head top, toes, finger tips...) appended in TIP_JOINTS order.
    Device and dtype follow rot_mats.
    """
    import torch
    from smplx.lbs import batch_rigid_transform

    batch = rot_mats.shape[0]
    rest = torch.as_tensor(REST_JOINTS if rest is None else rest, dtype=rot_mats.dtype, device=rot_mats.device)
    rest = rest.expand(batch, NUM_JOINTS, 3)
    parents = torch.tensor(PARENTS, dtype=torch.long, device=rot_mats.device)
    posed, transforms = batch_rigid_transform(rot_mats, rest, parents, dtype=rot_mats.dtype)
    if not tips:
        return posed
    index = torch.tensor(TIP_JOINTS, device=rot_mats.device)
    vectors = torch.as_tensor(_TIP_VECTORS, dtype=rot_mats.dtype, device=rot_mats.device)
    tip_points = posed[:, index] + torch.einsum("bjik,jk->bji", transforms[:, index, :3, :3], vectors)
    return torch.cat([posed, tip_points], dim=1)
