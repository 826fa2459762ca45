"""The weight loader: a bundle it writes loads back; missing files, wrong hashes and wrong shapes give clear
errors."""
import json

import pytest
import torch
from safetensors.torch import save_file

from dposerx_blender.core.errors import DPoserError
from dposerx_blender.core.network import PART_DIMS, FusedPrior, TimeFC
from dposerx_blender.core.weights import BANK_FILE, META_FILE, WEIGHTS_FILE, file_sha256, load_prior

TINY = {"hidden": 32, "embed": 32, "blocks": 1, "dropout": 0.1}


def write_bundle(directory, seed=0, bank=None):
    torch.manual_seed(seed)
    parts = {p: TimeFC(d, **TINY) for p, d in PART_DIMS.items()}
    tensors = {}
    for p, net in parts.items():
        tensors.update({f"{p}.{k}": v.half() for k, v in net.state_dict().items()})
        tensors[f"normalizer.{p}.mean"] = torch.randn(PART_DIMS[p])
        tensors[f"normalizer.{p}.std"] = torch.rand(PART_DIMS[p]) + 0.5
    from dposerx_blender.core.network import CombinedPrior

    fused = FusedPrior(CombinedPrior(parts), **TINY)
    tensors.update({f"fused.{k}": v.half() for k, v in fused.state_dict().items() if not k.startswith("combined.")})
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / WEIGHTS_FILE))
    meta = {"sha256": {WEIGHTS_FILE: file_sha256(directory / WEIGHTS_FILE)},
            "parts": {p: {"config": net.config()} for p, net in parts.items()},
            "fused": {"config": fused.correction.config()}, "default_variant": "fused"}
    if bank is not None:
        save_file({"body": bank.half()}, str(directory / BANK_FILE))
        meta["sha256"][BANK_FILE] = file_sha256(directory / BANK_FILE)
    (directory / META_FILE).write_text(json.dumps(meta))
    return parts, fused, tensors


def test_bundle_round_trip_for_both_variants(tmp_path):
    parts, fused, tensors = write_bundle(tmp_path)
    prior = load_prior(tmp_path)
    assert prior.variant == "fused" and isinstance(prior.model, FusedPrior)
    x, t = torch.randn(4, 162), torch.rand(4)
    # fp16 storage: the loaded nets equal the originals rounded to fp16.
    for p, net in parts.items():
        net.load_state_dict({k: v.half().float() for k, v in net.state_dict().items()})
    expected = parts["body"].eval()(x[:, :63], t)
    torch.testing.assert_close(prior.model.combined.parts["body"](x[:, :63], t), expected)
    combined = load_prior(tmp_path, variant="combined")
    assert combined.variant == "combined"
    assert prior.normalizer.mean.shape == (162,)
    torch.testing.assert_close(prior.normalizer.mean[63:108], tensors["normalizer.hand.mean"])
    torch.testing.assert_close(prior.normalizer.mean[108:153], tensors["normalizer.hand.mean"])


def test_the_pose_bank_loads_normalised_as_the_body_and_only_where_the_export_wrote_one(tmp_path):
    bank = torch.randn(16, 63)
    _, _, tensors = write_bundle(tmp_path / "with", bank=bank)
    expected = (bank.half().float() - tensors["normalizer.body.mean"]) / tensors["normalizer.body.std"]
    torch.testing.assert_close(load_prior(tmp_path / "with").pose_bank, expected)
    write_bundle(tmp_path / "without")
    assert load_prior(tmp_path / "without").pose_bank is None


@pytest.mark.parametrize("damage, message", [
    ("missing_meta", "dposerx.json is missing"),
    ("missing_weights", "prior.safetensors is missing"),
    ("bad_json", "not valid JSON"),
    ("changed_weights", "does not match the hash"),
    ("wrong_config", "do not fit the network"),
    ("bad_variant", "Unknown prior variant"),
    ("missing_bank", "pose_bank.safetensors is missing"),
    ("changed_bank", "pose_bank.safetensors does not match the hash"),
    ("wrong_bank_shape", "must hold body poses of 63 values"),
])
def test_damaged_bundles_fail_with_a_clear_message(tmp_path, damage, message):
    write_bundle(tmp_path, bank=torch.randn(8, 45 if damage == "wrong_bank_shape" else 63))
    meta_path, weights_path, bank_path = tmp_path / META_FILE, tmp_path / WEIGHTS_FILE, tmp_path / BANK_FILE
    variant = None
    if damage == "missing_meta":
        meta_path.unlink()
    elif damage == "missing_weights":
        weights_path.unlink()
    elif damage == "bad_json":
        meta_path.write_text("{not json")
    elif damage == "changed_weights":
        weights_path.write_bytes(weights_path.read_bytes()[:-8] + b"\0" * 8)
    elif damage == "wrong_config":
        meta = json.loads(meta_path.read_text())
        meta["parts"]["hand"]["config"]["hidden"] = 64
        meta_path.write_text(json.dumps(meta))
    elif damage == "bad_variant":
        variant = "mixed"
    elif damage == "missing_bank":
        bank_path.unlink()
    elif damage == "changed_bank":
        bank_path.write_bytes(bank_path.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(DPoserError, match=message):
        load_prior(tmp_path, variant=variant)
