"""The public API: the prior's jobs on AMASS-style pose vectors, without Blender.

    from dposerx_blender import api

    prior = api.load_prior()                                        # bundled weights
    observed = api.observed_mask(occlude=["left_leg"])              # (55,) bool, True = observed
    result = api.complete(prior, pose, observed, hypotheses=10)     # pose (165,) or (N, 165)
    clean = api.denoise_track(prior, track, fps=30)                 # track (T, 165)
    library = api.generate(prior, 24, seed=0)                       # (24, 165)
    variants = api.vary(prior, pose, strength=0.3, count=4)
    pinned = api.solve_pins(prior, pose, {api.JOINT_INDEX["left_wrist"]: (0.4, 0.3, 0.2)})

See docs/api.md for each function's arguments, conventions and measured behaviour.
"""
from __future__ import annotations

import numpy as np

from .core.amass import AmassMotion, read_amass_npz, write_amass_npz
from .core.errors import Cancelled, DPoserError
from .core.skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, OCCLUSION_GROUPS, PART_JOINTS
from .core.tasks import (
    Completion,
    PinResult,
    complete,
    denoise_track,
    generate,
    solve_pins,
    vary,
)
from .core.weights import Prior, load_prior

__all__ = [
    "JOINT_INDEX",
    "JOINT_NAMES",
    "NUM_JOINTS",
    "OCCLUSION_GROUPS",
    "PART_JOINTS",
    "AmassMotion",
    "Cancelled",
    "Completion",
    "DPoserError",
    "PinResult",
    "Prior",
    "complete",
    "denoise_track",
    "generate",
    "load_prior",
    "observed_mask",
    "read_amass_npz",
    "solve_pins",
    "vary",
    "write_amass_npz",
]


def observed_mask(occlude=(), joints=()) -> np.ndarray:
    """(55,) bool, True = observed: everything except the named occlusion groups and joint names."""
    mask = np.ones(NUM_JOINTS, bool)
    for group in occlude:
        if group not in OCCLUSION_GROUPS:
            raise DPoserError(f"unknown occlusion group '{group}' (choose from {', '.join(OCCLUSION_GROUPS)})")
        mask[list(OCCLUSION_GROUPS[group])] = False
    for name in joints:
        if name not in JOINT_INDEX:
            raise DPoserError(f"unknown joint '{name}' (SMPL-X joint names, e.g. left_wrist)")
        mask[JOINT_INDEX[name]] = False
    return mask
