"""`python -m bench.keyframe_speed FRAMES`: key the 55 bones of the project's SMPL-X skeleton (quaternions) at
FRAMES frames, once with the extension's bulk writer and once with a keyframe_insert loop, in headless bpy;
prints one JSON line of seconds and key counts."""
from __future__ import annotations

import json
import sys
import time

import bpy
import numpy as np

from dposerx_blender.blender.keyframes import Channel, object_channelbag, write_channels
from dposerx_blender.blender.skeleton_builder import build_skeleton


def keyed_skeleton():
    ob = build_skeleton(bpy.context)
    for bone in ob.pose.bones:
        bone.rotation_mode = 'QUATERNION'
    return ob


def key_count(ob) -> int:
    return sum(len(fc.keyframe_points) for fc in object_channelbag(ob).fcurves)


def main(frames: int) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    rng = np.random.default_rng(0)
    quats = rng.normal(size=(frames, 55, 4))
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    frame_numbers = np.arange(1, frames + 1, dtype=np.float64)

    bulk_rig = keyed_skeleton()
    bones = [b for b in bulk_rig.pose.bones if b.name != "root"]
    channels = [Channel(f'pose.bones["{b.name}"].rotation_quaternion', b.name, quats[:, j])
                for j, b in enumerate(bones)]
    start = time.perf_counter()
    write_channels(object_channelbag(bulk_rig), channels, frame_numbers)
    bulk = time.perf_counter() - start

    loop_rig = keyed_skeleton()
    bones = [b for b in loop_rig.pose.bones if b.name != "root"]
    start = time.perf_counter()
    for f, frame in enumerate(frame_numbers):
        for j, bone in enumerate(bones):
            bone.rotation_quaternion = quats[f, j]
            bone.keyframe_insert("rotation_quaternion", frame=frame, group=bone.name)
    loop = time.perf_counter() - start
    print(json.dumps({"bones": len(bones), "frames": frames, "bulk_seconds": bulk, "loop_seconds": loop,
                      "bulk_keys": key_count(bulk_rig), "loop_keys": key_count(loop_rig),
                      "blender": bpy.app.version_string}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
