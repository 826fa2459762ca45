"""The SMPLify pose prior: a full-covariance Gaussian mixture fitted by EM (numpy), its max-mixture energy
(torch) and sampling. Reference: Bogo et al. 2016, "Keep it SMPL" (8 components over the body pose)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.linalg import solve_triangular
from scipy.special import logsumexp


@dataclass
class Gmm:
    weights: np.ndarray  # (K,)
    means: np.ndarray    # (K, D)
    covs: np.ndarray     # (K, D, D)
    iterations: int = 0


def _log_gaussians(x: np.ndarray, gmm: Gmm) -> np.ndarray:
    """log w_k N(x | mu_k, Sigma_k) for x (N, D) -> (N, K)."""
    out = np.empty((len(x), len(gmm.weights)))
    for k, (mean, cov) in enumerate(zip(gmm.means, gmm.covs)):
        chol = np.linalg.cholesky(cov)
        solved = solve_triangular(chol, (x - mean).T, lower=True)
        log_det = 2 * np.log(np.diag(chol)).sum()
        out[:, k] = np.log(gmm.weights[k]) - 0.5 * ((solved**2).sum(0) + log_det + x.shape[1] * np.log(2 * np.pi))
    return out


def fit_gmm(x: np.ndarray, components: int = 8, iterations: int = 300, tol: float = 1e-5, reg: float = 1e-4,
            seed: int = 0) -> Gmm:
    """EM for a full-covariance mixture, initialised from k-means++ seeds; `reg` is added to every covariance's
    diagonal. Stops when the mean log-likelihood gains less than `tol` per iteration."""
    rng = np.random.default_rng(seed)
    seeds = [x[rng.integers(len(x))]]
    for _ in range(1, components):  # k-means++: next seed with probability ~ squared distance
        d2 = np.min([((x - s) ** 2).sum(1) for s in seeds], axis=0)
        seeds.append(x[rng.choice(len(x), p=d2 / d2.sum())])
    nearest = np.argmin([((x - s) ** 2).sum(1) for s in seeds], axis=0)
    resp = np.eye(components)[nearest]
    previous = -np.inf
    for iteration in range(1, iterations + 1):
        counts = resp.sum(0) + 1e-10
        means = resp.T @ x / counts[:, None]
        covs = np.stack([((x - m).T * r) @ (x - m) / n for m, r, n in zip(means, resp.T, counts)])
        gmm = Gmm(counts / len(x), means, covs + reg * np.eye(x.shape[1]), iteration)
        log_joint = _log_gaussians(x, gmm)
        log_likelihood = logsumexp(log_joint, axis=1)
        resp = np.exp(log_joint - log_likelihood[:, None])
        if log_likelihood.mean() - previous < tol:
            break
        previous = log_likelihood.mean()
    return gmm


class MaxMixtureEnergy:
    """SMPLify's max-mixture energy: min_k 0.5 (x - mu_k)^T Sigma_k^-1 (x - mu_k) - log(w_k / c_k), with
    c_k = sqrt(det Sigma_k) / min_j sqrt(det Sigma_j) (the shared constant dropped). x (B, D) -> (B,)."""

    def __init__(self, gmm: Gmm):
        self.means = torch.from_numpy(gmm.means).float()
        self.precisions = torch.from_numpy(np.linalg.inv(gmm.covs)).float()
        half_log_det = 0.5 * np.linalg.slogdet(gmm.covs)[1]
        self.constants = torch.from_numpy(-np.log(gmm.weights) + half_log_det - half_log_det.min()).float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        centred = x[:, None] - self.means  # (B, K, D)
        quadratic = torch.einsum("bki,kij,bkj->bk", centred, self.precisions, centred)
        return (0.5 * quadratic + self.constants).min(1).values


def sample_gmm(gmm: Gmm, count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    component = rng.choice(len(gmm.weights), size=count, p=gmm.weights / gmm.weights.sum())
    return np.stack([rng.multivariate_normal(gmm.means[k], gmm.covs[k]) for k in component])


def load_or_fit(x: np.ndarray, path: Path, **fit_args) -> tuple[Gmm, dict]:
    """The fitted mixture from `path` (an npz) if it exists, else fitted and saved there."""
    if path.exists():
        with np.load(path) as saved:
            gmm = Gmm(saved["weights"], saved["means"], saved["covs"], int(saved["iterations"]))
        return gmm, {"seconds": float(np.load(path)["seconds"]), "iterations": gmm.iterations, "cached": True}
    start = time.perf_counter()
    gmm = fit_gmm(x, **fit_args)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, weights=gmm.weights, means=gmm.means, covs=gmm.covs, iterations=gmm.iterations, seconds=seconds)
    return gmm, {"seconds": seconds, "iterations": gmm.iterations, "cached": False}
