"""Training entry point on a tiny synthetic dataset: outputs, resuming, EMA and learning-rate schedules, the
masked whole-body loss, whole-body training over part checkpoints, and a 2-process DDP run (torchrun, gloo)."""
import json
import math
import os
import shutil
import socket
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch

from dposerx_blender.core.skeleton import OCCLUSION_GROUPS

import training.train as train
from dposerx_blender.core.network import part_mask_to_dims
from dposerx_blender.core.sde import alpha_sigma

REPO = Path(__file__).resolve().parents[2]
PART_DIM = {"body": 63, "hand": 45, "face": 9}
ROWS = 64


def build_dataset(root: Path, seed: int = 0) -> Path:
    """The builder's output format (training/dataset.py): per part {split}.npz with poses (N, D) float32 and
    normalizer.npz with mean, std (D,); whole/{split}.npz with model (N, 162) float32, present (N, 5) bool."""
    rng = np.random.default_rng(seed)
    data = root / "data"
    for part, dim in PART_DIM.items():
        (data / part).mkdir(parents=True)
        for split in ("train", "val", "test"):
            poses = (0.3 * rng.standard_normal((ROWS, dim))).astype(np.float32)
            np.savez(data / part / f"{split}.npz", poses=poses)
        np.savez(data / part / "normalizer.npz", mean=np.full(dim, 0.01, np.float32),
                 std=np.full(dim, 0.3, np.float32))
    (data / "whole").mkdir()
    for split in ("train", "val", "test"):
        present = rng.random((ROWS, 5)) < 0.6
        present[: ROWS // 2] = True  # half the rows fully present
        present[ROWS // 2: ROWS // 2 + 4, 3] = True  # some rows with a jaw but no eyes: face counts as absent
        present[ROWS // 2: ROWS // 2 + 4, 4] = False
        model = (0.3 * rng.standard_normal((ROWS, 162))).astype(np.float32) * np.repeat(
            present, [63, 45, 45, 3, 6], axis=1)
        np.savez(data / "whole" / f"{split}.npz", model=model, present=present)
    return data


def tiny_args(part: str, data: Path, runs: Path, steps: int, *extra: str) -> list[str]:
    return ["--part", part, "--hidden", "32", "--embed", "32", "--batch", "16", "--steps", str(steps),
            "--val-every", "3", "--val-poses", "4", "--checkpoint-every", "3", "--data", str(data),
            "--runs", str(runs), "--threads", "1", *extra]


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def validation_steps(log: Path) -> list[int]:
    return [e["step"] for e in map(json.loads, log.read_text().splitlines()) if "validation" in e]


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("train_data"))


@pytest.fixture(scope="module")
def part_runs(data, tmp_path_factory) -> Path:
    """body, hand and face trained for 3 steps each (whole reads runs/<part>/best.pt)."""
    runs = tmp_path_factory.mktemp("runs")
    for part in PART_DIM:
        train.main(tiny_args(part, data, runs, 3))
    return runs


# ----------------------------------------------------------------------------------------------- outputs


def test_load_split_reduces_face_to_jaw_and_eyes(data):
    split = train.load_split(data, "whole", "train")
    with np.load(data / "whole" / "train.npz") as raw:
        present = raw["present"]
    assert split["present"].shape == (ROWS, 4)
    assert np.array_equal(split["present"][:, :3], present[:, :3])
    assert np.array_equal(split["present"][:, 3], present[:, 3] & present[:, 4])
    assert train.load_split(data, "hand", "val")["poses"].shape == (ROWS, 45)


@pytest.mark.parametrize("part", list(PART_DIM))
def test_part_training_writes_loadable_outputs(part, part_runs, data):
    run = part_runs / part
    checkpoint, best = load(run / "checkpoint.pt"), load(run / "best.pt")
    assert checkpoint["step"] == 3 and checkpoint["ema_updates"] == 3
    assert [h["step"] for h in json.loads(checkpoint["history"])] == [3]
    assert validation_steps(run / "log.jsonl") == [3]
    assert best["step"] == 3 and best["config"]["dim"] == PART_DIM[part]
    assert best["config"]["hidden"] == 32 and best["config"]["embed"] == 32
    assert best["config"].get("masked", False) == (part == "body")  # the body network reads observation masks
    net = train.part_network(best["config"])
    net.load_state_dict(best["ema"])
    assert_same_weights(best["ema"], checkpoint["ema"])
    with np.load(data / part / "normalizer.npz") as stats:
        assert np.array_equal(best["mean"].numpy(), stats["mean"])
        assert np.array_equal(best["std"].numpy(), stats["std"])
    metric = json.loads(best["metric"])
    assert math.isfinite(metric["best_of_k_mm"]) and metric["poses"] == 4 and metric["hypotheses"] == 10


def test_whole_training_over_the_part_checkpoints(part_runs, data):
    train.main(tiny_args("whole", data, part_runs, 3))
    run = part_runs / "whole"
    checkpoint, best = load(run / "checkpoint.pt"), load(run / "best.pt")
    assert checkpoint["step"] == 3 and best["step"] == 3 and validation_steps(run / "log.jsonl") == [3]
    # best.pt holds only the trainable correction; its config rebuilds the correction network.
    assert best["ema"] and all(k.startswith(("correction.", "zero_linear.")) for k in best["ema"])
    correction = train.TimeFC(**best["config"])
    correction.load_state_dict({k[len("correction."):]: v for k, v in best["ema"].items()
                                if k.startswith("correction.")})
    assert best["config"]["dim"] == 4 * 32 and best["config"]["out_dim"] == 162
    # The part networks stayed frozen: still the parts' EMA weights, in the model exactly, and in its EMA up
    # to float32 rounding (the EMA also averages the frozen tensors: d v + (1 - d) v is v only up to an ulp).
    for part in PART_DIM:
        part_ema = load(part_runs / part / "best.pt")["ema"]
        for key, value in part_ema.items():
            assert torch.equal(checkpoint["model"][f"combined.parts.{part}.{key}"], value)
            torch.testing.assert_close(checkpoint["ema"][f"combined.parts.{part}.{key}"], value, rtol=1e-6,
                                       atol=1e-7)
    # ...while the correction trained (the zero linear leaves zero after the first steps).
    assert checkpoint["model"]["zero_linear.weight"].abs().sum() > 0
    assert best["mean"].shape == (162,)


# ----------------------------------------------------------------------------------------------- resuming

RESUME_ARGS = ("--warmup", "1", "--lr", "1e-3")


class Crash(Exception):
    pass


def crash_after(updates: int, monkeypatch):
    """Make training die right after `updates` steps (after that step's checkpoint was written)."""
    original = train.Ema.update

    def update(self, model):
        if self.updates == updates:
            raise Crash
        original(self, model)

    monkeypatch.setattr(train.Ema, "update", update)


def interrupted_and_resumed(data: Path, runs: Path, monkeypatch, *extra: str) -> dict:
    with monkeypatch.context() as patch:
        crash_after(6, patch)
        with pytest.raises(Crash):
            train.main(tiny_args("body", data, runs, 9, *RESUME_ARGS, *extra))
    assert load(runs / "body" / "checkpoint.pt")["step"] == 6
    train.main(tiny_args("body", data, runs, 9, *RESUME_ARGS, *extra, "--resume"))
    return load(runs / "body" / "checkpoint.pt")


def test_resume_continues_the_log_and_the_step_count(data, tmp_path):
    runs = tmp_path / "runs"
    train.main(tiny_args("body", data, runs, 6, *RESUME_ARGS))
    assert validation_steps(runs / "body" / "log.jsonl") == [3, 6]
    train.main(tiny_args("body", data, runs, 9, *RESUME_ARGS, "--resume"))
    checkpoint = load(runs / "body" / "checkpoint.pt")
    assert validation_steps(runs / "body" / "log.jsonl") == [3, 6, 9]
    assert checkpoint["step"] == 9 and checkpoint["ema_updates"] == 9
    assert [h["step"] for h in json.loads(checkpoint["history"])] == [3, 6, 9]
    # Note: a 6-step run resumed to 9 does not reproduce a 9-step run: the cosine schedule is defined by
    # --steps, so its first 6 steps ran with a different learning rate. Equivalence is checked below on a run
    # started with --steps 9 and interrupted after step 6.


def test_resume_after_a_crash_reproduces_the_uninterrupted_run_without_dropout(data, tmp_path, monkeypatch):
    train.main(tiny_args("body", data, tmp_path / "a", 9, *RESUME_ARGS, "--dropout", "0"))
    uninterrupted = load(tmp_path / "a" / "body" / "checkpoint.pt")
    resumed = interrupted_and_resumed(data, tmp_path / "b", monkeypatch, "--dropout", "0")
    assert_same_weights(resumed["model"], uninterrupted["model"])
    assert_same_weights(resumed["ema"], uninterrupted["ema"])
    assert validation_steps(tmp_path / "b" / "body" / "log.jsonl") == [3, 6, 9]
    assert json.loads(resumed["history"]) == json.loads(uninterrupted["history"])


def test_resume_after_a_crash_reproduces_the_uninterrupted_run_with_dropout(data, tmp_path, monkeypatch):
    train.main(tiny_args("body", data, tmp_path / "a", 9, *RESUME_ARGS))
    uninterrupted = load(tmp_path / "a" / "body" / "checkpoint.pt")
    resumed = interrupted_and_resumed(data, tmp_path / "b", monkeypatch)
    assert_same_weights(resumed["model"], uninterrupted["model"])


# ----------------------------------------------------------------------------------------------- schedules


def test_ema_warm_up_formula():
    model = torch.nn.Linear(2, 1)
    ema = train.Ema(model)
    expected = {k: v.detach().clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    for n in range(1, 8):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=generator))
        ema.update(model)
        d = min(0.9999, (1 + n) / (10 + n))
        for k, v in model.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v
            torch.testing.assert_close(ema.shadow[k], expected[k], rtol=1e-6, atol=1e-7)
    assert ema.updates == 7
    # The first update keeps only 2/11 of the initial weights.
    assert (1 + 1) / (10 + 1) == pytest.approx(2 / 11)
    # Past n = 89,991 the decay is capped at 0.9999.
    ema.updates = 100_000
    before = {k: v.clone() for k, v in ema.shadow.items()}
    ema.update(model)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ema.shadow[k], 0.9999 * before[k] + 0.0001 * v)


def test_ema_copies_integer_buffers_and_returns_an_eval_copy():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2), torch.nn.Dropout(0.5))
    ema = train.Ema(model)
    model.train()(torch.randn(4, 2))  # num_batches_tracked -> 1
    ema.update(model)
    assert ema.shadow["1.num_batches_tracked"].item() == 1
    copy = ema.copy_into(model)
    assert copy is not model and not copy.training and model.training
    assert_same_weights(copy.state_dict(), ema.shadow)


def test_learning_rate_warm_up_and_cosine_end():
    args = Namespace(lr=2e-4, warmup=10, steps=100)
    lrs = [train.learning_rate(step, args) for step in range(101)]
    cosine = [0.5 * (1 + math.cos(math.pi * s / 100)) for s in range(101)]
    for step in range(10):  # linear warm-up, (step + 1) / warmup, times the cosine
        assert lrs[step] == pytest.approx(2e-4 * (step + 1) / 10 * cosine[step], rel=1e-12)
    assert lrs[0] > 0
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))
    for step in range(9, 101):
        assert lrs[step] == pytest.approx(2e-4 * cosine[step], rel=1e-12, abs=1e-20)
    assert all(a > b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[50] == pytest.approx(1e-4) and lrs[99] < 1e-7 and lrs[100] == pytest.approx(0, abs=1e-20)
    # No warm-up: --warmup 0 behaves like 1.
    assert train.learning_rate(0, Namespace(lr=1.0, warmup=0, steps=10)) == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------- masked loss


class StubModel:
    """eps model that knows the clean batch: returns the true noise z (recovered from x_t) plus an offset per
    dimension, so the squared error per dimension is exactly offset^2."""

    def __init__(self, x0: torch.Tensor, offset_of):
        self.x0, self.offset_of, self.part_masks = x0, offset_of, []

    def __call__(self, x_t, t, part_mask=None):
        alpha, sigma = alpha_sigma(t.double())
        z = (x_t.double() - alpha[:, None] * self.x0.double()) / sigma[:, None]
        self.part_masks.append(part_mask)
        return (z + self.offset_of(part_mask)).float()


def whole_batch(rows: int = 4000, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    present = torch.rand(rows, 4, generator=generator) < 0.6
    present[: rows // 2] = True
    return {"model": torch.randn(rows, 162, generator=generator), "present": present}


def test_training_loss_for_parts_is_the_plain_noise_error():
    x0 = torch.randn(64, 63)
    stub = StubModel(x0, lambda mask: 0.5)
    loss = train.training_loss(stub, {"poses": x0}, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert stub.part_masks == [None]
    assert loss.item() == pytest.approx(0.25, rel=1e-4)


def test_whole_body_loss_ignores_absent_parts_and_keeps_masked_present_parts():
    batch = whole_batch()
    present_dims = part_mask_to_dims(batch["present"].float())

    def offset_of(part_mask):
        input_dims = part_mask_to_dims(part_mask)
        # absent: a huge error; present but hidden from the input: error 2^2; present and visible: 1^2
        return torch.where(present_dims == 0, 1e6, torch.where(input_dims == 0, 2.0, 1.0))

    stub = StubModel(batch["model"], offset_of)
    loss = train.training_loss(stub, batch, torch.Generator().manual_seed(0), torch.device("cpu"))
    (part_mask,) = stub.part_masks
    hidden_present = ((part_mask_to_dims(part_mask) == 0) & (present_dims == 1)).sum().item()
    expected = (4.0 * hidden_present + 1.0 * (present_dims.sum().item() - hidden_present)) / present_dims.sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    assert hidden_present > 0


def test_random_part_masks_only_on_fully_present_rows():
    batch = whole_batch()
    stub = StubModel(batch["model"], lambda mask: 0.0)
    train.training_loss(stub, batch, torch.Generator().manual_seed(1), torch.device("cpu"))
    (part_mask,) = stub.part_masks
    present = batch["present"].float()
    full = batch["present"].all(1)
    assert part_mask.shape == (len(present), 4) and part_mask.dtype == torch.float32
    # Rows with a missing part: the input mask is exactly their availability.
    assert torch.equal(part_mask[~full], present[~full])
    # Fully present rows: each part hidden independently with p = 0.2 (2000 x 4 draws: SE 0.0045, 5 SE).
    hidden = 1 - part_mask[full]
    assert abs(hidden.mean().item() - train.PART_MASK_PROBABILITY) < 5 * math.sqrt(0.16 / hidden.numel())
    for k in range(4):
        assert abs(hidden[:, k].mean().item() - 0.2) < 5 * math.sqrt(0.16 / len(hidden))


def test_training_time_and_noise_distribution():
    """t ~ U(1e-5, 1) per sample; the stub sees x_t = alpha x0 + sigma z with z ~ N(0, 1)."""
    seen = {}

    def model(x_t, t):
        seen["t"], seen["x_t"] = t, x_t
        return torch.zeros_like(x_t)

    x0 = torch.zeros(20_000, 9)
    loss = train.training_loss(model, {"poses": x0}, torch.Generator().manual_seed(0), torch.device("cpu"))
    t = seen["t"]
    assert t.min() >= 1e-5 and t.max() <= 1 and abs(t.mean().item() - 0.5) < 0.01
    z = seen["x_t"] / alpha_sigma(t)[1][:, None]
    assert abs(z.std().item() - 1) < 0.01
    assert loss.item() == pytest.approx(z.square().mean().item(), rel=1e-4)


# ----------------------------------------------------------------------------------------------- DDP

RECORDING_SCRIPT = """
import os, sys
import torch
import training.train as train

models = {}


class RecordingEma(train.Ema):
    def update(self, model):
        models["model"] = model
        super().update(model)


train.Ema = RecordingEma
train.main(sys.argv[2:])
torch.save(models["model"].state_dict(), os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.pt"))
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            with socket.create_connection(server.getsockname(), timeout=5):
                return True
    except OSError:
        return False


def torchrun(out: Path, *argv: str) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).parent / "torchrun"
    if not executable.exists():
        pytest.skip(f"torchrun not found next to {sys.executable}")
    if not loopback_works():
        pytest.skip("no TCP loopback (127.0.0.1): torchrun's rendezvous cannot start")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [str(executable), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), *argv]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def ddp_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    script = out / "record.py"
    script.write_text(RECORDING_SCRIPT)
    result = torchrun(out, str(script), str(out),
                      *tiny_args("body", data, out / "runs", 3, "--device", "cpu", *RESUME_ARGS))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_ddp_two_processes(ddp_run):
    run = ddp_run / "runs" / "body"
    checkpoint = load(run / "checkpoint.pt")
    assert checkpoint["step"] == 3 and validation_steps(run / "log.jsonl") == [3]
    assert (run / "best.pt").exists()
    # Gradients are averaged across ranks, so both replicas end with identical weights, equal to the saved ones.
    rank0, rank1 = load(ddp_run / "rank0.pt"), load(ddp_run / "rank1.pt")
    assert_same_weights(rank0, rank1)
    assert_same_weights(rank0, checkpoint["model"])


def test_ddp_ranks_draw_different_batches(ddp_run, data, tmp_path):
    """The 2-rank run is not the single-process run: rank 1 contributes its own batches (seed + rank)."""
    train.main(tiny_args("body", data, tmp_path / "runs", 3, "--device", "cpu", *RESUME_ARGS))
    single = load(tmp_path / "runs" / "body" / "checkpoint.pt")["model"]
    ddp = load(ddp_run / "runs" / "body" / "checkpoint.pt")["model"]
    assert any(not torch.equal(single[k], ddp[k]) for k in single)


def test_ddp_resume(ddp_run, data, tmp_path):
    shutil.copytree(ddp_run / "runs", tmp_path / "runs")
    result = torchrun(tmp_path, "-m", "training.train",
                      *tiny_args("body", data, tmp_path / "runs", 6, "--device", "cpu", *RESUME_ARGS, "--resume"))
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = load(tmp_path / "runs" / "body" / "checkpoint.pt")
    assert checkpoint["step"] == 6
    assert validation_steps(tmp_path / "runs" / "body" / "log.jsonl") == [3, 6]


def test_observation_masks_mix_empty_groups_and_random_joints():
    """MASK_KINDS: about 20% empty masks, 40% an occlusion group, 40% random joints; whole joints (3 entries)."""
    masks = train.observation_masks(20000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert masks.shape == (20000, 63) and masks.dtype == torch.bool
    joints = masks[:, ::3]
    assert torch.equal(masks, joints.repeat_interleave(3, dim=1))
    empty = (~joints).all(1).float().mean().item()
    assert abs(empty - train.MASK_KINDS["empty"]) < 0.03  # random masks are rarely all hidden
    groups = {tuple(sorted(OCCLUSION_GROUPS[g])) for g in train.BODY_GROUPS}
    hidden = [tuple(j + 1 for j in torch.nonzero(~row).flatten().tolist()) for row in joints[:2000]]
    share = sum(h in groups for h in hidden) / len(hidden)
    assert 0.38 < share < 0.46


def test_masked_body_loss_only_counts_unobserved_entries():
    """The masked body network's loss ignores the observed entries (given clean to the network)."""
    class Spy(train.MaskedTimeFC):
        def forward(self, x, t, known=None, known_mask=None):
            self.seen_mask = known_mask
            eps = super().forward(x, t, known, known_mask)
            return torch.where(known_mask, eps + 1e6, eps)  # a huge error on the observed entries only

    spy = Spy(63, 32, 32, blocks=1)
    loss = train.training_loss(spy, {"poses": torch.randn(256, 63)}, torch.Generator().manual_seed(0),
                               torch.device("cpu"))
    assert spy.seen_mask.any() and loss.item() < 100
