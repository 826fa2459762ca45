"""Loading the bundled prior (safetensors + JSON, no pickle), with every file, hash and shape checked.

bundled_weights/
  prior.safetensors   fp16 network weights ("body.*", "hand.*", "face.*", "fused.*") and fp32 normalisers
                      ("normalizer.<part>.mean|std")
  pose_bank.safetensors  training body poses (float16 axis-angle) that sampled completion mixes into its draws
  dposerx.json        configs, the safetensors files' sha256, training commands, data hash, metrics, licence
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import DPoserError
from .network import PART_DIMS, CombinedPrior, FusedPrior, MaskedTimeFC, part_network
from .normalizer import Normalizer

WEIGHTS_FILE = "prior.safetensors"
META_FILE = "dposerx.json"
BANK_FILE = "pose_bank.safetensors"
VARIANTS = ("combined", "fused")


def default_weights_dir() -> Path:
    """The extension zip carries the weights inside the package; a checkout keeps them at the repo root."""
    package = Path(__file__).resolve().parents[1]
    inside = package / "bundled_weights"
    return inside if inside.is_dir() else package.parent / "bundled_weights"


@dataclass
class Prior:
    """The whole-body noise predictor over normalised 162-D model vectors, and its normaliser."""

    model: torch.nn.Module
    normalizer: Normalizer
    variant: str
    meta: dict
    masked_body: torch.nn.Module | None = None  # the body network when it reads observation masks (MaskedTimeFC)
    pose_bank: torch.Tensor | None = None  # (N, 63) normalised training body poses (training/pose_bank.py)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise DPoserError(f"Prior weights incomplete: {path} is missing. Reinstall the extension, or point the "
                          f"weights path preference at a folder made by `python build.py export`.")


def load_prior(directory: str | Path | None = None, variant: str | None = None, device="cpu",
               dtype: torch.dtype = torch.float32) -> Prior:
    """Load the bundled prior; `variant` "combined" (part networks) or "fused" (default: the meta's choice)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory) if directory is not None else default_weights_dir()
    meta_path, weights_path = directory / META_FILE, directory / WEIGHTS_FILE
    for path in (meta_path, weights_path):
        _require_file(path)
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise DPoserError(f"{meta_path} is not valid JSON ({exc})") from None
    recorded = meta.get("sha256", {})
    for name in {WEIGHTS_FILE, *recorded}:  # the weights always; the pose bank where the export wrote one
        path = directory / name
        _require_file(path)
        if recorded.get(name) != file_sha256(path):
            raise DPoserError(f"{path} does not match the hash recorded in {META_FILE}: the file is damaged "
                              f"or from another export.")
    variant = variant or meta.get("default_variant", "combined")
    if variant not in VARIANTS:
        raise DPoserError(f"Unknown prior variant '{variant}' (choose {' or '.join(VARIANTS)})")
    try:
        tensors = load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise DPoserError(f"{weights_path} cannot be read ({exc})") from None

    def state(prefix: str) -> dict:
        return {k[len(prefix):]: v.to(dtype) for k, v in tensors.items() if k.startswith(prefix)}

    def load_net(net: torch.nn.Module, prefix: str) -> torch.nn.Module:
        weights = state(prefix)
        expected_shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in weights.items()}
        if got != expected_shapes:
            wrong = sorted(set(got.items()) ^ set(expected_shapes.items()))[:3]
            raise DPoserError(f"{weights_path}: weights under '{prefix}' do not fit the network in {META_FILE} "
                              f"(first differences: {wrong})")
        net.load_state_dict(weights)
        return net.to(device=device, dtype=dtype).eval()

    parts = {p: load_net(part_network(meta["parts"][p]["config"]), f"{p}.") for p in PART_DIMS}
    model: torch.nn.Module = CombinedPrior(parts)
    if variant == "fused":
        fused = FusedPrior(model, **{k: meta["fused"]["config"][k] for k in ("hidden", "embed", "blocks", "dropout")})
        fused.correction = load_net(fused.correction, "fused.correction.")
        fused.zero_linear = load_net(fused.zero_linear, "fused.zero_linear.")
        model = fused.eval()
    normalizers = {}
    for p, dim in PART_DIMS.items():
        mean, std = tensors.get(f"normalizer.{p}.mean"), tensors.get(f"normalizer.{p}.std")
        if mean is None or std is None or mean.shape != (dim,) or std.shape != (dim,):
            raise DPoserError(f"{weights_path}: normaliser for '{p}' missing or not {dim} values")
        normalizers[p] = Normalizer(mean.float(), std.float())
    body = parts["body"]
    bank = None
    if BANK_FILE in recorded:
        try:
            bank = load_file(str(directory / BANK_FILE))["body"]
        except (SafetensorError, OSError, KeyError) as exc:
            raise DPoserError(f"{directory / BANK_FILE} cannot be read ({exc})") from None
        if bank.ndim != 2 or bank.shape[1] != PART_DIMS["body"]:
            raise DPoserError(f"{directory / BANK_FILE}: the pose bank must hold body poses of "
                              f"{PART_DIMS['body']} values, got shape {tuple(bank.shape)}")
        bank = normalizers["body"].normalize(bank.float()).to(device=device, dtype=dtype)
    return Prior(model, Normalizer.whole_body(normalizers), variant, meta,
                 body if isinstance(body, MaskedTimeFC) else None, bank)
