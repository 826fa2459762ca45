"""The bundled weights: produced by the project's own commands (the JSON says how), within the size budget,
and their samples decode to finite poses within the anatomical bounds."""
import json

import numpy as np
import pytest
import torch

from dposerx_blender.core.layout import model_to_pose
from dposerx_blender.core.limits import within_limits
from dposerx_blender.core.network import PART_DIMS
from dposerx_blender.core.solvers import sample_euler_maruyama
from dposerx_blender.core.weights import (BANK_FILE, META_FILE, WEIGHTS_FILE, default_weights_dir, file_sha256,
                                          load_prior)

BUNDLED = default_weights_dir()


def test_bundled_weights_exist_and_record_their_provenance():
    meta = json.loads((BUNDLED / META_FILE).read_text())
    assert meta["sha256"][WEIGHTS_FILE] == file_sha256(BUNDLED / WEIGHTS_FILE)
    assert meta["sha256"][BANK_FILE] == file_sha256(BUNDLED / BANK_FILE)
    assert meta["pose_bank"]["command"] == "python build.py bank" and meta["pose_bank"]["split"] == "train"
    assert meta["pose_bank"]["data_content_sha256"] == meta["data"]["content_sha256"]
    for part in PART_DIMS:
        assert meta["parts"][part]["command"].startswith("python build.py train --part " + part)
    assert meta["data"]["content_sha256"] and "mocap.cs.cmu.edu" in meta["licence"]
    total = sum(f.stat().st_size for f in BUNDLED.iterdir())
    assert total <= 40e6


@pytest.mark.parametrize("variant", ["combined", "fused"])
def test_bundled_prior_samples_are_finite_poses_within_joint_limits(variant):
    prior = load_prior(variant=variant)
    generator = torch.Generator().manual_seed(0)
    start = torch.randn((64, 162), generator=generator)
    samples = sample_euler_maruyama(prior.model, start, steps=200, generator=generator)
    poses = model_to_pose(prior.normalizer.denormalize(samples)).numpy()
    assert np.isfinite(poses).all()
    assert within_limits(poses).mean() >= 0.9
