"""Pose vector layouts and the conversions between them.

- Pose vector (AMASS / SMPL-X order), 165 = 55 joints x 3 axis-angle, joint j at [3j, 3j + 3]:
  global orient | body 21 | jaw | left eye | right eye | left hand 15 | right hand 15.
- Model vector, 162 = body 63 | left hand 45 | right hand 45 | jaw 3 | eyes 6, without global orientation
  (not modelled, as in the paper). The left hand is stored MIRRORED into right-hand convention, so one hand
  network and one hand normaliser serve both hand slices (DPoser-X mirrors left hands the same way).

Functions accept numpy arrays or torch tensors and return the same kind.
"""
from __future__ import annotations

import numpy as np

from .skeleton import LEFT_HAND_JOINTS, MIRROR_INDEX, NUM_JOINTS, PARTS

POSE_DIM = 3 * NUM_JOINTS  # 165
MODEL_SLICES: dict[str, slice] = {}
_start = 0
for _part, _joints in PARTS.items():
    MODEL_SLICES[_part] = slice(_start, _start + 3 * len(_joints))
    _start += 3 * len(_joints)
MODEL_DIM = _start  # 162

# MODEL_JOINTS[k]: the joint whose rotation fills model entries [3k, 3k + 3].
MODEL_JOINTS = np.concatenate([np.asarray(j) for j in PARTS.values()])
_MODEL_FROM_POSE = (3 * MODEL_JOINTS[:, None] + np.arange(3)).reshape(-1)  # (162,) pose-vector indices
# Reflection x -> -x turns an axis-angle (x, y, z) into (x, -y, -z).
_REFLECT = np.array([1.0, -1.0, -1.0])
_MODEL_SIGN = np.ones(MODEL_DIM)
_MODEL_SIGN[MODEL_SLICES["left_hand"]] = np.tile(_REFLECT, len(LEFT_HAND_JOINTS))


def _as(x, constant: np.ndarray):
    """constant as the same kind, dtype and device as x."""
    if isinstance(x, np.ndarray):
        return constant.astype(x.dtype) if constant.dtype.kind == "f" else constant
    import torch

    dtype = x.dtype if constant.dtype.kind == "f" else torch.long
    return torch.as_tensor(constant, dtype=dtype, device=x.device)


def _check_last_dim(x, size: int, what: str):
    if x.shape[-1] != size:
        raise ValueError(f"{what} must have {size} values in its last dimension, got shape {tuple(x.shape)}")


def pose_to_model(pose):
    """pose (..., 165) -> model (..., 162); drops the global orientation and mirrors the left hand."""
    _check_last_dim(pose, POSE_DIM, "pose")
    return pose[..., _as(pose, _MODEL_FROM_POSE)] * _as(pose, _MODEL_SIGN)


def model_to_pose(model, global_orient=None):
    """model (..., 162), global_orient (..., 3) or None (zeros) -> pose (..., 165)."""
    _check_last_dim(model, MODEL_DIM, "model vector")
    values = model * _as(model, _MODEL_SIGN)
    if isinstance(model, np.ndarray):
        pose = np.zeros(model.shape[:-1] + (POSE_DIM,), dtype=model.dtype)
    else:
        import torch

        pose = torch.zeros(model.shape[:-1] + (POSE_DIM,), dtype=model.dtype, device=model.device)
    pose[..., _as(model, _MODEL_FROM_POSE)] = values
    if global_orient is not None:
        pose[..., :3] = global_orient
    return pose


def mirror_hand(hand_pose):
    """hand_pose (..., 45) of one hand -> the same pose for the other hand (reflection x -> -x)."""
    _check_last_dim(hand_pose, 45, "hand pose")
    return hand_pose * _as(hand_pose, np.tile(_REFLECT, 15))


def mirror_pose(pose):
    """pose (..., 165) -> the left/right mirrored pose (joints swapped, reflection x -> -x)."""
    _check_last_dim(pose, POSE_DIM, "pose")
    by_joint = pose.reshape(pose.shape[:-1] + (NUM_JOINTS, 3))
    swapped = by_joint[..., _as(pose, np.asarray(MIRROR_INDEX)), :] * _as(pose, _REFLECT)
    return swapped.reshape(pose.shape)


def joint_mask_to_model_mask(joint_mask):
    """joint_mask (..., 55) bool (True = observed) -> model_mask (..., 162) bool."""
    _check_last_dim(joint_mask, NUM_JOINTS, "joint mask")
    return joint_mask[..., _as(joint_mask, np.repeat(MODEL_JOINTS, 3))]
