"""Animation files: SMPL-X npz import/export round trips, frame-rate resampling, the SMPL-X add-on's translation
convention, BVH import through every BVH preset against the retargeter, and bad files that change nothing."""
import math
import time

import bpy
import numpy as np
import pytest
from conftest import make_rig, meshcapade_rig, mpi_rig, project_rig, snapshot
from scipy.spatial.transform import Rotation

from dposerx_blender.blender import io_ops, jobs, panels, rig_bridge
from dposerx_blender.core.amass import AmassMotion, read_amass_npz, write_amass_npz
from dposerx_blender.core.errors import Cancelled
from dposerx_blender.core.mocap.conventions import Z_UP_TO_Y_UP, resample_poses
from dposerx_blender.core.skeleton import JOINT_INDEX
from training.mocap.sources import mocap_root

MOCAP = mocap_root()
ROUND_TRIP_RAD = 1e-5


def random_motion(frames=40, seed=0, fps=30.0) -> AmassMotion:
    rng = np.random.default_rng(seed)
    return AmassMotion(rng.normal(scale=0.3, size=(frames, 165)), rng.normal(scale=0.5, size=(frames, 3)), fps)


def rotation_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest angle (rad) between the rotations of two pose arrays (..., 165)."""
    ra, rb = (Rotation.from_rotvec(np.asarray(x).reshape(-1, 3)) for x in (a, b))
    return float(np.max((ra.inv() * rb).magnitude()))


def set_fps(fps: float):
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = round(fps), round(fps) / fps


def import_npz(path, **options):
    return bpy.ops.dposerx.import_smplx_npz(filepath=str(path), **options)


def export_npz(path, frames, **options):
    return bpy.ops.dposerx.export_smplx_npz(filepath=str(path), frame_start=1, frame_end=frames, **options)


def state():
    """snapshot() plus what file imports touch beyond poses: bone locations, scene range, Clean Mocap range."""
    scene = bpy.context.scene
    out = snapshot()
    out["range"] = (scene.frame_start, scene.frame_end, scene.dposerx.clean_start, scene.dposerx.clean_end)
    for ob in bpy.data.objects:
        if ob.type == 'ARMATURE':
            out[ob.name, "locations"] = np.array([pb.location for pb in ob.pose.bones]).tobytes()
    return out


# --- npz round trips -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rig, options", [
    (None, {}),
    (None, {"hand_reference": 'RELAXED', "translation_bone": 'ROOT', "up_axis": 'Y'}),
    (mpi_rig, {"hand_reference": 'RELAXED'}),
    (meshcapade_rig, {"up_axis": 'Y'}),
    (lambda: make_rig(bone_vector="random", roll="random"), {"translation_bone": 'ROOT'}),
], ids=["new-skeleton", "new-relaxed-root-yup", "mpi-relaxed", "meshcapade-yup", "random-rolls-root"])
def test_import_export_round_trip(tmp_path, rig, options):
    set_fps(30)
    motion = random_motion()
    write_amass_npz(tmp_path / "in.npz", motion)
    if rig is not None:
        rig()
    assert import_npz(tmp_path / "in.npz", **options) == {'FINISHED'}
    assert (bpy.context.object.name == "SMPL-X") == (rig is None)  # a new skeleton only when none was active
    assert export_npz(tmp_path / "out.npz", len(motion.poses), **options) == {'FINISHED'}
    back = read_amass_npz(tmp_path / "out.npz")
    assert back.fps == 30.0 and back.poses.shape == motion.poses.shape
    assert rotation_error(back.poses, motion.poses) < ROUND_TRIP_RAD
    np.testing.assert_allclose(back.trans, motion.trans, atol=1e-5)


def test_ten_thousand_frames_import_in_seconds(tmp_path):
    """The bulk key path: 10,000 frames x 55 bones (+ translation) is about 3 s on one core; 30 s allows for a
    busy machine."""
    write_amass_npz(tmp_path / "long.npz", random_motion(10_000))
    set_fps(30)
    start = time.perf_counter()
    assert import_npz(tmp_path / "long.npz") == {'FINISHED'}
    assert time.perf_counter() - start < 30
    assert bpy.context.scene.dposerx.clean_end == 10_000


def test_split_keys_import_like_poses(tmp_path):
    from dposerx_blender.core.amass import SPLIT_KEYS

    motion = random_motion(10)
    np.savez(tmp_path / "split.npz", transl=motion.trans, mocap_frame_rate=30.0,
             **{key: motion.poses[:, where] for key, where in SPLIT_KEYS.items()})
    set_fps(30)
    import_npz(tmp_path / "split.npz")
    export_npz(tmp_path / "out.npz", 10)
    back = read_amass_npz(tmp_path / "out.npz")
    assert rotation_error(back.poses, motion.poses) < ROUND_TRIP_RAD
    np.testing.assert_allclose(back.trans, motion.trans, atol=1e-5)


def test_import_sets_the_clean_mocap_range_and_extends_the_scene(tmp_path):
    write_amass_npz(tmp_path / "in.npz", random_motion(300))
    scene = bpy.context.scene
    set_fps(30)
    scene.frame_start, scene.frame_end = 5, 100
    import_npz(tmp_path / "in.npz")
    assert (scene.frame_end, scene.dposerx.clean_start, scene.dposerx.clean_end) == (304, 5, 304)


# --- conventions: timing, translation, hands ------------------------------------------------------------------


def test_60_fps_file_onto_30_fps_scene_keeps_timing(tmp_path):
    """2 s at 60 fps -> 2 s at 30 fps; a knee turning at 1 rad/s reads 1 rad/s on the scene's frames."""
    times = np.arange(121) / 60.0
    poses = np.zeros((121, 165))
    knee = 3 * JOINT_INDEX["left_knee"]
    poses[:, knee] = times  # about SMPL-X's +X, 1 rad per second
    write_amass_npz(tmp_path / "60.npz", AmassMotion(poses, np.zeros((121, 3)), 60.0))
    set_fps(30)
    import_npz(tmp_path / "60.npz")
    scene = bpy.context.scene
    assert scene.dposerx.clean_end - scene.dposerx.clean_start + 1 == 61
    rig = rig_bridge.find_rig(bpy.context.object)
    frames = scene.frame_start + np.arange(61, dtype=float)
    track = rig_bridge.read_track(rig, frames)
    np.testing.assert_allclose(track[:, knee], np.arange(61) / 30.0, atol=1e-6)
    assert abs(track[30, knee] - 1.0) < 1e-6  # 1 s in: frame start + 30


def test_relaxed_hands_add_the_reference(tmp_path):
    from dposerx_blender.core.mocap.conventions import HAND_SLICE, RELAXED_HANDS

    write_amass_npz(tmp_path / "flat.npz", AmassMotion(np.zeros((2, 165)), np.zeros((2, 3)), 30.0))
    set_fps(30)
    import_npz(tmp_path / "flat.npz", hand_reference='RELAXED', up_axis='Y')
    pose = rig_bridge.read_track(rig_bridge.find_rig(bpy.context.object), np.array([1.0]))[0]
    np.testing.assert_allclose(pose[HAND_SLICE], RELAXED_HANDS, atol=1e-6)
    np.testing.assert_allclose(pose[:HAND_SLICE.start], 0, atol=1e-6)


def test_translation_follows_the_smplx_addon(tmp_path):
    """MPI rig: a Y-up file's trans is the pelvis location; a Z-up file turns about the origin like the add-on's
    root at -90 degrees about X, so the pelvis ends where that root would put it."""
    ob = mpi_rig()
    trans = np.array([[0.1, 0.2, 0.9], [0.3, -0.1, 1.0]])
    write_amass_npz(tmp_path / "t.npz", AmassMotion(np.zeros((2, 165)), trans, 30.0))
    set_fps(30)
    import_npz(tmp_path / "t.npz", up_axis='Y')
    pelvis = ob.pose.bones["pelvis"]
    bpy.context.scene.frame_set(2)
    np.testing.assert_allclose(pelvis.location, trans[1], atol=1e-6)  # MPI bone axes == SMPL-X axes
    import_npz(tmp_path / "t.npz", up_axis='Z')
    bpy.context.scene.frame_set(2)
    smplx_to_blender = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    rest = np.array(ob.data.bones["pelvis"].head_local)
    expected = smplx_to_blender @ Z_UP_TO_Y_UP @ (smplx_to_blender.T @ rest + trans[1])
    np.testing.assert_allclose(np.array(pelvis.head), expected, atol=1e-5)
    # AMASS's Z-up world: the pelvis 1.0 m up ends 1.0 m above the armature origin (Blender +Z).
    assert abs(pelvis.head[2] - 1.0) < 1e-5


def test_cancel_writes_nothing(tmp_path, monkeypatch):
    write_amass_npz(tmp_path / "in.npz", random_motion())
    mpi_rig()
    import_npz(tmp_path / "in.npz", up_axis='Y')
    before = state()

    def cancel(self, done, total):
        raise Cancelled()

    monkeypatch.setattr(jobs.Job, "progress", cancel)
    assert import_npz(tmp_path / "in.npz") == {'CANCELLED'}
    assert export_npz(tmp_path / "out.npz", 10) == {'CANCELLED'}
    assert state() == before and not (tmp_path / "out.npz").exists()


def test_undo_removes_the_import(tmp_path):
    assert {'REGISTER', 'UNDO'} <= io_ops.DPOSERX_OT_import_smplx_npz.bl_options
    write_amass_npz(tmp_path / "in.npz", random_motion())
    name = mpi_rig().name
    bpy.ops.ed.undo_push(message="before")
    import_npz(tmp_path / "in.npz")
    bpy.ops.ed.undo_push(message="Import")
    assert bpy.data.objects[name].animation_data.action is not None
    window = bpy.context.window_manager.windows[0]
    with bpy.context.temp_override(window=window, area=window.screen.areas[0]):
        bpy.ops.ed.undo()
    anim = bpy.data.objects[name].animation_data
    assert anim is None or anim.action is None


def test_menus_and_panel_are_registered():
    assert io_ops.draw_import_menu in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()
    assert io_ops.draw_export_menu in bpy.types.TOPBAR_MT_file_export._dyn_ui_initialize()
    assert panels.DPOSERX_PT_animation_files.is_registered


# --- BVH through the retargeting presets ---------------------------------------------------------------------

# One real file per BVH preset.
BVH_CASES = [
    ("cgspeed_daz_bvh", "przestr_cgspeed_daz_bvh/07_01.bvh"),
    ("cmu_bvh", "przestr_cgspeed_daz_bvh/16_01.bvh"),
    ("iclone_bvh", "iclone_cmu_bvh/005_02.bvh"),
    ("makehuman_bvh", "makehuman_assets_cc0_poses/base/poses/run01.bvh"),
    ("makehuman_anim_bvh", "makehuman_cc0_anims/makehuman/data/animations/walks/walk1.bvh"),
]


@pytest.mark.skipif(not MOCAP.is_dir(), reason=f"mocap data not found at {MOCAP}")
@pytest.mark.parametrize("preset, file", BVH_CASES, ids=[c[0] for c in BVH_CASES])
def test_bvh_import_matches_the_retargeter(tmp_path, capfd, preset, file):
    from dposerx_blender.core.mocap.bvh import read_bvh
    from dposerx_blender.core.mocap.retarget import load_joint_maps, retarget

    path = MOCAP / file
    if not path.exists():
        pytest.skip(f"missing {file}")
    motion = read_bvh(path)
    expected = retarget(motion, load_joint_maps()[preset])
    set_fps(motion.fps)
    project_rig()
    assert bpy.ops.dposerx.import_bvh(filepath=str(path)) == {'FINISHED'}  # auto-detected preset
    out = capfd.readouterr().out
    assert f"preset '{preset}'" in out and "Unmapped BVH joints" in out and "SMPL-X bones left at rest" in out
    assert "truncated" not in out
    frames = bpy.context.scene.dposerx.clean_end - bpy.context.scene.dposerx.clean_start + 1
    export_npz(tmp_path / "out.npz", frames)
    back = read_amass_npz(tmp_path / "out.npz")
    fps = io_ops.scene_fps(bpy.context.scene)
    poses = resample_poses(expected.poses, expected.fps, fps)  # no-op unless float32 fps_base rounds
    assert back.poses.shape == poses.shape
    assert rotation_error(back.poses, poses) < 1e-4
    rig = rig_bridge.find_rig(bpy.context.object)
    positions = back.trans + rig_bridge.rest_pelvis(rig)  # AMASS-style offsets -> pelvis positions (Z-up world)
    np.testing.assert_allclose(positions[[0, -1]], expected.trans[[0, -1]], atol=1e-4)


@pytest.mark.skipif(not MOCAP.is_dir(), reason=f"mocap data not found at {MOCAP}")
def test_bvh_preset_override(tmp_path, capfd):
    path = MOCAP / BVH_CASES[1][1]
    if not path.exists():
        pytest.skip(f"missing {path}")
    mpi_rig()
    bpy.ops.dposerx.import_bvh(filepath=str(path), preset='cmu_bvh', translation_bone='ROOT')
    assert "preset 'cmu_bvh'" in capfd.readouterr().out


# --- bad files: a clear report, nothing changed --------------------------------------------------------------

TWO_JOINT_BVH = """HIERARCHY
ROOT hips
{{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT spine
  {{
    OFFSET 0 1 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {{
      OFFSET 0 1 0
    }}
  }}
}}
MOTION
Frames: 2
Frame Time: 0.0333333
0 0 0 0 0 0 0 0 0
1 0 0 0 0 90 0 90 {last}
"""


def npz_file(tmp_path, **arrays):
    np.savez(tmp_path / "bad.npz", **arrays)
    return tmp_path / "bad.npz"


def text_file(tmp_path, text, name="bad.bvh"):
    (tmp_path / name).write_text(text)
    return tmp_path / name


def _frames(n=3, **extra):
    return dict(poses=np.zeros((n, 165)), trans=np.zeros((n, 3)), **extra)


BAD_IMPORTS = [
    ("npz", lambda p: p / "absent.npz", {}, "file not found"),
    ("npz", lambda p: text_file(p, "not a zip", "bad.npz"), {}, "not a readable .npz"),
    ("npz", lambda p: npz_file(p, trans=np.zeros((3, 3))), {}, "missing the 'poses' array"),
    ("npz", lambda p: npz_file(p, poses=np.zeros((3, 100))), {}, r"must have shape \(N, 165\)"),
    ("npz", lambda p: npz_file(p, poses=np.full((3, 165), np.nan)), {}, "NaN"),
    ("npz", lambda p: npz_file(p, poses=np.zeros((3, 165)), trans=np.zeros((2, 3))), {}, "'trans' must have"),
    ("npz", lambda p: npz_file(p, body_pose=np.zeros((3, 63)), left_hand_pose=np.zeros((3, 12))), {}, "PCA"),
    ("npz", lambda p: npz_file(p, **_frames(mocap_frame_rate=0.0)), {}, "frame rate must be positive"),
    ("npz", lambda p: npz_file(p, **_frames()), {"rig": "non-smplx"}, "not an SMPL-X armature"),
    ("npz", lambda p: npz_file(p, **_frames()), {"rig": "meshcapade", "translation_bone": 'ROOT'},
     "no 'root' bone"),
    ("bvh", lambda p: text_file(p, TWO_JOINT_BVH.format(last=0)), {}, "no joint map recognises"),
    ("bvh", lambda p: text_file(p, TWO_JOINT_BVH.format(last="nan")), {}, "not finite"),
    ("bvh", lambda p: text_file(p, TWO_JOINT_BVH.format(last=0)[:120]), {}, "unexpected end of hierarchy"),
    ("bvh", lambda p: text_file(p, "", "empty.bvh"), {}, "empty file"),
    ("bvh", lambda p: text_file(p, TWO_JOINT_BVH.format(last=0)), {"preset": 'cmu_bvh'},
     "names joints this skeleton lacks"),
]


@pytest.mark.parametrize("kind, make_file, options, message", BAD_IMPORTS,
                         ids=[f"{c[0]}-{i}-{c[3][:24]}" for i, c in enumerate(BAD_IMPORTS)])
def test_bad_import_reports_and_changes_nothing(tmp_path, kind, make_file, options, message):
    options = dict(options)
    rig = options.pop("rig", "mpi")
    {"mpi": mpi_rig, "meshcapade": meshcapade_rig,
     "non-smplx": lambda: make_rig(skip=tuple(rig_bridge.JOINT_NAMES[2:]))}[rig]()
    path = make_file(tmp_path)
    before = state()
    operator = bpy.ops.dposerx.import_smplx_npz if kind == "npz" else bpy.ops.dposerx.import_bvh
    with pytest.raises(RuntimeError, match=message):
        operator(filepath=str(path), **options)
    assert state() == before


def test_bad_exports_report_and_write_nothing(tmp_path):
    ob = mpi_rig()
    before = state()
    with pytest.raises(RuntimeError, match="no animation to export"):
        export_npz(tmp_path / "out.npz", 10)
    assert state() == before
    write_amass_npz(tmp_path / "in.npz", random_motion(5))
    import_npz(tmp_path / "in.npz")
    before = state()
    with pytest.raises(RuntimeError, match="reversed"):
        bpy.ops.dposerx.export_smplx_npz(filepath=str(tmp_path / "out.npz"), frame_start=9, frame_end=3)
    with pytest.raises(RuntimeError, match="folder not found"):
        export_npz(tmp_path / "missing" / "out.npz", 5)
    assert state() == before
    pose_bone = ob.pose.bones["left_knee"]
    pose_bone.rotation_mode = 'XYZ'
    pose_bone.rotation_euler = (math.nan, 0, 0)
    before = state()
    with pytest.raises(RuntimeError, match="invalid"):
        export_npz(tmp_path / "out.npz", 5)
    assert state() == before and not (tmp_path / "out.npz").exists()
