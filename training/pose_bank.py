"""`python build.py bank`: the pose bank that sampled completion mixes into its draws (solvers.complete_by_sampling),
written to bundled_weights/ beside the network weights and recorded in its dposerx.json (hash, rows, command,
data hash); `python build.py export` writes it too.

The bank is BANK_ROWS body poses (raw axis-angle, 63 values, float16) drawn uniformly, without replacement, from
the training split: an exact sample of the training distribution. Completion grafts a bank pose's hidden joints
onto the observed ones; the network's draws carry what the observed joints say about the hidden ones, the bank's
cover the hidden joints where the network's draws are too narrow (arms and trunk: docs/model_card.md).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from dposerx_blender.core.weights import BANK_FILE, META_FILE, file_sha256

from .train import ROOT, load_split

BANK_ROWS = 8192  # 1 MB in float16; a completion draws a few hundred of them
BANK_SEED = 0


def bank_rows(data_dir: Path) -> np.ndarray:
    """The bank's training poses (BANK_ROWS, 63), raw body axis-angle."""
    poses = load_split(data_dir, "body", "train")["poses"]
    chosen = np.random.default_rng(BANK_SEED).choice(len(poses), min(BANK_ROWS, len(poses)), replace=False)
    return poses[np.sort(chosen)]


def write_bank(data_dir: Path, out: Path) -> dict:
    """Write out/BANK_FILE; returns the entry the meta records for it (its hash goes with the others')."""
    rows = torch.from_numpy(bank_rows(data_dir)).half().contiguous()
    save_file({"body": rows}, str(out / BANK_FILE))
    manifest = json.loads((data_dir / "manifest.json").read_text())
    return {"rows": len(rows), "seed": BANK_SEED, "split": "train", "command": "python build.py bank",
            "data_content_sha256": manifest["content_sha256"]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python build.py bank", description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "bundled_weights")
    args = parser.parse_args(argv)
    meta_path = args.out / META_FILE
    if not meta_path.is_file():
        raise SystemExit(f"{meta_path} not found: run `python build.py export` first")
    meta = json.loads(meta_path.read_text())
    meta["pose_bank"] = write_bank(args.data, args.out)
    meta["sha256"][BANK_FILE] = file_sha256(args.out / BANK_FILE)
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{meta['pose_bank']['rows']} poses written to {args.out / BANK_FILE}")


if __name__ == "__main__":
    main()
