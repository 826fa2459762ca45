"""Solvers over a noise predictor `eps_model(x, t)` in normalised pose space (k-diffusion style: small functions
over one contract; the pose-space tasks in `tasks.py` build on them).

- `optimize`: DPoser's variational diffusion sampling (paper Alg. 1, Eq. 5-7): Adam on the pose over named
  energy terms, the truncated timestep schedule (Eq. 11). Every optimisation task is this loop with its own
  terms and `Schedule`; the DPoser regulariser is the term `dposer_term` builds (one network forward per step,
  no backpropagation through the network), and a baseline prior is just another term.
- `complete`: pose completion (reference code `DPoserComp.optimize`) on top of `optimize`.
- `sample_euler_maruyama`, `sample_ddim`: generation by the reverse SDE (the paper's sampler) or few-step DDIM,
  from t = 1 (generation) or from a partly noised pose (SDEdit-style variation), optionally conditioned on
  known dimensions by replacement; `SAMPLERS` names them.
- `sample_completion`, `representatives`, `complete_by_sampling`: completion by sampling a mask-reading network,
  many draws reduced to a few hypotheses that cover them (k-medoids in joint-position space).
- `prior_energy`: the plausibility score used to rank hypotheses.

Energies follow one convention: per-row values summed over the batch (rows are poses or frames), so a
frame's gradient does not depend on how many other frames share its batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from .layout import MODEL_SLICES
from .sde import alpha_sigma, denoised, drift_and_diffusion, truncated_schedule

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]  # (done, total); may raise errors.Cancelled


@dataclass(frozen=True)
class Step:
    """Where `optimize` is: its round, the global step index (from 0) and the step's diffusion time t.
    `shared` lets the terms of one step share work (e.g. one forward kinematics pass)."""

    round: int
    index: int
    t: float
    shared: dict = field(default_factory=dict)


Term = Callable[[torch.Tensor, Step], torch.Tensor]  # x (B, D), step -> per-row energy (B,)


@dataclass(frozen=True)
class Schedule:
    """One optimisation task: `rounds` outer iterations of `steps` Adam steps, t falling from t_max to t_min in
    each round; `weights` {term name: weight per round}, "prior" being the DPoser regulariser's (or a baseline
    prior's). A term whose weight is 0 in a round is not evaluated in it."""

    rounds: int
    steps: int
    t_max: float
    t_min: float
    lr: float
    weights: dict[str, tuple[float, ...]]
    lr_decay: float = 1.0  # the learning rate of round r is lr * lr_decay**r

    def reweighted(self, change: Callable[[float], float], *names: str) -> "Schedule":
        """The schedule with the weights of the named terms (those it has) passed through `change`."""
        return replace(self, weights={name: tuple(change(w) for w in weights) if name in names else weights
                                      for name, weights in self.weights.items()})

    def with_strength(self, strength: float) -> "Schedule":
        """The prior (and smoothness) pull scaled by `strength` (1 = the tuned schedule, 0 = data only)."""
        return self.reweighted(lambda w: w * strength, "prior", "smooth")

    @property
    def total_steps(self) -> int:
        return self.rounds * self.steps


# Each task's schedule and weights, in one place.
SCHEDULES = {
    # Paper sec. 4.4: 2 x 100 steps, lr 0.1, t 0.15 -> 0.05, data 100/(1+it), prior 0.1 (1+it).
    "complete": Schedule(rounds=2, steps=100, t_max=0.15, t_min=0.05, lr=0.1,
                         weights={"data": (100.0, 50.0), "prior": (0.1, 0.2)}),
    # Paper sec. 4.5 (40 mm setting): 3 x 60 steps, lr 0.03, t 0.25 -> 0.05, data 100/(1+it^2),
    # smoothness 10 (1+it), prior 0.1 (1+it) ("constant" weighting); data and smoothness are joint-position L2
    # norms in metres.
    "denoise": Schedule(rounds=3, steps=60, t_max=0.25, t_min=0.05, lr=0.03,
                        weights={"data": (100.0, 50.0, 20.0), "smooth": (10.0, 20.0, 30.0), "prior": (0.1, 0.2, 0.3)}),
    # Position pins, after the paper's IK (sec. 4.7: t 0.2 -> 0.05, data up and prior down per round), with a
    # last prior-free round so pins are reached to the millimetre, and a pull towards the starting pose so
    # joints the pins do not need stay where the animator put them. Squared distances in metres.
    # The learning rate falls per round: Adam's step size, not the weights, limits the final precision.
    "pins": Schedule(rounds=4, steps=60, t_max=0.2, t_min=0.05, lr=0.05, lr_decay=0.3,
                     weights={"data": (1e4, 3e4, 1e5, 3e5), "stay": (0.01, 0.01, 0.01, 0.01),
                              "prior": (0.1, 0.05, 0.02, 0.0)}),
}


def dposer_loss(eps_model: EpsModel, x: torch.Tensor, t: float, weighting: str,
                noise: torch.Tensor | None = None, generator=None) -> torch.Tensor:
    """The DPoser regulariser w_t ||x - stopgrad(x0_hat(x_t, t))||^2 per row: x (B, D) -> (B,).

    weighting "completion": 0.5 sqrt(1 + alpha/sigma), mean over dimensions; "constant": 0.5, sum over
    dimensions (the reference code's two choices). noise (B, D): the z of x_t = alpha x + sigma z (default:
    drawn from `generator`).
    """
    t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
    alpha, sigma = alpha_sigma(t_batch)
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    with torch.no_grad():
        x_t = alpha[:, None] * x + sigma[:, None] * noise
        x0_hat = denoised(x_t, eps_model(x_t, t_batch), t_batch)
    squared = (x - x0_hat) ** 2
    if weighting == "completion":
        return 0.5 * torch.sqrt(1 + alpha / sigma) * squared.mean(1)
    if weighting == "constant":
        return 0.5 * squared.sum(1)
    raise ValueError(f"unknown prior weighting '{weighting}'")


def dposer_term(eps_model: EpsModel, weighting: str = "completion", noise: Callable[[int], torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> Term:
    """The DPoser regulariser as a term (`dposer_loss` at the step's t). noise(step index) -> (B, D): its noise
    at a global step (default: fresh draws from `generator`)."""
    def term(x, step):
        return dposer_loss(eps_model, x, step.t, weighting, None if noise is None else noise(step.index), generator)
    return term


def optimize(x: torch.Tensor, terms: dict[str, Term], schedule: Schedule, free: torch.Tensor | None = None,
             progress: Progress | None = None) -> torch.Tensor:
    """Minimise sum over terms of weight * term(x, step).sum() over x (B, D) by Adam, the weights per round from
    `schedule.weights` (which must name every term). free (B, D) bool: the entries Adam may move (default
    all); the others stay bit-exact.
    """
    unweighted = set(terms) - set(schedule.weights)
    if unweighted:
        raise ValueError(f"the schedule has no weights for the terms {sorted(unweighted)}")
    start = x.detach()
    x = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=schedule.lr, betas=(0.9, 0.99))
    index = 0
    for round_index in range(schedule.rounds):
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr * schedule.lr_decay**round_index
        for t in truncated_schedule(schedule.steps, schedule.t_max, schedule.t_min).tolist():
            step = Step(round_index, index, t)
            loss = sum(schedule.weights[name][round_index] * term(x, step).sum() for name, term in terms.items()
                       if schedule.weights[name][round_index])
            optimizer.zero_grad()
            loss.backward()
            if free is not None:
                x.grad.mul_(free)
            optimizer.step()
            index += 1
            if progress is not None:
                progress(index, schedule.total_steps)
    return x.detach() if free is None else torch.where(free, x.detach(), start)


def completion_start(observed: torch.Tensor, mask: torch.Tensor, hypotheses: int,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of a completion, `hypotheses` per pose: observed (B, D) and mask (B, D) repeated -> (obs, keep, start)
    each (B * hypotheses, D), start = the observed values, N(0, 1) noise in the occluded dimensions (each
    hypothesis its own draw, as in the reference code)."""
    batch, dim = observed.shape
    obs = observed[:, None].expand(batch, hypotheses, dim).reshape(-1, dim)
    keep = mask[:, None].expand(batch, hypotheses, dim).reshape(-1, dim)
    noise = torch.randn(obs.shape, generator=generator, device=obs.device, dtype=obs.dtype)
    return obs, keep, torch.where(keep, obs, noise)


def completion_data(obs: torch.Tensor, keep: torch.Tensor) -> Term:
    """The completion data term: the reference code's MSE over all entries, as a per-row share."""
    return lambda x, _step: ((x - obs) ** 2 * keep).sum(1) / keep.numel()


def per_row_prior(schedule: Schedule, rows: int) -> Schedule:
    """The reference code averages its terms over the batch; `optimize` sums per-row terms. Dividing the prior's
    per-row means by the number of rows too keeps the paper's balance between the data and prior terms."""
    return schedule.reweighted(lambda w: w / rows, "prior")


def complete(eps_model: EpsModel, observed: torch.Tensor, mask: torch.Tensor, hypotheses: int = 10,
             schedule: Schedule = SCHEDULES["complete"], generator: torch.Generator | None = None,
             progress: Progress | None = None) -> torch.Tensor:
    """Complete normalised poses from their observed dimensions, `hypotheses` samples per pose.

    observed (B, D) normalised poses (values where mask is False are ignored), mask (B, D) bool, True =
    observed -> (B, hypotheses, D); observed dimensions are returned exactly. As in the reference code, the
    occluded dimensions start from N(0, 1) noise (`completion_start`), every dimension is optimised with a data
    term on the observed ones, and the observed ones are reset at the end.
    """
    batch, dim = observed.shape
    obs, keep, start = completion_start(observed, mask, hypotheses, generator)
    terms = {"data": completion_data(obs, keep), "prior": dposer_term(eps_model, generator=generator)}
    x = optimize(start, terms, per_row_prior(schedule, len(obs)), progress=progress)
    return torch.where(keep, obs, x).reshape(batch, hypotheses, dim)


# Sampled completion with a mask-reading network (network.MaskedTimeFC): few DDIM steps, eta, temperature, draws
# per returned hypothesis and the reduction's mean weight (`representatives`) chosen on the validation split
# (`python -m training.tune_completion`).
SAMPLED_COMPLETION = {"steps": 20, "eta": 1.0, "temperature": 1.6, "draws_per_hypothesis": 20, "mean_weight": 1.0,
                      "bank_per_hypothesis": 40}


@torch.no_grad()
def sample_completion(masked_model, observed: torch.Tensor, mask: torch.Tensor, hypotheses: int = 10,
                      steps: int = SAMPLED_COMPLETION["steps"], eta: float = SAMPLED_COMPLETION["eta"],
                      temperature: float = SAMPLED_COMPLETION["temperature"],
                      generator: torch.Generator | None = None, progress: Progress | None = None) -> torch.Tensor:
    """Complete normalised poses by sampling p(missing | observed) with a network that reads the mask.

    observed (B, D), mask (B, D) bool (True = observed, whole joints) -> (B, hypotheses, D); each hypothesis
    starts from its own noise, the network sees the observed values and the mask at every step, and the
    observed entries are returned exactly."""
    batch, dim = observed.shape
    known = observed.repeat_interleave(hypotheses, 0)
    known_mask = mask.repeat_interleave(hypotheses, 0)
    x = temperature * torch.randn(known.shape, generator=generator, device=known.device, dtype=known.dtype)

    def eps_model(x, t):
        return masked_model(x, t, known, known_mask)

    x0 = sample_ddim(eps_model, x, steps=steps, known=known, known_mask=known_mask, temperature=temperature, eta=eta,
                     generator=generator, progress=progress)
    return torch.where(known_mask, known, x0).reshape(batch, hypotheses, dim)


@torch.no_grad()
def representatives(points: torch.Tensor, k: int,
                    mean_weight: float = SAMPLED_COMPLETION["mean_weight"], iterations: int = 10) -> torch.Tensor:
    """Choose k of each row's draws as its hypotheses: with the draws standing in for the posterior, the k draws
    (medoids) that minimise the expected error of the best of k plus `mean_weight` x the expected error of the
    mean of k, where the error between two point sets is the benchmark's (mean distance over the points). At
    weight 0 the picks cover the draws (the best of k gets as close as k real draws can to wherever the truth
    is in the sampled distribution); a higher weight pulls them towards the draws' centre, the most typical
    poses. Greedy choice, then Voronoi iterations (each cluster's best member), which never raise the cost.
    points (B, N, P, C) -> (B, k) indices into N, distinct unless draws coincide."""
    by_point = points.transpose(1, 2)  # (B, P, N, C)
    distance = torch.stack([torch.cdist(row, row).mean(0) for row in by_point])  # (B, N, N)
    penalty = mean_weight / k * distance.mean(-1)  # each draw's share of the mean-of-k term
    nearest = torch.full(distance.shape[:2], torch.inf, dtype=distance.dtype, device=distance.device)
    picks = torch.empty(len(points), k, dtype=torch.long, device=points.device)
    taken = torch.zeros_like(nearest, dtype=torch.bool)
    for j in range(k):
        cost = torch.minimum(nearest[:, None], distance).mean(-1) + penalty  # (B, candidate)
        picks[:, j] = cost.masked_fill(taken, torch.inf).argmin(1)
        taken.scatter_(1, picks[:, j, None], True)
        nearest = torch.minimum(nearest, torch.take_along_dim(distance, picks[:, j, None, None], 1)[:, 0])
    for _ in range(iterations):
        members = torch.nn.functional.one_hot(torch.take_along_dim(distance, picks[..., None], 1).argmin(1), k)
        members = members.transpose(1, 2).bool()  # (B, k, N)
        cost = members.to(distance.dtype) @ distance / distance.shape[-1] + penalty[:, None]
        moved = cost.masked_fill(~members, torch.inf).argmin(-1)
        moved = torch.where(members.any(-1), moved, picks)
        if torch.equal(moved, picks):
            break
        picks = moved
    return picks


def bank_grafts(observed: torch.Tensor, mask: torch.Tensor, bank: torch.Tensor, count: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """observed (B, 162) model vectors, mask (B, 162), bank (N, 63) normalised body poses -> (B, count, 162): each
    pose with its hidden body joints taken from `count` bank poses drawn uniformly (with replacement)."""
    body = MODEL_SLICES["body"]
    rows = torch.randint(len(bank), (len(observed), count), generator=generator)
    grafts = observed[:, None].repeat(1, count, 1)
    grafts[..., body] = torch.where(mask[:, None, body], grafts[..., body], bank[rows.to(bank.device)].to(observed))
    return grafts


def complete_by_sampling(masked_body, eps_model: EpsModel, observed: torch.Tensor, mask: torch.Tensor,
                         positions: Callable[[torch.Tensor], torch.Tensor], hypotheses: int = 10,
                         temperature: float = SAMPLED_COMPLETION["temperature"],
                         schedule: Schedule = SCHEDULES["complete"], generator: torch.Generator | None = None,
                         progress: Progress | None = None,
                         draws_per_hypothesis: int = SAMPLED_COMPLETION["draws_per_hypothesis"],
                         mean_weight: float = SAMPLED_COMPLETION["mean_weight"], bank: torch.Tensor | None = None,
                         bank_per_hypothesis: int = SAMPLED_COMPLETION["bank_per_hypothesis"]) -> torch.Tensor:
    """Whole-body model vectors (B, 162): the body by `sample_completion` with the mask-reading body network,
    `draws_per_hypothesis` draws per hypothesis, plus `bank_per_hypothesis` grafts of training poses from `bank`
    (`bank_grafts`; none without a bank), reduced to `hypotheses` by `representatives` (with `mean_weight`) on
    `positions` (normalised model vectors (R, 162) -> joint positions (R, J, 3)); then, if hands or face have
    missing entries, DPoser's optimisation (`complete`, with `eps_model`) fills them with each hypothesis's body
    held fixed. -> (B, hypotheses, 162), observed entries exact.

    The grafts are exact samples of the training distribution for the hidden joints; the network's draws add what
    the observed joints say about them. Where the network's draws are narrower than the truth's spread (arms and
    trunk hidden, docs/model_card.md), the reduction takes its hypotheses from the grafts."""
    body = MODEL_SLICES["body"]
    rest_missing = not bool(mask[:, body.stop:].all())
    stages = 2 if rest_missing else 1

    def stage_progress(stage):
        return None if progress is None else lambda done, total: progress(stage * total + done, stages * total)

    draws = hypotheses * draws_per_hypothesis
    sampled = sample_completion(masked_body, observed[:, body], mask[:, body], draws, temperature=temperature,
                                generator=generator, progress=stage_progress(0))
    candidates = observed[:, None].repeat(1, draws, 1)
    candidates[..., body] = sampled
    if bank is not None and bank_per_hypothesis and not bool(mask[:, body].all()):
        candidates = torch.cat([candidates, bank_grafts(observed, mask, bank, hypotheses * bank_per_hypothesis,
                                                        generator)], 1)
    points = positions(candidates.reshape(-1, candidates.shape[-1]))
    picks = representatives(points.reshape(*candidates.shape[:2], *points.shape[1:]), hypotheses, mean_weight)
    completed = torch.take_along_dim(candidates, picks[..., None], dim=1)
    if not rest_missing:
        return completed
    row_mask = mask.repeat_interleave(hypotheses, 0).clone()
    row_mask[:, body] = True
    solved = complete(eps_model, completed.reshape(-1, completed.shape[-1]), row_mask, 1, schedule, generator,
                      stage_progress(1))
    return solved.reshape(completed.shape)


@torch.no_grad()
def prior_energy(eps_model: EpsModel, x: torch.Tensor, times: tuple[float, ...] = (0.05, 0.1, 0.15),
                 draws: int = 8, seed: int = 0) -> torch.Tensor:
    """Plausibility score (lower = more plausible): the denoising residual ||x - x0_hat(x_t, t)||^2 averaged over
    dimensions, `draws` noise draws and the completion schedule's times. It estimates the expected DPoser
    regulariser, which is small where the learned density is high; every row sees the same noise draws
    (common random numbers), so rows are ranked on the pose, not on luck. x (B, D) -> (B,)."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    total = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    for t in times:
        t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
        alpha, sigma = alpha_sigma(t_batch)
        for _ in range(draws):
            z = torch.randn(x.shape[1], generator=generator, device=x.device, dtype=x.dtype).expand_as(x)
            x_t = alpha[:, None] * x + sigma[:, None] * z
            total += ((x - denoised(x_t, eps_model(x_t, t_batch), t_batch)) ** 2).mean(1)
    return total / (len(times) * draws)


@torch.no_grad()
def sample_euler_maruyama(eps_model: EpsModel, x: torch.Tensor, t_start: float = 1.0, steps: int = 1000,
                          t_end: float = 1e-3, known: torch.Tensor | None = None,
                          known_mask: torch.Tensor | None = None, temperature: float = 1.0,
                          generator: torch.Generator | None = None, progress: Progress | None = None) -> torch.Tensor:
    """The reverse sub-VP SDE from x (B, D) at t_start down to t_end, dt = -t_start/steps (paper: 1000 steps
    from t = 1); returns the last step's noise-free mean (B, D).

    known (B, D) with known_mask (B, D) bool: those entries are conditioned on by replacement (re-noised to the
    next time after each step) and are returned exactly. temperature scales the fresh noise of each step (the
    caller scales the starting noise): < 1 trades diversity for typicality.
    """
    batch = x.shape[0]
    times = torch.linspace(t_start, t_end, steps, device=x.device)
    dt = -t_start / steps
    x_mean = x
    for i, t in enumerate(times):
        t_batch = t.expand(batch)
        drift, diffusion = drift_and_diffusion(x, t_batch)
        eps = eps_model(x, t_batch)
        _, sigma = alpha_sigma(t_batch)
        x_mean = x + (drift + diffusion[:, None] ** 2 * eps / sigma[:, None]) * dt
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = x_mean + temperature * diffusion[:, None] * math.sqrt(-dt) * z
        if known is not None:
            alpha_n, sigma_n = alpha_sigma(times[min(i + 1, steps - 1)].expand(batch))
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = torch.where(known_mask, alpha_n[:, None] * known + sigma_n[:, None] * z, x)
            x_mean = torch.where(known_mask, known, x_mean)
        if progress is not None:
            progress(i + 1, steps)
    return x_mean


@torch.no_grad()
def sample_ddim(eps_model: EpsModel, x: torch.Tensor, t_start: float = 1.0, steps: int = 10, t_end: float = 1e-3,
                known: torch.Tensor | None = None, known_mask: torch.Tensor | None = None, temperature: float = 1.0,
                eta: float = 1.0, generator: torch.Generator | None = None,
                progress: Progress | None = None) -> torch.Tensor:
    """DDIM steps on the marginals (alpha_t, sigma_t) from x (B, D) at t_start down to t_end, one network call
    per step (the paper's DPoser* uses 10 deterministic ones); returns the last clean estimate (B, D).

    eta is the share of the next noise level drawn fresh instead of reusing the predicted noise: 0 is
    deterministic DDIM, 1 re-noises the clean estimate. On our weights deterministic DDIM drifts into
    implausible finger angles (docs/api.md has the numbers), so the default is 1. known, known_mask and
    temperature as in `sample_euler_maruyama` (the clean estimate's known entries are set to `known` before
    each step).
    """
    batch = x.shape[0]
    times = torch.linspace(t_start, t_end, steps + 1, device=x.device)
    for i in range(steps):
        t, t_next = times[i].expand(batch), times[i + 1].expand(batch)
        alpha, sigma = alpha_sigma(t)
        x0 = denoised(x, eps_model(x, t), t)
        if known is not None:
            x0 = torch.where(known_mask, known, x0)
        eps = (x - alpha[:, None] * x0) / sigma[:, None]
        alpha_n, sigma_n = alpha_sigma(t_next)
        fresh = eta * sigma_n[:, None]
        x = alpha_n[:, None] * x0 + torch.sqrt(sigma_n[:, None] ** 2 - fresh**2) * eps
        if eta:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + temperature * fresh * z
        if progress is not None:
            progress(i + 1, steps)
    return x0


SAMPLERS = {"ddim": sample_ddim, "euler_maruyama": sample_euler_maruyama}
