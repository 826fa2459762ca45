"""Per-dimension z-score normalisation of pose vectors (DPoser's choice: z-score beats min-max and none)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .layout import MODEL_DIM, MODEL_SLICES
from .network import PART_DIMS


@dataclass
class Normalizer:
    """mean, std (D,): x_normalised = (x - mean) / std."""

    mean: torch.Tensor
    std: torch.Tensor

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x)) / self.std.to(x)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std.to(x) + self.mean.to(x)

    @classmethod
    def whole_body(cls, parts: dict[str, "Normalizer"]) -> "Normalizer":
        """The 162-D model-vector normaliser from the part normalisers (the hand one serves both hands)."""
        for part, dim in PART_DIMS.items():
            for name in ("mean", "std"):
                shape = tuple(getattr(parts[part], name).shape)
                if shape != (dim,):
                    raise ValueError(f"{part} normaliser {name} must have {dim} values, got shape {shape}")
        mean, std = torch.zeros(MODEL_DIM), torch.ones(MODEL_DIM)
        for name, part, sub in (("body", "body", slice(0, 63)), ("left_hand", "hand", slice(0, 45)),
                                ("right_hand", "hand", slice(0, 45)), ("jaw", "face", slice(0, 3)),
                                ("eyes", "face", slice(3, 9))):
            mean[MODEL_SLICES[name]] = parts[part].mean[sub].float()
            std[MODEL_SLICES[name]] = parts[part].std[sub].float()
        return cls(mean, std)
