"""Every solver operator on the three rig styles with fake solver functions (the Blender plumbing only): keys on the
right frames, locked bones unchanged bit for bit, cancel and errors write nothing, bad input reported."""
import sys
import threading
import types
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from conftest import meshcapade_rig, mpi_rig, project_rig, random_pose, select_bones, snapshot

import dposerx_blender.core
from dposerx_blender.blender import jobs, keyframes, rig_bridge, solver_ops
from dposerx_blender.core.errors import Cancelled, DPoserError

RIGS = {"project": project_rig, "mpi": mpi_rig, "meshcapade": meshcapade_rig}


def _fill(pose, observed, seed):
    """A fake solver result: observed joints passed through, the others set to seeded rotations."""
    out = np.array(pose, dtype=np.float64).reshape(-1, 55, 3).copy()
    out[:, ~np.asarray(observed)] = np.random.default_rng(seed).normal(size=(len(out), int((~observed).sum()), 3)) * .3
    return out.reshape(-1, 165)


@pytest.fixture
def calls(monkeypatch, fake_prior):
    """Fake core.tasks; each call is recorded as (name, kwargs)."""
    log = []

    def complete(prior, pose, observed, hypotheses=10, seed=0, strength=1.0, progress=None):
        log.append(("complete", dict(pose=pose, observed=observed, hypotheses=hypotheses, seed=seed)))
        progress(1, 1)
        hyps = np.stack([_fill(pose, observed, seed + k)[0] for k in range(hypotheses)])[None]
        return SimpleNamespace(poses=hyps[:, 0], hypotheses=hyps, energy=np.zeros((1, hypotheses)))

    def vary(prior, pose, strength=0.3, observed=None, seed=0, count=1, progress=None):
        log.append(("vary", dict(observed=observed, strength=strength)))
        return np.concatenate([_fill(pose, observed, seed + k) for k in range(count)])

    def solve_pins(prior, pose, targets, observed, rest_joints=None, seed=0, progress=None):
        log.append(("solve_pins", dict(targets=targets, observed=observed, rest_joints=rest_joints)))
        return SimpleNamespace(pose=_fill(pose, observed, seed)[0], residual_mm={j: 3.0 for j in targets})

    def denoise_track(prior, track, locked=None, fps=30.0, strength=1.0, seed=0, progress=None):
        log.append(("denoise_track", dict(track=track, locked=locked, fps=fps)))
        return _fill(track, locked, seed)

    def generate(prior, count, seed=0, steps=10, sampler="ddim", temperature=1.0, condition=None, observed=None,
                 parts=("body", "hands", "face"), progress=None):
        log.append(("generate", dict(count=count, condition=condition, observed=observed, parts=parts)))
        base = np.zeros((count, 165)) if condition is None else np.tile(condition, (count, 1))
        return _fill(base, observed if observed is not None else np.eye(55, dtype=bool)[0], seed)

    fake = types.ModuleType("dposerx_blender.core.tasks")
    for fn in (complete, vary, solve_pins, denoise_track, generate):
        setattr(fake, fn.__name__, fn)
    monkeypatch.setitem(sys.modules, "dposerx_blender.core.tasks", fake)
    monkeypatch.setattr(dposerx_blender.core, "tasks", fake, raising=False)
    return log


def posed_rig(make, locked=("pelvis", "left_knee", "head", "left_index2")):
    ob = make()
    rig = rig_bridge.find_rig(ob)
    rig_bridge.apply_pose(rig, random_pose(5, 0.4), range(55))
    select_bones(ob, {rig.bone_names[rig_bridge.joint_names().index(n)] for n in locked})
    bpy.ops.dposerx.lock_selected()
    return ob, rig


def locked_channels(rig):
    return {pb.name: tuple(pb.rotation_quaternion) for pb in rig.pose_bones if all(pb.lock_rotation)}


@pytest.mark.parametrize("make", RIGS.values(), ids=RIGS.keys())
def test_complete_pose_keeps_locked_bones_and_cycles(make, calls):
    ob, rig = posed_rig(make)
    before = locked_channels(rig)
    bpy.context.scene.frame_current = 7
    bpy.context.scene.dposerx.key_result = True
    bpy.context.scene.dposerx.hypotheses = 3
    assert bpy.ops.dposerx.complete_pose() == {'FINISHED'}
    name, args = calls[0]
    assert name == "complete" and args["observed"][[0, 4, 15, 26]].all() and args["observed"].sum() == 4
    assert locked_channels(rig) == before
    first = rig_bridge.read_pose(rig)
    channelbag = keyframes.object_channelbag(ob)
    assert {fc.keyframe_points[0].co[0] for fc in channelbag.fcurves} == {7.0}
    assert not any("left_knee" in fc.data_path or '"pelvis"' in fc.data_path for fc in channelbag.fcurves)
    bpy.ops.dposerx.cycle_hypothesis(step=1)
    second = rig_bridge.read_pose(rig)
    assert len(calls) == 1 and not np.allclose(first, second)
    bpy.ops.dposerx.cycle_hypothesis(step=-1)
    assert np.abs(rig_bridge.read_pose(rig) - first).max() < 1e-6
    assert locked_channels(rig) == before


@pytest.mark.parametrize("make", RIGS.values(), ids=RIGS.keys())
def test_clean_mocap_writes_the_range_only(make, calls):
    ob, rig = posed_rig(make)
    poses = np.stack([random_pose(s, 0.3) for s in range(12)])
    rig_bridge.key_track(rig, poses, range(55), np.arange(1, 13, dtype=float))
    before = locked_channels(rig)
    settings = bpy.context.scene.dposerx
    settings.frame_start, settings.frame_end = 3, 8
    bpy.context.scene.render.fps = 25
    snap = snapshot()
    assert bpy.ops.dposerx.clean_mocap() == {'FINISHED'}
    name, args = calls[0]
    assert name == "denoise_track" and args["track"].shape == (6, 165) and args["fps"] == 25
    assert np.abs(args["track"] - poses[2:8]).max() < 1e-5
    after = snapshot()
    # Pose properties follow the re-evaluated animation; compare the keys themselves.
    changed = [k for k in snap if len(k) == 3 and snap[k] != after[k]]
    assert changed and all(k[0] == ob.animation_data.action.name for k in changed)
    for key in changed:  # only frames 3..8 differ
        old, new = (np.frombuffer(s[key], np.float32).reshape(-1, 2) for s in (snap, after))
        assert np.array_equal(old[:, 0], new[:, 0]) and (old[:, 0][np.any(old != new, axis=1)] >= 3).all()
        assert (old[:, 0][np.any(old != new, axis=1)] <= 8).all()
    locked_paths = [k for k in changed if any(f'"{n}"' in k[1] for n in before)]
    assert not locked_paths


def test_vary_and_pin(calls):
    ob, rig = posed_rig(mpi_rig)
    before = locked_channels(rig)
    assert bpy.ops.dposerx.vary_pose() == {'FINISHED'}
    select_bones(ob, {"left_wrist"})
    ob.data.bones.active = ob.data.bones["left_wrist"]
    bpy.ops.dposerx.add_pin()
    pin = bpy.data.objects["Pin left_wrist"]
    pin.location.z += 0.2
    bpy.context.view_layer.objects.active = ob
    assert bpy.ops.dposerx.pin_to_target() == {'FINISHED'}
    name, args = calls[-1]
    assert name == "solve_pins" and list(args["targets"]) == [20]
    assert args["rest_joints"].shape == (55, 3)
    assert locked_channels(rig) == before


@pytest.mark.parametrize("make", RIGS.values(), ids=RIGS.keys())
def test_generate_library_assets_and_keys(make, calls, tmp_path):
    ob, rig = posed_rig(make)
    before = locked_channels(rig)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    settings = bpy.context.scene.dposerx
    settings.library_count, settings.library_keys, settings.library_conditioned = 4, True, True
    bpy.context.scene.frame_current = 20
    assert bpy.ops.dposerx.generate_library() == {'FINISHED'}
    name, args = calls[0]
    assert args["observed"].sum() == 4 and args["condition"].shape == (165,)
    assets = [a for a in bpy.data.actions if a.asset_data]
    assert len(assets) == 4 and len({a.asset_data.catalog_id for a in assets}) == 1
    assert assets[0].asset_data.catalog_id in (tmp_path / "blender_assets.cats.txt").read_text()
    frames = {k.co[0] for fc in keyframes.object_channelbag(ob).fcurves for k in fc.keyframe_points}
    assert frames == {20.0, 21.0, 22.0, 23.0}
    assert locked_channels(rig) == before


def test_job_thread_cancel_writes_nothing():
    started, applied = threading.Event(), []

    def work(prior, progress):
        started.set()
        while True:
            progress(0, 10)

    job = jobs.Job(jobs.Plan(work, applied.append), "", "cpu", 0)
    job.plan = jobs.Plan(work, applied.append)
    jobs._PRIORS[("", "cpu")] = "prior"
    try:
        job.start()
        assert started.wait(5)
        job.cancel()
        job._thread.join(5)
    finally:
        jobs.clear_priors()
    assert job.finished and isinstance(job.error, Cancelled) and not applied


def _raise(exc):
    def solver(*args, **kwargs):
        raise exc
    return solver


@pytest.mark.parametrize("exc", [Cancelled(), DPoserError("the solver refused")])
def test_cancel_or_solver_error_changes_nothing(calls, monkeypatch, exc):
    posed_rig(mpi_rig)
    monkeypatch.setattr(sys.modules["dposerx_blender.core.tasks"], "complete", _raise(exc))
    snap = snapshot()
    if isinstance(exc, Cancelled):
        assert bpy.ops.dposerx.complete_pose() == {'CANCELLED'}
    else:
        with pytest.raises(RuntimeError, match="the solver refused"):
            bpy.ops.dposerx.complete_pose()
    assert snapshot() == snap


def test_undo_restores_the_pose(calls):
    """One undo step per operator: headless, Blender does not push the operator's step itself (the UI does, from
    bl_options), so the test pushes it where the UI would."""
    assert all({'REGISTER', 'UNDO'} <= cls.bl_options for cls in solver_ops.classes)
    ob, rig = posed_rig(mpi_rig)
    name = ob.name
    bpy.ops.ed.undo_push(message="before")
    pose = rig_bridge.read_pose(rig)
    bpy.ops.dposerx.complete_pose()
    bpy.ops.ed.undo_push(message="Complete Pose")
    assert not np.allclose(rig_bridge.read_pose(rig), pose)
    window = bpy.context.window_manager.windows[0]
    with bpy.context.temp_override(window=window, area=window.screen.areas[0]):
        bpy.ops.ed.undo()
    rig = rig_bridge.find_rig(bpy.data.objects[name])
    assert np.abs(rig_bridge.read_pose(rig) - pose).max() < 1e-6
