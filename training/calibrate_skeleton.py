"""`python -m training.calibrate_skeleton`: estimate the SMPL-X convention of the rest skeleton and each rig's
calibration from the CMU training split; prints the tables to paste into core/skeleton.py and the joint maps.

Reference: `../shared/reference/amass_body_pose_stats.npz`, the AMASS training-split pose mean of DPoser-X
(moonbow721/DPoser-X, axis_normalize2.pt), used only to estimate conventions (smplx_conventions.md).

1. Every CMU training take (all rigs, at most 30 fps) is retargeted with the current skeleton and joint maps
   (limb twists settled from the hinges, core/mocap/calibration.py).
2. Rig calibration: per rig and joint in RIG_JOINTS, the constant rotation C_j (in the bone's own frame) that
   makes the rig's mean rotation over its standing frames equal to the CMU ASF skeleton's (the original
   capture skeleton, the reference). A change C_j gives L'_j = C_parent^T L_j C_j, so the chain is solved from
   the root: C_j = mean(L_j)^-1 C_parent M_ref_j. Left and right are averaged with their mirror images.
3. Skeleton: over all calibrated training frames of all rigs, the same chain solve against the AMASS mean for
   SKELETON_JOINTS gives D_j; its swing part turns the rest bone (the joint's children and tip are rotated
   about it, lengths kept): the new rest bone points where the captured bone points in the SMPL-X convention.
4. Repeat from 1 (ITERATIONS): the steps interact through the retargeter's rest alignment.
Standing frames: trunk (pelvis to neck), thighs and shanks within STANDING_DEGREES of vertical.
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy.spatial.transform import Rotation

from dposerx_blender.core import skeleton
from dposerx_blender.core.limits import within_limits
from dposerx_blender.core.mocap.calibration import bone_direction
from dposerx_blender.core.mocap.retarget import detect_joint_map, load_joint_maps, retarget
from dposerx_blender.core.skeleton import BODY_JOINTS, JOINT_INDEX, JOINT_NAMES, PARENTS

from .conventions import STANDING_DEGREES, load_amass_stats, standing
from .dataset import SOURCES, TEST_SUBJECTS, VAL_SUBJECTS, _read_motions, calibration_frames, cmu_subject
from .mocap.sources import mocap_root

REFERENCE_RIG = "cmu_asf"
ITERATIONS = 3
_SIDES = ("left_", "right_")
# Where rigs place landmarks differently (spine joints, the clavicle's origin, the head's end). Legs are left
# out: hips, ankles and feet differ between rigs' standing frames by stance (iClone's dancers turn their feet
# out), and calibrating them made held-out standing frames agree worse with CMU ASF (docs/data.md).
RIG_JOINTS = ("spine1", "spine2", "spine3", "neck", "left_collar", "right_collar", "head")
SKELETON_JOINTS = ("spine1", "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
                   "left_collar", "right_collar", "head")


def training_motions(max_fps: float = 30.0) -> dict[str, list]:
    """Source name -> CMU training-split motions (subjects outside VAL/TEST), subsampled to <= max_fps."""
    out = {}
    for source in SOURCES:
        if not source.default or not source.name.startswith("cmu"):
            continue
        items = []
        for path, motion in _read_motions(source, mocap_root()):
            if cmu_subject(path) in VAL_SUBJECTS | TEST_SUBJECTS:
                continue
            step = max(1, round(motion.fps / max_fps))
            items.append(motion.slice(0, motion.num_frames, step))
        out[source.name] = items
    return out


def retarget_poses(motions: dict[str, list], maps: dict) -> dict[str, np.ndarray]:
    """Rig (joint map name) -> (N, 165) retargeted poses, calibration T-poses and frames outside the limits
    dropped."""
    joint_map_of = {s.name: s.joint_map for s in SOURCES}
    poses: dict[str, list] = {}
    for name, items in motions.items():
        for motion in items:
            joint_map = maps[joint_map_of[name]] if joint_map_of[name] else detect_joint_map(motion, maps)
            p = retarget(motion, joint_map).poses
            p = p[~calibration_frames(p)]
            poses.setdefault(joint_map.name, []).append(p[within_limits(p)])
    return {rig: np.concatenate(p) for rig, p in sorted(poses.items())}


def mean_rotation(poses: np.ndarray, j: int) -> Rotation:
    """Joint j's mean over frames, as AMASS's statistics take it: the arithmetic mean of axis-angle vectors."""
    return Rotation.from_rotvec(poses[:, 3 * j:3 * j + 3].mean(0))


def _swing(rot: Rotation, bone: np.ndarray) -> Rotation:
    """Swing part of `rot` (the smallest rotation taking `bone` where `rot` takes it)."""
    target = rot.apply(bone)
    axis = np.cross(bone, target)
    sin = np.linalg.norm(axis)
    if sin < 1e-12:
        return Rotation.identity()
    return Rotation.from_rotvec(axis / sin * np.arctan2(sin, bone @ target))


def _mirror(rot: Rotation) -> Rotation:
    x, y, z = rot.as_rotvec()
    return Rotation.from_rotvec([x, -y, -z])


def symmetric(corrections: dict[str, Rotation]) -> dict[str, Rotation]:
    """Left/right pairs averaged with each other's mirror image; centre joints with their own."""
    out = {}
    for name, rot in corrections.items():
        other = next((name.replace(a, b) for a, b in zip(_SIDES, _SIDES[::-1]) if name.startswith(a)), name)
        partner = corrections.get(other, rot)
        out[name] = Rotation.concatenate([rot, _mirror(partner)]).mean()
    return out


def solve_chain(poses: np.ndarray, targets: dict[str, Rotation], joints: tuple[str, ...]) -> dict[str, Rotation]:
    """Per joint in `joints`, C_j = mean(L_j)^-1 C_parent M_j (root first; other joints keep C = I)."""
    corrections: dict[str, Rotation] = {}
    for j, name in enumerate(JOINT_NAMES):
        if name not in joints:
            continue
        parent = corrections.get(JOINT_NAMES[PARENTS[j]], Rotation.identity())
        c = mean_rotation(poses, j).inv() * parent * targets[name]
        corrections[name] = c
    return symmetric(corrections)


def rig_calibrations(poses: dict[str, np.ndarray], maps: dict) -> dict[str, dict[str, Rotation]]:
    """Rig name -> per-joint calibration that matches the reference rig's standing means (poses by rig)."""
    reference = poses[REFERENCE_RIG][standing(poses[REFERENCE_RIG])]
    targets = {n: mean_rotation(reference, JOINT_INDEX[n]) for n in RIG_JOINTS}
    out = {}
    for rig, p in poses.items():
        stand = p[standing(p)]
        driven = tuple(n for n in RIG_JOINTS if n in maps[rig].joints and maps[rig].aim(n) is not None)
        # On top of what the rig's map already applies (each pass refines the previous calibration).
        previous = {n: Rotation.from_rotvec(np.radians(v)) for n, v in maps[rig].calibration.items()
                    if n in RIG_JOINTS}
        new = solve_chain(stand, targets, driven) if rig != REFERENCE_RIG else {}
        print(f"  {rig}: {len(stand)} standing frames of {len(p)}", flush=True)
        out[rig] = {n: previous.get(n, Rotation.identity()) * new.get(n, Rotation.identity())
                    for n in set(previous) | set(new)}
    return out


def update_skeleton(corrections: dict[str, Rotation]) -> None:
    """Turn each corrected joint's children and tip by the swing part of its correction (in place: the tables
    every module imported from core.skeleton change with them)."""
    offsets = skeleton.REST_OFFSETS.copy()
    for name, rot in corrections.items():
        j = JOINT_INDEX[name]
        turn = _swing(rot, bone_direction(name)).inv()
        for c in (c for c, p in enumerate(PARENTS) if p == j):
            offsets[c] = turn.apply(offsets[c])
        if j in skeleton.TIP_OFFSETS:
            skeleton.TIP_OFFSETS[j][:] = turn.apply(skeleton.TIP_OFFSETS[j])
    skeleton.REST_OFFSETS[:] = offsets
    skeleton.REST_JOINTS[:] = skeleton.rest_joints(offsets)
    skeleton._TIP_VECTORS[:] = np.stack([skeleton.TIP_OFFSETS[j] for j in skeleton.TIP_JOINTS])


def apply_rig_calibrations(maps: dict, calibrations: dict) -> dict:
    from dataclasses import replace

    return {rig: replace(m, calibration={n: np.degrees(r.as_rotvec()).tolist()
                                         for n, r in calibrations.get(rig, {}).items()})
            for rig, m in maps.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.calibrate_skeleton", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    args = parser.parse_args(argv)
    amass_mean, _ = load_amass_stats()
    targets = {JOINT_NAMES[j]: Rotation.from_rotvec(np.radians(amass_mean[i])) for i, j in enumerate(BODY_JOINTS)}
    motions = training_motions()
    maps = load_joint_maps()
    for iteration in range(args.iterations):
        poses = retarget_poses(motions, maps)
        maps = apply_rig_calibrations(maps, rig_calibrations(poses, maps))
        pooled = np.concatenate(list(retarget_poses(motions, maps).values()))
        corrections = solve_chain(pooled, targets, SKELETON_JOINTS)
        worst = max(np.degrees(r.magnitude()) for r in corrections.values())
        print(f"iteration {iteration}: largest skeleton correction {worst:.1f} deg", flush=True)
        update_skeleton(corrections)
    print_tables(maps)


def _fmt(v) -> str:
    return "(" + ", ".join(f"{x:.4f}".rstrip("0").rstrip(".") if abs(x) > 5e-5 else "0.0" for x in v) + ")"


def print_tables(maps: dict) -> None:
    print("\n# core/skeleton.py _LEFT_AND_CENTRE_OFFSETS / _LEFT_AND_CENTRE_TIPS (changed entries)")
    for name in skeleton._LEFT_AND_CENTRE_OFFSETS:
        print(f'    "{name}": {_fmt(skeleton.REST_OFFSETS[JOINT_INDEX[name]])},')
    for name in skeleton._LEFT_AND_CENTRE_TIPS:
        print(f'    "{name}": {_fmt(skeleton.TIP_OFFSETS[JOINT_INDEX[name]])},')
    for rig, joint_map in maps.items():
        if joint_map.calibration:
            print(f"\n# {rig}.toml\n[calibration]")
            for name in JOINT_NAMES:
                if name in joint_map.calibration:
                    print(f"{name} = [{', '.join(f'{x:.1f}' for x in joint_map.calibration[name])}]")


if __name__ == "__main__":
    main()
