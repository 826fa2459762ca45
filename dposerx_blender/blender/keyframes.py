"""Bulk keyframe writing and reading through slotted actions (Blender 4.5 and 5.0).

Every operator that writes keys goes through `write_channels`: one foreach_set per F-curve instead of one
`keyframe_insert` per key, and keys outside the written frame span are left exactly as they were.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import bpy
import numpy as np

# --- The one place where 4.5 and 5.0 differ --------------------------------------------------------------
_BLENDER_5 = bpy.app.version >= (5, 0, 0)


def _ensure_channelbag(action, slot):
    if _BLENDER_5:
        from bpy_extras.anim_utils import action_ensure_channelbag_for_slot

        return action_ensure_channelbag_for_slot(action, slot)
    # 4.5 has no "ensure" helper: build the layer and keyframe strip by hand.
    layer = action.layers[0] if action.layers else action.layers.new("Layer")
    strip = layer.strips[0] if layer.strips else layer.strips.new(type='KEYFRAME')
    return strip.channelbag(slot, ensure=True)


def _ensure_fcurve(channelbag, data_path: str, index: int, group: str):
    if _BLENDER_5:
        return channelbag.fcurves.ensure(data_path, index=index, group_name=group)
    fcurve = channelbag.fcurves.find(data_path, index=index)
    if fcurve is None:
        fcurve = channelbag.fcurves.new(data_path, index=index)
        fcurve.group = channelbag.groups.get(group) or channelbag.groups.new(group)
    return fcurve
# ----------------------------------------------------------------------------------------------------------


_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


@dataclass
class Channel:
    """One animated property: `values` (T, k) for the k array indices of `data_path`."""

    data_path: str
    group: str
    values: np.ndarray


def object_channelbag(ob, create: bool = True):
    """The channelbag of the object's action slot, creating action and slot if needed (None if absent and not
    `create`)."""
    anim = ob.animation_data
    action = anim.action if anim else None
    if action is None:
        if not create:
            return None
        anim = ob.animation_data_create()
        action = anim.action = bpy.data.actions.new(f"{ob.name}Action")
    if anim.action_slot is None:
        if not create:
            return None
        anim.action_slot = action.slots.new(id_type='OBJECT', name=ob.name)
    if not create:
        from bpy_extras.anim_utils import action_get_channelbag_for_slot

        return action_get_channelbag_for_slot(action, anim.action_slot)
    return _ensure_channelbag(action, anim.action_slot)


def new_pose_action(name: str, ob):
    """A fresh Action with one slot for `ob`, and its channelbag (for pose assets)."""
    action = bpy.data.actions.new(name)
    slot = action.slots.new(id_type='OBJECT', name=ob.name)
    return action, _ensure_channelbag(action, slot)


def write_channels(channelbag, channels: list[Channel], frames: np.ndarray) -> None:
    """Key every channel at `frames` (T,) (increasing), replacing keys within [frames[0], frames[-1]] only.

    New keys are linear-interpolated so dense tracks play back as written.
    """
    frames = np.asarray(frames, dtype=np.float64)
    first, last = frames[0] - 1e-3, frames[-1] + 1e-3
    for channel in channels:
        for index in range(channel.values.shape[1]):
            fcurve = _ensure_fcurve(channelbag, channel.data_path, index, channel.group)
            points = fcurve.keyframe_points
            stale = [i for i, key in enumerate(points) if first <= key.co[0] <= last]
            for i in reversed(stale):
                points.remove(points[i], fast=True)
            kept = len(points)
            points.add(len(frames))
            co = np.empty(2 * len(points), dtype=np.float32)
            points.foreach_get("co", co)
            co[2 * kept::2] = frames
            co[2 * kept + 1::2] = channel.values[:, index]
            points.foreach_set("co", co)
            interpolation = np.empty(len(points), dtype=np.int32)
            points.foreach_get("interpolation", interpolation)
            interpolation[kept:] = _LINEAR
            points.foreach_set("interpolation", interpolation)
            fcurve.update()


def keyed_range(channelbag) -> tuple[int, int] | None:
    """The first and last keyed frame of the channelbag (rounded outwards to whole frames), None without keys."""
    frames = [key.co[0] for fcurve in (channelbag.fcurves if channelbag else ()) for key in fcurve.keyframe_points]
    return (math.floor(min(frames)), math.ceil(max(frames))) if frames else None


def key_frames(fcurve) -> np.ndarray | None:
    """The frames of an F-curve's keys (None for no F-curve)."""
    if fcurve is None:
        return None
    co = np.empty(2 * len(fcurve.keyframe_points), dtype=np.float32)
    fcurve.keyframe_points.foreach_get("co", co)
    return co[0::2]


def update_keys(fcurve, frames: np.ndarray, values: np.ndarray) -> int:
    """Set the keys of `fcurve` within [frames[0], frames[-1]] to `values` (T,) sampled at `frames` (linear
    between samples for sub-frame keys), moving each key's handles with it: interpolation, handle types and
    every other key stay as they were. Returns the number of keys set."""
    points = fcurve.keyframe_points
    co = np.empty(2 * len(points), dtype=np.float32)
    points.foreach_get("co", co)
    inside = (co[0::2] >= frames[0] - 1e-3) & (co[0::2] <= frames[-1] + 1e-3)
    if not inside.any():
        return 0
    delta = np.zeros(len(points))
    delta[inside] = np.interp(co[0::2][inside], frames, values) - co[1::2][inside]
    co[1::2] += delta
    points.foreach_set("co", co)
    for handle in ("handle_left", "handle_right"):
        points.foreach_get(handle, co)
        co[1::2] += delta
        points.foreach_set(handle, co)
    fcurve.update()
    return int(inside.sum())


def evaluate_channel(channelbag, data_path: str, size: int, frames: np.ndarray, fallback) -> np.ndarray:
    """Values (T, size) of `data_path` at `frames`; indices without an F-curve (or with no keys) take `fallback`
    (size,)."""
    out = np.tile(np.asarray(fallback, dtype=np.float64), (len(frames), 1))
    if channelbag is None:
        return out
    for index in range(size):
        fcurve = channelbag.fcurves.find(data_path, index=index)
        if fcurve is not None and len(fcurve.keyframe_points):
            out[:, index] = [fcurve.evaluate(f) for f in frames]
    return out
