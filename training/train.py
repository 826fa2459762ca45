"""`python build.py train --part body|hand|face|whole`: train a DPoser prior on the dataset from `build.py data`.

Faithful to the reference training (method digest sec. 3): t ~ U(1e-5, 1), x_t = alpha_t x0 + sigma_t z,
loss ||eps_hat - z||^2; RAdam lr 2e-4 with linear warm-up and cosine decay, gradient clipping 1.0, EMA 0.9999
with the (1+n)/(10+n) warm-up; validation by completion error (best and mean of k hypotheses), keeping the EMA weights with the lowest mean.
`whole` trains DPoser-X's fused correction over the frozen part networks with masked training: missing parts
are masked out of the input and the loss; fully present samples get each part masked with probability 0.2
while the loss stays on all parts.

Multi-process: launch with `torchrun --nproc_per_node N -m training.train ...` (gloo on CPU, nccl on CUDA);
each rank draws its own batches, gradients are averaged by DistributedDataParallel, rank 0 validates and saves.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from dposerx_blender.core.network import (PART_DIMS, CombinedPrior, FusedPrior, MaskedTimeFC, TimeFC,
                                          part_mask_to_dims, part_network)
from dposerx_blender.core.skeleton import BODY_JOINTS, OCCLUSION_GROUPS
from dposerx_blender.core.normalizer import Normalizer
from dposerx_blender.core.sde import T_EPS, alpha_sigma

from .evaluate import completion_error

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("body", "hand", "face", "whole")
PART_MASK_PROBABILITY = 0.2  # DPoser-X masks each part of fully present samples with this probability
# Observation masks of the masked body network (each training pose draws one kind): the empty mask keeps it an
# unconditional prior; the completion protocol's occlusion groups; and independent joints hidden at a rate drawn
# uniformly, so any mix of locked bones an animator makes is in the training distribution.
MASK_KINDS = {"empty": 0.2, "group": 0.4, "random": 0.4}
BODY_GROUPS = ("left_leg", "right_leg", "legs", "left_arm", "right_arm", "arms", "trunk")
SELECTION_TOLERANCE = 0.005  # a later checkpoint within 0.5% of the best validation error replaces it


def load_split(data_dir: Path, part: str, split: str) -> dict[str, np.ndarray]:
    """Arrays of one split: {"poses"} for a part, {"model", "present"} for whole."""
    path = data_dir / ("whole" if part == "whole" else part) / f"{split}.npz"
    if not path.exists():
        raise SystemExit(f"{path} not found: run `python build.py data` first")
    with np.load(path) as data:
        if part != "whole":
            return {"poses": data["poses"]}
        present = data["present"]  # over dataset.PARTS_ORDER: body, left_hand, right_hand, jaw, eyes
        return {"model": data["model"], "present": np.stack(
            [present[:, 0], present[:, 1], present[:, 2], present[:, 3] & present[:, 4]], 1)}


def load_normalizer(data_dir: Path, part: str) -> Normalizer:
    def one(name):
        with np.load(data_dir / name / "normalizer.npz") as stats:
            return Normalizer(torch.from_numpy(stats["mean"]).float(), torch.from_numpy(stats["std"]).float())

    if part != "whole":
        return one(part)
    return Normalizer.whole_body({p: one(p) for p in PART_DIMS})


def build_model(part: str, args, part_checkpoints: dict | None = None) -> torch.nn.Module:
    if part != "whole":
        network = MaskedTimeFC if part == "body" and args.masked else TimeFC
        return network(PART_DIMS[part], args.hidden, args.embed, args.blocks, args.dropout)
    parts = {}
    for name in PART_DIMS:
        state = part_checkpoints[name]
        net = part_network(state["config"])
        net.load_state_dict(state["ema"])
        parts[name] = net.eval()
    return FusedPrior(CombinedPrior(parts), args.hidden, args.embed, args.blocks, args.dropout)


def learning_rate(step: int, args) -> float:
    warmup = max(1, args.warmup)
    return args.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / args.steps))


def observation_masks(batch: int, generator: torch.Generator, device) -> torch.Tensor:
    """(batch, 63) bool body observation masks (True = observed) drawn from MASK_KINDS."""
    group_masks = torch.ones(len(BODY_GROUPS), len(BODY_JOINTS), dtype=torch.bool, device=device)
    for g, name in enumerate(BODY_GROUPS):
        group_masks[g, [BODY_JOINTS.index(j) for j in OCCLUSION_GROUPS[name]]] = False
    kind = torch.multinomial(torch.tensor(list(MASK_KINDS.values()), device=device), batch, replacement=True,
                             generator=generator)
    group = group_masks[torch.randint(0, len(BODY_GROUPS), (batch,), generator=generator, device=device)]
    rate = torch.rand(batch, 1, generator=generator, device=device)
    random = torch.rand(batch, len(BODY_JOINTS), generator=generator, device=device) >= rate
    empty = torch.zeros_like(random)
    joints = torch.where((kind == 0)[:, None], empty, torch.where((kind == 1)[:, None], group, random))
    return joints.repeat_interleave(3, dim=1)


def training_loss(model, batch: dict, generator: torch.Generator, device) -> torch.Tensor:
    """Denoising score matching ||eps_hat - z||^2 (masked for whole-body samples; for the masked body network,
    on the unobserved entries only, the observed ones given clean)."""
    if "poses" in batch and isinstance(_unwrapped(model), MaskedTimeFC):
        x0 = batch["poses"]
        observed = observation_masks(x0.shape[0], generator, device)
        t = T_EPS + torch.rand(x0.shape[0], generator=generator, device=device) * (1 - T_EPS)
        z = torch.randn(x0.shape, generator=generator, device=device)
        alpha, sigma = alpha_sigma(t)
        eps = model(alpha[:, None] * x0 + sigma[:, None] * z, t, x0, observed)
        hidden = (~observed).float()
        return (((eps - z) ** 2) * hidden).sum() / hidden.sum()
    if "poses" in batch:
        x0, loss_mask, part_mask = batch["poses"], None, None
    else:
        x0, present = batch["model"], batch["present"].float()
        full = present.all(dim=1, keepdim=True)
        drop = torch.rand(present.shape, generator=generator, device=device) < PART_MASK_PROBABILITY
        # Fully present samples: parts hidden from the input with p = 0.2, loss on all parts.
        part_mask = torch.where(full, (~drop).float(), present)
        loss_mask = part_mask_to_dims(present)
    t = T_EPS + torch.rand(x0.shape[0], generator=generator, device=device) * (1 - T_EPS)
    z = torch.randn(x0.shape, generator=generator, device=device)
    alpha, sigma = alpha_sigma(t)
    x_t = alpha[:, None] * x0 + sigma[:, None] * z
    eps = model(x_t, t) if part_mask is None else model(x_t, t, part_mask)
    error = (eps - z) ** 2
    if loss_mask is None:
        return error.mean()
    return (error * loss_mask).sum() / loss_mask.sum()


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


class Ema:
    """Exponential moving average of the trainable weights, decay min(0.9999, (1+n)/(10+n)); frozen weights
    and buffers are copied as they are."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.9999):
        self.decay, self.updates = decay, 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.trainable = {k for k, v in model.named_parameters() if v.requires_grad}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if k in self.trainable:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def copy_into(self, model: torch.nn.Module) -> torch.nn.Module:
        model = copy.deepcopy(model)
        model.load_state_dict(self.shadow)
        return model.eval()


def rng_states(generator: torch.Generator, distributed: bool) -> list:
    """Every rank's (batch generator, torch global) random states, so a resumed run draws what an
    uninterrupted one would (dropout uses the global state). Collective when distributed."""
    mine = (generator.get_state(), torch.get_rng_state())
    if not distributed:
        return [mine]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    return gathered


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python build.py train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=PARTS, required=True)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=1280)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=1000, help="warm-up steps (paper: 5000 of 200k)")
    parser.add_argument("--hidden", type=int, default=None, help="width (default 512; whole: 512)")
    parser.add_argument("--embed", type=int, default=None, help="time embedding (default hidden/2)")
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--masked", action=argparse.BooleanOptionalAction, default=True,
                        help="body: the mask-reading network trained with random observation masks (default)")
    parser.add_argument("--val-every", type=int, default=1000)
    parser.add_argument("--val-poses", type=int, default=200, help="validation poses for completion")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from the EMA weights of this best.pt (fine-tuning after a data change)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    args.hidden = args.hidden or 512
    args.embed = args.embed or args.hidden // 2
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    if distributed:
        dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
        rank = dist.get_rank()
        if args.device.startswith("cuda"):
            args.device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    run_dir = args.runs / args.part
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    normalizer = load_normalizer(args.data, args.part)
    train = {k: torch.from_numpy(v) for k, v in load_split(args.data, args.part, "train").items()}
    key = "poses" if "poses" in train else "model"
    train[key] = normalizer.normalize(train[key].float())
    train = {k: v.to(device) for k, v in train.items()}
    val = load_split(args.data, args.part, "val")
    part_checkpoints = None
    if args.part == "whole":
        part_checkpoints = {p: torch.load(args.runs / p / "best.pt", weights_only=True) for p in PART_DIMS}
    model = build_model(args.part, args, part_checkpoints).to(device)
    if args.init is not None:
        init = torch.load(args.init, weights_only=True)
        model.load_state_dict(init["ema"])
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.RAdam(trainable, lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    ema = Ema(model)
    step, best, history = 0, math.inf, []
    generator = torch.Generator(device=device).manual_seed(args.seed + rank)
    checkpoint_path = run_dir / "checkpoint.pt"
    if args.resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=True, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        ema.shadow, ema.updates = state["ema"], state["ema_updates"]
        step, best, history = state["step"], state["best"], json.loads(state["history"])
        generator_state, global_state = state["rng"][rank]
        generator.set_state(generator_state)
        torch.set_rng_state(global_state)
    net = DistributedDataParallel(model) if distributed else model
    log = open(run_dir / "log.jsonl", "a")
    from tqdm import tqdm

    n_train = train[key].shape[0]
    progress = tqdm(total=args.steps, initial=step, disable=rank != 0, desc=f"train {args.part}")
    start = time.time()
    while step < args.steps:
        model.train()
        if args.part == "whole":
            model.combined.eval()  # frozen part networks: no dropout
        index = torch.randint(0, n_train, (args.batch,), generator=generator, device=device)
        loss = training_loss(net, {k: v[index] for k, v in train.items()}, generator, device)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        ema.update(model)
        step += 1
        progress.update(1)
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if rank == 0 and step % 50 == 0:
            log.write(json.dumps({"step": step, "loss": loss.item(), "lr": learning_rate(step - 1, args),
                                  "seconds": round(time.time() - start, 1)}) + "\n")
            log.flush()
        if rank == 0 and (step % args.val_every == 0 or step == args.steps):
            ema_model = ema.copy_into(model)
            metric = completion_error(ema_model, normalizer, val, args.part, args.val_poses, device, seed=0)
            history.append({"step": step, **metric})
            log.write(json.dumps({"step": step, "validation": metric}) + "\n")
            log.flush()
            # Selection by the mean over hypotheses, not the paper's best-of-k: on our small data best-of-k
            # favoured an early, over-dispersed model (docs/model_card.md). Later checkpoints win near-ties.
            if metric["mean_mm"] < best * (1 + SELECTION_TOLERANCE):
                best = min(best, metric["mean_mm"])
                torch.save(export_state(ema_model, args, step, metric, normalizer), run_dir / "best.pt")
        if step % args.checkpoint_every == 0 or step == args.steps:
            rng = rng_states(generator, distributed)  # every rank takes part
            if rank == 0:
                tmp = checkpoint_path.with_suffix(".tmp")
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "ema": ema.shadow,
                            "ema_updates": ema.updates, "step": step, "best": best,
                            "history": json.dumps(history), "rng": rng}, tmp)
                tmp.replace(checkpoint_path)
    progress.close()
    log.close()
    if distributed:
        # Rank 0 may still be validating or saving: tear down together, DDP's reducer before its group,
        # or gloo's worker threads can abort the process at exit.
        dist.barrier()
        del net
        dist.destroy_process_group()


def export_state(model: torch.nn.Module, args, step: int, metric: dict, normalizer: Normalizer) -> dict:
    """What `best.pt` holds: EMA weights and config (plain tensors and numbers: loads with weights_only)."""
    config = model.correction.config() if isinstance(model, FusedPrior) else model.config()
    weights = {k: v for k, v in model.state_dict().items() if not k.startswith("combined.")}
    return {"ema": weights, "config": config, "step": step, "metric": json.dumps(metric),
            "args": json.dumps({k: str(v) for k, v in vars(args).items()}),
            "mean": normalizer.mean, "std": normalizer.std}


if __name__ == "__main__":
    main()
