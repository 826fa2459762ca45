"""Completion error, the paper's validation signal: occlude joints of held-out poses, complete them with k
hypotheses, and measure the positions the occluded rotations move (joints and segment tips, default rest
skeleton, millimetres): best of k, mean over k, and the mean-pose fill baseline."""
from __future__ import annotations

import numpy as np
import torch

from dposerx_blender.core.layout import MODEL_DIM, MODEL_SLICES, joint_mask_to_model_mask, model_to_pose
from dposerx_blender.core.rotations import axis_angle_to_matrix
from dposerx_blender.core.skeleton import (JOINT_INDEX, LEFT_HAND_JOINTS, NUM_JOINTS, OCCLUSION_GROUPS, PARENTS,
                                           RIGHT_HAND_JOINTS, TIP_JOINTS, forward_kinematics)
from dposerx_blender.core.network import MaskedTimeFC
from dposerx_blender.core.solvers import complete, sample_completion

# Where each part's vector sits in the model vector (hands in the right-hand slot: right-hand convention).
PART_LAYOUT = {"body": (("body", slice(0, 63)),), "hand": (("right_hand", slice(0, 45)),),
               "face": (("jaw", slice(0, 3)), ("eyes", slice(3, 9)))}
OCCLUDED = {
    "body": OCCLUSION_GROUPS["left_leg"],
    "hand": RIGHT_HAND_JOINTS[:6],  # index and middle fingers ("two fingers masked", as in the hand IK test)
    "face": (JOINT_INDEX["jaw"],),
    "whole": (JOINT_INDEX["left_wrist"],) + LEFT_HAND_JOINTS,  # DPoser-X: one hand masked with its wrist
}


def to_model(part: str, x: torch.Tensor) -> torch.Tensor:
    """Part vectors (..., D) -> model vectors (..., 162) with the other parts at zero rotation."""
    if part == "whole":
        return x
    out = x.new_zeros(x.shape[:-1] + (MODEL_DIM,))
    for name, sub in PART_LAYOUT[part]:
        out[..., MODEL_SLICES[name]] = x[..., sub]
    return out


def from_model(part: str, model: torch.Tensor) -> torch.Tensor:
    if part == "whole":
        return model
    return torch.cat([model[..., MODEL_SLICES[name]] for name, _ in PART_LAYOUT[part]], dim=-1)


def affected_points(occluded: tuple[int, ...]) -> np.ndarray:
    """Indices into forward_kinematics(..., tips=True) output of the points the occluded rotations move."""
    moved = np.zeros(NUM_JOINTS, bool)  # joints whose frame rotates with an occluded joint
    for j, p in enumerate(PARENTS):
        moved[j] = j in occluded or (p >= 0 and moved[p])
    joints = [j for j, p in enumerate(PARENTS) if p >= 0 and moved[p]]
    tips = [NUM_JOINTS + k for k, j in enumerate(TIP_JOINTS) if moved[j]]
    return np.array(joints + tips)


def positions(part: str, x_raw: torch.Tensor) -> torch.Tensor:
    """Raw part vectors (B, D) -> joint and tip positions (B, 55 + tips, 3) on the default skeleton."""
    pose = model_to_pose(to_model(part, x_raw))
    rot = axis_angle_to_matrix(pose.reshape(-1, NUM_JOINTS, 3))
    return forward_kinematics(rot, tips=True)


@torch.no_grad()
def _mpjpe(part, a, b, points) -> torch.Tensor:
    return 1000 * (positions(part, a)[:, points] - positions(part, b)[:, points]).norm(dim=-1).mean(dim=-1)


def completion_error(model, normalizer, split: dict, part: str, n_poses: int, device, seed: int = 0,
                     hypotheses: int = 10) -> dict:
    """Best-of-k and mean completion error (mm) on `n_poses` evenly spaced poses of a split, and the mean-pose
    fill error. For `whole`, poses are the rows with a left hand."""
    if part == "whole":
        rows = split["model"][split["present"][:, 1]]
    else:
        rows = split["poses"]
    rows = rows[np.linspace(0, len(rows) - 1, min(n_poses, len(rows))).astype(int)]
    truth = torch.from_numpy(rows).float().to(device)
    joint_mask = torch.ones(NUM_JOINTS, dtype=torch.bool)
    joint_mask[list(OCCLUDED[part])] = False
    mask = from_model(part, joint_mask_to_model_mask(joint_mask)).to(device).expand_as(truth)
    observed = normalizer.normalize(truth)
    generator = torch.Generator(device=device).manual_seed(seed)
    # A mask-reading body network is validated by the route it ships for: sampling given the observed joints.
    route = sample_completion if isinstance(model, MaskedTimeFC) else complete
    completed = route(model, observed, mask, hypotheses=hypotheses, generator=generator)
    completed = normalizer.denormalize(completed).cpu()
    mean_fill = normalizer.denormalize(torch.where(mask, observed, torch.zeros_like(observed))).cpu()
    points = affected_points(OCCLUDED[part])
    truth = truth.cpu()
    per_hypothesis = torch.stack([_mpjpe(part, completed[:, k], truth, points) for k in range(hypotheses)], 1)
    return {"best_of_k_mm": per_hypothesis.min(1).values.mean().item(),
            "mean_mm": per_hypothesis.mean().item(),
            "mean_fill_mm": _mpjpe(part, mean_fill, truth, points).mean().item(),
            "poses": len(rows), "hypotheses": hypotheses}
