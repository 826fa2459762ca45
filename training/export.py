"""`python build.py export`: the best EMA checkpoints of runs/ -> bundled_weights/ (fp16 safetensors + JSON),
with validation and held-out test metrics measured here, and the pictures for docs/.

The whole-body default variant (part combination vs fused/masked model) is chosen by the validation
completion error of the same protocol (one hand and its wrist occluded), both numbers recorded.
"""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from dposerx_blender.core.network import PART_DIMS, CombinedPrior, FusedPrior, TimeFC, part_network
from dposerx_blender.core.normalizer import Normalizer
from dposerx_blender.core.weights import BANK_FILE, META_FILE, WEIGHTS_FILE, file_sha256

from .evaluate import completion_error
from .figures import sample_grid, validation_curves
from .pose_bank import write_bank
from .train import load_normalizer, load_split
from .validate_retarget import write_doc_block

ROOT = Path(__file__).resolve().parents[1]
LICENCE = ("Trained only on data whose licences allow commercial use of outputs: CMU Graphics Lab Motion Capture "
           "Database (mocap.cs.cmu.edu; created with funding from NSF EIA-0196217), MakeHuman CC0 assets, "
           "ASL hand landmarks (MIT, Boris Graudt), plus procedural synthetic hands, jaw and eyes. "
           "See docs/model_card.md and docs/data.md.")


def load_best(runs: Path, name: str) -> dict:
    path = runs / name / "best.pt"
    if not path.exists():
        raise SystemExit(f"{path} not found: run `python build.py train --part {name}` first")
    return torch.load(path, weights_only=True)


def part_model(state: dict) -> TimeFC:
    net = part_network(state["config"])
    net.load_state_dict(state["ema"])
    return net.eval()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python build.py export", description=__doc__)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs")
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "bundled_weights")
    parser.add_argument("--test-poses", type=int, default=1000)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    states = {name: load_best(args.runs, name) for name in (*PART_DIMS, "whole")}
    parts = {name: part_model(states[name]) for name in PART_DIMS}
    combined = CombinedPrior(parts).eval()
    fused = FusedPrior(combined, **{k: states["whole"]["config"][k] for k in ("hidden", "embed", "blocks", "dropout")})
    fused.load_state_dict({**states["whole"]["ema"], **{f"combined.{k}": v for k, v in combined.state_dict().items()}})
    fused.eval()

    tensors = {}
    for name in PART_DIMS:
        tensors.update({f"{name}.{k}": v.half().contiguous() for k, v in parts[name].state_dict().items()})
        tensors[f"normalizer.{name}.mean"] = states[name]["mean"].float().contiguous()
        tensors[f"normalizer.{name}.std"] = states[name]["std"].float().contiguous()
    tensors.update({f"fused.{k}": v.half().contiguous() for k, v in fused.state_dict().items()
                    if not k.startswith("combined.")})
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out / WEIGHTS_FILE))

    # Metrics of the exported (fp16-rounded) weights, so the numbers describe what ships.
    from dposerx_blender.core.weights import load_prior

    bank = write_bank(args.data, args.out)
    meta = {"format": 1, "sha256": {WEIGHTS_FILE: file_sha256(args.out / WEIGHTS_FILE),
                                    BANK_FILE: file_sha256(args.out / BANK_FILE)}}
    # A first meta with what the loader needs, so the metrics below run through the shipped loading path.
    (args.out / META_FILE).write_text(json.dumps({**meta, "parts": {p: {"config": states[p]["config"]}
                                                                      for p in PART_DIMS},
                                                  "fused": {"config": states["whole"]["config"]}}))
    metrics = {}
    for name in PART_DIMS:
        normalizer = load_normalizer(args.data, name)
        shipped = load_prior(args.out, "combined").model.parts[name]
        metrics[name] = {split: completion_error(shipped, normalizer, load_split(args.data, name, split), name,
                                                 args.test_poses, "cpu", seed=1) for split in ("val", "test")}
    whole_normalizer = load_normalizer(args.data, "whole")
    for variant in ("combined", "fused"):
        shipped = load_prior(args.out, variant).model
        metrics[f"whole_{variant}"] = {
            split: completion_error(shipped, whole_normalizer, load_split(args.data, "whole", split), "whole",
                                    args.test_poses, "cpu", seed=1) for split in ("val", "test")}
    default = min(("combined", "fused"), key=lambda v: metrics[f"whole_{v}"]["val"]["best_of_k_mm"])
    body_normalizer = load_normalizer(args.data, "body")
    metrics["body_generation"] = generation_check(load_prior(args.out, "combined").model.parts["body"],
                                                  body_normalizer, load_split(args.data, "body", "test")["poses"])

    data_manifest = json.loads((args.data / "manifest.json").read_text())
    meta.update({
        "parts": {p: {"config": states[p]["config"], "step": states[p]["step"],
                      "best_validation": json.loads(states[p]["metric"]),
                      "command": "python build.py train " + _command(states[p]),
                      **({"reused": "not retrained: taken from the previous bundle (training/reuse_bundled.py)"}
                         if "reused_from" in json.loads(states[p]["args"]) else {})} for p in PART_DIMS},
        "fused": {"config": states["whole"]["config"], "step": states["whole"]["step"],
                  "best_validation": json.loads(states["whole"]["metric"]),
                  "command": "python build.py train " + _command(states["whole"])},
        "default_variant": default,
        "pose_bank": bank,
        "metrics": metrics,
        "metric_protocol": "completion error (mm) of the positions moved by occluded joints, default rest "
                           "skeleton, best and mean of 10 hypotheses, vs mean-pose fill; body: left leg; hand: "
                           "index+middle fingers; face: jaw; whole: left hand + wrist",
        "data": {"content_sha256": data_manifest["content_sha256"], "options": data_manifest["options"]},
        "export_command": "python build.py export",
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
        "licence": LICENCE,
    })
    (args.out / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    validation_curves(args.runs, [*PART_DIMS, "whole"])
    write_doc_block("model-card-metrics", metrics_markdown(meta), ROOT / "docs" / "model_card.md")
    print(json.dumps(metrics, indent=1))
    print(f"default whole-body variant: {default}; written to {args.out}")


def generation_check(body_net: TimeFC, normalizer: Normalizer, real_test: np.ndarray, n: int = 500) -> dict:
    """Euler-Maruyama samples (1000 steps) of the body network: finite, inside the anatomical bounds; and
    the picture of 24 of them next to 24 real held-out poses."""
    from dposerx_blender.core.layout import model_to_pose
    from dposerx_blender.core.limits import within_limits
    from dposerx_blender.core.solvers import sample_euler_maruyama

    generator = torch.Generator().manual_seed(0)
    start = torch.randn((n, 63), generator=generator)
    samples = normalizer.denormalize(sample_euler_maruyama(body_net, start, generator=generator))
    model = torch.zeros(n, 162)
    model[:, :63] = samples
    poses = model_to_pose(model).numpy()
    real = torch.from_numpy(real_test[np.linspace(0, len(real_test) - 1, 24).astype(int)]).float()
    sample_grid(samples[:24], real)
    return {"samples": n, "finite": bool(np.isfinite(poses).all()),
            "within_limits": float(within_limits(poses).mean()),
            "real_test_within_limits": float(within_limits(model_to_pose(
                np.pad(real_test, ((0, 0), (0, 99))))).mean())}


def metrics_markdown(meta: dict) -> str:
    """The model card's metrics block, from the exported JSON."""
    m = meta["metrics"]
    rows = [("body (left leg occluded)", "body"), ("hand (index + middle occluded)", "hand"),
            ("face (jaw occluded)", "face"), ("whole, combined (left hand + wrist occluded)", "whole_combined"),
            ("whole, fused (left hand + wrist occluded)", "whole_fused")]
    lines = [f"Written by `python build.py export` at commit {meta['commit'][:10]}; data hash "
             f"{meta['data']['content_sha256'][:16]}. Completion error (mm) of the positions the occluded joints "
             "move, default rest skeleton, 10 hypotheses; held-out **test** split (CMU subjects 02, 08, 13, 85) "
             "and validation split; mean-pose fill = occluded joints set to the training mean.", "",
             "| task | split | poses | best of 10 | mean of 10 | mean-pose fill | best of 10 relative to fill |",
             "|---|---|---|---|---|---|---|"]
    for label, key in rows:
        for split in ("test", "val"):
            r = m[key][split]
            lines.append(f"| {label} | {split} | {r['poses']} | {r['best_of_k_mm']:.1f} | {r['mean_mm']:.1f} | "
                         f"{r['mean_fill_mm']:.1f} | {100 * (r['best_of_k_mm'] / r['mean_fill_mm'] - 1):+.0f}% |")
    lines += ["", f"Default whole-body variant (lower validation best-of-10): **{meta['default_variant']}**.", ""]
    g = m["body_generation"]
    lines.append(f"Generation (body, Euler-Maruyama 1000 steps, {g['samples']} samples): all finite: {g['finite']}; "
                 f"inside the anatomical bounds of core/limits.py: {100 * g['within_limits']:.1f}% "
                 f"(real test poses: {100 * g['real_test_within_limits']:.1f}%).")
    return "\n".join(lines)


def _command(state: dict) -> str:
    """The training command line, rebuilt from the arguments stored with the checkpoint."""
    stored = json.loads(state["args"])
    flags = ["part", "steps", "batch", "lr", "warmup", "hidden", "embed", "blocks", "dropout", "seed"]
    masked = {"True": " --masked", "False": " --no-masked"}.get(stored.get("masked"), "")
    init = f" --init {stored['init']}" if stored.get("init") not in (None, "None") else ""
    return " ".join(f"--{k} {stored[k]}" for k in flags) + (masked if stored["part"] == "body" else "") + init


if __name__ == "__main__":
    main()
