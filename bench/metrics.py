"""Distribution and motion metrics: FID on pose vectors, improved precision/recall (Kynkaanniemi et al. 2019),
average pairwise distance, distance to the nearest training pose, acceleration error."""
from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import sqrtm

from dposerx_blender.core.rotations import axis_angle_to_quaternion


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussian fits of two sample sets (N, D), (M, D) (FID without a feature net)."""
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = sqrtm(cov_a @ cov_b).real
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def _kth_neighbour_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row to its k-th nearest other row."""
    return torch.cdist(x, x).kthvalue(k + 1, dim=1).values


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """Share of points inside at least one ball (centre, radius)."""
    return (torch.cdist(points, centres) <= radii[None]).any(1).double().mean().item()


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Precision: share of fake samples inside the real manifold (union of k-NN balls of real samples);
    recall: share of real samples inside the fake manifold."""
    real_t, fake_t = torch.from_numpy(real).double(), torch.from_numpy(fake).double()
    precision = _covered(fake_t, real_t, _kth_neighbour_radius(real_t, k))
    recall = _covered(real_t, fake_t, _kth_neighbour_radius(fake_t, k))
    return precision, recall


def average_pairwise_distance(points: np.ndarray) -> float:
    """points (S, P, 3) -> mean over sample pairs of the mean point-to-point distance (same unit)."""
    s = len(points)
    if s < 2:
        return 0.0
    by_point = torch.from_numpy(np.ascontiguousarray(points.transpose(1, 0, 2))).double()  # (P, S, 3)
    distances = torch.cdist(by_point, by_point).mean(0)  # (S, S), zero diagonal
    return float(distances.sum() / (s * (s - 1)))


def nearest_joint_angle(samples: np.ndarray, reference: np.ndarray, candidates: int = 512) -> np.ndarray:
    """For each sample (N, 3J) axis-angle, the mean per-joint geodesic angle (degrees) to the nearest reference
    pose (M, 3J), searched among the `candidates` reference poses nearest in axis-angle Euclidean distance (the
    paper's dNN sums the angles instead of averaging them)."""
    samples_t, reference_t = torch.from_numpy(samples).double(), torch.from_numpy(reference).double()
    nearest = torch.cdist(samples_t, reference_t).topk(min(candidates, len(reference)), largest=False).indices
    q = axis_angle_to_quaternion(samples_t.reshape(len(samples), -1, 3))  # (N, J, 4)
    ref = axis_angle_to_quaternion(reference_t[nearest].reshape(*nearest.shape, -1, 3))  # (N, C, J, 4)
    angles = 2 * torch.acos((q[:, None] * ref).sum(-1).abs().clamp(max=1.0))  # (N, C, J)
    return np.degrees(angles.mean(-1).min(1).values.numpy())


def acceleration_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Mean norm of the difference of second differences of positions (T, P, 3) -> same unit per frame^2."""
    acc = lambda x: x[2:] - 2 * x[1:-1] + x[:-2]  # noqa: E731
    return float(np.linalg.norm(acc(estimate) - acc(truth), axis=-1).mean())
