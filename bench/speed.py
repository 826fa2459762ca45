"""Speed against the compute floor: each task runs with its network wrapped in a recorder, then the same
forwards (batch sizes and counts) run bare, without gradients, on random inputs. The ratio task / floor is
what the solver adds around the network (autograd, forward kinematics, Adam, bookkeeping)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dposerx_blender.core.layout import MODEL_DIM
from dposerx_blender.core.tasks import complete, denoise_track, generate

FLOOR_SAMPLE = 20  # forwards timed per distinct batch size; the floor scales them by the recorded count


class Recorder(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.batches = model, Counter()

    def forward(self, x, t, *args):
        self.batches[x.shape[0]] += 1
        return self.model(x, t, *args)


@torch.no_grad()
def floor_seconds(model, batches: Counter, dim: int = MODEL_DIM) -> float:
    total = 0.0
    for batch, count in batches.items():
        x, t = torch.randn(batch, dim), torch.full((batch,), 0.1)
        model(x, t)  # warm-up
        calls = min(count, FLOOR_SAMPLE)
        start = time.perf_counter()
        for _ in range(calls):
            model(x, t)
        total += (time.perf_counter() - start) / calls * count
    return total


def against_floor(prior, task) -> dict:
    """Run task(recorded prior); seconds, floor seconds, their ratio and the number of forwards (of the whole-body
    network and, where the task samples with it, the mask-reading body network)."""
    recorder = Recorder(prior.model)
    body = None if prior.masked_body is None else Recorder(prior.masked_body)
    start = time.perf_counter()
    task(replace(prior, model=recorder, masked_body=body))
    seconds = time.perf_counter() - start
    floor = floor_seconds(prior.model, recorder.batches)
    batches = recorder.batches.copy()
    if body is not None:
        floor += floor_seconds(prior.masked_body, body.batches, prior.masked_body.pose_dim)
        batches.update(body.batches)
    return {"seconds": seconds, "floor_seconds": floor, "ratio": seconds / floor if floor else None,
            "forwards": sum(batches.values()), "rows_per_forward": max(batches, default=0)}


def completion_speed(prior, poses: np.ndarray, observed: np.ndarray, hypotheses: int) -> dict:
    return against_floor(prior, lambda p: complete(p, poses, observed, hypotheses=hypotheses, seed=0))


def denoising_speed(prior, track: np.ndarray) -> dict:
    """against_floor, plus the time of one bare forward over every frame (the least a per-frame prior costs) and
    the task's time against it: Clean Mocap calls the network only on frames outside anatomical limits."""
    out = against_floor(prior, lambda p: denoise_track(p, track, seed=0))
    one_pass = floor_seconds(prior.model, Counter({len(track): 1}))
    return {**out, "one_pass_seconds": one_pass, "ratio_to_one_pass": out["seconds"] / one_pass}


def generation_speed(prior, count: int, sampler: str, steps: int) -> dict:
    return against_floor(prior, lambda p: generate(p, count, seed=0, steps=steps, sampler=sampler))


def keyframe_speed(frames: int) -> dict:
    """Bulk vs keyframe_insert writing, in a headless Blender process (bench/keyframe_speed.py)."""
    out = subprocess.run([sys.executable, "-m", "bench.keyframe_speed", str(frames)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
