"""`python -m bench [--quick]` (through `python build.py bench`): run every benchmark, write docs/benchmarks.md
and docs/img/bench_*.png, and keep the raw numbers in runs/bench/results_<mode>.json."""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from dposerx_blender.core.layout import model_to_pose
from dposerx_blender.core.skeleton import BODY_JOINTS, JOINT_NAMES, NUM_JOINTS, OCCLUSION_GROUPS
from dposerx_blender.core.solvers import SAMPLED_COMPLETION, SCHEDULES
from dposerx_blender.core.weights import load_prior
from training.evaluate import to_model
from training.train import load_split

from . import completion, denoising, generation, noise, report, speed
from .gmm import load_or_fit, sample_gmm
from .settings import FULL, QUICK
from .vposer import load_or_train, sample_vposer

ROOT = Path(__file__).resolve().parents[1]
GMM_COMPONENTS = 8


class Clock:
    def __init__(self):
        self.start = time.perf_counter()

    def log(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:7.1f} s] {message}", flush=True)


SAMPLING = "DPoser-X sampling (mask-conditioned, default)"
OPTIMISATION = "DPoser-X optimisation (paper)"
SAMPLING_REDUCED = (f"sampling, {SAMPLED_COMPLETION['draws_per_hypothesis']} draws and "
                    f"{SAMPLED_COMPLETION['bank_per_hypothesis']} pose-bank grafts per hypothesis reduced by "
                    f"k-medoids, mean weight {SAMPLED_COMPLETION['mean_weight']} (default)")


def run_convention(data_dir: Path) -> dict | None:
    """The training data's per-joint body means against AMASS's (training/conventions.py), or None when the
    reference statistics are not next to the mocap folder."""
    from training.conventions import CONVENTION_JOINTS, compare, load_amass_stats

    try:
        amass_mean, amass_std = load_amass_stats()
    except OSError:
        return None
    summary = compare({"training set": load_split(data_dir, "body", "train")["poses"].astype(np.float64)},
                      amass_mean, amass_std)["training set"]
    names = [JOINT_NAMES[j] for j in BODY_JOINTS]
    return {"convention_joints_max_deg": max(float(summary["angle"][names.index(n)]) for n in CONVENTION_JOINTS),
            "beyond_one_std": {n: float(s) for n, s in zip(names, summary["sigmas"]) if s > 1},
            "angle_deg": dict(zip(names, map(float, summary["angle"])))}


def run_completion(mode, data_dir, prior, combined, methods_body, seed, clock) -> tuple[dict, dict]:
    results, ablations = {}, {}
    schedule = SCHEDULES["complete"]
    uniform = replace(schedule, t_max=1.0, t_min=1e-3)
    for group in completion.GROUPS:
        truth = completion.test_poses(data_dir, mode.completion_poses, with_hands=group == "hands")
        methods = {SAMPLING: completion.dposer_sampling(prior)} if prior.masked_body is not None else {}
        methods[OPTIMISATION] = completion.dposer(prior.model)
        if group != "hands":
            methods.update(methods_body)
        methods.update({"training-mean fill": completion.training_mean(),
                        "no prior (data term only)": completion.no_prior()})
        results[group] = {}
        for name, method in methods.items():
            results[group][name] = completion.evaluate(method, truth, prior.normalizer, group, mode.hypotheses, seed)
            clock.log(f"completion {group} {name}: {results[group][name]}")
        if group in mode.ablation_groups:
            variants = {"optimisation, truncated [0.15, 0.05], fused": results[group][OPTIMISATION],
                        "optimisation, uniform [1, 0.001], fused": completion.dposer(prior.model, uniform),
                        "optimisation, truncated [0.15, 0.05], part combination": completion.dposer(combined.model)}
            if prior.masked_body is not None:
                variants.update({SAMPLING_REDUCED: results[group][SAMPLING],
                                 "sampling, network draws only (no pose bank)": completion.dposer_sampling(
                                     prior, bank=False),
                                 "sampling, one draw per hypothesis, no pose bank": completion.dposer_sampling(
                                     prior, 1, bank=False)})
            ablations[group] = {name: v if isinstance(v, dict) else completion.evaluate(
                v, truth, prior.normalizer, group, mode.hypotheses, seed) for name, v in variants.items()}
            clock.log(f"ablations {group}: {ablations[group]}")
    return results, ablations


def run_denoising(mode, data_dir, prior, seed, clock) -> dict:
    test_takes = denoising.clips(data_dir, "test", mode.denoise_min_frames, mode.denoise_takes)
    val_tracks = denoising.clips(data_dir, "val")
    out, verdicts = {}, {}
    for kind in noise.KINDS:
        out[kind] = denoising.evaluate(prior, test_takes, val_tracks, kind, seed)
        verdicts[kind] = denoising.verdict(out[kind], kind, kind in noise.GLITCH_KINDS)
        clock.log(f"denoising {kind}: {out[kind]} -> {verdicts[kind]}")
    kept = denoising.clean_kept(prior, test_takes, seed)
    clock.log(f"denoising clean input kept: {kept}")
    body, whole = denoising.speed_tracks(data_dir, mode.speed_frames, seed)
    speeds = {"body": speed.denoising_speed(prior, body), "whole body": speed.denoising_speed(prior, whole)}
    clock.log(f"denoising speed: {speeds}")
    return {"conditions": out, "verdicts": verdicts, "clean_kept": kept, "speed": speeds,
            "takes": len(test_takes), "test_frames": int(sum(len(t) for t in test_takes)),
            "min_frames": mode.denoise_min_frames, "val_takes": len(val_tracks),
            "val_frames": int(sum(len(t) for t in val_tracks)), "speed_frames": mode.speed_frames}


def run_generation(mode, prior, train, test, val, gmm, vae, seed, clock) -> dict:
    n = mode.generated
    makers = {
        "held-out validation poses (reference)": lambda: generation.spaced(val, n).astype(np.float64),
        "DPoser Euler-Maruyama 1000 steps": lambda: generation.dposer_samples(prior, n, "euler_maruyama", 1000, seed),
        "DPoser DDIM 10 steps (eta 1)": lambda: generation.dposer_samples(prior, n, "ddim", 10, seed),
        "GMM (8 components)": lambda: sample_gmm(gmm, n, seed),
        "VPoser": lambda: sample_vposer(vae, n, seed),
    }
    out = {}
    for name, make in makers.items():
        samples, seconds = generation.timed(make)
        out[name] = {**generation.evaluate(samples, test, train), "seconds": seconds}
        clock.log(f"generation {name}: {out[name]}")
    return out


def run_speed(mode, data_dir, prior, clock) -> dict:
    poses = model_to_pose(completion.test_poses(data_dir, mode.speed_poses, with_hands=False).double().numpy())
    observed = np.ones(NUM_JOINTS, bool)
    observed[list(OCCLUSION_GROUPS["left_leg"])] = False
    out = {"completion": speed.completion_speed(prior, poses, observed, 10),
           "completion, 1 pose": speed.completion_speed(prior, poses[:1], observed, 10)}
    clock.log(f"speed completion: {out['completion']}")
    out["generation DDIM 10"] = speed.generation_speed(prior, mode.speed_generated, "ddim", 10)
    measured = speed.generation_speed(prior, mode.speed_generated, "euler_maruyama", mode.speed_em_steps)
    scale = 1000 / mode.speed_em_steps
    out["generation Euler-Maruyama 1000"] = {**measured, "seconds": measured["seconds"] * scale,
                                             "floor_seconds": measured["floor_seconds"] * scale,
                                             "forwards": int(measured["forwards"] * scale),
                                             "measured_steps": mode.speed_em_steps}
    clock.log(f"speed generation: {out['generation DDIM 10']} {out['generation Euler-Maruyama 1000']}")
    out["keyframes"] = speed.keyframe_speed(mode.keyframe_frames)
    clock.log(f"speed keyframes: {out['keyframes']}")
    return {**out, "completion_poses": mode.speed_poses, "generated": mode.speed_generated}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python build.py bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer poses, frames and samples (under 5 minutes)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on shared cores, spinning extra threads slow torch down)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--only", choices=("denoising",),
                        help="run one section and replace only it in docs/benchmarks.md")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    clock = Clock()
    started = {"commit": report.commit(), "date": datetime.date.today().isoformat()}
    load_at_start = os.getloadavg()[0]
    manifest = json.loads((args.data / "manifest.json").read_text())
    data_hash, tracks_hash = manifest["content_sha256"], manifest["tracks"]["test"]["sha256"]
    cache = ROOT / "runs" / "bench"
    if args.only == "denoising":
        results = {**started, "mode": mode.name, "seed": args.seed, "threads": torch.get_num_threads(),
                   "tracks_hash": tracks_hash, "command": report.command(mode.name) + " --only denoising",
                   "denoising": run_denoising(mode, args.data, load_prior(variant="fused"), args.seed, clock)}
        _finish(results, clock, load_at_start, cache / f"results_{mode.name}_denoising.json")
        report.replace_denoising(results, ROOT / "docs")
        clock.log("replaced the Denoising section of docs/benchmarks.md")
        return
    train, val, test = (load_split(args.data, "body", s)["poses"].astype(np.float64) for s in ("train", "val", "test"))
    prior, combined = load_prior(variant="fused"), load_prior(variant="combined")
    gmm_path = cache / f"gmm{GMM_COMPONENTS}_seed{args.seed}_{data_hash[:16]}.npz"
    gmm, gmm_log = load_or_fit(train, gmm_path, components=GMM_COMPONENTS, seed=args.seed)
    clock.log(f"GMM: {gmm_log}")
    vae_key = hashlib.sha256(json.dumps([data_hash, asdict(mode.vposer)]).encode()).hexdigest()[:16]
    vae, vae_log = load_or_train(train.astype(np.float32), mode.vposer, cache / f"vposer_{vae_key}.pt")
    clock.log(f"VPoser: {vae_log}")
    train_model = to_model("body", torch.from_numpy(train).float())
    train_normalised = prior.normalizer.normalize(train_model)[:, completion.BODY]
    methods_body = {"GMM (max-mixture)": completion.gmm(gmm, prior.normalizer),
                    "VPoser (latent optimisation)": completion.vposer(vae, prior.normalizer),
                    "nearest training pose": completion.nearest_training(train_normalised),
                    "random training poses (observation ignored)": completion.random_training(train_normalised)}
    results = {**started, "mode": mode.name, "settings": asdict(mode), "threads": torch.get_num_threads(),
               "seed": args.seed,
               "data_hash": data_hash, "tracks_hash": tracks_hash, "command": report.command(mode.name),
               "baselines": {"gmm": gmm_log, "vposer": vae_log, "gmm_components": GMM_COMPONENTS,
                             "vposer_settings": asdict(mode.vposer)}}
    results["convention"] = run_convention(args.data)
    clock.log(f"convention: {results['convention']}")
    results["completion"], results["ablations"] = run_completion(mode, args.data, prior, combined, methods_body,
                                                                 args.seed, clock)
    results["denoising"] = run_denoising(mode, args.data, prior, args.seed, clock)
    results["generation"] = run_generation(mode, prior, train, test, val, gmm, vae, args.seed, clock)
    results["speed"] = run_speed(mode, args.data, prior, clock)
    _finish(results, clock, load_at_start, cache / f"results_{mode.name}.json")
    report.write(results, ROOT / "docs")
    clock.log("wrote docs/benchmarks.md")


def _finish(results: dict, clock: Clock, load_at_start: float, path: Path) -> None:
    """Record the run's duration and machine load, and keep the raw numbers at `path`."""
    results["seconds"] = time.perf_counter() - clock.start
    results["load"] = (load_at_start, os.getloadavg()[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
