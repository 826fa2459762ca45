"""Every solver operator on the three rig styles with fake solver functions (the Blender plumbing only): keys on the
right frames, locked bones unchanged bit for bit, cancel and errors write nothing, bad input reported."""
import os
import sys
import threading
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from conftest import meshcapade_rig, mpi_rig, posed_rig, project_rig, random_pose, select_bones, snapshot

from dposerx_blender.blender import jobs, keyframes, locks, rig_bridge, solver_ops
from dposerx_blender.core.errors import Cancelled, DPoserError

RIGS = {"project": project_rig, "mpi": mpi_rig, "meshcapade": meshcapade_rig}


def locked_channels(rig):
    return {pb.name: tuple(pb.rotation_quaternion) for pb in rig.pose_bones if locks.is_locked(pb)}


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
    settings.clean_action_range = False
    settings.clean_start, settings.clean_end = 3, 8
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
    """Esc during a modal job: the worker stops at its next progress call, and finishing the job (what `modal`
    does once the thread has ended) reports the cancel and never calls the plan's apply."""
    started, applied, reports = threading.Event(), [], []

    def work(prior, progress):
        started.set()
        while True:
            progress(0, 10)

    job = jobs.Job(jobs.Plan(work, applied.append), "", "cpu", 0)
    jobs._PRIORS[("", "cpu")] = "prior"
    try:
        job.start()
        assert started.wait(5)
        job.cancel()
        job._thread.join(5)
    finally:
        jobs.clear_priors()
    assert job.finished and isinstance(job.error, Cancelled)
    operator = SimpleNamespace(report=lambda level, text: reports.append((level, text)))
    assert jobs.JobOperator._finish(operator, job) == {'CANCELLED'}
    assert not applied and reports == [({'WARNING'}, "Cancelled: nothing was changed")]


def test_automatic_threads_leave_a_core_free():
    assert jobs.thread_count(3) == 3
    assert jobs.thread_count(0) == max(1, len(os.sched_getaffinity(0)) - 1)


@pytest.mark.parametrize("threaded", [False, True], ids=["execute", "job thread"])
def test_job_sets_torch_threads_where_it_computes(threaded):
    """OpenMP keeps the thread count per calling thread: the job must set it in the thread that runs the work,
    and give the previous count back afterwards."""
    import torch

    before, seen = torch.get_num_threads(), []
    job = jobs.Job(jobs.Plan(lambda prior, progress: seen.append(torch.get_num_threads()), str), "", "cpu", 0)
    jobs._PRIORS[("", "cpu")] = "prior"
    try:
        if threaded:
            job.start()
            job._thread.join(10)
        else:
            job.run()
    finally:
        jobs.clear_priors()
    assert job.error is None and seen == [jobs.thread_count(0)]
    assert torch.get_num_threads() == before


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
