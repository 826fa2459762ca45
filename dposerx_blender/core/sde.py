"""The sub-VP SDE of DPoser (Song et al. 2021, "Score-Based Generative Modeling through SDEs", sec. 3.4):
linear beta(t) from BETA_MIN to BETA_MAX on continuous t in [0, 1].

x_t = alpha_t x_0 + sigma_t z with alpha_t = exp(m(t)), sigma_t = 1 - exp(2 m(t)),
m(t) = -1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min. All functions take t as a tensor and broadcast.
"""
from __future__ import annotations

import torch

BETA_MIN = 0.1
BETA_MAX = 20.0
T_EPS = 1e-5  # smallest training time (DPoser samples t ~ U(1e-5, 1))


def log_mean_coeff(t: torch.Tensor) -> torch.Tensor:
    return -0.25 * t**2 * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Marginal mean coefficient and standard deviation at time t (same shape as t)."""
    m = log_mean_coeff(t)
    return torch.exp(m), 1.0 - torch.exp(2.0 * m)


def beta(t: torch.Tensor) -> torch.Tensor:
    return BETA_MIN + t * (BETA_MAX - BETA_MIN)


def drift_and_diffusion(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward SDE dx = f dt + g dw: f (B, D) and g (B,) for x (B, D), t (B,)."""
    b = beta(t)
    discount = 1.0 - torch.exp(-2.0 * BETA_MIN * t - (BETA_MAX - BETA_MIN) * t**2)
    return -0.5 * b[:, None] * x, torch.sqrt(b * discount)


def denoised(x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """One-step (Tweedie) estimate x0_hat = (x_t - sigma_t eps) / alpha_t. x_t, eps (B, D), t (B,)."""
    alpha, sigma = alpha_sigma(t)
    return (x_t - sigma[:, None] * eps) / alpha[:, None]


def truncated_schedule(steps: int, t_max: float, t_min: float, device=None) -> torch.Tensor:
    """DPoser's truncated timestep schedule (paper Eq. 11, code's strategy 3): `steps` times falling linearly
    from just below t_max to exactly t_min. [1, 0] is the standard uniform schedule."""
    i = torch.arange(steps, device=device, dtype=torch.float64)
    return (t_min + (steps - i - 1) / steps * (t_max - t_min)).float()
