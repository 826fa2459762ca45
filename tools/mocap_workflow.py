"""The user guide's mocap workflow, headless and through the operators: a noisy SMPL-X npz as video capture tools
write it -> Import SMPL-X Animation -> Clean Mocap (bundled weights) -> Export SMPL-X Animation; prints the errors
and draws docs/img/mocap_workflow.png.

    .venv/bin/python -m tools.mocap_workflow [--out out/]

The "video capture" is a held-out CMU take (tests/fixtures/heldout.npz, never trained on) with jitter added to
the body joints, stored Z-up with split keys (global_orient, body_pose, ..., transl) at 30 fps.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import bpy
import numpy as np
from matplotlib.figure import Figure

import dposerx_blender
from dposerx_blender.blender.props import ADDON_PACKAGE
from dposerx_blender.core.amass import SPLIT_KEYS, read_amass_npz
from dposerx_blender.core.mocap.conventions import to_y_up
from dposerx_blender.core.skeleton import BODY_JOINTS, JOINT_INDEX
from tools.demo import HELDOUT, NOISE_RAD, ROOT, motion_errors, run_operator

FPS = 30
PLOTTED = ("left_knee", "right_elbow")


def noisy_capture(track: np.ndarray, path: Path) -> np.ndarray:
    """Write `track` (T, 165, Y-up) with body jitter as a Z-up split-key npz; return the noisy Y-up poses."""
    noisy = track.astype(np.float64)
    body = np.array(BODY_JOINTS)
    noise = np.random.default_rng(0).normal(0, NOISE_RAD, (len(noisy), len(body), 3))
    noisy.reshape(len(noisy), 55, 3)[:, body] += noise
    walk = np.stack([np.zeros(len(noisy)), np.linspace(0.0, 1.5, len(noisy)), np.full(len(noisy), 0.95)], axis=1)
    z_up, transl = to_y_up(noisy, walk, np.zeros(3), inverse=True)  # a Z-up world, as AMASS and many tools use
    np.savez(path, transl=transl, fps=np.float64(FPS), **{k: z_up[:, where] for k, where in SPLIT_KEYS.items()})
    return noisy


def plot(reference: np.ndarray, noisy: np.ndarray, cleaned: np.ndarray, path: Path) -> None:
    seconds = np.arange(len(reference)) / FPS
    fig = Figure(figsize=(8, 4.8))
    axes = fig.subplots(len(PLOTTED), 1, sharex=True)
    for ax, name in zip(axes, PLOTTED):
        j = 3 * JOINT_INDEX[name]
        for poses, label, style in ((noisy, "imported (noisy capture)", dict(color="0.6", lw=1)),
                                    (cleaned, "exported after Clean Mocap", dict(color="C0", lw=2)),
                                    (reference, "clean capture", dict(color="C1", lw=1, ls="--"))):
            ax.plot(seconds, np.degrees(np.linalg.norm(poses[:, j:j + 3], axis=1)), label=label, **style)
        ax.set_ylabel(f"{name}\nangle (deg)")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.mocap_workflow", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="output folder for the npz files")
    out = parser.parse_args().out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    dposerx_blender.register()
    bpy.context.preferences.addons.new().module = ADDON_PACKAGE
    scene = bpy.context.scene
    scene.render.fps = FPS
    heldout = np.load(HELDOUT)
    reference = heldout["tracks"][0].astype(np.float64)
    noisy = noisy_capture(reference, out / "video_capture.npz")

    run_operator(lambda: bpy.ops.dposerx.import_smplx_npz(filepath=str(out / "video_capture.npz")))
    settings = scene.dposerx  # the import set the Clean Mocap range to the imported frames
    settings.part_hands = settings.part_face = False  # the jitter is on the body
    run_operator(bpy.ops.dposerx.clean_mocap)
    run_operator(lambda: bpy.ops.dposerx.export_smplx_npz(filepath=str(out / "cleaned.npz"),
                                                          frame_start=settings.clean_start,
                                                          frame_end=settings.clean_end))

    exported = read_amass_npz(out / "cleaned.npz")
    cleaned = exported.poses.copy()
    cleaned[:, :3] = to_y_up(exported.poses, exported.trans, np.zeros(3))[0][:, :3]  # back to Y-up to compare
    for label, poses in (("imported", noisy), ("exported, cleaned", cleaned)):
        error, jitter = motion_errors(poses, reference)
        print(f"{label}: joint error {error:.0f} mm, jitter (acceleration error) {jitter:.0f} mm/frame^2")
    plot(reference, noisy, cleaned, ROOT / "docs" / "img" / "mocap_workflow.png")
    print(f"wrote {out / 'video_capture.npz'}, {out / 'cleaned.npz'}, docs/img/mocap_workflow.png")


if __name__ == "__main__":
    main()
