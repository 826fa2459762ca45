"""`python -m training.reuse_bundled --part hand --runs runs/final`: write runs/<part>/best.pt from the part
network that ships in bundled_weights/ (its fp16 weights, normaliser, step, validation metric and training
command from dposerx.json), so `train --part whole` and `export` can reuse a part that does not need
retraining. Used when a data rebuild leaves a part's training rows (nearly) unchanged; the exported JSON then
records that part's original training command."""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import torch
from safetensors.torch import load_file

from dposerx_blender.core.network import PART_DIMS
from dposerx_blender.core.weights import META_FILE, WEIGHTS_FILE, default_weights_dir

from .train import ROOT


def bundled_state(part: str, weights_dir: Path) -> dict:
    """The `export_state` dictionary of a shipped part network."""
    meta = json.loads((weights_dir / META_FILE).read_text())["parts"][part]
    tensors = load_file(str(weights_dir / WEIGHTS_FILE))
    weights = {k[len(part) + 1:]: v.float() for k, v in tensors.items() if k.startswith(f"{part}.")}
    words = shlex.split(meta["command"])
    flags = {words[i][2:]: words[i + 1] for i in range(len(words)) if words[i].startswith("--")
             and i + 1 < len(words) and not words[i + 1].startswith("--")}
    flags["reused_from"] = "bundled_weights"
    return {"ema": weights, "config": meta["config"], "step": meta["step"],
            "metric": json.dumps(meta["best_validation"]), "args": json.dumps(flags),
            "mean": tensors[f"normalizer.{part}.mean"].float(), "std": tensors[f"normalizer.{part}.std"].float()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.reuse_bundled", description=__doc__)
    parser.add_argument("--part", choices=list(PART_DIMS), required=True)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs")
    parser.add_argument("--weights", type=Path, default=default_weights_dir())
    args = parser.parse_args(argv)
    out = args.runs / args.part / "best.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(bundled_state(args.part, args.weights), out)
    print(f"{out}: {args.part} network from {args.weights}")


if __name__ == "__main__":
    main()
