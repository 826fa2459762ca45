"""The headless demo, `python build.py demo`: the extension's jobs on the bundled weights, through its operators.

1. adds the licence-free SMPL-X skeleton with its mannequin body, poses and locks its arms from a held-out CMU pose,
   and completes the rest
2. keys a held-out CMU track with noise added on a second skeleton and cleans it
3. generates a 24-pose library as pose assets (with thumbnails) and keys on a third skeleton
4. saves out/demo.blend and renders the library's mannequins as a contact sheet, out/contact_sheet.png (Workbench)
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import bpy
import numpy as np
import torch
from mathutils import Matrix

import dposerx_blender
from dposerx_blender.blender import mannequin, rig_bridge
from dposerx_blender.blender.props import ADDON_PACKAGE
from dposerx_blender.core.rotations import axis_angle_to_matrix
from dposerx_blender.core.skeleton import BODY_JOINTS, JOINT_INDEX, forward_kinematics

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "tests" / "fixtures" / "heldout.npz"  # CMU poses and tracks the prior never saw
LOCKED = ("left_collar", "right_collar", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow")
LIBRARY_SIZE, COLUMNS = 24, 8
NOISE_RAD = 0.1  # per body joint and axis, added to the held-out track


def step(text: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:5.1f} s] {text}", flush=True)


def add_skeleton(name: str, x: float):
    bpy.context.scene.cursor.location = (x, 0.0, 0.0)
    bpy.ops.dposerx.add_skeleton()
    ob = bpy.context.object
    ob.name = name
    mannequin.bodies(ob)[0].name = f"{name} Body"
    return ob


def run_operator(operator) -> None:
    """Run a DPoser-X operator as a script does (synchronously); fail loudly if it reports an error."""
    if operator() != {'FINISHED'}:
        raise SystemExit(f"demo: {operator.idname_py()} did not finish (see the report above)")


def complete_pose(pose: np.ndarray):
    """Skeleton with the held-out pose's arms, locked; Complete Pose fills legs, spine, head and hands."""
    ob = add_skeleton("Completed", -1.5)
    rig = rig_bridge.find_rig(ob)
    rig_bridge.apply_pose(rig, pose, [JOINT_INDEX[name] for name in LOCKED])
    bpy.ops.object.mode_set(mode='POSE')
    for pose_bone in ob.pose.bones:
        target = pose_bone if hasattr(pose_bone, "select") else pose_bone.bone  # PoseBone.select is 5.0+
        target.select = pose_bone.name in LOCKED
    run_operator(bpy.ops.dposerx.lock_selected)
    bpy.context.scene.dposerx.hypotheses = 4
    run_operator(bpy.ops.dposerx.complete_pose)
    bpy.ops.object.mode_set(mode='OBJECT')
    return ob


def motion_errors(track: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Mean joint-and-tip position error (mm) and acceleration error (mm/frame^2) of a track (T, 165)."""
    def positions(poses):
        rot_mats = axis_angle_to_matrix(torch.as_tensor(poses, dtype=torch.float64).reshape(len(poses), 55, 3))
        return forward_kinematics(rot_mats, tips=True).numpy() * 1000

    p, q = positions(track), positions(reference)
    accel = np.diff(p, 2, axis=0) - np.diff(q, 2, axis=0)
    return float(np.linalg.norm(p - q, axis=-1).mean()), float(np.linalg.norm(accel, axis=-1).mean())


def clean_track(track: np.ndarray):
    """Key the track with noise on the body joints, run Clean Mocap on the body; return the noisy and cleaned
    errors to the clean capture."""
    ob = add_skeleton("Cleaned", 0.0)
    rig = rig_bridge.find_rig(ob)
    noisy = track.copy()
    body = np.array(BODY_JOINTS)
    noise = np.random.default_rng(0).normal(0, NOISE_RAD, (len(track), len(body), 3))
    noisy.reshape(len(track), 55, 3)[:, body] += noise
    frames = np.arange(1, len(track) + 1, dtype=float)
    rig_bridge.key_track(rig, noisy, range(55), frames)
    settings = bpy.context.scene.dposerx
    settings.clean_start, settings.clean_end = 1, len(track)
    settings.part_hands = settings.part_face = False
    run_operator(bpy.ops.dposerx.clean_mocap)
    settings.part_hands = settings.part_face = True
    cleaned = rig_bridge.read_track(rig, frames)
    return ob, motion_errors(noisy, track), motion_errors(cleaned, track)


def generate_library():
    ob = add_skeleton("Library", 1.5)
    settings = bpy.context.scene.dposerx
    settings.library_count, settings.library_assets, settings.library_keys = LIBRARY_SIZE, True, True
    bpy.context.scene.frame_set(1)
    run_operator(bpy.ops.dposerx.generate_library)
    return ob


def body_figure(ob, name: str, collection, location, color):
    """A static copy of the armature's mannequin in its current pose (armatures do not render; the scene's
    depsgraph must be up to date), pelvis at `location`, turned -30 degrees about z."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    body = mannequin.bodies(ob)[0]
    mesh = bpy.data.meshes.new_from_object(body.evaluated_get(depsgraph))
    pelvis = ob.matrix_world @ ob.pose.bones[rig_bridge.find_rig(ob).bone_names[0]].head
    mesh.transform(Matrix.Translation(-pelvis) @ body.matrix_world)
    figure = bpy.data.objects.new(name, mesh)
    figure.location, figure.rotation_euler.z, figure.color = location, np.radians(-30), color
    collection.objects.link(figure)


def contact_sheet(library_ob, path: Path) -> None:
    """Render every library pose (keyed on frames 1..24) in a grid, front three-quarter view."""
    scene = bpy.context.scene
    sheet = bpy.data.scenes.new("Contact Sheet")
    rows = -(-LIBRARY_SIZE // COLUMNS)
    dx, dz = 1.2, 2.0
    for i in range(LIBRARY_SIZE):
        scene.frame_set(i + 1)
        column, row = i % COLUMNS, i // COLUMNS
        location = ((column - (COLUMNS - 1) / 2) * dx, 0.0, ((rows - 1) / 2 - row) * dz + 0.1)  # pelvis
        hue = 0.55 + 0.35 * column / COLUMNS
        body_figure(library_ob, f"Pose {i + 1:03d}", sheet.collection, location, (0.25, hue * 0.6, hue, 1.0))
    camera = bpy.data.objects.new("Contact Sheet Camera", bpy.data.cameras.new("Contact Sheet Camera"))
    camera.data.type, camera.data.ortho_scale = 'ORTHO', COLUMNS * dx + 0.4
    camera.location, camera.rotation_euler = (0.0, -10.0, 0.0), (np.radians(90), 0.0, 0.0)
    sheet.collection.objects.link(camera)
    sheet.camera = camera
    sheet.world = bpy.data.worlds.new("Contact Sheet")
    sheet.world.color = (0.92, 0.92, 0.92)
    render = sheet.render
    render.engine = 'BLENDER_WORKBENCH'
    render.resolution_x = 1600
    render.resolution_y = round(1600 * (rows * dz + 0.3) / (COLUMNS * dx + 0.4))
    render.filepath = str(path)
    shading = sheet.display.shading
    shading.light, shading.color_type, shading.show_cavity = 'STUDIO', 'OBJECT', True
    bpy.ops.render.render(write_still=True, scene=sheet.name)
    scene.frame_set(1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python build.py demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="output folder (default out/)")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="CPU threads for the prior (default: half the cores; torch's threads spin)")
    args = parser.parse_args()
    started = time.perf_counter()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    blend, sheet_png = out / "demo.blend", out / "contact_sheet.png"
    bpy.ops.wm.read_factory_settings(use_empty=True)
    dposerx_blender.register()
    bpy.context.preferences.addons.new().module = ADDON_PACKAGE  # what enabling the extension does
    bpy.context.preferences.addons[ADDON_PACKAGE].preferences.threads = args.threads
    scene = bpy.context.scene
    scene.render.fps, scene.frame_start, scene.frame_end = 30, 1, 150
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))  # saved first, so the pose assets' catalog is written
    heldout = np.load(HELDOUT)
    step(f"Bundled weights, {args.threads} torch thread(s); held-out CMU data from {HELDOUT.relative_to(ROOT)}",
         started)

    complete_pose(heldout["poses"][0])
    step(f"'Completed': locked {', '.join(LOCKED)} from a held-out pose; Complete Pose filled the other "
         f"bones (4 hypotheses, Next Hypothesis cycles them)", started)

    track = heldout["tracks"][0]
    _, noisy, cleaned = clean_track(track)
    step(f"'Cleaned': CMU {heldout['track_names'][0]} ({len(track)} frames, 30 fps) keyed with {NOISE_RAD} rad "
         f"noise per axis on the body joints, then Clean Mocap; to the clean capture: joint error "
         f"{noisy[0]:.0f} -> {cleaned[0]:.0f} mm, jitter (acceleration error) {noisy[1]:.0f} -> {cleaned[1]:.0f} "
         f"mm/frame^2", started)

    library = generate_library()
    step(f"'Library': {LIBRARY_SIZE} generated poses as pose assets in catalog "
         f"'{scene.dposerx.library_catalog}' and keys on frames 1..{LIBRARY_SIZE}", started)

    bpy.ops.wm.save_mainfile()
    contact_sheet(library, sheet_png)
    bpy.context.window.scene = scene
    bpy.ops.wm.save_mainfile()
    step(f"Saved {blend} (scene 'Scene': the three skeletons; scene 'Contact Sheet': the render setup)", started)
    step(f"Rendered {sheet_png}", started)


if __name__ == "__main__":
    main()
