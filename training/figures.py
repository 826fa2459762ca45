"""Pictures for docs/: generated body poses next to real held-out poses, and the validation curves."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from dposerx_blender.core.skeleton import PARENTS, TIP_JOINTS

from .evaluate import positions

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw(ax, points: np.ndarray, color: str) -> None:
    """Front view (x right = subject's left, y up) of one skeleton with its tips."""
    lines = [(p, j) for j, p in enumerate(PARENTS) if p >= 0] + [(j, 55 + k) for k, j in enumerate(TIP_JOINTS)]
    for a, b in lines:
        ax.plot(points[[a, b], 0], points[[a, b], 1], color=color, lw=1.0)
    ax.set_aspect("equal")
    ax.set_xlim(-0.9, 0.9)
    ax.set_ylim(-1.05, 0.85)
    ax.axis("off")


def sample_grid(generated_body: torch.Tensor, real_body: torch.Tensor, path: Path = IMG / "prior_samples.png",
                columns: int = 6) -> Path:
    """generated_body, real_body (N, 63) raw axis-angle -> a picture, generated (left) and real (right)."""
    plt = _pyplot()
    gen, real = positions("body", generated_body).numpy(), positions("body", real_body).numpy()
    rows = int(np.ceil(len(gen) / columns))
    fig, axes = plt.subplots(rows, 2 * columns + 1, figsize=(1.1 * (2 * columns + 1), 1.5 * rows), squeeze=False)
    for r in range(rows):
        axes[r, columns].axis("off")
        for c in range(columns):
            k = r * columns + c
            for ax, pts, color in ((axes[r, c], gen, "tab:blue"), (axes[r, columns + 1 + c], real, "0.35")):
                if k < len(pts):
                    _draw(ax, pts[k], color)
                else:
                    ax.axis("off")
    fig.suptitle("body prior: generated (blue, Euler-Maruyama 1000 steps) | real held-out test poses (grey)",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def validation_curves(runs: Path, parts: list[str], path: Path = IMG / "validation_curve.png") -> Path:
    """Best-of-10 and mean completion error over training steps, per part, with the mean-pose fill."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(parts), figsize=(3.2 * len(parts), 2.8), squeeze=False)
    for ax, part in zip(axes[0], parts):
        records = [json.loads(line) for line in (runs / part / "log.jsonl").read_text().splitlines()]
        val = [r for r in records if "validation" in r]
        steps = [r["step"] for r in val]
        for key, label in (("best_of_k_mm", "best of 10"), ("mean_mm", "mean of 10"), ("mean_fill_mm", "mean fill")):
            ax.plot(steps, [r["validation"][key] for r in val], label=label, ls="--" if key == "mean_fill_mm" else "-")
        ax.set_title(part, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("completion error (mm)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
