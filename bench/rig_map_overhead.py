"""What the rig map adds to a job: Complete Pose and Clean Mocap run through the operators (bundled prior, CPU,
one torch thread), split into the solver's time and the rest, on the project's SMPL-X skeleton and on users'
rigs (a Mixamo-named A-pose rig built like the tests' and a Rigify rig generated from Blender's Human metarig),
the same poses on each. Also timed alone: the conversions (read the pose, write it back; read and key a track; a
clean-up's write into those keys, every joint 3 degrees along each axis, and the same with the trunk's joints
turned on one frame in four: on Rigify only those frames need more than one correction pass) that a map replaces.
Of a job's time outside the solver, the share spent evaluating a constraint-driven rig frame by frame (Blender's
own constraint evaluation, which playback pays too) and the number of frames evaluated.

A second table: reading a keyed track, per frame, on the bare armature and with a body-sized mesh skinned to it
(SKIN_VERTICES vertices, each weighted to its nearest deforming bone, re-deformed whenever the scene is evaluated),
mapped rigs also as they were read before (the whole scene, the mesh included, evaluated at every frame: now
plain FK rigs are read from their F-curves, and constraint-driven ones evaluated without the meshes they deform),
the baseline of the same run.

`.venv/bin/python -m bench.rig_map_overhead` prints both tables (median of the repeats, seconds; milliseconds in
the second); `--reads` the second alone.
"""
from __future__ import annotations

import statistics
import sys
import time
from unittest import mock

import bpy
import numpy as np
import torch

import dposerx_blender
from dposerx_blender.blender import mapped_rig, rig_bridge
from dposerx_blender.blender.props import ADDON_PACKAGE
from dposerx_blender.core.skeleton import JOINT_INDEX
from tests.rig_specs import build_rig, mapped_pose, rigify_rig

REPEATS, FRAMES, SKIN_VERTICES = 5, 60, 32_000
TRUNK = [JOINT_INDEX[name] for name in ("spine1", "spine2", "spine3", "neck", "head")]


def timed(function, repeats=REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fresh_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if ADDON_PACKAGE not in bpy.context.preferences.addons:
        bpy.context.preferences.addons.new().module = ADDON_PACKAGE


SOLVER_SECONDS: list = []  # time inside core.tasks, per job
EVALUATIONS: list = []  # (frames, seconds) of each mapped_rig._at_frames call (the rig evaluated frame by frame)


def record_calls(module, name: str, record) -> None:
    """Replace module.name by a wrapper that calls record(args, seconds) after each call."""
    function = getattr(module, name)

    def timed_call(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            record(args, time.perf_counter() - start)
    setattr(module, name, timed_call)


def time_calls() -> None:
    """Split a job's time: the task functions the jobs call (the solver; the rest is reading the rig, converting,
    writing: what a map can add), and mapped_rig._at_frames (a constraint-driven rig evaluated frame by frame:
    scene.frame_set and the matrices read there, Blender's cost, which playback pays too; its frames counted)."""
    from dposerx_blender.core import tasks

    for name in ("complete", "denoise_track"):
        record_calls(tasks, name, lambda _args, seconds: SOLVER_SECONDS.append(seconds))
    record_calls(mapped_rig, "_at_frames", lambda args, seconds: EVALUATIONS.append((len(args[1]), seconds)))


def job(operator, repeats) -> tuple[float, float, float, float]:
    """Medians over the repeats: job seconds, seconds outside the solver, seconds of frame-by-frame rig evaluation,
    frames evaluated."""
    totals, outside, evaluating, frames = [], [], [], []
    for _ in range(repeats):
        SOLVER_SECONDS.clear()
        EVALUATIONS.clear()
        start = time.perf_counter()
        operator()
        totals.append(time.perf_counter() - start)
        outside.append(totals[-1] - sum(SOLVER_SECONDS))
        evaluating.append(sum(seconds for _, seconds in EVALUATIONS))
        frames.append(sum(count for count, _ in EVALUATIONS))
    return tuple(statistics.median(v) for v in (totals, outside, evaluating, frames))


def measure(name, make) -> dict:
    fresh_scene()
    ob = make()
    rig = rig_bridge.find_rig(ob)
    mask = ~rig_bridge.unwritable(rig)
    mask[0] = False
    joints = np.flatnonzero(mask)
    pose = mapped_pose(mask, 1, 0.3)
    rig_bridge.apply_pose(rig, pose, joints)
    out = {"read pose": timed(lambda: rig_bridge.read_pose(rig), 20),
           "write pose": timed(lambda: rig_bridge.apply_pose(rig, pose, joints), 20)}
    frames = np.arange(1, FRAMES + 1, dtype=float)
    track = np.stack([mapped_pose(mask, s, 0.3) for s in range(FRAMES)])
    out["key track"] = timed(lambda: rig_bridge.key_track(rig, track, joints, frames), 3)
    out["read track"] = timed(lambda: rig_bridge.read_track(rig, frames), 3)

    def clean_up_write(trunk_every: int = 1) -> float:
        """A clean-up's write after its read (Clean Mocap's order): every written joint 3 degrees along each axis,
        the trunk's (TRUNK) on every `trunk_every`-th frame only."""
        read = rig_bridge.read_track(rig, frames)
        change = np.tile(np.radians(3) * np.repeat(mask, 3), (FRAMES, 1)).reshape(FRAMES, 55, 3)
        change[np.ix_(np.flatnonzero(np.arange(FRAMES) % trunk_every), TRUNK)] = 0
        start = time.perf_counter()
        rig_bridge.update_track_keys(rig, read + change.reshape(FRAMES, -1), joints, frames)
        return time.perf_counter() - start

    out["clean-up write"] = statistics.median(clean_up_write() for _ in range(3))
    out["clean-up write, trunk on 1/4"] = statistics.median(clean_up_write(4) for _ in range(3))
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode='POSE')
    for pose_bone in ob.pose.bones:  # lock the arms' bones: Complete Pose completes the rest
        target = pose_bone if hasattr(pose_bone, "select") else pose_bone.bone
        target.select = pose_bone.name in {rig.bone_names[j] for j in range(13, 22)}
    bpy.ops.dposerx.lock_selected()
    settings = bpy.context.scene.dposerx
    settings.hypotheses, settings.clean_action_range, settings.clean_start, settings.clean_end = 10, False, 1, FRAMES
    for name, operator, repeats in (("Complete Pose", bpy.ops.dposerx.complete_pose, REPEATS),
                                    ("Clean Mocap", bpy.ops.dposerx.clean_mocap, 3)):
        (out[f"{name} job"], out[f"{name} outside solver"], out[f"{name} evaluating the rig"],
         out[f"{name} frames evaluated"]) = job(operator, repeats)
    return out


def skin(ob) -> None:
    """A body-sized mesh (an ellipsoid over the bones, SKIN_VERTICES vertices) deformed by armature `ob`, each
    vertex weighted to its nearest deforming bone."""
    bones = [bone for bone in ob.data.bones if bone.use_deform]
    heads = np.array([bone.head_local for bone in bones])
    tails = np.array([bone.tail_local for bone in bones])
    low, high = np.minimum(heads, tails).min(0), np.maximum(heads, tails).max(0)
    rings = int(np.sqrt(SKIN_VERTICES / 2))
    bpy.ops.mesh.primitive_uv_sphere_add(segments=2 * rings, ring_count=rings + 1, radius=0.5,
                                         location=(low + high) / 2, scale=high - low)
    mesh = bpy.context.object
    bpy.ops.object.transform_apply(location=True, rotation=True, scale=True)
    points = np.array([v.co for v in mesh.data.vertices])
    along = tails - heads
    t = np.clip(((points[:, None] - heads) * along).sum(-1) / (along * along).sum(-1), 0, 1)
    nearest = np.linalg.norm(points[:, None] - (heads + t[..., None] * along), axis=-1).argmin(1)
    for b, bone in enumerate(bones):
        mesh.vertex_groups.new(name=bone.name).add(np.flatnonzero(nearest == b).tolist(), 1.0, 'REPLACE')
    mesh.modifiers.new("Armature", 'ARMATURE').object = ob
    bpy.context.view_layer.objects.active = ob


def read_costs(make) -> dict:
    """Milliseconds per frame to read a keyed track of FRAMES frames, bare and skinned; on a mapped rig also as
    before (whole scene evaluated at each frame), the two reads taking turns so that both see the same load."""
    fresh_scene()
    ob = make()
    rig = rig_bridge.find_rig(ob)
    mask = ~rig_bridge.unwritable(rig)
    frames = np.arange(1, FRAMES + 1, dtype=float)
    track = np.stack([mapped_pose(mask, s, 0.3) for s in range(FRAMES)])
    rig_bridge.key_track(rig, track, np.flatnonzero(mask), frames)

    def read_as_before():
        with mock.patch.multiple(mapped_rig, _follows_channels=lambda rig: False, _skins=lambda rig: []):
            rig_bridge.read_track(rig, frames)

    reads = {"read": lambda: rig_bridge.read_track(rig, frames)}
    if isinstance(rig, mapped_rig.MappedRig):
        reads["read as before"] = read_as_before
    out = {}
    for mesh in ("bare", "skinned"):
        if mesh == "skinned":
            skin(ob)
        times = {name: [] for name in reads}
        for _ in range(REPEATS):
            for name, read in reads.items():
                times[name].append(timed(read, 1))
        out.update({f"{name}, {mesh}": statistics.median(t) / FRAMES * 1e3 for name, t in times.items()})
    return out


def table(results: dict, digits: int) -> None:
    columns = list(dict.fromkeys(c for row in results.values() for c in row))
    print("| rig | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.{digits}f}" if c in row else "" for c in columns) + " |")


def main() -> None:
    torch.set_num_threads(1)
    time_calls()
    dposerx_blender.register()
    fresh_scene()

    def project():
        bpy.ops.dposerx.add_skeleton()
        return bpy.context.object

    rigs = (("SMPL-X skeleton", project), ("Mixamo (mapped)", lambda: build_rig("mixamo")),
            ("Rigify (mapped)", rigify_rig))
    if "--reads" not in sys.argv:
        table({name: measure(name, make) for name, make in rigs}, 3)
    print(f"\nReading a {FRAMES}-frame track, ms per frame (mesh: {SKIN_VERTICES} vertices, skinned):")
    table({name: read_costs(make) for name, make in rigs}, 2)


if __name__ == "__main__":
    main()
