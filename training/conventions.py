"""The convention table of `python build.py data`: per SMPL-X body joint, the AMASS training mean (the
reference of ../shared/reference/smplx_conventions.md) beside our training split's mean per source, and how far
apart they are in AMASS standard deviations.

Reference statistics: `amass_body_pose_stats.npz`, copied from DPoser-X (moonbow721/DPoser-X, commit 1829905c,
data/body_data/body_normalizer/axis_normalize2.pt): mean and std of the axis-angle body pose over the paper's
AMASS training split. Used for conventions only, never as training data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from dposerx_blender.core.mocap.conventions import Z_UP_TO_Y_UP
from dposerx_blender.core.skeleton import BODY_JOINTS, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, forward_kinematics

from .mocap.sources import mocap_root

AMASS_STATS_NAME = "amass_body_pose_stats.npz"
# Joints whose rotation is a matter of convention (rest geometry): their means must agree within this.
CONVENTION_JOINTS = ("spine1", "spine2", "spine3", "neck", "head", "left_collar", "right_collar")
CONVENTION_DEGREES = 5.0
# Standing frames (trunk, thighs and shanks within this of vertical): the pose every rig shares, on which rigs
# are calibrated and compared.
STANDING_DEGREES = 35.0


def amass_stats_path(root: Path | None = None) -> Path:
    """The reference statistics: ../shared/reference next to the mocap folder."""
    return (root or mocap_root()).resolve().parents[1] / "reference" / AMASS_STATS_NAME


def load_amass_stats(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(21, 3) mean and std in degrees, SMPL-X body joints 1..21."""
    stats = np.load(path or amass_stats_path())
    names = [str(n) for n in stats["joint_names"]]
    if names != [JOINT_NAMES[j] for j in BODY_JOINTS]:
        raise ValueError(f"{path}: unexpected joint order {names[:3]}...")
    return np.degrees(stats["mean"]).reshape(21, 3), np.degrees(stats["std"]).reshape(21, 3)


def geodesic_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between rotations given as axis-angle vectors in degrees (..., 3)."""
    ra, rb = Rotation.from_rotvec(np.radians(a).reshape(-1, 3)), Rotation.from_rotvec(np.radians(b).reshape(-1, 3))
    return np.degrees((ra.inv() * rb).magnitude()).reshape(np.shape(a)[:-1])


def compare(body_by_source: dict[str, np.ndarray], amass_mean: np.ndarray, amass_std: np.ndarray) -> dict:
    """{source: {"mean": (21, 3) deg, "angle": (21,) deg to AMASS, "sigmas": (21,) max |diff| / std, "n"}}
    from (N, 63) axis-angle body rows (radians). Means are arithmetic axis-angle means, as AMASS's are."""
    out = {}
    for source, rows in body_by_source.items():
        mean = np.degrees(rows.mean(0)).reshape(21, 3)
        out[source] = {"mean": mean, "angle": geodesic_degrees(mean, amass_mean),
                       "sigmas": (np.abs(mean - amass_mean) / amass_std).max(1), "n": len(rows)}
    return out


def _vec(v: np.ndarray) -> str:
    return "[" + ", ".join(f"{x:.1f}" for x in v) + "]"


def convention_markdown(summary: dict, amass_mean: np.ndarray, amass_std: np.ndarray) -> str:
    sources = list(summary)
    lines = ["| joint | AMASS mean | AMASS std | " + " | ".join(f"{s} (n={summary[s]['n']})" for s in sources) + " |",
             "|---|---|---|" + "---|" * len(sources)]
    for i, j in enumerate(BODY_JOINTS):
        cells = [f"{_vec(summary[s]['mean'][i])} {summary[s]['angle'][i]:.1f}° {summary[s]['sigmas'][i]:.1f}σ"
                 for s in sources]
        lines.append(f"| {JOINT_NAMES[j]} | {_vec(amass_mean[i])} | {_vec(amass_std[i])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def convention_verdict(summary: dict, source: str) -> str:
    """One line: the convention joints' worst angle, and the joints beyond one AMASS std, for `source`."""
    s = summary[source]
    index = {JOINT_NAMES[j]: i for i, j in enumerate(BODY_JOINTS)}
    worst = max(CONVENTION_JOINTS, key=lambda n: s["angle"][index[n]])
    beyond = [f"{JOINT_NAMES[j]} ({s['sigmas'][i]:.1f}σ)" for i, j in enumerate(BODY_JOINTS) if s["sigmas"][i] > 1]
    return (f"{source}: spine, neck, head and collars within {s['angle'][index[worst]]:.1f}° of the AMASS means "
            f"(worst {worst}; target {CONVENTION_DEGREES:g}°); beyond one AMASS std: {', '.join(beyond) or 'none'}.")


def standing(poses: np.ndarray, degrees: float = STANDING_DEGREES) -> np.ndarray:
    """(N,) bool: trunk, thighs and shanks within `degrees` of vertical (forward kinematics, Y up)."""
    rot = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(len(poses), NUM_JOINTS, 3, 3)
    rot[:, 0] = Z_UP_TO_Y_UP @ rot[:, 0]
    joints = forward_kinematics(torch.from_numpy(rot)).numpy()
    cos = np.cos(np.radians(degrees))
    ok = np.ones(len(poses), bool)
    for a, b, up in (("pelvis", "neck", 1), ("left_hip", "left_knee", -1), ("left_knee", "left_ankle", -1),
                     ("right_hip", "right_knee", -1), ("right_knee", "right_ankle", -1)):
        d = joints[:, JOINT_INDEX[b]] - joints[:, JOINT_INDEX[a]]
        ok &= up * d[:, 1] / np.linalg.norm(d, axis=1) > cos
    return ok


def standing_means(reports, subjects: set[str] | None = None) -> dict[str, tuple[np.ndarray, int]]:
    """Rig -> ((21, 3) mean axis-angle in degrees, frames) over the standing frames of the takes of `subjects`
    (CMU subject ids; None: every take), calibration T-poses dropped."""
    from dposerx_blender.core.limits import within_limits

    from .dataset import calibration_frames, cmu_subject

    rows: dict[str, list] = {}
    for report in reports:
        if subjects is not None and cmu_subject(Path(report.name)) not in subjects:
            continue
        poses = report.poses[~calibration_frames(report.poses)]
        poses = poses[within_limits(poses)]
        rows.setdefault(report.rig, []).append(poses[standing(poses)][:, 3:66])
    out = {}
    for rig, parts in sorted(rows.items()):
        body = np.concatenate(parts)
        if len(body):
            out[rig] = (np.degrees(body.mean(0)).reshape(21, 3), len(body))
    return out


def cross_rig_markdown(means: dict[str, tuple[np.ndarray, int]], reference: tuple[np.ndarray, int]) -> str:
    """Per body joint, each rig's standing mean against the reference's: geodesic degrees."""
    rigs = list(means)
    lines = ["| joint | " + " | ".join(f"{r} (n={means[r][1]})" for r in rigs) + " |", "|---|" + "---|" * len(rigs)]
    for i, j in enumerate(BODY_JOINTS):
        lines.append(f"| {JOINT_NAMES[j]} | " + " | ".join(
            f"{geodesic_degrees(means[r][0][i], reference[0][i]):.1f}" for r in rigs) + " |")
    overall = {r: np.mean([geodesic_degrees(means[r][0][i], reference[0][i]) for i in range(21)]) for r in rigs}
    lines.append("| **mean over joints** | " + " | ".join(f"**{overall[r]:.1f}**" for r in rigs) + " |")
    return "\n".join(lines)


# A second rest pose for the same capture, as another converter might write it: arms lowered 40 degrees and
# rolled about the upper arm, thighs rolled (feet turned out). Source joint name -> (roll about the bone in
# degrees, lowering about the forward axis in degrees); CMU ASF names, Y up, facing +Z, left = +X.
REEXPRESSION = {"lhumerus": (40.0, -40.0), "rhumerus": (-35.0, 40.0), "lfemur": (25.0, 0.0), "rfemur": (-20.0, 0.0)}


def reexpressed(motion, changes: dict[str, tuple[float, float]] = REEXPRESSION):
    """The same motion (identical joint positions over time) on a rest pose changed by `changes`."""
    from dposerx_blender.core.mocap.motion import Motion

    rest = np.broadcast_to(np.eye(3), (1, len(motion.joint_names), 3, 3)).copy()
    for name, (roll, lower) in changes.items():
        j = motion.index(name)
        child = next(c for c, p in enumerate(motion.parents) if p == j)
        bone = motion.offsets[child] / np.linalg.norm(motion.offsets[child])
        rest[0, j] = (Rotation.from_rotvec(np.radians(lower) * np.array([0.0, 0.0, 1.0]))
                      * Rotation.from_rotvec(np.radians(roll) * bone)).as_matrix()
    with_rest = Motion(motion.name, list(motion.joint_names), motion.parents, motion.offsets,
                       np.concatenate([rest, motion.rotations]),
                       np.concatenate([motion.root_translation[:1], motion.root_translation]), motion.fps)
    return with_rest.rebased(0).slice(1, with_rest.num_frames)


def reexpression_differences(motion, joint_map) -> np.ndarray:
    """(21,) mean geodesic degrees per body joint between the retargeted motion and its re-expression."""
    from dposerx_blender.core.mocap.retarget import retarget

    a, b = retarget(motion, joint_map).poses, retarget(reexpressed(motion), joint_map).poses
    ra, rb = (Rotation.from_rotvec(p[:, 3:66].reshape(-1, 3)) for p in (a, b))
    return np.degrees((ra.inv() * rb).magnitude()).reshape(len(a), 21).mean(0)


def cross_conversion_markdown(reports, root: Path) -> str:
    """Both cross-conversion checks of docs/data.md: held-out standing means per rig against CMU ASF, and a
    held-out CMU ASF take re-expressed on another rest pose."""
    from dposerx_blender.core.mocap.retarget import load_joint_maps

    from .dataset import TEST_SUBJECTS, VAL_SUBJECTS
    from .mocap.asf_amc import read_amc, read_asf

    take = root / "cyun9601_cmu_asfamc" / "02" / "02_05.amc"
    motion = read_amc(take, read_asf(take.with_name("02.asf")))
    motion = motion.slice(0, motion.num_frames, max(1, round(motion.fps / 30)))
    differences = reexpression_differences(motion, load_joint_maps()["cmu_asf"])
    reference = standing_means([r for r in reports if r.rig == "cmu_asf"])["cmu_asf"]
    means = standing_means([r for r in reports if r.rig != "cmu_asf"], VAL_SUBJECTS | TEST_SUBJECTS)
    rows = ", ".join(f"{JOINT_NAMES[j]} {differences[i]:.1f}" for i, j in enumerate(BODY_JOINTS))
    return ("Generated by `python build.py data` (training/conventions.py).\n\n"
            "**Re-expressed take** (CMU 02_05, test split, ASF/AMC at 30 fps; rest pose changed by "
            "`REEXPRESSION`: arms lowered 40 deg and rolled 35-40 deg, thighs rolled 20-25 deg): mean difference "
            f"per body joint, degrees: worst {differences.max():.1f}, mean {differences.mean():.1f} (target: "
            f"under 5). Per joint: {rows}.\n\n"
            "**Held-out standing frames per rig against the CMU ASF skeleton's** (each rig's validation and test "
            f"subjects against all {reference[1]} standing frames of CMU ASF subjects 01-03; geodesic degrees "
            "between mean rotations. The subjects and activities differ, so content differences (stance, arm "
            "carriage) remain in these numbers; the calibrated joints are hips, spine, neck, head, collars, "
            "ankles and feet):\n\n" + cross_rig_markdown(means, reference))
