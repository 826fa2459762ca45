"""The DPoser score network ("TimeFC", paper sec. 3.1) and the whole-body combination of part networks.

Every network here predicts the noise eps_hat(x_t, t) of the sub-VP SDE in normalised pose space; the
denoiser x0_hat follows from sde.denoised. Deviation from the reference code: the output is not divided by a
VE-SDE sigma grid (the "scale_by_sigma" quirk, which only matters for loading the authors' checkpoints).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .layout import MODEL_SLICES

TIME_SCALE = 999.0  # the network sees t_label = 999 t, as in the reference code


def timestep_embedding(t_label: torch.Tensor, dim: int, max_positions: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding [sin, cos] of (B,) time labels -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_positions) * torch.arange(half, device=t_label.device) / (half - 1))
    args = t_label.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class TimeFC(nn.Module):
    """MLP noise predictor with a sinusoidal time embedding: input and time projections, then residual
    blocks of two Linear + GroupNorm(32) + SiLU + dropout layers, each with its own time projection."""

    def __init__(self, dim: int, hidden: int = 1024, embed: int = 512, blocks: int = 2, dropout: float = 0.1,
                 out_dim: int | None = None):
        super().__init__()
        self.dim, self.hidden, self.embed, self.blocks, self.dropout = dim, hidden, embed, blocks, dropout
        self.out_dim = dim if out_dim is None else out_dim
        self.time_embed = nn.Sequential(nn.Linear(embed, embed), nn.SiLU())
        self.input = nn.Linear(dim, hidden)
        self.input_time = nn.Linear(embed, hidden)
        self.input_norm = nn.GroupNorm(32, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(2 * blocks))
        self.layer_times = nn.ModuleList(nn.Linear(embed, hidden) for _ in range(2 * blocks))
        self.layer_norms = nn.ModuleList(nn.GroupNorm(32, hidden) for _ in range(2 * blocks))
        self.output = nn.Linear(hidden, self.out_dim)
        self.act, self.drop = nn.SiLU(), nn.Dropout(dropout)

    def config(self) -> dict:
        return {"dim": self.dim, "hidden": self.hidden, "embed": self.embed, "blocks": self.blocks,
                "dropout": self.dropout, "out_dim": self.out_dim}

    def input_features(self, x: torch.Tensor) -> torch.Tensor:
        """The input layer's features of x (B, dim), which the fused correction reads."""
        return self.input(x)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x (B, dim) normalised noisy pose, t (B,) in [0, 1] -> eps_hat (B, out_dim)."""
        temb = self.time_embed(timestep_embedding(TIME_SCALE * t, self.embed).to(x.dtype))
        h = self.drop(self.act(self.input_norm(self.input(x) + self.input_time(temb))))
        for b in range(self.blocks):
            residual = h
            for k in (2 * b, 2 * b + 1):
                h = self.drop(self.act(self.layer_norms[k](self.layers[k](h) + self.layer_times[k](temb))))
            h = residual + h
        return self.output(h)


class MaskedTimeFC(TimeFC):
    """TimeFC that also reads which joints are observed (our addition to the paper, issue 11): the input is the
    noisy pose with the observed entries replaced by their clean values, plus one 0/1 flag per joint. Trained
    with random joint and part masks, including the empty mask, it is at once the unconditional prior
    (`forward(x, t)`, what DPoser's optimisation and the part combination call) and a model of the missing
    joints given the observed ones (`forward(x, t, known, known_mask)`, sampled by `tasks.complete`)."""

    def __init__(self, dim: int, hidden: int = 1024, embed: int = 512, blocks: int = 2, dropout: float = 0.1,
                 out_dim: int | None = None, masked: bool = True):
        super().__init__(dim + dim // 3, hidden, embed, blocks, dropout, out_dim=dim)
        self.pose_dim = dim

    def config(self) -> dict:
        return {**super().config(), "dim": self.pose_dim, "masked": True}

    def _with_flags(self, x: torch.Tensor, known_mask: torch.Tensor | None) -> torch.Tensor:
        flags = (x.new_zeros(x.shape[0], self.pose_dim // 3) if known_mask is None
                 else known_mask[:, ::3].to(x.dtype))
        return torch.cat([x, flags], dim=1)

    def input_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.input(self._with_flags(x, None))

    def forward(self, x: torch.Tensor, t: torch.Tensor, known: torch.Tensor | None = None,
                known_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, dim), t (B,); known (B, dim) clean normalised values where known_mask (B, dim) bool is True
        (whole joints: the three entries of a joint share one flag) -> eps_hat (B, dim)."""
        if known_mask is not None:
            x = torch.where(known_mask, known, x)
        return super().forward(self._with_flags(x, known_mask), t)


def part_network(config: dict) -> TimeFC:
    """The part network a stored config describes (masked or plain)."""
    return (MaskedTimeFC if config.get("masked") else TimeFC)(**config)


# Which part network serves each slice of the model vector. Both hands share one network: the model vector
# stores the left hand mirrored into right-hand convention (layout.py).
PART_OF_SLICE = {"body": "body", "left_hand": "hand", "right_hand": "hand", "jaw": "face", "eyes": "face"}
PART_DIMS = {"body": 63, "hand": 45, "face": 9}
PART_SLICES = {"body": (MODEL_SLICES["body"],), "hand": (MODEL_SLICES["right_hand"],),
               "face": (MODEL_SLICES["jaw"], MODEL_SLICES["eyes"])}


def _split(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Model vectors (B, 162) -> the inputs of the part networks; both hands stacked (2B, 45)."""
    return {"body": x[:, MODEL_SLICES["body"]],
            "hand": torch.cat([x[:, MODEL_SLICES["left_hand"]], x[:, MODEL_SLICES["right_hand"]]]),
            "face": torch.cat([x[:, MODEL_SLICES["jaw"]], x[:, MODEL_SLICES["eyes"]]], dim=1)}


class CombinedPrior(nn.Module):
    """DPoser-X-base: the whole-body noise predictor assembled from the part networks (no new parameters)."""

    def __init__(self, parts: dict[str, TimeFC]):
        super().__init__()
        self.parts = nn.ModuleDict(parts)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x (B, 162) normalised model vectors, t (B,) -> eps_hat (B, 162)."""
        inputs = _split(x)
        body = self.parts["body"](inputs["body"], t)
        left, right = self.parts["hand"](inputs["hand"], t.repeat(2)).chunk(2)  # one call, both hands
        face = self.parts["face"](inputs["face"], t)
        return torch.cat([body, left, right, face], dim=1)  # the model vector's slice order


# Part masks of the whole-body model: which model-vector dimensions each maskable part covers.
MASK_PARTS = {"body": ("body",), "left_hand": ("left_hand",), "right_hand": ("right_hand",),
              "face": ("jaw", "eyes")}


def part_mask_to_dims(part_mask: torch.Tensor) -> torch.Tensor:
    """part_mask (B, 4) over MASK_PARTS (1 = present) -> (B, 162) float."""
    dims = torch.zeros(part_mask.shape[0], sum(s.stop - s.start for s in MODEL_SLICES.values()),
                       dtype=part_mask.dtype, device=part_mask.device)
    for k, slices in enumerate(MASK_PARTS.values()):
        for name in slices:
            dims[:, MODEL_SLICES[name]] = part_mask[:, k:k + 1]
    return dims


class FusedPrior(nn.Module):
    """DPoser-X-fused/-mixed: the frozen part combination plus a learned whole-body correction.

    Missing parts (part_mask 0) are zeroed in the input (the normalised mean pose). The correction reads the
    frozen part networks' input-layer features of all four parts (as the reference code does), runs them
    through its own TimeFC and a zero-initialised linear layer, so training starts from the combination.
    """

    def __init__(self, combined: CombinedPrior, hidden: int = 512, embed: int = 256, blocks: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        self.combined = combined.requires_grad_(False)
        features = sum(combined.parts[p].hidden for p in ("body", "hand", "hand", "face"))
        dim = sum(s.stop - s.start for s in MODEL_SLICES.values())
        self.correction = TimeFC(features, hidden, embed, blocks, dropout, out_dim=dim)
        self.zero_linear = nn.Linear(dim, dim)
        nn.init.zeros_(self.zero_linear.weight)
        nn.init.zeros_(self.zero_linear.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, part_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, 162), t (B,), part_mask (B, 4) or None (all present) -> eps_hat (B, 162)."""
        if part_mask is not None:
            x = x * part_mask_to_dims(part_mask.to(x.dtype))
        inputs = _split(x)
        parts = self.combined.parts
        left, right = parts["hand"].input_features(inputs["hand"]).chunk(2)
        features = torch.cat([parts["body"].input_features(inputs["body"]), left, right,
                              parts["face"].input_features(inputs["face"])], dim=1)
        return self.combined(x, t) + self.zero_linear(self.correction(features, t))
