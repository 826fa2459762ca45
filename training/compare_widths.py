"""Equal-budget width comparison of the body network (the paper's width 1024 against our 512), on the
validation and test splits with the project's completion error, written to docs/model_card.md.

    python build.py train --part body --steps 3000 --warmup 300 --val-every 1000 --runs runs/width512
    python build.py train --part body --steps 3000 --warmup 300 --val-every 1000 --hidden 1024 --embed 512 \\
        --runs runs/width1024
    python -m training.compare_widths runs/width512 runs/width1024
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .evaluate import completion_error
from .export import ROOT, load_best, part_model
from .train import load_normalizer, load_split
from .validate_retarget import write_doc_block


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.compare_widths", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="runs folders, each with body/best.pt")
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--poses", type=int, default=500)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    normalizer = load_normalizer(args.data, "body")
    lines = [f"Written by `python -m training.compare_widths {' '.join(str(r) for r in args.runs)} --poses "
             f"{args.poses}`. Body network, left leg occluded, {args.poses} poses per split, 10 hypotheses, "
             "completion error (mm); each run's best EMA checkpoint by validation mean-of-10 (selected step).", "",
             "| network | parameters | steps (selected) | test best / mean of 10 | val best / mean of 10 |",
             "|---|---|---|---|---|"]
    results = {}
    for run in args.runs:
        state = load_best(run, "body")
        net = part_model(state)
        metric = {split: completion_error(net, normalizer, load_split(args.data, "body", split), "body", args.poses,
                                          "cpu", seed=1) for split in ("test", "val")}
        params = sum(p.numel() for p in net.parameters())
        steps = json.loads(state["args"])["steps"]
        results[str(run)] = metric
        lines.append(f"| hidden {state['config']['hidden']}, embed {state['config']['embed']} | {params / 1e6:.2f}M | "
                     f"{steps} ({state['step']}) | {metric['test']['best_of_k_mm']:.1f} / "
                     f"{metric['test']['mean_mm']:.1f} | {metric['val']['best_of_k_mm']:.1f} / "
                     f"{metric['val']['mean_mm']:.1f} |")
    fill = next(iter(results.values()))["test"]["mean_fill_mm"]
    lines += ["", f"Mean-pose fill on the same test poses: {fill:.1f} mm."]
    write_doc_block("width-comparison", "\n".join(lines), ROOT / "docs" / "model_card.md")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
