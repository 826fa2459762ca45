"""Headless bpy fixtures: the add-on registered once per session, a factory-fresh empty scene per test, rigs."""
from __future__ import annotations

import inspect
import math
import os
import sys
import types
from types import SimpleNamespace
from unittest import mock

import bpy
import numpy as np
import pytest

import dposerx_blender
import dposerx_blender.core
from dposerx_blender.blender import jobs, rig_bridge
from dposerx_blender.core import tasks
from dposerx_blender.blender.props import ADDON_PACKAGE
from dposerx_blender.core.skeleton import JOINT_NAMES, PARENTS, REST_JOINTS

SMPLX_TO_ZUP = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])


@pytest.fixture(scope="session", autouse=True)
def addon():
    dposerx_blender.register()
    yield
    dposerx_blender.unregister()


def pytest_sessionfinish(session, exitstatus):
    session.config.dposerx_exit_status = int(exitstatus)


def pytest_unconfigure(config):
    """bpy 4.5 spins at interpreter exit after Rigify was enabled (the rig-map tests generate a Rigify rig), even
    once it is disabled again: after pytest has reported, leave without Python's shutdown there."""
    if bpy.app.version < (5, 0, 0):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(getattr(config, "dposerx_exit_status", 0))


@pytest.fixture(autouse=True)
def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    # Factory settings drop the add-on's preferences entry; restore it as enabling the add-on would.
    if ADDON_PACKAGE not in bpy.context.preferences.addons:
        bpy.context.preferences.addons.new().module = ADDON_PACKAGE
    yield


@pytest.fixture
def fake_prior(monkeypatch):
    """Skip loading weights for plumbing tests (the solver functions are faked too)."""
    monkeypatch.setattr(jobs, "load_prior", lambda weights_dir, device: "prior")


def make_rig(name="Rig", bone_vector=(0, 0, 0.1), axes=SMPLX_TO_ZUP, scale=1.0, eye_names=False, root=True,
             roll=None, skip=()):
    """A synthetic SMPL-X armature: joints at axes @ REST_JOINTS * scale, bones along bone_vector, optional roll
    (radians, or "random"), optional root bone, Meshcapade eye names, and bones left out by name."""
    rng = np.random.default_rng(7)
    armature = bpy.data.armatures.new(name)
    ob = bpy.data.objects.new(name, armature)
    bpy.context.scene.collection.objects.link(ob)
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode='EDIT')
    parent_root = None
    if root:
        parent_root = armature.edit_bones.new("root")
        parent_root.tail = (0, 0, 0.1 * scale)
    bones = {}
    for j, joint in enumerate(JOINT_NAMES):
        if joint in skip:
            continue
        if eye_names:
            joint = joint.replace("_smplhf", "")
        bone = armature.edit_bones.new(joint)
        head = axes @ REST_JOINTS[j] * scale
        bone.head = head
        vector = rng.normal(size=3) if bone_vector == "random" else np.asarray(bone_vector, float)
        bone.tail = head + vector / np.linalg.norm(vector) * 0.1 * scale
        bone.roll = rng.uniform(-math.pi, math.pi) if roll == "random" else (roll or 0.0)
        bone.parent = bones.get(PARENTS[j], parent_root)
        bones[j] = bone
    bpy.ops.object.mode_set(mode='OBJECT')
    return ob


def mpi_rig(**kw):
    return make_rig("MPI", **kw)


def meshcapade_rig(**kw):
    ob = make_rig("Meshcapade", bone_vector=(0, 10, 0), axes=np.eye(3), scale=100.0, eye_names=True, root=False, **kw)
    ob.rotation_euler = (math.pi / 2, 0, 0)
    ob.scale = (0.01, 0.01, 0.01)
    bpy.context.view_layer.update()
    return ob


def project_rig():
    bpy.ops.dposerx.add_skeleton()
    return bpy.context.object


def random_pose(seed=0, scale=0.5):
    return np.random.default_rng(seed).normal(size=165) * scale


def select_bones(ob, names):
    """Pose Mode with exactly `names` selected (PoseBone.select is 5.0; Bone.select before)."""
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode='POSE')
    for pose_bone in ob.pose.bones:
        target = pose_bone if hasattr(pose_bone, "select") else pose_bone.bone
        target.select = pose_bone.name in names


def snapshot():
    """Everything an operator could change, as plain data: objects, pose channels, locks, keys, assets."""
    state = {"objects": sorted(bpy.data.objects.keys()), "actions": sorted(bpy.data.actions.keys())}
    for ob in bpy.data.objects:
        state[ob.name, "props"] = sorted(ob.keys())
        if ob.type != 'ARMATURE':
            continue
        for pb in ob.pose.bones:
            values = (*pb.rotation_quaternion, *pb.rotation_euler, *pb.rotation_axis_angle)
            state[ob.name, pb.name] = (pb.rotation_mode, np.array(values).tobytes(),  # bytes: NaN equals NaN
                                       tuple(pb.lock_rotation), pb.lock_rotation_w, tuple(pb.bone.collections.keys()),
                                       pb.color.palette)
    for action in bpy.data.actions:
        from bpy_extras.anim_utils import action_get_channelbag_for_slot

        for slot in action.slots:
            channelbag = action_get_channelbag_for_slot(action, slot)
            for fc in channelbag.fcurves if channelbag else ():
                co = np.zeros(2 * len(fc.keyframe_points), dtype=np.float32)
                fc.keyframe_points.foreach_get("co", co)
                state[action.name, fc.data_path, fc.array_index] = co.tobytes()
    return state


def _fill(pose, observed, seed):
    """A fake solver result: observed joints passed through, the others set to seeded rotations."""
    out = np.array(pose, dtype=np.float64).reshape(-1, 55, 3).copy()
    out[:, ~np.asarray(observed)] = np.random.default_rng(seed).normal(size=(len(out), int((~observed).sum()), 3)) * .3
    return out.reshape(-1, 165)


@pytest.fixture
def calls(monkeypatch, fake_prior):
    """Fake core.tasks with the real functions' signatures (mock.create_autospec: a call that does not fit the real
    signature fails); each call is recorded as (name, {argument: value}) with the real defaults filled in."""
    log = []

    def complete(a):
        a["progress"](1, 1)
        hyps = np.stack([_fill(a["pose"], a["observed"], a["seed"] + k)[0] for k in range(a["hypotheses"])])[None]
        return SimpleNamespace(poses=hyps[:, 0], hypotheses=hyps, energy=np.zeros((1, a["hypotheses"])))

    def vary(a):
        return np.concatenate([_fill(a["pose"], a["observed"], a["seed"] + k) for k in range(a["count"])])

    def solve_pins(a):
        return SimpleNamespace(pose=_fill(a["pose"], a["observed"], a["seed"])[0],
                               residual_mm={j: 3.0 for j in a["targets"]})

    def denoise_track(a):
        return _fill(a["track"], a["locked"], a["seed"])

    def generate(a):
        base = np.zeros((a["count"], 165)) if a["condition"] is None else np.tile(a["condition"], (a["count"], 1))
        observed = a["observed"] if a["observed"] is not None else np.eye(55, dtype=bool)[0]
        return _fill(base, observed, a["seed"])

    def autospec(fake):
        real = getattr(tasks, fake.__name__)

        def run(*args, **kwargs):
            bound = inspect.signature(real).bind(*args, **kwargs)
            bound.apply_defaults()
            log.append((fake.__name__, bound.arguments))
            return fake(bound.arguments)
        return mock.create_autospec(real, side_effect=run)

    fake_module = types.ModuleType("dposerx_blender.core.tasks")
    for fake in (complete, vary, solve_pins, denoise_track, generate):
        setattr(fake_module, fake.__name__, autospec(fake))
    monkeypatch.setitem(sys.modules, "dposerx_blender.core.tasks", fake_module)
    monkeypatch.setattr(dposerx_blender.core, "tasks", fake_module, raising=False)
    return log


def posed_rig(make, locked=("pelvis", "left_knee", "head", "left_index2")):
    ob = make()
    rig = rig_bridge.find_rig(ob)
    rig_bridge.apply_pose(rig, random_pose(5, 0.4), range(55))
    select_bones(ob, {rig.bone_names[JOINT_NAMES.index(n)] for n in locked})
    bpy.ops.dposerx.lock_selected()
    return ob, rig
