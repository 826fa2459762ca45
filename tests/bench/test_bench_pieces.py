"""The benchmark's own maths: EM on a known mixture, FID and precision/recall on toy sets, filter tuning."""
import numpy as np
import pytest
import torch

from bench.filters import FILTERS, blender_butterworth, butterworth, tune
from bench.gmm import MaxMixtureEnergy, fit_gmm, sample_gmm
from bench.metrics import average_pairwise_distance, frechet_distance, precision_recall


def test_em_recovers_a_known_mixture():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 6.0, 3.0]])
    covs = [np.diag([1.0, 0.5, 0.2]), np.array([[1.0, 0.6, 0], [0.6, 1.0, 0], [0, 0, 0.3]]), 0.4 * np.eye(3)]
    weights = np.array([0.5, 0.3, 0.2])
    labels = rng.choice(3, 6000, p=weights)
    x = np.stack([rng.multivariate_normal(means[k], covs[k]) for k in labels])
    gmm = fit_gmm(x, components=3, seed=1)
    order = [int(np.argmin(((gmm.means - m) ** 2).sum(1))) for m in means]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(gmm.means[order], means, atol=0.1)
    np.testing.assert_allclose(gmm.weights[order], weights, atol=0.02)
    np.testing.assert_allclose(gmm.covs[order[1]], covs[1], atol=0.1)
    samples = sample_gmm(gmm, 3000, seed=2)
    assert frechet_distance(samples, x) < 0.1


def test_max_mixture_energy_is_lowest_at_the_heaviest_narrowest_mean():
    x = np.random.default_rng(0).normal(size=(2000, 2)) * [1.0, 0.3]
    gmm = fit_gmm(np.concatenate([x, x + 10]), components=2)
    energy = MaxMixtureEnergy(gmm)
    at_means = energy(torch.from_numpy(gmm.means).float())
    off = energy(torch.from_numpy(gmm.means + [0.0, 1.0]).float())
    assert (off > at_means + 4).all()  # one unit is over 3 sigma along the narrow axis


def test_fid_is_zero_for_identical_sets_and_grows_with_a_shift():
    x = np.random.default_rng(0).normal(size=(2000, 5))
    assert abs(frechet_distance(x, x)) < 1e-6
    shifts = [frechet_distance(x + s, x) for s in (0.5, 1.0, 2.0)]
    np.testing.assert_allclose(shifts, [5 * 0.25, 5 * 1.0, 5 * 4.0], rtol=1e-6)  # |shift|^2 over 5 dimensions


def test_precision_recall_on_toy_sets():
    rng = np.random.default_rng(0)
    real = rng.uniform(0, 1, size=(800, 2))
    assert precision_recall(real, real.copy()) == (1.0, 1.0)
    assert precision_recall(real, real + 10) == (0.0, 0.0)
    half = real[real[:, 0] < 0.5]  # a generator covering half of the real set
    precision, recall = precision_recall(real, half)
    assert precision == 1.0 and 0.4 < recall < 0.65


def test_average_pairwise_distance():
    points = np.array([[[0.0, 0, 0]], [[3.0, 4, 0]], [[0.0, 0, 0]]])  # pair distances 5, 0, 5
    assert average_pairwise_distance(points) == pytest.approx(10 / 3)


def test_filter_tuning_picks_a_cutoff_between_signal_and_noise():
    fps = 30.0
    t = np.arange(300) / fps
    clean = np.stack([np.sin(2 * np.pi * 1.0 * t), np.cos(2 * np.pi * 0.7 * t)], 1)
    noisy = clean + 0.3 * np.sin(2 * np.pi * 12.0 * t)[:, None]
    grid = FILTERS["Butterworth"][1]
    best, errors = tune(grid, lambda c: float(np.abs(butterworth(noisy, c, fps) - clean).mean()))
    assert 1.5 <= best <= 8.0
    assert errors[best] < 0.2 * errors[max(grid)]


def test_blender_butterworth_halves_its_cutoff_and_keeps_the_end_keys():
    """Blender's Butterworth Smooth runs its filter forward and backward: a sine at the cutoff comes out at half
    its amplitude (1/sqrt(2) per pass), a slow one passes, a fast one is gone; the first and last keys keep
    their values (blend in/out 1)."""
    fps, t = 30.0, np.arange(600) / 30.0
    waves = np.stack([np.sin(2 * np.pi * f * t) for f in (0.3, 3.0, 10.0)], 1) + 2.0
    out = blender_butterworth(waves, 3.0, fps)
    middle = slice(150, 450)
    amplitude = (out[middle] - 2.0).std(0) / (waves[middle] - 2.0).std(0)
    np.testing.assert_allclose(amplitude, [1.0, 0.5, 0.0], atol=0.03)
    np.testing.assert_array_equal(out[[0, -1]], waves[[0, -1]])


def test_noise_kinds_do_what_they_say():
    from bench.denoising import body_positions
    from bench.noise import KINDS, flips, frozen, swaps

    rng = np.random.default_rng(0)
    track = np.random.default_rng(1).normal(scale=0.3, size=(300, 165))
    track[:, 66:] = 0
    for kind, noise in KINDS.items():
        noisy = noise(track, np.random.default_rng(2))
        assert noisy.shape == track.shape and np.isfinite(noisy).all()
        assert np.array_equal(noisy[:, 66:], track[:, 66:]), kind  # the flat hands stay flat
        if kind not in ("frozen frames", "video mix"):  # a dropout holds the whole pose
            assert np.array_equal(noisy[:, :3], track[:, :3]), kind
    twisted = flips(track, rng)
    assert not np.allclose(twisted, track)
    np.testing.assert_allclose(body_positions(twisted), body_positions(track), atol=1e-6)  # twist moves no joint
    held = frozen(track, rng)
    repeats = (held[1:] == held[:-1]).all(1)
    assert repeats.any() and not (track[1:] == track[:-1]).all(1).any()
    rest = np.zeros_like(track)
    assert np.array_equal(swaps(rest, rng), rest)  # a rest pose is its own mirror image
    assert not np.allclose(swaps(track, rng), track)
