"""`python -m training.tune_completion RUN_DIR`: choose the sampled-completion settings (DDIM steps, eta,
temperature, draws per hypothesis) of the mask-reading body network on the VALIDATION split only, over the body occlusion groups
of the bench (left_leg, legs, arms, trunk); prints a table and the chosen row (lowest mean of best-of-10 and
mean-of-10 errors, averaged over the groups)."""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from dposerx_blender.core.layout import joint_mask_to_model_mask
from dposerx_blender.core.network import part_network
from dposerx_blender.core.normalizer import Normalizer
from dposerx_blender.core.skeleton import NUM_JOINTS, OCCLUSION_GROUPS
from dposerx_blender.core.solvers import representatives, sample_completion

from .evaluate import affected_points, from_model, positions
from .train import ROOT, load_split

GROUPS = ("left_leg", "legs", "arms", "trunk")
GRID = {"steps": (10, 20), "eta": (1.0,), "temperature": (0.8, 1.0, 1.2), "draws_per_hypothesis": (1, 10)}


@torch.no_grad()
def errors(net, normalizer, truth: torch.Tensor, group: str, settings: dict, hypotheses: int = 10) -> tuple:
    joint_mask = torch.ones(NUM_JOINTS, dtype=torch.bool)
    joint_mask[list(OCCLUSION_GROUPS[group])] = False
    mask = from_model("body", joint_mask_to_model_mask(joint_mask)).expand_as(truth)
    settings = dict(settings)
    draws = hypotheses * settings.pop("draws_per_hypothesis")
    generator = torch.Generator().manual_seed(0)
    sampled = sample_completion(net, normalizer.normalize(truth), mask, draws, generator=generator, **settings)
    points = affected_points(OCCLUSION_GROUPS[group])
    found = positions("body", normalizer.denormalize(sampled.reshape(-1, truth.shape[1])))[:, points]
    found = found.reshape(len(truth), draws, -1)
    picks = representatives(found, hypotheses, generator)  # as solvers.complete_by_sampling, on the moved points
    found = torch.take_along_dim(found, picks[..., None], dim=1).reshape(len(truth), hypotheses, len(points), 3)
    error = 1000 * (found - positions("body", truth)[:, None, points]).norm(dim=-1).mean(-1)
    return error.min(1).values.mean().item(), error.mean().item()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.tune_completion", description=__doc__)
    parser.add_argument("run", type=Path, help="a run directory holding body/best.pt")
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--poses", type=int, default=100)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    state = torch.load(args.run / "body" / "best.pt", weights_only=True)
    net = part_network(state["config"])
    net.load_state_dict(state["ema"])
    net.eval()
    normalizer = Normalizer(state["mean"].float(), state["std"].float())
    rows = load_split(args.data, "body", "val")["poses"]
    truth = torch.from_numpy(rows[np.linspace(0, len(rows) - 1, args.poses).astype(int)]).float()
    results = []
    for values in itertools.product(*GRID.values()):
        settings = dict(zip(GRID, values))
        per_group = {g: errors(net, normalizer, truth, g, settings) for g in GROUPS}
        best = float(np.mean([b for b, _ in per_group.values()]))
        mean = float(np.mean([m for _, m in per_group.values()]))
        results.append({**settings, "best_mm": best, "mean_mm": mean, "groups": per_group})
        print(f"{settings}: best {best:.1f} mean {mean:.1f}", flush=True)
    chosen = min(results, key=lambda r: r["best_mm"] + r["mean_mm"])
    print("chosen:", json.dumps({k: chosen[k] for k in (*GRID, "best_mm", "mean_mm")}))
    (args.run / "body" / "completion_tuning.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
