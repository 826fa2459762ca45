"""Pose completion (`complete`) and the DPoser regulariser (`dposer_loss`) on Gaussian toy priors whose exact
noise predictor is known in closed form.

For x0 ~ N(mu, C) and x_t = alpha x0 + sigma z: x_t ~ N(alpha mu, alpha^2 C + sigma^2 I), so the optimal
noise predictor is eps*(x_t, t) = -sigma score = sigma (alpha^2 C + sigma^2 I)^-1 (x_t - alpha mu), and the
Tweedie denoiser x0_hat = (x_t - sigma eps*) / alpha is the exact posterior mean E[x0 | x_t].
"""
import math
from dataclasses import replace

import pytest
import torch

from dposerx_blender.core.sde import alpha_sigma
from dposerx_blender.core.solvers import (SCHEDULES, Schedule, complete, complete_by_sampling, dposer_loss, optimize,
                                          representatives, sample_completion)


def diagonal_gaussian_eps(mu: torch.Tensor, s: torch.Tensor):
    """eps*(x_t, t) = sigma (x_t - alpha mu) / (alpha^2 s^2 + sigma^2) for N(mu, diag(s^2))."""
    def eps(x, t):
        alpha, sigma = alpha_sigma(t)
        alpha, sigma = alpha[:, None], sigma[:, None]
        return sigma * (x - alpha * mu) / (alpha**2 * s**2 + sigma**2)
    return eps


def full_gaussian_eps(mu: torch.Tensor, cov: torch.Tensor):
    """eps*(x_t, t) = sigma (alpha^2 C + sigma^2 I)^-1 (x_t - alpha mu) for N(mu, C)."""
    def eps(x, t):
        alpha, sigma = alpha_sigma(t)
        cov_t = alpha[:, None, None] ** 2 * cov + sigma[:, None, None] ** 2 * torch.eye(len(mu), dtype=x.dtype)
        return sigma[:, None] * torch.linalg.solve(cov_t, (x - alpha[:, None] * mu)[..., None])[..., 0]
    return eps


MU = torch.tensor([0.5, -1.0, 0.0, 2.0, 0.3, -0.4])
S = torch.tensor([1.0, 0.5, 2.0, 0.8, 1.2, 0.3])
EPS = diagonal_gaussian_eps(MU, S)


def test_diagonal_and_full_eps_agree():
    x, t = torch.randn(5, 6), torch.rand(5) * 0.9 + 0.05
    torch.testing.assert_close(EPS(x, t), full_gaussian_eps(MU, torch.diag(S**2))(x, t), rtol=1e-5, atol=1e-6)


def test_exact_eps_recovers_the_true_noise_for_a_point_mass():
    """Sanity of the toy: with s -> 0 (a point mass at mu) eps* is exactly the injected noise."""
    eps = diagonal_gaussian_eps(MU.double(), torch.zeros(6, dtype=torch.float64))
    x0, z = MU.double().expand(4, 6), torch.randn(4, 6, dtype=torch.float64)
    t = torch.tensor([0.05, 0.1, 0.5, 0.9], dtype=torch.float64)
    alpha, sigma = alpha_sigma(t)
    torch.testing.assert_close(eps(alpha[:, None] * x0 + sigma[:, None] * z, t), z)


def small_problem(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    observed = MU + S * torch.randn(3, 6, generator=generator)
    mask = torch.rand(3, 6, generator=generator) < 0.5
    mask[0] = torch.tensor([True, False, True, False, True, False])
    return observed, mask


def run(observed, mask, seed, **kwargs):
    kwargs = {"hypotheses": 4, "schedule": replace(SCHEDULES["complete"], steps=10), **kwargs}
    return complete(EPS, observed, mask, generator=torch.Generator().manual_seed(seed), **kwargs)


def test_complete_shape_and_exact_observed_dims():
    observed, mask = small_problem()
    out = run(observed, mask, seed=0)
    assert out.shape == (3, 4, 6) and out.dtype == observed.dtype
    keep = mask[:, None].expand_as(out)
    assert torch.equal(out[keep], observed[:, None].expand_as(out)[keep])  # bit-exact
    assert torch.isfinite(out).all()
    assert not torch.equal(out[~keep], observed[:, None].expand_as(out)[~keep])


def test_complete_is_deterministic_given_the_generator():
    observed, mask = small_problem()
    assert torch.equal(run(observed, mask, seed=7), run(observed, mask, seed=7))
    a, b = run(observed, mask, seed=7), run(observed, mask, seed=8)
    keep = mask[:, None].expand_as(a)
    assert torch.equal(a[keep], b[keep])
    assert (a[~keep] - b[~keep]).abs().min() > 0  # every occluded entry differs between seeds


def test_hypotheses_differ_from_each_other():
    observed, mask = small_problem()
    out = run(observed, mask, seed=0)
    free = ~mask[0]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(out[0, i, free], out[0, j, free])


def test_unobserved_input_values_are_ignored():
    observed, mask = small_problem()
    other = torch.where(mask, observed, torch.full_like(observed, 123.0))
    assert torch.equal(run(observed, mask, seed=3), run(other, mask, seed=3))


def test_fully_observed_pose_is_returned_unchanged():
    observed, _ = small_problem()
    out = run(observed, torch.ones(3, 6, dtype=torch.bool), seed=0)
    assert torch.equal(out, observed[:, None].expand(3, 4, 6))


def test_completion_of_a_correlated_gaussian_lands_near_the_conditional_mean():
    """x ~ N(0, [[1, rho], [rho, 1]]), observe x1, complete x2 (default solver settings: 2 x 100 Adam steps,
    t 0.15 -> 0.05, 64 hypotheses). The conditional is N(rho x1, 1 - rho^2).

    Tolerance: the prior term's expected gradient is the gradient of the Gaussian energy with covariance
    alpha^2 C + sigma^2 I, whose conditional mean is rho x1 alpha^2 / (alpha^2 + sigma^2) (shrinkage <0.1%
    at the final t = 0.05). The hypotheses scatter with about the conditional std sd = sqrt(1 - rho^2) = 0.44,
    so their mean has a standard error sd / sqrt(64) = 0.055; we allow 4 standard errors (0.22). The mean
    fill (0, the data mean) is rho x1 = 1.35 away."""
    rho, x1, hypotheses = 0.9, 1.5, 64
    eps = full_gaussian_eps(torch.zeros(2), torch.tensor([[1.0, rho], [rho, 1.0]]))
    observed = torch.tensor([[x1, 0.0]])
    mask = torch.tensor([[True, False]])
    out = complete(eps, observed, mask, hypotheses=hypotheses, generator=torch.Generator().manual_seed(0))
    x2 = out[0, :, 1]
    conditional_mean, conditional_sd = rho * x1, math.sqrt(1 - rho**2)
    assert abs(x2.mean().item() - conditional_mean) < 4 * conditional_sd / math.sqrt(hypotheses)
    rms = (x2 - conditional_mean).square().mean().sqrt().item()
    mean_fill_error = abs(0.0 - conditional_mean)
    assert rms < 0.5 * mean_fill_error
    # Diverse hypotheses, spread of the order of the conditional std (not collapsed, not the N(0,1) init).
    assert 0.4 * conditional_sd < x2.std().item() < 1.6 * conditional_sd


def test_dposer_loss_weighting():
    """With an eps model whose denoiser returns 0 (eps = x_t / sigma), the per-row loss is w_t mean(x^2) (completion
    weighting) or 0.5 sum(x^2) (constant) exactly."""
    def to_zero(x, t):
        return x / alpha_sigma(t)[1][:, None]

    x = torch.randn(4, 6, dtype=torch.float64)
    for t in (0.05, 0.15, 0.5):
        alpha, sigma = [v.item() for v in alpha_sigma(torch.tensor(t, dtype=torch.float64))]
        completion = dposer_loss(to_zero, x, t, "completion").mean()
        constant = dposer_loss(to_zero, x, t, "constant")
        torch.testing.assert_close(completion, 0.5 * math.sqrt(1 + alpha / sigma) * x.square().mean())
        torch.testing.assert_close(constant, 0.5 * x.square().sum(1))


def test_dposer_loss_does_not_backpropagate_through_the_network():
    calls = []

    def eps(x, t):
        calls.append(x.requires_grad)
        return EPS(x, t)

    x = torch.randn(3, 6, requires_grad=True)
    dposer_loss(eps, x, 0.1, "completion").sum().backward()
    assert calls == [False] and x.grad is not None


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_dposer_loss_expected_gradient_points_to_the_mean(t):
    """E_z[grad] = 2 w / (B D) (x - E[x0_hat]) = 2 w / (B D) sigma^2 / (alpha^2 s^2 + sigma^2) (x - mu):
    Monte Carlo over a batch of copies of one pose (per-row noise std 2 w alpha s^2 sigma / (alpha^2 s^2 +
    sigma^2) / (B D); 5 standard errors)."""
    batch, dim = 20_000, 6
    delta = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0, 0.25], dtype=torch.float64)
    mu, s = MU.double(), S.double()
    x = (mu + delta).expand(batch, dim).clone().requires_grad_(True)
    generator = torch.Generator().manual_seed(0)
    dposer_loss(diagonal_gaussian_eps(mu, s), x, t, "completion", generator=generator).mean().backward()
    grad = x.grad.mean(0) * batch * dim  # per-row gradient of the summed (not averaged) loss
    alpha, sigma = [v.item() for v in alpha_sigma(torch.tensor(t, dtype=torch.float64))]
    w = 0.5 * math.sqrt(1 + alpha / sigma)
    expected = 2 * w * sigma**2 / (alpha**2 * s**2 + sigma**2) * delta
    standard_error = 2 * w * alpha * s**2 * sigma / (alpha**2 * s**2 + sigma**2) / math.sqrt(batch)
    assert ((grad - expected).abs() < 5 * standard_error).all()
    assert (grad * delta > 0).all()  # descent moves every coordinate towards mu


def test_one_prior_step_moves_towards_the_mean():
    """One gradient-descent step on the prior term alone, from poses 2-4 std away from mu, brings every pose
    closer to mu (t = 0.5, where the pull sigma^2 / (alpha^2 s^2 + sigma^2) dominates the noise)."""
    generator = torch.Generator().manual_seed(1)
    direction = torch.randn(32, 6, generator=generator)
    direction = direction / direction.norm(dim=1, keepdim=True)
    radius = 2 + 2 * torch.rand(32, 1, generator=generator)
    x = (MU + S * radius * direction * math.sqrt(6)).requires_grad_(True)
    loss = dposer_loss(EPS, x, 0.5, "constant", generator=generator).sum() / x.numel()
    (grad,) = torch.autograd.grad(loss, x)
    step = x.detach() - 0.1 * x.numel() * grad  # lr scaled by B D: the loss is a mean
    before = ((x.detach() - MU) / S).norm(dim=1)
    after = ((step - MU) / S).norm(dim=1)
    assert (after < before).all()


def test_optimize_weighs_named_terms_per_round_and_skips_zero_weights():
    """Terms are looked up by name in the schedule's weights: a term weighted 0 in a round is not evaluated there
    (so a switched-off prior draws no noise), and the weighted sum is what Adam minimises: one quadratic term
    pulled to 3 reaches it."""
    schedule = Schedule(rounds=2, steps=100, t_max=0.2, t_min=0.1, lr=0.1,
                        weights={"pull": (1.0, 1.0), "off": (0.0, 2.0)})
    rounds_seen = []

    def off(x, step):
        rounds_seen.append(step.round)
        return torch.zeros(len(x))

    x = optimize(torch.zeros(2, 3), {"pull": lambda x, _step: ((x - 3.0) ** 2).sum(1), "off": off}, schedule)
    assert set(rounds_seen) == {1} and len(rounds_seen) == 100
    torch.testing.assert_close(x, torch.full((2, 3), 3.0), atol=0.05, rtol=0)


def test_optimize_refuses_a_term_without_weights():
    with pytest.raises(ValueError, match="no weights for the terms \\['gmm'\\]"):
        optimize(torch.zeros(1, 2), {"gmm": lambda x, _step: x.sum(1)}, SCHEDULES["complete"])


def test_reweighted_changes_only_the_named_terms():
    schedule = SCHEDULES["denoise"].reweighted(lambda w: 0.0, "prior")
    assert schedule.weights["prior"] == (0.0, 0.0, 0.0)
    assert schedule.weights["smooth"] == SCHEDULES["denoise"].weights["smooth"]
    strong = SCHEDULES["denoise"].with_strength(2.0)
    assert strong.weights["smooth"] == (20.0, 40.0, 60.0) and strong.weights["data"] == (100.0, 50.0, 20.0)


# ------------------------------------------------------------------------------- sampled completion (masked)

def conditional_gaussian_model(mu: torch.Tensor, cov: torch.Tensor):
    """A mask-reading noise predictor that is exact for N(mu, cov): given the known entries (same mask for every
    row), the missing ones are Gaussian with the conditional mean and covariance; eps* on them as above,
    zero on the known entries (which the sampler replaces anyway)."""
    def model(x, t, known=None, known_mask=None):
        hidden = ~known_mask[0] if known_mask is not None else torch.ones(len(mu), dtype=torch.bool)
        obs = ~hidden
        c_ho, c_oo = cov[hidden][:, obs], cov[obs][:, obs]
        gain = c_ho @ torch.linalg.inv(c_oo) if obs.any() else torch.zeros(int(hidden.sum()), 0)
        mean = mu[hidden] + ((known[:, obs] - mu[obs]) @ gain.T if obs.any() else 0)
        cond_cov = cov[hidden][:, hidden] - gain @ cov[obs][:, hidden] if obs.any() else cov
        alpha, sigma = alpha_sigma(t)
        cov_t = alpha[:, None, None] ** 2 * cond_cov + sigma[:, None, None] ** 2 * torch.eye(int(hidden.sum()))
        eps_h = sigma[:, None] * torch.linalg.solve(cov_t, (x[:, hidden] - alpha[:, None] * mean)[..., None])[..., 0]
        eps = torch.zeros_like(x)
        eps[:, hidden] = eps_h
        return eps
    return model


def correlated_gaussian(dim: int = 6, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=generator)
    return torch.randn(dim, generator=generator), a @ a.T / dim + 0.05 * torch.eye(dim)


def test_sample_completion_draws_from_the_conditional_distribution():
    mu, cov = correlated_gaussian()
    model = conditional_gaussian_model(mu, cov)
    observed = (mu + torch.tensor([1.0, -0.5, 0.0, 0.0, 0.0, 0.0]))[None]
    mask = torch.tensor([[True, True, True, False, False, False]])
    # Deterministic DDIM with enough steps follows the probability-flow ODE, which keeps the distribution; with
    # few steps and eta 1 the spread shrinks (measured here: 20 steps, eta 1: 0.63x), which the temperature
    # chosen on validation compensates.
    out = sample_completion(model, observed, mask, hypotheses=4000, steps=50, eta=0.0, temperature=1.0,
                            generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 4000, 6)
    assert torch.equal(out[0, :, :3], observed[:, :3].expand(4000, 3))  # observed entries exact
    gain = cov[3:, :3] @ torch.linalg.inv(cov[:3, :3])
    cond_mean = mu[3:] + gain @ (observed[0, :3] - mu[:3])
    cond_std = torch.diagonal(cov[3:, 3:] - gain @ cov[:3, 3:]).sqrt()
    torch.testing.assert_close(out[0, :, 3:].mean(0), cond_mean, atol=0.1 * cond_std.max().item(), rtol=0)
    ratio = out[0, :, 3:].std(0) / cond_std
    assert ((ratio > 0.85) & (ratio < 1.15)).all(), ratio
    # Far from the unconditional mean: conditioning really happened.
    assert (cond_mean - mu[3:]).abs().max() > 0.3


def test_sample_completion_is_seeded_and_hypotheses_differ():
    mu, cov = correlated_gaussian(seed=1)
    model = conditional_gaussian_model(mu, cov)
    observed, mask = mu[None].repeat(2, 1), torch.tensor([[True, False, True, False, True, False]] * 2)

    def run(seed):
        return sample_completion(model, observed, mask, hypotheses=3, steps=5,
                                 generator=torch.Generator().manual_seed(seed))
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a[:, 0] - a[:, 1]).abs()[:, ~mask[0]].min() > 0


def as_points(x):
    return x.reshape(len(x), -1, 3)


def test_representatives_pick_one_draw_from_each_separated_cluster():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    points = (centres[labels] + 0.1 * torch.randn(100, 2, generator=generator))[None, :, None]
    picks = representatives(points, 3, mean_weight=0.0)
    assert picks.shape == (1, 3)
    assert sorted(labels[picks[0]].tolist()) == [0, 1, 2]


def hypothesis_errors(draws, picks, truth):
    """(B, k) mean distance over the points from each picked draw to the truth."""
    return (torch.take_along_dim(draws, picks[..., None, None], dim=1) - truth).norm(dim=-1).mean(-1)


def gaussian_draws():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(200, 100, 1, 2, generator=generator), torch.randn(200, 1, 1, 2, generator=generator)


def test_representatives_bring_the_best_of_k_closer_than_k_plain_draws():
    """The point of reducing many draws to k: a truth from the same distribution is nearer to its nearest pick."""
    draws, truth = gaussian_draws()
    best_of = lambda picks: hypothesis_errors(draws, picks, truth).min(1).values.mean()  # noqa: E731
    assert best_of(representatives(draws, 10, mean_weight=0.0)) < 0.85 * best_of(torch.arange(10).expand(200, 10))


def test_representatives_mean_weight_trades_the_best_of_k_for_the_mean_of_k():
    draws, truth = gaussian_draws()
    covering, central = (hypothesis_errors(draws, representatives(draws, 10, w), truth) for w in (0.0, 1.0))
    assert central.mean() < 0.95 * covering.mean()
    assert covering.min(1).values.mean() < 0.95 * central.min(1).values.mean()


def test_representatives_iterations_lower_the_expected_cost_of_the_greedy_choice():
    """The Voronoi iterations after the greedy choice lower the cost on the draws, and never raise it."""
    draws, _ = gaussian_draws()
    distance = torch.stack([torch.cdist(row, row).mean(0) for row in draws.transpose(1, 2)])

    def cost(picks):  # the expected best-of-k error, truth = one of the draws (mean weight 0)
        return torch.take_along_dim(distance, picks[..., None], 1).min(1).values.mean(1)

    greedy, refined = (cost(representatives(draws, 10, 0.0, iterations)) for iterations in (0, 10))
    assert (refined <= greedy + 1e-6).all() and (refined < greedy - 1e-6).any()


def test_complete_by_sampling_fills_hands_by_optimisation_around_each_sampled_body():
    """Body entries missing -> sampled; hand entries missing -> optimised with the sampled body held."""
    from dposerx_blender.core.layout import MODEL_DIM, MODEL_SLICES
    from dposerx_blender.core.network import MaskedTimeFC

    torch.manual_seed(0)
    body_net = MaskedTimeFC(63, 64, 32, blocks=1).eval()
    prior = diagonal_gaussian_eps(torch.zeros(MODEL_DIM), torch.ones(MODEL_DIM))
    observed = torch.randn(2, MODEL_DIM)
    mask = torch.ones(2, MODEL_DIM, dtype=torch.bool)
    mask[:, :12] = False                                   # four body joints
    mask[:, MODEL_SLICES["left_hand"]] = False             # a whole hand
    out = complete_by_sampling(body_net, prior, observed, mask, as_points, hypotheses=3,
                               schedule=replace(SCHEDULES["complete"], steps=5),
                               generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, MODEL_DIM)
    assert torch.equal(out[mask[:, None].expand_as(out)], observed[:, None].expand_as(out)[mask[:, None].expand_as(out)])
    hand = out[..., MODEL_SLICES["left_hand"]]
    assert not torch.allclose(hand, observed[:, None, MODEL_SLICES["left_hand"]].expand_as(hand))
    assert (out[:, 0, :12] - out[:, 1, :12]).abs().min() > 0  # each hypothesis its own body
    body_only = mask.clone()
    body_only[:, MODEL_SLICES["left_hand"]] = True
    body_out = complete_by_sampling(body_net, prior, observed, body_only, as_points, hypotheses=3,
                                    generator=torch.Generator().manual_seed(0))
    assert torch.equal(body_out[..., 63:], observed[:, None, 63:].expand(2, 3, MODEL_DIM - 63))


def test_bank_grafts_take_the_hidden_body_joints_from_bank_poses_and_keep_the_rest():
    from dposerx_blender.core.layout import MODEL_DIM
    from dposerx_blender.core.solvers import bank_grafts

    bank = torch.randn(5, 63)
    observed = torch.randn(2, MODEL_DIM)
    mask = torch.ones(2, MODEL_DIM, dtype=torch.bool)
    mask[:, 3:9] = False
    grafts = bank_grafts(observed, mask, bank, 7, torch.Generator().manual_seed(0))
    assert grafts.shape == (2, 7, MODEL_DIM)
    assert torch.equal(grafts[..., 9:], observed[:, None, 9:].expand(2, 7, MODEL_DIM - 9))
    assert torch.equal(grafts[..., :3], observed[:, None, :3].expand(2, 7, 3))
    hidden = grafts[..., 3:9].reshape(-1, 1, 6)
    assert (hidden == bank[None, :, 3:9]).all(-1).any(-1).all()  # each from one bank pose


def test_complete_by_sampling_chooses_among_network_draws_and_bank_grafts():
    """A bank pose far from every network draw is picked when the reduction spreads its picks (mean weight 0);
    without bank grafts per hypothesis the result is the network's alone, as without a bank."""
    from dposerx_blender.core.layout import MODEL_DIM
    from dposerx_blender.core.network import MaskedTimeFC

    torch.manual_seed(0)
    body_net = MaskedTimeFC(63, 64, 32, blocks=1).eval()
    observed = torch.randn(1, MODEL_DIM)
    mask = torch.ones(1, MODEL_DIM, dtype=torch.bool)
    mask[:, :6] = False
    bank = torch.full((1, 63), 25.0)

    def run(**options):
        return complete_by_sampling(body_net, None, observed, mask, as_points, hypotheses=3, draws_per_hypothesis=2,
                                    generator=torch.Generator().manual_seed(0), **options)

    with_bank = run(bank=bank, bank_per_hypothesis=1, mean_weight=0.0)
    assert (with_bank[0, :, :6] == 25.0).all(-1).any()
    assert torch.equal(with_bank[mask[:, None].expand_as(with_bank)], observed.expand(3, MODEL_DIM)[mask.expand(3, MODEL_DIM)])
    assert torch.equal(run(bank=bank, bank_per_hypothesis=0, mean_weight=0.0), run(mean_weight=0.0))
