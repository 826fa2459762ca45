"""Sizes of the two benchmark modes: full (about 30 minutes on 2 cores) and quick (under 5)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .vposer import VPoserTraining


@dataclass(frozen=True)
class Mode:
    name: str
    completion_poses: int           # held-out poses per occlusion group
    hypotheses: int
    ablation_groups: tuple[str, ...]
    denoise_takes: int | None       # held-out test takes (None: all) at least `denoise_min_frames` long
    denoise_min_frames: int
    generated: int                  # poses per generator
    speed_poses: int                # completion speed: poses x hypotheses
    speed_frames: int               # denoising speed: one track
    speed_generated: int            # generation speed: poses
    speed_em_steps: int             # Euler-Maruyama steps timed (cost per step is constant; scaled to 1000)
    keyframe_frames: int
    vposer: VPoserTraining = field(default_factory=VPoserTraining)


FULL = Mode("full", completion_poses=50, hypotheses=10, ablation_groups=("left_leg", "arms", "hands"),
            denoise_takes=None, denoise_min_frames=240, generated=1000,
            speed_poses=10, speed_frames=1000, speed_generated=1000, speed_em_steps=100, keyframe_frames=1000)
QUICK = Mode("quick", completion_poses=8, hypotheses=10, ablation_groups=("left_leg",),
             denoise_takes=2, denoise_min_frames=240, generated=200,
             speed_poses=4, speed_frames=200, speed_generated=200, speed_em_steps=20, keyframe_frames=100,
             vposer=VPoserTraining(steps=300))
