"""Generation quality of body poses (63-D axis-angle) against the held-out test split: FID, precision/recall
(k = 3), APD of the body joints, distance to the nearest training pose, share inside anatomical limits."""
from __future__ import annotations

import time

import numpy as np
import torch

from dposerx_blender.core.limits import within_limits
from dposerx_blender.core.solvers import SAMPLERS
from training.evaluate import positions

from .completion import BODY
from .metrics import average_pairwise_distance, frechet_distance, nearest_joint_angle, precision_recall


def body_network(prior):
    """The bundled body network (DPoser-body; the combined variant's body output is exactly this network)."""
    combined = prior.model.combined if prior.variant == "fused" else prior.model
    return combined.parts["body"]


def dposer_samples(prior, count: int, method: str, steps: int, seed: int) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, BODY.stop, generator=generator)
    out = SAMPLERS[method](body_network(prior), x, 1.0, steps, generator=generator)
    mean, std = prior.normalizer.mean[BODY], prior.normalizer.std[BODY]
    return (out * std + mean).double().numpy()


def timed(make) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    samples = make()
    return samples, time.perf_counter() - start


def spaced(rows: np.ndarray, count: int) -> np.ndarray:
    return rows[np.linspace(0, len(rows) - 1, min(count, len(rows))).astype(int)]


@torch.no_grad()
def evaluate(samples: np.ndarray, test: np.ndarray, train: np.ndarray) -> dict:
    """samples, test, train (N, 63) raw axis-angle. Precision/recall use as many evenly spaced test poses as
    there are samples."""
    precision, recall = precision_recall(spaced(test, len(samples)), samples)
    joints = 1000 * positions("body", torch.from_numpy(samples).float())[:, :22].numpy()
    pose = np.concatenate([np.zeros((len(samples), 3)), samples, np.zeros((len(samples), 99))], 1)
    return {"fid": frechet_distance(samples, test), "precision": precision, "recall": recall,
            "apd_mm": average_pairwise_distance(joints),
            "nearest_train_deg": float(nearest_joint_angle(samples, train).mean()),
            "within_limits": float(within_limits(pose).mean()), "count": len(samples)}
