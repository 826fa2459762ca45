"""Where the training mocap lives."""
from __future__ import annotations

import os
from pathlib import Path


def mocap_root() -> Path:
    """The mocap folder: $DPOSERX_MOCAP_DIR, else ../shared/data/mocap next to the repository."""
    override = os.environ.get("DPOSERX_MOCAP_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mocap"
