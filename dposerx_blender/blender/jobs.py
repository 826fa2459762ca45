"""Long solver runs as jobs: the computation on a Python thread, every bpy read and write on the main thread.

A solver operator reads the scene into a `Plan` (main thread), the plan's `work` runs with the prior and a
progress callback (worker thread, no bpy), and the plan's `apply` writes the result (main thread, one undo step).
Esc makes the progress callback raise `Cancelled`; on cancel or error nothing is written.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

import bpy

from ..core import errors
from .props import preferences
from .rig_bridge import armature_of, rig_problem

_PRIORS: dict = {}  # (weights folder, device) -> loaded prior, kept across runs; cleared on unregister


class WarningReport(str):
    """A report text that `apply` returns when the job finished but the animator should look (shown as a warning)."""


@dataclass
class Plan:
    """work(prior, progress) -> result runs off the main thread; apply(result) -> report text (str, or WarningReport)
    runs on it."""

    work: Callable[[Any, Callable[[int, int], None]], Any]
    apply: Callable[[Any], str]
    uses_prior: bool = True  # False: `work` gets None instead of the prior (file import and export)


def load_prior(weights_dir: str, device: str):
    from ..core.weights import load_prior as load

    key = (weights_dir, device)
    if key not in _PRIORS:
        _PRIORS[key] = load(weights_dir or None, device=device)
    return _PRIORS[key]


def clear_priors() -> None:
    _PRIORS.clear()


def thread_count(preference: int) -> int:
    """torch CPU threads for a job: the preference, or for 0 (Automatic) one fewer than the CPUs Blender may use,
    so that a core stays free for Blender's interface. torch's threads spin while they wait for each other: more
    threads than free cores make a job many times slower, not faster."""
    if preference > 0:
        return preference
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus - 1)


@contextmanager
def torch_threads(count: int):
    """torch's intra-op thread count for the work inside, restored afterwards. OpenMP and MKL keep the count per
    calling thread (a new thread starts from the machine's default), so this runs in the thread that computes."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Job:
    """Runs `plan.work` on a thread; the main thread polls `finished`, reads `fraction`, and may `cancel`.
    `threads` is the preference (0: automatic, see `thread_count`)."""

    def __init__(self, plan: Plan, weights_dir: str, device: str, threads: int):
        self.plan, self.weights_dir, self.device, self.threads = plan, weights_dir, device, threads
        self.fraction = 0.0
        self.result = None
        self.error: BaseException | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self.run, name="DPoser-X job", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def progress(self, done: int, total: int) -> None:
        if self._cancel.is_set():
            raise errors.Cancelled()
        self.fraction = done / max(total, 1)

    def run(self) -> None:
        """The job's whole computation; also called directly for a synchronous run."""
        try:
            if self.plan.uses_prior:
                with torch_threads(thread_count(self.threads)):
                    self.result = self.plan.work(load_prior(self.weights_dir, self.device), self.progress)
            else:
                self.result = self.plan.work(None, self.progress)
        except Exception as exc:  # handed to the main thread, which reports it
            self.error = exc


class JobOperator:
    """Mixin for solver operators: subclasses implement `plan(context) -> Plan` (raising DPoserError for bad
    input). `execute` runs the job synchronously (`run_now`: scripts, redo); `invoke` runs it modally with progress
    and Esc (`start_modal`)."""

    bl_options = {'REGISTER', 'UNDO'}
    _job: Job | None = None
    _timer = None

    @classmethod
    def poll(cls, context):
        ob = armature_of(context.object)  # an active body mesh stands for its armature
        if ob is None or ob.type != 'ARMATURE':
            cls.poll_message_set("Select an SMPL-X armature")
            return False
        if ob.mode not in {'POSE', 'OBJECT'}:
            cls.poll_message_set("Switch to Object or Pose Mode")
            return False
        problem = rig_problem(ob)
        if problem:
            cls.poll_message_set(problem)
            return False
        return True

    def plan(self, context) -> Plan:
        raise NotImplementedError

    def _new_job(self, context) -> Job | None:
        try:
            plan = self.plan(context)
        except errors.DPoserError as exc:
            self.report({'ERROR'}, str(exc))
            return None
        prefs = preferences(context)
        return Job(plan, bpy.path.abspath(prefs.weights_dir), prefs.device, prefs.threads)

    def _finish(self, job: Job) -> set:
        if isinstance(job.error, errors.Cancelled):
            self.report({'WARNING'}, "Cancelled: nothing was changed")
            return {'CANCELLED'}
        if isinstance(job.error, errors.DPoserError):
            self.report({'ERROR'}, str(job.error))
            return {'CANCELLED'}
        if job.error is not None:
            raise job.error
        try:
            text = job.plan.apply(job.result)
            self.report({'WARNING'} if isinstance(text, WarningReport) else {'INFO'}, text)
        except errors.DPoserError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        return {'FINISHED'}

    def execute(self, context):
        return self.run_now(context)

    def invoke(self, context, event):
        return self.start_modal(context)

    def run_now(self, context) -> set:
        job = self._new_job(context)
        if job is None:
            return {'CANCELLED'}
        job.run()
        return self._finish(job)

    def start_modal(self, context) -> set:
        self._job = self._new_job(context)
        if self._job is None:
            return {'CANCELLED'}
        self._job.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.progress_begin(0, 100)
        wm.modal_handler_add(self)
        context.workspace.status_text_set(f"{self.bl_label}: running (Esc to cancel)")
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type == 'ESC':
            self._job.cancel()
        if not self._job.finished:
            context.window_manager.progress_update(int(100 * self._job.fraction))
            # Viewing stays possible while the job runs; editing waits so the scene matches what was read.
            navigation = {'MIDDLEMOUSE', 'WHEELUPMOUSE', 'WHEELDOWNMOUSE', 'MOUSEMOVE', 'TRACKPADPAN', 'TRACKPADZOOM'}
            return {'PASS_THROUGH'} if event.type in navigation else {'RUNNING_MODAL'}
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()
        context.workspace.status_text_set(None)
        return self._finish(self._job)
