"""A VPoser-architecture VAE (Pavlakos et al. 2019; human_body_prior "V02_05": latent 32, 512-wide MLPs,
6D-rotation decoder), retrained on our body training split.

Deviations, because the project has no SMPL-X mesh: the reconstruction term is the L1 distance of our default
skeleton's joints and segment tips (`training.evaluate.positions`) instead of mesh vertices, plus a
rotation-matrix L2 term for the whole run (VPoser uses a geodesic term for the first epochs only); the epoch
budget fits minutes of CPU instead of 100 epochs with early stopping.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dposerx_blender.core.rotations import axis_angle_to_matrix, matrix_to_axis_angle, rot6d_to_matrix
from training.evaluate import positions

BODY_DIM = 63


@dataclass(frozen=True)
class VPoserTraining:
    steps: int = 4000
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    kl_weight: float = 0.005
    position_weight: float = 4.0
    rotation_weight: float = 2.0
    seed: int = 0


class VPoser(nn.Module):
    def __init__(self, latent: int = 32, width: int = 512):
        super().__init__()
        self.latent = latent
        self.encoder = nn.Sequential(nn.BatchNorm1d(BODY_DIM), nn.Linear(BODY_DIM, width), nn.LeakyReLU(),
                                     nn.BatchNorm1d(width), nn.Dropout(0.1), nn.Linear(width, width),
                                     nn.Linear(width, width))
        self.mu, self.scale = nn.Linear(width, latent), nn.Linear(width, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, width), nn.LeakyReLU(), nn.Dropout(0.1),
                                     nn.Linear(width, width), nn.LeakyReLU(), nn.Linear(width, 21 * 6))

    def encode(self, pose: torch.Tensor) -> torch.distributions.Normal:
        h = self.encoder(pose)
        return torch.distributions.Normal(self.mu(h), nn.functional.softplus(self.scale(h)))

    def decode_matrices(self, z: torch.Tensor) -> torch.Tensor:
        return rot6d_to_matrix(self.decoder(z).reshape(-1, 21, 6))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent) -> body axis-angle (B, 63)."""
        return matrix_to_axis_angle(self.decode_matrices(z)).reshape(-1, BODY_DIM)


def train_vposer(poses: np.ndarray, settings: VPoserTraining) -> tuple[VPoser, dict]:
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    data = torch.from_numpy(poses).float()
    model = VPoser()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    prior = torch.distributions.Normal(torch.zeros(model.latent), torch.ones(model.latent))
    start = time.perf_counter()
    for step in range(settings.steps):
        for group in optimizer.param_groups:  # cosine decay in place of ReduceLROnPlateau
            group["lr"] = settings.lr * 0.5 * (1 + np.cos(np.pi * step / settings.steps))
        pose = data[torch.randint(len(data), (settings.batch,), generator=generator)]
        posterior = model.encode(pose)
        rot = model.decode_matrices(posterior.rsample())
        decoded = matrix_to_axis_angle(rot).reshape(-1, BODY_DIM)
        kl = torch.distributions.kl_divergence(posterior, prior).sum(1).mean()
        position = (positions("body", decoded) - positions("body", pose)).abs().mean()
        rotation = ((rot - axis_angle_to_matrix(pose.reshape(-1, 21, 3))) ** 2).mean()
        loss = settings.kl_weight * kl + settings.position_weight * position + settings.rotation_weight * rotation
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    log = {"seconds": time.perf_counter() - start, "final_kl": kl.item(),
           "final_position_l1_mm": 1000 * position.item(), "final_loss": loss.item()}
    return model, log


def load_or_train(poses: np.ndarray, settings: VPoserTraining, path: Path) -> tuple[VPoser, dict]:
    """The trained VAE from `path` if it exists, else trained and saved there."""
    if path.exists():
        saved = torch.load(path, weights_only=True)
        model = VPoser()
        model.load_state_dict(saved["state"])
        return model.eval(), {**json.loads(saved["log"]), "cached": True}
    model, log = train_vposer(poses, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "log": json.dumps(log)}, path)
    return model, {**log, "cached": False}


@torch.no_grad()
def sample_vposer(model: VPoser, count: int, seed: int = 0) -> np.ndarray:
    z = torch.randn(count, model.latent, generator=torch.Generator().manual_seed(seed))
    return model.decode(z).double().numpy()
