"""Completion quality: occlude a group of joints of held-out poses, complete it with k hypotheses per method,
and measure the positions the occluded rotations move (training/evaluate.py's points and skeleton).

Every optimising method runs through `solvers.optimize` with the completion schedule (2 x 100 Adam steps,
lr 0.1, data weights 100 and 50) and `solvers.complete`'s start, data term and per-row prior weights (0.1, 0.2
divided by the number of rows); a baseline's energy is the "prior" term in place of the DPoser regulariser.
"""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dposerx_blender.core.layout import MODEL_SLICES, joint_mask_to_model_mask, model_to_pose
from dposerx_blender.core.skeleton import NUM_JOINTS, OCCLUSION_GROUPS
from dposerx_blender.core.limits import within_limits
from dposerx_blender.core.solvers import (SAMPLED_COMPLETION, SCHEDULES, bank_grafts, complete, complete_by_sampling,
                                          completion_data, completion_start, optimize, per_row_prior)
from dposerx_blender.core.tasks import normalised_positions
from training.evaluate import affected_points, positions, to_model

from .gmm import MaxMixtureEnergy
from .metrics import average_pairwise_distance
from .vposer import BODY_DIM, VPoser

GROUPS = ("left_leg", "legs", "arms", "trunk", "hands")
BODY = MODEL_SLICES["body"]
# obs (B, D), mask (B, D), hypotheses, generator -> completed normalised model vectors (B, K, D)
Method = Callable[[torch.Tensor, torch.Tensor, int, torch.Generator], torch.Tensor]


def test_poses(data_dir: Path, count: int, with_hands: bool) -> torch.Tensor:
    """`count` evenly spaced held-out body poses as raw model vectors (count, 162); hands flat (like the CMU
    tracks) or, with_hands, held-out left and right hand poses paired with them in order."""
    def spaced(rows):
        return torch.from_numpy(rows[np.linspace(0, len(rows) - 1, count).astype(int)]).float()

    with np.load(data_dir / "body" / "test.npz") as body:
        poses = to_model("body", spaced(body["poses"]))
    if with_hands:
        with np.load(data_dir / "whole" / "test.npz") as whole:
            for side, column in (("left_hand", 1), ("right_hand", 2)):
                alone = whole["present"][:, column] & ~whole["present"][:, 0]
                poses[:, MODEL_SLICES[side]] = spaced(whole["model"][alone])[:, MODEL_SLICES[side]]
    return poses


def _with_prior(start: torch.Tensor, to_model_vector: Callable, penalty: Callable, obs, keep) -> torch.Tensor:
    """`solvers.complete` with `penalty` (x (B, ...) -> (B,)) as the prior term, over x decoded by
    `to_model_vector`."""
    data = completion_data(obs, keep)
    terms = {"data": lambda x, step: data(to_model_vector(x), step), "prior": lambda x, _step: penalty(x)}
    x = optimize(start, terms, per_row_prior(SCHEDULES["complete"], len(obs)))
    with torch.no_grad():
        return torch.where(keep, obs, to_model_vector(x))


def dposer(model, schedule=SCHEDULES["complete"]) -> Method:
    """DPoser's optimisation (the paper's completion)."""
    return lambda obs, mask, k, generator: complete(model, obs, mask, k, schedule, generator)


def dposer_sampling(prior, draws_per_hypothesis: int = SAMPLED_COMPLETION["draws_per_hypothesis"],
                    bank: bool = True) -> Method:
    """What `tasks.complete` ships by default: the mask-reading body network samples the missing body joints,
    `draws_per_hypothesis` draws per hypothesis and (with `bank`) the pose bank's grafts reduced by
    `solvers.representatives` (hands, when missing, by the optimisation around each sampled body)."""
    points = partial(normalised_positions, prior, tips=True)
    return lambda obs, mask, k, generator: complete_by_sampling(
        prior.masked_body, prior.model, obs, mask, points, k, generator=generator,
        draws_per_hypothesis=draws_per_hypothesis, bank=prior.pose_bank if bank else None)


def no_prior() -> Method:
    """Data term only: the occluded dimensions keep their N(0, 1) start."""
    schedule = SCHEDULES["complete"].reweighted(lambda _w: 0.0, "prior")
    return lambda obs, mask, k, generator: complete(None, obs, mask, k, schedule, generator)


def training_mean() -> Method:
    """The training mean (zero in normalised space) in every occluded dimension; one hypothesis."""
    return lambda obs, mask, k, generator: torch.where(mask, obs, torch.zeros_like(obs))[:, None]


def _body_only(mask: torch.Tensor) -> None:
    if not mask[:, BODY.stop:].all():
        raise ValueError("this baseline models the body only: occlude body joints only")


def gmm(mixture, normalizer) -> Method:
    energy = MaxMixtureEnergy(mixture)

    def run(obs, mask, k, generator):
        _body_only(mask)
        obs_rows, keep, start = completion_start(obs, mask, k, generator)
        penalty = lambda x: energy(normalizer.denormalize(x)[:, BODY]) / BODY_DIM  # noqa: E731
        return _with_prior(start, lambda x: x, penalty, obs_rows, keep).reshape(len(obs), k, -1)
    return run


def vposer(vae: VPoser, normalizer) -> Method:
    """Optimise VPoser's latent code (start N(0, I)) under an L2 penalty, the body decoded from it."""
    mean, std = normalizer.mean[BODY], normalizer.std[BODY]
    vae.requires_grad_(False)  # only the latent code is optimised

    def run(obs, mask, k, generator):
        _body_only(mask)
        obs_rows, keep, _ = completion_start(obs, mask, k, generator)  # its start noise is drawn and unused
        z = torch.randn(len(obs_rows), vae.latent, generator=generator)

        def to_model_vector(z):
            return torch.cat([(vae.decode(z) - mean) / std, obs_rows[:, BODY.stop:]], 1)

        return _with_prior(z, to_model_vector, lambda z: 0.5 * (z**2).mean(1), obs_rows, keep).reshape(len(obs), k, -1)
    return run


def nearest_training(train_normalised: torch.Tensor) -> Method:
    """The k training poses nearest on the observed body dimensions supply the occluded ones."""
    def run(obs, mask, k, generator):
        _body_only(mask)
        observed_body = mask[0, BODY].float()
        distances = torch.cdist(obs[:, BODY] * observed_body, train_normalised * observed_body)
        nearest = distances.topk(k, largest=False).indices  # (B, k)
        out = obs[:, None].repeat(1, k, 1)
        out[..., BODY] = torch.where(mask[:, None, BODY], out[..., BODY], train_normalised[nearest])
        return out
    return run


def random_training(train_normalised: torch.Tensor) -> Method:
    """k training poses drawn at random supply the occluded body dimensions, whatever the observed ones are: the
    best of k measures how far plain coverage of the training distribution gets."""
    def run(obs, mask, k, generator):
        _body_only(mask)
        return bank_grafts(obs, mask, train_normalised, k, generator)
    return run


@torch.no_grad()
def evaluate(method: Method, truth_raw: torch.Tensor, normalizer, group: str, hypotheses: int, seed: int) -> dict:
    """Best-of-k and mean error (mm), APD across hypotheses (mm) on the points the group moves, and seconds."""
    joint_mask = np.ones(NUM_JOINTS, bool)
    joint_mask[list(OCCLUSION_GROUPS[group])] = False
    mask = torch.from_numpy(joint_mask_to_model_mask(joint_mask)).expand_as(truth_raw)
    obs = normalizer.normalize(truth_raw)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with torch.enable_grad():
        completed = method(obs, mask, hypotheses, generator)
    seconds = time.perf_counter() - start
    k = completed.shape[1]
    raw = normalizer.denormalize(completed.reshape(-1, obs.shape[1]))
    found_all = positions("whole", raw).reshape(len(obs), k, -1, 3)
    true_all = positions("whole", truth_raw)

    def errors(points):  # (B, k) mean distance (mm) over the points
        return 1000 * (found_all[:, :, points] - true_all[:, None, points]).norm(dim=-1).mean(-1)

    points = affected_points(OCCLUSION_GROUPS[group])
    moved, hidden = errors(points), errors(list(OCCLUSION_GROUPS[group]))
    apd = np.mean([average_pairwise_distance(1000 * f.numpy()) for f in found_all[:, :, points]])
    return {"best_mm": moved.min(1).values.mean().item(), "mean_mm": moved.mean().item(), "apd_mm": float(apd),
            "hidden_best_mm": hidden.min(1).values.mean().item(), "hidden_mean_mm": hidden.mean().item(),
            "within_limits": float(within_limits(model_to_pose(raw.double().numpy())).mean()),
            "hypotheses": k, "poses": len(obs), "seconds": seconds}
