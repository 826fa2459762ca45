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
    denoise_clips: int              # held-out test takes, first `clip_frames` frames each
    clip_frames: int
    rotation_noise: tuple[float, ...]   # radians
    jitter: tuple[float, ...]           # millimetres
    generated: int                  # poses per generator
    speed_poses: int                # completion speed: poses x hypotheses
    speed_frames: int               # denoising speed: one track
    speed_generated: int            # generation speed: poses
    speed_em_steps: int             # Euler-Maruyama steps timed (cost per step is constant; scaled to 1000)
    keyframe_frames: int
    vposer: VPoserTraining = field(default_factory=VPoserTraining)


FULL = Mode("full", completion_poses=50, hypotheses=10, ablation_groups=("left_leg", "arms", "hands"),
            denoise_clips=4, clip_frames=120, rotation_noise=(0.05, 0.1, 0.2), jitter=(20.0,), generated=1000,
            speed_poses=10, speed_frames=1000, speed_generated=1000, speed_em_steps=100, keyframe_frames=1000)
QUICK = Mode("quick", completion_poses=8, hypotheses=10, ablation_groups=("left_leg",),
             denoise_clips=1, clip_frames=60, rotation_noise=(0.1,), jitter=(20.0,), generated=200,
             speed_poses=4, speed_frames=200, speed_generated=200, speed_em_steps=20, keyframe_frames=100,
             vposer=VPoserTraining(steps=300))
