"""The sub-VP SDE: marginal coefficients (closed form and the method digest's values), perturbation statistics,
the Tweedie denoiser, the forward SDE's coefficients against its marginals, and the truncated schedule."""
import math

import pytest
import torch

from dposerx_blender.core import sde

# Method digest sec. 3.1, "handy values" (3 decimals).
HANDY = [(0.05, 0.985, 0.029), (0.08, 0.965, 0.069), (0.10, 0.947, 0.104), (0.12, 0.925, 0.144),
         (0.15, 0.887, 0.212), (0.20, 0.811, 0.342), (0.25, 0.724, 0.476), (0.30, 0.630, 0.604),
         (0.5, 0.281, 0.921)]


def closed_form(t: float) -> tuple[float, float]:
    """alpha_t = exp(m), sigma_t = 1 - exp(2m), m = -t^2 (b1 - b0) / 4 - t b0 / 2 (Song et al. 2021, sub-VP)."""
    m = -0.25 * t**2 * (sde.BETA_MAX - sde.BETA_MIN) - 0.5 * t * sde.BETA_MIN
    return math.exp(m), 1.0 - math.exp(2 * m)


def integral_beta(t: torch.Tensor) -> torch.Tensor:
    return sde.BETA_MIN * t + 0.5 * (sde.BETA_MAX - sde.BETA_MIN) * t**2


def test_constants_are_the_reference_configuration():
    assert (sde.BETA_MIN, sde.BETA_MAX, sde.T_EPS) == (0.1, 20.0, 1e-5)


@pytest.mark.parametrize("t", [0.0, 1e-5, 0.05, 0.15, 0.3, 0.5, 0.77, 1.0])
def test_alpha_sigma_closed_form(t):
    alpha, sigma = sde.alpha_sigma(torch.tensor([t], dtype=torch.float64))
    a, s = closed_form(t)
    assert alpha.item() == pytest.approx(a, rel=1e-12, abs=1e-15)
    assert sigma.item() == pytest.approx(s, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("t, alpha, sigma", HANDY)
def test_handy_values_of_the_digest(t, alpha, sigma):
    a, s = sde.alpha_sigma(torch.tensor(t))
    assert round(a.item(), 3) == alpha
    assert round(s.item(), 3) == sigma


def test_alpha_decreases_sigma_increases_sigma_zero_at_zero():
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    alpha, sigma = sde.alpha_sigma(t)
    assert (alpha.diff() < 0).all() and (sigma.diff() > 0).all()
    assert alpha[0].item() == 1.0 and sigma[0].item() == 0.0
    assert (alpha > 0).all() and (sigma < 1).all()
    # sub-VP: the marginal variance stays below the VP one, alpha^2 + sigma^2 <= 1.
    assert (alpha**2 + sigma**2 <= 1 + 1e-12).all()


def test_alpha_sigma_broadcast_and_keep_shape():
    t = torch.rand(3, 4)
    alpha, sigma = sde.alpha_sigma(t)
    assert alpha.shape == sigma.shape == (3, 4)


def test_perturbation_statistics_monte_carlo():
    """x_t = alpha x0 + sigma z: for fixed x0, mean alpha x0 and std sigma per dimension."""
    generator = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.tensor([1.5, -0.7, 0.0], dtype=torch.float64)
    for t in (0.05, 0.3, 0.8):
        tt = torch.full((n,), t, dtype=torch.float64)
        alpha, sigma = sde.alpha_sigma(tt)
        z = torch.randn(n, 3, generator=generator, dtype=torch.float64)
        x_t = alpha[:, None] * x0 + sigma[:, None] * z
        a, s = closed_form(t)
        # standard error of the mean: s / sqrt(n) ~ 0.002 s; of the std: s / sqrt(2n) ~ 0.0016 s; 5 SE margins.
        torch.testing.assert_close(x_t.mean(0), a * x0, atol=5 * s / math.sqrt(n), rtol=0)
        torch.testing.assert_close(x_t.std(0), torch.full((3,), s, dtype=torch.float64),
                                   atol=5 * s / math.sqrt(2 * n), rtol=0)


def test_denoised_inverts_the_perturbation_with_the_true_noise():
    generator = torch.Generator().manual_seed(1)
    x0 = torch.randn(8, 63, generator=generator, dtype=torch.float64)
    z = torch.randn(8, 63, generator=generator, dtype=torch.float64)
    t = torch.linspace(0.01, 1.0, 8, dtype=torch.float64)
    alpha, sigma = sde.alpha_sigma(t)
    x_t = alpha[:, None] * x0 + sigma[:, None] * z
    torch.testing.assert_close(sde.denoised(x_t, z, t), x0, rtol=0, atol=1e-10)


def test_drift_and_diffusion_is_the_sub_vp_sde():
    """f = -beta/2 x, g^2 = beta (1 - exp(-2 int_0^t beta))."""
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    t = torch.tensor([1e-5, 0.05, 0.15, 0.4, 0.8, 1.0], dtype=torch.float64)
    f, g = sde.drift_and_diffusion(x, t)
    b = sde.BETA_MIN + t * (sde.BETA_MAX - sde.BETA_MIN)
    assert f.shape == x.shape and g.shape == t.shape
    torch.testing.assert_close(f, -0.5 * b[:, None] * x, rtol=1e-12, atol=0)
    torch.testing.assert_close(g**2, b * (1 - torch.exp(-2 * integral_beta(t))), rtol=1e-12, atol=0)
    torch.testing.assert_close(sde.beta(t), b, rtol=1e-12, atol=0)


def test_sde_coefficients_agree_with_the_marginals():
    """For a linear SDE dx = -beta/2 x dt + g dw from a fixed x0: d(alpha)/dt = -beta/2 alpha and
    d(sigma^2)/dt = -beta sigma^2 + g^2. Checked by central finite differences of alpha_sigma."""
    t = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    h = 1e-6
    alpha_p, sigma_p = sde.alpha_sigma(t + h)
    alpha_m, sigma_m = sde.alpha_sigma(t - h)
    alpha, sigma = sde.alpha_sigma(t)
    _, g = sde.drift_and_diffusion(torch.zeros(len(t), 1, dtype=torch.float64), t)
    b = sde.beta(t)
    d_alpha = (alpha_p - alpha_m) / (2 * h)
    d_var = (sigma_p**2 - sigma_m**2) / (2 * h)
    torch.testing.assert_close(d_alpha, -0.5 * b * alpha, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(d_var, -b * sigma**2 + g**2, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("steps", [1, 2, 7, 100, 200])
def test_truncated_schedule(steps):
    ts = sde.truncated_schedule(steps, 0.15, 0.05)
    assert ts.shape == (steps,) and ts.dtype == torch.float32
    assert ts[0].item() == pytest.approx(0.15 - 0.1 / steps, abs=1e-7)
    assert ts[-1].item() == torch.tensor(0.05, dtype=torch.float32).item()  # exactly t_min (as float32)
    if steps > 1:
        assert (ts.diff() < 0).all()
        torch.testing.assert_close(ts.diff(), torch.full((steps - 1,), -0.1 / steps), rtol=0, atol=1e-7)


def test_truncated_schedule_code_formula():
    """Digest sec. 4.3, strategy 3: t = t_min + (N - i - 1) / N (t_max - t_min)."""
    steps, t_max, t_min = 100, 0.2, 0.05
    expected = torch.tensor([t_min + (steps - i - 1) / steps * (t_max - t_min) for i in range(steps)])
    torch.testing.assert_close(sde.truncated_schedule(steps, t_max, t_min), expected, rtol=0, atol=1e-7)


def test_unit_range_is_the_uniform_schedule():
    steps = 10
    ts = sde.truncated_schedule(steps, 1.0, 0.0)
    torch.testing.assert_close(ts, torch.arange(steps - 1, -1, -1, dtype=torch.float32) / steps, rtol=0, atol=1e-7)
    assert ts[-1].item() == 0.0
