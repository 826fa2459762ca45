"""The pictures of docs/user_guide.md, from real runs of the operators (bundled weights, Blender in background
mode, Workbench on the CPU): `.venv/bin/python -m tools.guide_images` rewrites docs/img/guide_*.png.

Armatures do not render, so every pose is drawn as a static copy of the skeleton's mannequin body
(tools.demo.body_figure; a Rigify rig's deform bones as tubes for "Your own rig"); grey is the input, blue the
result, a red ball a pin. Name pictures to render only those (`... -m tools.guide_images rigify`).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import bpy
import numpy as np

import dposerx_blender
from dposerx_blender.blender import rig_bridge
from dposerx_blender.blender.props import ADDON_PACKAGE
from tools.demo import HELDOUT, body_figure

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"
GREY, BLUE, RED = (0.55, 0.55, 0.55, 1.0), (0.2, 0.45, 0.85, 1.0), (0.85, 0.15, 0.1, 1.0)
PELVIS_HEIGHT = 0.97  # the project's skeleton stands on the floor with its pelvis about this high
ARMS = ("left_collar", "left_shoulder", "left_elbow", "right_collar", "right_shoulder", "right_elbow")


def new_skeleton(pose, locked=()):
    """The project's skeleton in `pose`, `locked` bones locked, active and in Pose Mode."""
    bpy.ops.object.mode_set(mode='OBJECT') if bpy.context.object else None
    bpy.ops.dposerx.add_skeleton()
    ob = bpy.context.object
    rig_bridge.apply_pose(rig_bridge.find_rig(ob), pose, range(55))
    bpy.ops.object.mode_set(mode='POSE')
    for pose_bone in ob.pose.bones:
        target = pose_bone if hasattr(pose_bone, "select") else pose_bone.bone  # PoseBone.select is 5.0+
        target.select = pose_bone.name in locked
    if locked:
        bpy.ops.dposerx.lock_selected()
    return ob


def run(operator) -> None:
    if operator() != {'FINISHED'}:
        raise SystemExit(f"guide images: {operator.idname_py()} did not finish")


class Picture:
    """A scene of figures in a row, labelled, on a floor, rendered front three-quarter."""

    def __init__(self, name: str, spacing: float = 1.3):
        self.scene = bpy.data.scenes.new(name)
        self.name, self.count, self.spacing = name, 0, spacing

    def add(self, ob, label: str, color=BLUE) -> np.ndarray:
        """Draw the armature's current pose at the next slot; returns the slot's pelvis position."""
        bpy.context.view_layer.update()
        location = np.array((self.count * self.spacing, 0.0, PELVIS_HEIGHT))
        body_figure(ob, f"{self.name} {self.count}", self.scene.collection, location, color)
        text = bpy.data.objects.new(f"{self.name} label {self.count}", bpy.data.curves.new(label, 'FONT'))
        text.data.body, text.data.align_x, text.data.size = label, 'CENTER', 0.16
        text.location, text.rotation_euler, text.color = (location[0], 0.0, 2.05), (np.pi / 2, 0, 0), (0, 0, 0, 1)
        self.scene.collection.objects.link(text)
        self.count += 1
        return location

    def ball(self, location, color=RED) -> None:
        mesh = bpy.data.meshes.get("Guide Ball")
        if mesh is None:
            import bmesh

            mesh, shape = bpy.data.meshes.new("Guide Ball"), bmesh.new()
            bmesh.ops.create_uvsphere(shape, u_segments=16, v_segments=8, radius=0.045)
            shape.to_mesh(mesh)
            shape.free()
        ball = bpy.data.objects.new("Pin", mesh)
        ball.location, ball.color = location, color
        self.scene.collection.objects.link(ball)

    def render(self, filename: str) -> None:
        width = (self.count - 1) * self.spacing + 1.6
        centre = (self.count - 1) * self.spacing / 2
        floor = bpy.data.objects.new("Floor", bpy.data.meshes.new("Floor"))
        floor.data.from_pydata([(-50, -50, 0), (50, -50, 0), (50, 50, 0), (-50, 50, 0)], [], [(0, 1, 2, 3)])
        floor.color = (1.0, 1.0, 1.0, 1.0)
        self.scene.collection.objects.link(floor)
        camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        camera.data.type, camera.data.ortho_scale = 'ORTHO', max(width, 2.6 * 4 / 3)  # 2.6 m high at least
        camera.location, camera.rotation_euler = (centre, -10.0, 2.15), (np.radians(84), 0.0, 0.0)
        self.scene.collection.objects.link(camera)
        self.scene.camera = camera
        self.scene.world = bpy.data.worlds.new(self.name)
        self.scene.world.color = (0.97, 0.97, 0.97)
        render = self.scene.render
        render.engine, render.resolution_x, render.resolution_y = 'BLENDER_WORKBENCH', 640, 480
        render.filepath = str(OUT / filename)
        shading = self.scene.display.shading
        shading.light, shading.color_type, shading.show_cavity = 'STUDIO', 'OBJECT', True
        bpy.ops.render.render(write_still=True, scene=self.scene.name)
        print(f"wrote {render.filepath}", flush=True)


def skeleton_picture(poses) -> None:
    picture = Picture("Skeleton", spacing=2.0)
    picture.add(new_skeleton(np.zeros(165)), "SMPL-X Skeleton (rest)", GREY)
    picture.add(new_skeleton(poses[5]), "posed")
    picture.render("guide_skeleton.png")


def complete_picture(poses) -> None:
    """Arms from a held-out pose, locked; everything else at rest; Complete Pose, then Next Hypothesis."""
    start = np.zeros(165)
    arms = [rig_bridge.JOINT_NAMES.index(name) for name in ARMS]
    start.reshape(55, 3)[arms] = poses[2].reshape(55, 3)[arms]
    ob = new_skeleton(start, ARMS)
    picture = Picture("Complete")
    picture.add(ob, "arms locked", GREY)
    bpy.context.scene.dposerx.hypotheses = 4
    run(bpy.ops.dposerx.complete_pose)
    picture.add(ob, "Complete Pose")
    run(bpy.ops.dposerx.cycle_hypothesis)
    picture.add(ob, "Next Hypothesis")
    picture.render("guide_complete.png")


def vary_picture(poses) -> None:
    picture = Picture("Vary")
    for seed in range(3):
        ob = new_skeleton(poses[9], ARMS)
        if seed == 0:
            picture.add(ob, "pose, arms locked", GREY)
        bpy.context.scene.dposerx.seed = seed
        run(bpy.ops.dposerx.vary_pose)
        picture.add(ob, f"Vary Pose, seed {seed}")
    bpy.context.scene.dposerx.seed = 0
    picture.render("guide_vary.png")


def pin_picture(poses) -> None:
    """Pin the left wrist 25 cm up and forward; the slot positions turn the world offset into the picture."""
    ob = new_skeleton(poses[11])
    picture = Picture("Pin")
    before = picture.add(ob, "pin (red) moved", GREY)
    ob.data.bones.active = ob.data.bones["left_wrist"]
    run(bpy.ops.dposerx.add_pin)
    pin = bpy.data.objects["Pin left_wrist"]
    pin.location.z += 0.25
    pin.location.y -= 0.15
    bpy.context.view_layer.objects.active = ob
    run(bpy.ops.dposerx.pin_to_target)
    after = picture.add(ob, "Pin to Target")
    pelvis = np.array(ob.matrix_world @ ob.pose.bones["pelvis"].head)
    for slot in (before, after):
        picture.ball(figure_point(np.array(pin.location) - pelvis, slot))
    picture.render("guide_pin.png")


def figure_point(offset, slot) -> np.ndarray:
    """A world offset from the pelvis -> the point in a figure drawn at `slot` (figures are turned -30 degrees)."""
    turn = np.radians(-30)
    rotation = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]])
    return slot + rotation @ offset


def noisy_capture(track) -> np.ndarray:
    """A held-out take (turned upright) with capture noise: 0.04 rad jitter on the body, the left knee spun
    70 degrees on frames 41-43 and the right forearm twisted half a turn on frames 91-94 (1-based)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    noisy = track.copy().reshape(len(track), 55, 3)
    noisy[:, 0] = 0.0
    noisy[:, 1:22] += rng.normal(0, 0.04, (len(track), 21, 3))
    for frames, joint, turn in ((slice(40, 43), "left_knee", (np.radians(70), 0, 0)),
                                (slice(90, 94), "right_elbow", (np.pi, 0, 0))):
        j = rig_bridge.JOINT_NAMES.index(joint)
        noisy[frames, j] = (Rotation.from_rotvec(noisy[frames, j]) * Rotation.from_rotvec(turn)).as_rotvec()
    return noisy.reshape(len(track), 165)


def clean_pictures(track) -> None:
    """Before/after figures at a glitch frame, and the left knee's F-curves before and after (as the Graph
    Editor draws them, sampled from the action's keys), from one Clean Mocap run on the whole action."""
    clean = track.copy()
    clean[:, :3] = 0.0
    noisy = noisy_capture(track)
    frames = np.arange(1, len(track) + 1, dtype=float)
    ob = new_skeleton(noisy[0])
    rig = rig_bridge.find_rig(ob)
    rig_bridge.key_track(rig, noisy, range(55), frames)
    knee = f'pose.bones["left_knee"].{rig_bridge.rotation_path(ob.pose.bones["left_knee"].rotation_mode)}'
    curves_before = knee_curves(ob, knee, frames)
    picture = Picture("Clean")
    shown = 42
    reference = new_skeleton(clean[shown - 1])
    picture.add(reference, "capture (no noise)", GREY)
    bpy.context.view_layer.objects.active = ob
    bpy.context.scene.frame_set(shown)
    picture.add(ob, f"noisy, frame {shown}", GREY)
    run(bpy.ops.dposerx.clean_mocap)  # Whole Action: frames 1..150
    bpy.context.scene.frame_set(shown)
    picture.add(ob, f"Clean Mocap, frame {shown}")
    bpy.context.scene.frame_set(1)
    picture.render("guide_clean.png")
    curves_picture(frames, curves_before, knee_curves(ob, knee, frames))


def knee_curves(ob, data_path: str, frames) -> np.ndarray:
    from dposerx_blender.blender.keyframes import evaluate_channel, object_channelbag

    return evaluate_channel(object_channelbag(ob, create=False), data_path, 4, frames, np.r_[1.0, 0, 0, 0])


def curves_picture(frames, before, after) -> None:
    """The knee's W, X, Y, Z quaternion curves on the Graph Editor's dark grid, before (thin) and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6), facecolor="#303030")
    ax.set_facecolor("#393939")
    colours = ("#c8c8c8", "#ff5050", "#60d060", "#5a8cff")  # W, X, Y, Z as Blender colours channels
    for k, (name, colour) in enumerate(zip("WXYZ", colours)):
        ax.plot(frames, before[:, k], color=colour, lw=0.7, alpha=0.45)
        ax.plot(frames, after[:, k], color=colour, lw=1.6, label=f"{name} after")
    ax.axvspan(41, 43, color="#ffaa00", alpha=0.15)
    ax.annotate("glitch: knee spun 70° (frames 41-43)", (44, 0.55), color="#ffcc66", fontsize=8)
    ax.grid(color="#4a4a4a", lw=0.6)
    ax.tick_params(colors="#d0d0d0", labelsize=8)
    ax.set_xlabel("frame", color="#d0d0d0")
    ax.set_title("left_knee rotation_quaternion: noisy keys (faint) and after Clean Mocap", color="#e0e0e0",
                 fontsize=10)
    ax.legend(fontsize=7, ncol=4, facecolor="#303030", labelcolor="#e0e0e0", loc="upper right")
    fig.tight_layout()
    fig.savefig(OUT / "guide_clean_curves.png", dpi=100, facecolor=fig.get_facecolor())
    plt.close(fig)
    print(f"wrote {OUT / 'guide_clean_curves.png'}", flush=True)


def library_picture() -> None:
    ob = new_skeleton(np.zeros(165))
    settings = bpy.context.scene.dposerx
    settings.library_count, settings.library_keys, settings.library_assets = 5, True, False
    bpy.context.scene.frame_set(1)
    run(bpy.ops.dposerx.generate_library)
    picture = Picture("Library")
    for frame in range(1, 6):
        bpy.context.scene.frame_set(frame)
        picture.add(ob, f"pose {frame}")
    bpy.context.scene.frame_set(1)
    picture.render("guide_library.png")


# Rigify's deform bones of the body and fingers (the face's are left out of the figure).
RIGIFY_FIGURE = ("DEF-spine", "DEF-pelvis", "DEF-shoulder", "DEF-upper_arm", "DEF-forearm", "DEF-hand", "DEF-thigh",
                 "DEF-shin", "DEF-foot", "DEF-toe", "DEF-f_", "DEF-thumb", "DEF-palm")


def rig_figure(picture, ob, label: str, color=BLUE) -> None:
    """Draw a user's rig (its deform bones as posed, constraints included) at the picture's next slot."""
    bpy.context.view_layer.update()
    slot = np.array((picture.count * picture.spacing, 0.0, PELVIS_HEIGHT))
    bones = [pb for pb in ob.pose.bones if pb.name.startswith(RIGIFY_FIGURE)]
    origin = ob.matrix_world @ ob.pose.bones["DEF-spine"].head
    curve = bpy.data.curves.new(f"{picture.name} {picture.count}", 'CURVE')
    curve.dimensions, curve.bevel_depth, curve.bevel_resolution = '3D', 0.018, 2
    for pb in bones:
        spline = curve.splines.new('POLY')
        spline.points.add(1)
        a, b = (ob.matrix_world @ point - origin for point in (pb.head, pb.tail))
        spline.points.foreach_set("co", [*a, 1.0, *b, 1.0])
    figure = bpy.data.objects.new(curve.name, curve)
    figure.location, figure.rotation_euler.z, figure.color = slot, np.radians(-30), color
    picture.scene.collection.objects.link(figure)
    text = bpy.data.objects.new(f"{picture.name} label {picture.count}", bpy.data.curves.new(label, 'FONT'))
    text.data.body, text.data.align_x, text.data.size = label, 'CENTER', 0.16
    text.location, text.rotation_euler, text.color = (slot[0], 0.0, 2.05), (np.pi / 2, 0, 0), (0, 0, 0, 1)
    picture.scene.collection.objects.link(text)
    picture.count += 1


def rigify_picture(poses) -> None:
    """A Rigify rig generated from Blender's Human metarig, limbs in FK, arms posed from a held-out pose through
    the rig map and locked (their FK controls); Complete Pose, then Next Hypothesis."""
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.mode_set(mode='OBJECT') if bpy.context.object else None
    bpy.ops.object.armature_human_metarig_add()
    bpy.ops.pose.rigify_generate()
    ob = bpy.context.object
    bpy.ops.object.mode_set(mode='OBJECT')
    for bone in ("upper_arm_parent.L", "upper_arm_parent.R", "thigh_parent.L", "thigh_parent.R"):
        ob.pose.bones[bone]["IK_FK"] = 1.0
    rig = rig_bridge.find_rig(ob)
    arms = [rig_bridge.JOINT_NAMES.index(name) for name in ARMS]
    rig_bridge.apply_pose(rig, poses[2], arms)
    locked = {rig.bone_names[j] for j in arms}
    bpy.ops.object.mode_set(mode='POSE')
    for pose_bone in ob.pose.bones:
        target = pose_bone if hasattr(pose_bone, "select") else pose_bone.bone  # PoseBone.select is 5.0+
        target.select = pose_bone.name in locked
    run(bpy.ops.dposerx.lock_selected)
    picture = Picture("Rigify")
    rig_figure(picture, ob, "Rigify, arms locked", GREY)
    bpy.context.scene.dposerx.hypotheses = 4
    run(bpy.ops.dposerx.complete_pose)
    rig_figure(picture, ob, "Complete Pose")
    run(bpy.ops.dposerx.cycle_hypothesis)
    rig_figure(picture, ob, "Next Hypothesis")
    picture.render("guide_rigify.png")


def main() -> None:
    """All pictures, or with arguments only those named (skeleton complete vary pin clean library rigify)."""
    wanted = set(sys.argv[1:]) or {"skeleton", "complete", "vary", "pin", "clean", "library", "rigify"}
    started = time.perf_counter()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    dposerx_blender.register()
    bpy.context.preferences.addons.new().module = ADDON_PACKAGE  # what enabling the extension does
    heldout = np.load(HELDOUT)
    pictures = {"skeleton": lambda: skeleton_picture(heldout["poses"]),
                "complete": lambda: complete_picture(heldout["poses"]), "vary": lambda: vary_picture(heldout["poses"]),
                "pin": lambda: pin_picture(heldout["poses"]), "clean": lambda: clean_pictures(heldout["tracks"][0]),
                "library": library_picture, "rigify": lambda: rigify_picture(heldout["poses"])}
    for name, make in pictures.items():
        if name in wanted:
            make()
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
