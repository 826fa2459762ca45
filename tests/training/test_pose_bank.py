"""The completion's pose bank: distinct training rows, float16, with the data hash it came from."""
import json

import numpy as np
from safetensors.torch import load_file

from dposerx_blender.core.weights import BANK_FILE
from training.pose_bank import write_bank


def test_the_bank_holds_distinct_training_poses_and_records_their_data(tmp_path):
    rows = np.random.default_rng(0).normal(size=(300, 63)).astype(np.float32)
    (tmp_path / "body").mkdir()
    np.savez(tmp_path / "body" / "train.npz", poses=rows)
    (tmp_path / "manifest.json").write_text(json.dumps({"content_sha256": "abc"}))
    entry = write_bank(tmp_path, tmp_path)
    bank = load_file(str(tmp_path / BANK_FILE))["body"].float().numpy()
    assert entry["rows"] == len(bank) == 300 and entry["data_content_sha256"] == "abc"
    nearest = np.abs(bank[:, None] - rows.astype(np.float16).astype(np.float32)[None]).max(-1).argmin(1)
    assert np.allclose(bank, rows[nearest], atol=1e-2) and len(set(nearest.tolist())) == len(bank)
