"""Solvers over a noise predictor `eps_model(x, t)` in normalised pose space.

`complete` is DPoser's variational diffusion sampling for pose completion (paper Alg. 1 and Eq. 5-7, reference
code `DPoserComp.optimize`): Adam on the pose with a data term on observed dimensions and the DPoser
regulariser, one network forward per step and no backpropagation through the network.
"""
from __future__ import annotations

from typing import Callable

import torch

from .sde import alpha_sigma, denoised, drift_and_diffusion, truncated_schedule

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def dposer_loss(eps_model: EpsModel, x: torch.Tensor, t: float, weight: str, generator=None) -> torch.Tensor:
    """The DPoser regulariser w_t ||x - stopgrad(x0_hat(x_t, t))||^2, averaged over batch and dimensions.

    weight: "completion" (0.5 sqrt(1 + alpha/sigma), the reference code's choice for completion) or
    "constant" (0.5, its choice for denoising and IK).
    """
    t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
    alpha, sigma = alpha_sigma(t_batch)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    with torch.no_grad():
        x_t = alpha[:, None] * x + sigma[:, None] * noise
        x0_hat = denoised(x_t, eps_model(x_t, t_batch), t_batch)
    w = 0.5 * torch.sqrt(1 + alpha / sigma) if weight == "completion" else torch.full_like(alpha, 0.5)
    return (w[:, None] * (x - x0_hat) ** 2).mean()


def complete(eps_model: EpsModel, observed: torch.Tensor, mask: torch.Tensor, hypotheses: int = 10,
             outer_iterations: int = 2, steps: int = 100, lr: float = 0.1, t_max: float = 0.15,
             t_min: float = 0.05, generator: torch.Generator | None = None) -> torch.Tensor:
    """Complete normalised poses from their observed dimensions, `hypotheses` samples per pose.

    observed (B, D) normalised poses (values where mask is False are ignored), mask (B, D) bool, True =
    observed -> (B, hypotheses, D); observed dimensions are returned exactly. Occluded dimensions start from
    N(0, 1) noise (each hypothesis its own); per outer iteration `it` the weights are data 100/(1+it) and
    prior 0.1 (1+it), with t falling from t_max to t_min (the paper's truncated schedule).
    """
    batch, dim = observed.shape
    obs = observed[:, None].expand(batch, hypotheses, dim).reshape(-1, dim)
    keep = mask[:, None].expand(batch, hypotheses, dim).reshape(-1, dim)
    noise = torch.randn(obs.shape, generator=generator, device=obs.device, dtype=obs.dtype)
    x = torch.where(keep, obs, noise).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr, betas=(0.9, 0.99))
    for it in range(outer_iterations):
        for t in truncated_schedule(steps, t_max, t_min).tolist():
            data = ((x - obs) ** 2 * keep).mean()
            loss = 100.0 / (1 + it) * data + 0.1 * (1 + it) * dposer_loss(eps_model, x, t, "completion", generator)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return torch.where(keep, obs, x.detach()).reshape(batch, hypotheses, dim)


@torch.no_grad()
def sample_euler_maruyama(eps_model: EpsModel, shape: tuple[int, int], steps: int = 1000, t_end: float = 1e-3,
                          generator: torch.Generator | None = None, device=None,
                          callback: Callable[[dict], None] | None = None) -> torch.Tensor:
    """Generation by the reverse sub-VP SDE with Euler-Maruyama steps from t = 1 to t_end (the paper's sampler:
    1000 steps, the noise-free mean returned at the end). shape (B, D) -> normalised samples (B, D)."""
    x = torch.randn(shape, generator=generator, device=device)
    times = torch.linspace(1.0, t_end, steps, device=device)
    dt = -1.0 / steps
    x_mean = x
    for i, t in enumerate(times):
        t_batch = t.expand(shape[0])
        drift, diffusion = drift_and_diffusion(x, t_batch)
        _, sigma = alpha_sigma(t_batch)
        score = -eps_model(x, t_batch) / sigma[:, None]
        x_mean = x + (drift - diffusion[:, None] ** 2 * score) * dt
        x = x_mean + diffusion[:, None] * (-dt) ** 0.5 * torch.randn(shape, generator=generator, device=device)
        if callback is not None:
            callback({"step": i, "t": float(t), "x": x_mean})
    return x_mean
