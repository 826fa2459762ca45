"""The prior's jobs on poses: complete, denoise a track, generate, vary, solve position pins.

Poses are AMASS-style axis-angle vectors, (N, 165) or (165,), SMPL-X joint order; joint 0 (global
orientation) is not modelled and always passes through. Masks are (55,) or (N, 55) bool, True = observed or
locked: those joints come back bit-exact. `prior` is what `weights.load_prior` returns. Every task is seeded
and deterministic for a given seed, takes an optional `progress(done, total)` callback (which may raise
`errors.Cancelled`), and raises `errors.DPoserError` on bad input before doing anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from . import cleaning, solvers
from .errors import DPoserError
from .layout import MODEL_DIM, POSE_DIM, joint_mask_to_model_mask, model_to_pose, pose_to_model
from .limits import limit_violations
from .rotations import axis_angle_to_matrix
from .skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, PART_JOINTS, forward_kinematics
from .solvers import (SAMPLED_COMPLETION, SAMPLERS, SCHEDULES, Progress, Schedule, complete_by_sampling, dposer_term,
                      optimize, prior_energy, sample_ddim)
from .sde import alpha_sigma


@dataclass
class Completion:
    poses: np.ndarray        # (N, 165) the most plausible hypothesis per pose
    hypotheses: np.ndarray   # (N, K, 165) most plausible first
    energy: np.ndarray       # (N, K) the prior energy of each hypothesis (solvers.prior_energy), ascending


@dataclass
class PinResult:
    pose: np.ndarray                # (165,)
    residual_mm: dict[int, float]   # joint index -> distance to its target


# ---------------------------------------------------------------------------------------------- input checks

def _poses(pose, name: str = "pose") -> tuple[np.ndarray, bool]:
    """-> (N, 165) float64 and whether a single (165,) pose was given."""
    array = np.asarray(pose, dtype=np.float64)
    single = array.ndim == 1
    array = np.atleast_2d(array)
    if array.ndim != 2 or array.shape[1] != POSE_DIM:
        raise DPoserError(f"{name} must have shape (N, {POSE_DIM}) or ({POSE_DIM},) (55 joints x axis-angle), "
                          f"got {np.shape(pose)}")
    if len(array) == 0:
        raise DPoserError(f"{name} is empty")
    bad = ~np.isfinite(array).all(1)
    if bad.any():
        raise DPoserError(f"{name} has NaN or infinite values (first at row {int(np.argmax(bad))})")
    return array, single


def _joint_mask(mask, rows: int, name: str = "mask") -> np.ndarray:
    """None (nothing observed), (55,) or (rows, 55) bool -> (rows, 55) bool."""
    if mask is None:
        return np.zeros((rows, NUM_JOINTS), bool)
    array = np.asarray(mask)
    if array.dtype != bool:
        raise DPoserError(f"{name} must be boolean (True = observed/locked), got {array.dtype}")
    if array.shape not in ((NUM_JOINTS,), (rows, NUM_JOINTS)):
        raise DPoserError(f"{name} must have shape (55,) or ({rows}, 55), got {array.shape}")
    return np.broadcast_to(array, (rows, NUM_JOINTS)).copy()


def _checked_seed(seed) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise DPoserError(f"seed must be an integer, got {seed!r}")
    return int(seed)


def _generator(seed) -> torch.Generator:
    return torch.Generator().manual_seed(_checked_seed(seed))


def _positive(value, name: str, integer: bool = False):
    if integer and (not isinstance(value, (int, np.integer)) or isinstance(value, bool)):
        raise DPoserError(f"{name} must be a whole number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise DPoserError(f"{name} must be positive, got {value!r}")
    return value


def _non_negative(value, name: str) -> float:
    if not np.isfinite(value) or value < 0:
        raise DPoserError(f"{name} must be zero or more, got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------------------------ conversion

def _normalised(prior, poses: np.ndarray) -> torch.Tensor:
    """(N, 165) float64 -> normalised model vectors (N, 162) float32."""
    return prior.normalizer.normalize(torch.from_numpy(pose_to_model(poses)).float())


def _to_poses(prior, x: torch.Tensor, keep_from: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Normalised model vectors (..., 162) -> poses (..., 165) float64 with the kept joints (and the global
    orientation) copied bit-exact from keep_from (..., 165)."""
    poses = model_to_pose(prior.normalizer.denormalize(x.detach()).double().numpy())
    keep = keep.copy()
    keep[..., 0] = True
    return np.where(np.repeat(keep, 3, axis=-1), keep_from, poses)


def _model_mask(joint_mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(joint_mask_to_model_mask(joint_mask))


def normalised_positions(prior, x: torch.Tensor, global_orient: torch.Tensor | None = None, rest=None,
               tips: bool = False) -> torch.Tensor:
    """Normalised model vectors (B, 162) -> joint positions (B, 55 [+ tips], 3) in metres, differentiable."""
    pose = model_to_pose(prior.normalizer.denormalize(x), global_orient)
    return forward_kinematics(axis_angle_to_matrix(pose.reshape(-1, NUM_JOINTS, 3)), rest, tips=tips)


# ----------------------------------------------------------------------------------------------------- tasks

COMPLETION_METHODS = ("sampling", "optimisation")


def complete(prior, pose, observed, hypotheses: int = 10, seed: int = 0, strength: float = 1.0,
             method: str | None = None, progress: Progress | None = None,
             schedule: Schedule | None = None) -> Completion:
    """Complete every unobserved joint, `hypotheses` per pose, ranked by prior energy (most plausible first).

    method "sampling": the mask-reading body network samples the missing body joints given the observed ones
    (few DDIM steps; strength 1 = the temperature tuned on validation, higher gives more typical poses, lower
    more varied ones); "optimisation": DPoser's variational completion with the paper's schedule (strength
    scales the prior's pull). None: sampling when the weights have a mask-reading body network. Either way,
    joints outside the body (hands, face) are completed by the optimisation, around the completed body.
    `schedule`: the optimisation's, with "data" and "prior" weights (default: looked up in SCHEDULES at the call).

    >>> result = complete(prior, pose, observed=mask, hypotheses=10, seed=0)   # pose (165,), mask (55,)
    >>> result.poses[0], result.hypotheses[0, 1]                               # best, second best
    """
    poses, _ = _poses(pose)
    mask = _joint_mask(observed, len(poses), "observed")
    _positive(hypotheses, "hypotheses", integer=True)
    strength = _non_negative(strength, "strength")
    method = method or ("sampling" if prior.masked_body is not None else "optimisation")
    if method not in COMPLETION_METHODS:
        raise DPoserError(f"unknown completion method '{method}' (choose {' or '.join(COMPLETION_METHODS)})")
    if method == "sampling" and prior.masked_body is None:
        raise DPoserError("these weights have no mask-reading body network: use method 'optimisation'")
    schedule = (schedule or SCHEDULES["complete"]).with_strength(strength)
    generator = _generator(seed)
    with torch.no_grad():
        x = _normalised(prior, poses)
    model_mask = _model_mask(mask)
    if method == "optimisation":
        completed = solvers.complete(prior.model, x, model_mask, hypotheses, schedule, generator, progress)
    else:
        temperature = SAMPLED_COMPLETION["temperature"] * 2.0 ** (1.0 - strength)
        completed = complete_by_sampling(prior.masked_body, prior.model, x, model_mask,
                                         partial(normalised_positions, prior, tips=True), hypotheses, temperature,
                                         schedule, generator, progress, bank=prior.pose_bank)
    energy = prior_energy(prior.model, completed.reshape(-1, MODEL_DIM), seed=seed).reshape(len(poses), hypotheses)
    order = torch.argsort(energy, dim=1, stable=True)
    completed = torch.take_along_dim(completed, order[..., None], dim=1)
    energy = torch.take_along_dim(energy, order, dim=1)
    hypotheses_out = _to_poses(prior, completed, poses[:, None], mask[:, None].repeat(hypotheses, 1))
    return Completion(hypotheses_out[:, 0], hypotheses_out, energy.numpy())


def denoise_track(prior, track, locked=None, fps: float = 30.0, strength: float = 1.0, seed: int = 0,
                  chunk: int = cleaning.WINDOW, overlap: int = cleaning.OVERLAP, frames_per_batch: int = 2048,
                  progress: Progress | None = None, schedule: Schedule | None = None) -> np.ndarray:
    """Clean a captured motion (T, 165): robust temporal smoothing of every joint's rotation with the noise
    measured on the track itself, glitches and frozen frames re-filled rather than smeared (core.cleaning),
    then the prior re-completes the joints of frames still outside anatomical limits (core.limits), and only
    those (DPoser completion, `frames_per_batch` frames at a time).

    strength scales the time scale of the smoothing: 1 = as much as the measured noise needs, 2 = twice as
    smooth, 0 = no change. Joints that do not move, or carry no measurable noise, keep their good frames
    bit-exact; locked joints and the global orientation always do. Long tracks run in windows of `chunk`
    frames cross-faded over `overlap` (bounded memory). `schedule`: the completion schedule for the frames the
    prior re-completes (default: SCHEDULES["complete"] at the call). See docs/benchmarks.md for the measured
    behaviour.
    """
    poses, _ = _poses(track, "track")
    locked_mask = _joint_mask(locked, 1, "locked")[0]
    _positive(fps, "fps")
    _positive(chunk, "chunk", integer=True)
    if not 0 <= overlap < chunk / 2:
        raise DPoserError(f"overlap must be at least 0 and under half the chunk ({chunk}), got {overlap}")
    _positive(frames_per_batch, "frames_per_batch", integer=True)
    strength = _non_negative(strength, "strength")
    generator = _generator(seed)
    free = np.flatnonzero(~locked_mask[1:]) + 1
    cleaned = cleaning.clean_track(poses, free, fps=fps, strength=strength, window=chunk, overlap=overlap,
                                   progress=progress).poses
    if strength == 0:
        return cleaned
    bad = limit_violations(cleaned) & ~locked_mask
    frames = np.flatnonzero(bad.any(1))
    for start in range(0, len(frames), frames_per_batch):
        rows = frames[start:start + frames_per_batch]
        with torch.no_grad():
            x = _normalised(prior, cleaned[rows])
        observed = ~bad[rows]
        completed = solvers.complete(prior.model, x, _model_mask(observed), 1, schedule or SCHEDULES["complete"],
                                     generator, progress)[:, 0]
        cleaned[rows] = _to_poses(prior, completed, cleaned[rows], observed)
    return cleaned


def generate(prior, count: int, seed: int = 0, steps: int = 10, sampler: str = "ddim", temperature: float = 1.0,
             condition=None, observed=None, parts=tuple(PART_JOINTS), eta: float = 1.0, batch: int = 1024,
             progress: Progress | None = None) -> np.ndarray:
    """Draw `count` poses (count, 165) from the prior. sampler "ddim" (few steps, interactive; eta 0 makes it
    deterministic, see solvers.sample_ddim) or "euler_maruyama" (the paper's sampler, 1000 steps). temperature
    scales the noise (< 1: more typical poses, > 1: more diverse). condition (165,) with observed (55,) bool:
    variations that keep those joints exactly.
    parts: what to generate among body, hands, face; the rest stays at the condition (or flat, zero rotation).
    """
    _positive(count, "count", integer=True)
    _positive(steps, "steps", integer=True)
    _positive(temperature, "temperature")
    if sampler not in SAMPLERS:
        raise DPoserError(f"unknown sampler '{sampler}' (choose {' or '.join(SAMPLERS)})")
    unknown = set(parts) - set(PART_JOINTS)
    if unknown or not parts:
        raise DPoserError(f"parts must be some of {', '.join(PART_JOINTS)}, got {list(parts)}")
    if observed is not None and condition is None:
        raise DPoserError("observed joints need a condition pose to take their values from")
    known_pose = _poses(condition, "condition")[0] if condition is not None else np.zeros((1, POSE_DIM))
    if len(known_pose) != 1:
        raise DPoserError("condition must be a single pose (165,)")
    keep = _joint_mask(observed, 1, "observed")[0]
    for part, joints in PART_JOINTS.items():
        if part not in parts:
            keep[list(joints)] = True
    generator = _generator(seed)
    draw = partial(sample_ddim, eta=eta) if sampler == "ddim" else SAMPLERS[sampler]
    known = _normalised(prior, known_pose)
    known_mask = _model_mask(keep)
    batches = [min(batch, count - i) for i in range(0, count, batch)]
    out = []
    for b, size in enumerate(batches):
        def batch_progress(done, total, b=b):
            if progress is not None:
                progress(b * total + done, len(batches) * total)

        x = temperature * torch.randn(size, MODEL_DIM, generator=generator)
        out.append(draw(prior.model, x, 1.0, steps, known=known.expand(size, -1),
                        known_mask=known_mask.expand(size, -1), temperature=temperature, generator=generator,
                        progress=batch_progress))
    return _to_poses(prior, torch.cat(out), np.repeat(known_pose, count, 0), np.repeat(keep[None], count, 0))


def vary(prior, pose, strength: float = 0.3, observed=None, seed: int = 0, count: int = 1, steps: int = 10,
         progress: Progress | None = None) -> np.ndarray:
    """Variations of one pose (count, 165), SDEdit-style: noise the pose to time t = strength (0-1], then run
    `steps` DDIM steps back, keeping the observed joints. Small strengths keep the pose's character."""
    poses, _ = _poses(pose)
    if len(poses) != 1:
        raise DPoserError("vary takes a single pose (165,)")
    if not 0 < strength <= 1:
        raise DPoserError(f"strength must be in (0, 1], got {strength!r}")
    _positive(count, "count", integer=True)
    _positive(steps, "steps", integer=True)
    keep = _joint_mask(observed, 1, "observed")[0]
    generator = _generator(seed)
    x0 = _normalised(prior, poses).expand(count, -1)
    alpha, sigma = alpha_sigma(torch.tensor(float(strength)))
    x_t = alpha * x0 + sigma * torch.randn(x0.shape, generator=generator)
    mask = _model_mask(keep).expand(count, -1)
    out = sample_ddim(prior.model, x_t, float(strength), steps, known=x0, known_mask=mask, generator=generator,
                      progress=progress)
    return _to_poses(prior, out, np.repeat(poses, count, 0), np.repeat(keep[None], count, 0))


def solve_pins(prior, pose, targets: dict, observed=None, rest_joints=None, seed: int = 0,
               progress: Progress | None = None, schedule: Schedule | None = None) -> PinResult:
    """Move unlocked joints so that pinned joints reach their targets, the prior keeping the pose natural and
    a weak pull keeping joints the pins do not need near where they were.

    targets {joint index: (3,) position in metres} in the SMPL-X frame of `rest_joints` (55, 3) (default: the
    project's skeleton), pelvis joint at its rest position, global orientation applied. `schedule`: with "data",
    "stay" and "prior" weights (default: looked up in SCHEDULES at the call).
    """
    poses, _ = _poses(pose)
    if len(poses) != 1:
        raise DPoserError("solve_pins takes a single pose (165,)")
    keep = _joint_mask(observed, 1, "observed")[0]
    if not targets:
        raise DPoserError("no pins: give at least one joint and target position")
    pinned, positions = [], []
    for joint, target in targets.items():
        if not isinstance(joint, (int, np.integer)) or not 0 < joint < NUM_JOINTS:
            raise DPoserError(f"cannot pin joint {joint!r}: give a joint index 1-54 (the pelvis is the root and "
                              f"keeps its position)")
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (3,) or not np.isfinite(target).all():
            raise DPoserError(f"the target of {JOINT_NAMES[joint]} must be 3 finite numbers, got {target!r}")
        movable = [a for a in _ancestors(PARENTS[joint]) if a > 0 and not keep[a]]
        if not movable:
            raise DPoserError(f"{JOINT_NAMES[joint]} cannot move: it and every joint above it are locked")
        pinned.append(int(joint))
        positions.append(target)
    if rest_joints is not None:
        rest_joints = np.asarray(rest_joints, dtype=np.float64)
        if rest_joints.shape != (NUM_JOINTS, 3) or not np.isfinite(rest_joints).all():
            raise DPoserError(f"rest_joints must be 55 finite 3D positions, got shape {rest_joints.shape}")
    generator = _generator(seed)
    x0 = _normalised(prior, poses)
    orient = torch.from_numpy(poses[:, :3]).float()
    rest = None if rest_joints is None else torch.from_numpy(rest_joints).float()
    goal = torch.from_numpy(np.stack(positions)).float()

    terms = {"data": lambda x, _step: ((normalised_positions(prior, x, orient, rest)[:, pinned] - goal) ** 2).sum((-1, -2)),
             "stay": lambda x, _step: ((x - x0) ** 2).sum(-1),
             "prior": dposer_term(prior.model, generator=generator)}
    x = optimize(x0, terms, schedule or SCHEDULES["pins"], free=~_model_mask(keep)[None], progress=progress)
    result = _to_poses(prior, x, poses, keep[None])[0]
    with torch.no_grad():
        final = forward_kinematics(axis_angle_to_matrix(torch.from_numpy(result).reshape(1, NUM_JOINTS, 3)),
                                   None if rest_joints is None else torch.from_numpy(rest_joints))[0]
    residual = {j: float(1000 * np.linalg.norm(final[j].numpy() - p)) for j, p in zip(pinned, positions)}
    return PinResult(result, residual)


def _ancestors(joint: int) -> list[int]:
    chain = []
    while joint >= 0:
        chain.append(joint)
        joint = PARENTS[joint]
    return chain
