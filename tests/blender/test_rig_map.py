"""Users' rigs through rig maps, in Blender: a Rigify rig generated from the Human metarig that ships with
Blender, and Mixamo (A-pose), Unreal-mannequin, VRM and MPFB-named rigs built from tests/rig_specs.py.
SMPL-X pose -> rig -> SMPL-X round trips, the jobs through the map (fake solvers: the plumbing), bad maps."""
import bpy
import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from bpy_extras.anim_utils import action_get_channelbag_for_slot
from conftest import select_bones, snapshot

from dposerx_blender.blender import keyframes, mapped_rig, pose_library, rig_bridge, rig_map_ui
from dposerx_blender.core.amass import AmassMotion, read_amass_npz, write_amass_npz
from dposerx_blender.core.errors import DPoserError
from dposerx_blender.core.skeleton import JOINT_INDEX
from tests.rig_specs import TEST_RIGS, build_rig, mapped_pose, preset_layout, rigify_rig, rotation_errors_degrees

ROUND_TRIP_DEGREES = 0.5


RIGS = {"rigify": rigify_rig, **{name: (lambda name=name: build_rig(name)) for name in TEST_RIGS},
        "mixamo-prefixed": lambda: build_rig("mixamo", prefix="mixamorig:")}


def posable(rig) -> np.ndarray:
    return rig.converter.mapped & ~rig.unwritable


@pytest.mark.parametrize("make", RIGS.values(), ids=RIGS.keys())
def test_round_trip_on_every_mapped_joint(make):
    ob = make()
    rig = rig_bridge.find_rig(ob)
    assert isinstance(rig, mapped_rig.MappedRig) and not rig.overridden
    joints = np.flatnonzero(posable(rig))
    assert len(joints) >= 20  # body and (where the rig has them) fingers
    for seed in range(2):
        pose = mapped_pose(posable(rig), seed)
        rig_bridge.apply_pose(rig, pose, joints)
        back = rig_bridge.read_pose(rig)
        errors = rotation_errors_degrees(pose, back)[joints]
        assert errors.max() < ROUND_TRIP_DEGREES, dict(zip(joints, errors.round(3)))


def test_rigify_in_ik_keeps_the_limbs_and_says_so(calls):
    ob = rigify_rig(fk=False)
    rig = rig_bridge.find_rig(ob)
    assert {JOINT_INDEX["left_elbow"], JOINT_INDEX["right_knee"]} <= set(rig.overridden)
    assert "IK is on" in rig.notes()
    before = {pb.name: tuple(pb.rotation_quaternion) + tuple(pb.rotation_euler) for pb in ob.pose.bones}
    assert bpy.ops.dposerx.vary_pose() == {'FINISHED'}
    _, args = calls[0]
    assert args["observed"][JOINT_INDEX["left_elbow"]] and not args["observed"][JOINT_INDEX["spine2"]]
    after = {pb.name: tuple(pb.rotation_quaternion) + tuple(pb.rotation_euler) for pb in ob.pose.bones}
    assert after["forearm_fk.L"] == before["forearm_fk.L"] and after["spine_fk.002"] != before["spine_fk.002"]


def test_switch_limbs_to_fk_keeps_the_visual_pose():
    ob = rigify_rig(fk=False)
    ob.pose.bones["upper_arm_ik.L"].location = (0.1, 0.2, -0.1)  # move the IK arm somewhere
    before = rig_bridge.read_pose(rig_bridge.find_rig(ob))
    assert bpy.ops.dposerx.rig_switch_to_fk() == {'FINISHED'}
    rig = rig_bridge.find_rig(ob)
    assert not rig.overridden and ob.pose.bones["upper_arm_parent.L"]["IK_FK"] == 1.0
    errors = rotation_errors_degrees(before, rig_bridge.read_pose(rig))[posable(rig)]
    assert errors.max() < ROUND_TRIP_DEGREES


@pytest.mark.parametrize("make", [RIGS["rigify"], RIGS["mixamo"]], ids=["rigify", "mixamo"])
def test_complete_pose_keeps_locked_bones_bit_exact(make, calls):
    ob = make()
    rig = rig_bridge.find_rig(ob)
    rig_bridge.apply_pose(rig, mapped_pose(posable(rig), 4, 0.3), np.flatnonzero(posable(rig)))
    locked = [rig.bone_names[JOINT_INDEX[n]] for n in ("left_knee", "head", "right_elbow", "spine2")]
    select_bones(ob, set(locked))
    assert bpy.ops.dposerx.lock_selected() == {'FINISHED'}
    channels = lambda: {pb.name: np.array((*pb.rotation_quaternion, *pb.rotation_euler)).tobytes()  # noqa: E731
                        for pb in ob.pose.bones}
    before = channels()
    assert bpy.ops.dposerx.complete_pose() == {'FINISHED'}
    _, args = calls[0]
    assert args["observed"][[JOINT_INDEX["left_knee"], JOINT_INDEX["head"]]].all()
    after = channels()
    assert all(after[name] == before[name] for name in locked)
    changed = [rig.bone_names[j] for j in np.flatnonzero(~args["observed"])]
    assert changed and all(after[name] != before[name] for name in changed)
    first = rig_bridge.read_pose(rig)
    assert bpy.ops.dposerx.cycle_hypothesis(step=1) == {'FINISHED'}  # Next, through the map too
    assert not np.allclose(rig_bridge.read_pose(rig), first)
    assert all(channels()[name] == before[name] for name in locked)


def test_clean_mocap_through_the_map(calls):
    ob = build_rig("mixamo")
    rig = rig_bridge.find_rig(ob)
    joints = np.flatnonzero(posable(rig))
    poses = np.stack([mapped_pose(posable(rig), s, 0.3) for s in range(6)])
    frames = np.arange(1, 7, dtype=float)
    rig_bridge.key_track(rig, poses, joints, frames)
    assert rotation_errors_degrees(poses, rig_bridge.read_track(rig, frames))[:, joints].max() < ROUND_TRIP_DEGREES
    settings = bpy.context.scene.dposerx
    settings.clean_action_range, settings.clean_start, settings.clean_end = False, 2, 5
    assert bpy.ops.dposerx.clean_mocap() == {'FINISHED'}
    _, args = calls[0]
    assert rotation_errors_degrees(args["track"], poses[1:5])[:, joints].max() < ROUND_TRIP_DEGREES
    cleaned = rig_bridge.read_track(rig, frames[1:5])
    free = ~args["locked"]
    expected = args["track"].reshape(4, 55, 3).copy()
    expected[:, free] = np.random.default_rng(0).normal(size=(4, int(free.sum()), 3)) * .3  # conftest._fill
    assert rotation_errors_degrees(expected.reshape(4, -1), cleaned)[:, joints].max() < ROUND_TRIP_DEGREES


def varied_track(mask: np.ndarray, count: int) -> np.ndarray:
    """count poses (count, 165) on the joints `mask`: random ones, the spine and neck also bending forward, sideways
    and twisting, up to 30 degrees each way along the track."""
    poses = np.stack([mapped_pose(mask, s, 0.3) for s in range(count)]).reshape(count, 55, 3)
    bend = np.linspace(-0.5, 0.5, count)
    for name in ("spine1", "spine2", "spine3", "neck"):
        poses[:, JOINT_INDEX[name]] += np.stack([bend, 0.6 * bend[::-1], 0.4 * bend], axis=1)
    return poses.reshape(count, -1)


def curve_keys(ob) -> dict:
    channelbag = action_get_channelbag_for_slot(ob.animation_data.action, ob.animation_data.action_slot)
    return {(fc.data_path, fc.array_index): [(k.co[0], k.interpolation) for k in fc.keyframe_points]
            for fc in channelbag.fcurves}


@pytest.mark.parametrize("make", [RIGS["rigify"], RIGS["mixamo"]], ids=["rigify", "mixamo"])
def test_track_round_trip_on_every_mapped_joint(make):
    """A track keyed from the rest pose (as an npz or BVH import keys it), then corrected by a few degrees on every
    joint (as Clean Mocap writes its result into those keys), reads back within the round-trip bar on every
    mapped joint at every frame, with the same keys and F-curves after the correction."""
    ob = make()
    rig = rig_bridge.find_rig(ob)
    mask = posable(rig)
    joints = np.flatnonzero(mask)
    frames = np.arange(1, 25, dtype=float)
    poses = varied_track(mask, len(frames))
    rig_bridge.key_track(rig, poses, joints, frames)
    errors = rotation_errors_degrees(poses, rig_bridge.read_track(rig, frames))[:, joints]
    assert errors.max() < ROUND_TRIP_DEGREES, dict(zip(joints, errors.max(0).round(3)))

    keys = curve_keys(ob)
    track = rig_bridge.read_track(rig, frames)
    turns = np.random.default_rng(5).normal(size=(len(frames), 55, 3))
    turns *= np.radians(5) / np.linalg.norm(turns, axis=-1, keepdims=True)  # 5 degrees each
    corrected = (Rotation.from_rotvec(track.reshape(-1, 3)) * Rotation.from_rotvec(turns.reshape(-1, 3)))
    corrected = np.where(mask[None, :, None], corrected.as_rotvec().reshape(turns.shape), track.reshape(turns.shape))
    corrected = corrected.reshape(len(frames), -1)
    rig_bridge.update_track_keys(rig, corrected, joints, frames)
    errors = rotation_errors_degrees(corrected, rig_bridge.read_track(rig, frames))[:, joints]
    assert errors.max() < ROUND_TRIP_DEGREES, dict(zip(joints, errors.max(0).round(3)))
    assert curve_keys(ob) == keys


def test_rigify_track_corrects_its_keys_only(monkeypatch):
    """Sparse keys on Rigify: the correction passes evaluate the rig only at keyed frames (once a pass), and
    the keys keep their frames; on the keyed frames the track reads back within the bar."""
    ob = rigify_rig()
    rig = rig_bridge.find_rig(ob)
    mask = posable(rig)
    joints = np.flatnonzero(mask)
    keyed = np.array([1.0, 5.0, 9.0])
    rig_bridge.key_track(rig, varied_track(mask, 3), joints, keyed)
    keys = curve_keys(ob)
    frames = np.arange(1, 10, dtype=float)
    goals = rig_bridge.read_track(rig, frames) + np.where(np.repeat(mask, 3), 0.06, 0.0)
    evaluated = []
    measure = mapped_rig._at_frames
    monkeypatch.setattr(mapped_rig, "_at_frames", lambda rig, at, *args: evaluated.append(list(at)) or
                        measure(rig, at, *args))
    rig_bridge.update_track_keys(rig, goals, joints, frames)
    assert evaluated[0] == list(keyed)  # read_track's evaluation is reused; later passes: the frames still off
    assert all(set(at) <= set(keyed) for at in evaluated)
    assert curve_keys(ob) == keys
    errors = rotation_errors_degrees(goals[[0, 4, 8]], rig_bridge.read_track(rig, keyed))[:, joints]
    assert errors.max() < ROUND_TRIP_DEGREES, dict(zip(joints, errors.max(0).round(3)))


def test_rigify_track_passes_correct_only_the_frames_still_off(monkeypatch):
    """After the first write, a pass evaluates and corrects only the frames still off their poses: here those where
    the spine twists (Rigify's spine follows its controls in part), not those where only limbs move (their FK
    controls drive them exactly: the first write settles them, and their keys keep the values it gave them);
    every frame lands within the bar of the passes."""
    ob = rigify_rig()
    rig = rig_bridge.find_rig(ob)
    mask = posable(rig)
    joints = np.flatnonzero(mask)
    frames = np.arange(1, 13, dtype=float)
    rig_bridge.key_track(rig, varied_track(mask, len(frames)), joints, frames)
    goals = rig_bridge.read_track(rig, frames).reshape(len(frames), 55, 3)
    goals[:, [JOINT_INDEX[n] for n in ("left_elbow", "right_knee", "left_wrist")]] += 0.1
    goals[6:, [JOINT_INDEX["spine2"], JOINT_INDEX["spine3"]]] += (0.0, 0.2, 0.0)  # a twist, frames 7..12
    goals = goals.reshape(len(frames), -1)
    channelbag = action_get_channelbag_for_slot(ob.animation_data.action, ob.animation_data.action_slot)
    evaluated, still = [], []
    measure, key = mapped_rig._at_frames, keyframes.write_channels

    def write_channels(*args):
        key(*args)
        still.append({(fc.data_path, fc.array_index, k.co[0]): k.co[1]
                      for fc in channelbag.fcurves for k in fc.keyframe_points if k.co[0] <= 6})
    monkeypatch.setattr(mapped_rig, "_at_frames", lambda rig, at, *args: evaluated.append(list(at)) or
                        measure(rig, at, *args))
    monkeypatch.setattr(keyframes, "write_channels", write_channels)
    rig_bridge.key_track(rig, goals, joints, frames)  # the write reuses read_track's evaluation
    assert evaluated[0] == list(frames) and len(evaluated) > 1
    assert all(set(at) <= set(frames[6:]) for at in evaluated[1:])
    assert len(still) > 1 and all(keys == still[0] for keys in still)
    errors = rotation_errors_degrees(goals, rig_bridge.read_track(rig, frames))[:, joints]
    assert errors.max() < 10 * mapped_rig.SETTLED_DEGREES, dict(zip(joints, errors.max(0).round(4)))


def test_track_write_reuses_its_read_only_while_the_rig_is_unchanged(monkeypatch):
    """Writing the frames read_track just read measures them once, not twice; after an edit in between (here the
    spine's keys, under the written arms) the frames are evaluated again and the arms land where they should."""
    ob = build_rig("mixamo")
    rig = rig_bridge.find_rig(ob)
    mask = posable(rig)
    frames = np.arange(1, 5, dtype=float)
    rig_bridge.key_track(rig, np.stack([mapped_pose(mask, s, 0.3) for s in range(4)]), np.flatnonzero(mask), frames)
    evaluations = []
    measure = mapped_rig._measure
    monkeypatch.setattr(mapped_rig, "_measure", lambda *args: evaluations.append(1) or measure(*args))
    arms = [JOINT_INDEX[n] for n in ("left_shoulder", "left_elbow", "right_shoulder", "right_elbow")]

    def goals(track):
        out = track.copy()
        out[:, np.ravel([[3 * j, 3 * j + 1, 3 * j + 2] for j in arms])] += 0.1
        return out

    track = rig_bridge.read_track(rig, frames)
    rig_bridge.update_track_keys(rig, goals(track), arms, frames)
    assert len(evaluations) == 1
    again = rig_bridge.find_rig(ob)  # a second rig object: its reads leave the first one's measurement alone
    assert rotation_errors_degrees(goals(track), rig_bridge.read_track(again, frames))[:, arms].max() < 0.01

    track = rig_bridge.read_track(rig, frames)
    spine = np.stack([mapped_pose(mask, s, 0.5) for s in range(10, 14)])
    rig_bridge.key_track(again, spine, [JOINT_INDEX["spine2"], JOINT_INDEX["spine3"]], frames)  # an edit
    track = rig_bridge.read_track(again, frames)
    evaluations.clear()
    rig_bridge.update_track_keys(rig, goals(track), arms, frames)
    assert len(evaluations) == 1  # the frames were measured again
    assert rotation_errors_degrees(goals(track), rig_bridge.read_track(again, frames))[:, arms].max() < 0.01


FK_RIGS = [name for name in RIGS if name != "rigify"]


def animated_fk_rig(name: str):
    """A plain FK rig from RIGS with bones in every rotation mode, a keyed track on the mapped joints (frames 1-12)
    and its other bones turned but not keyed: (rig, frames to read, sub-frames included)."""
    ob = RIGS[name]()
    modes = ("QUATERNION", "XYZ", "ZXY", "AXIS_ANGLE")
    for i, pose_bone in enumerate(ob.pose.bones):
        pose_bone.rotation_mode = modes[i % len(modes)]
    rig = rig_bridge.find_rig(ob)
    mask = posable(rig)
    keyed = np.arange(1, 13, dtype=float)
    rig_bridge.key_track(rig, varied_track(mask, len(keyed)), np.flatnonzero(mask), keyed)
    written = {rig.converter.armature.names[b] for b in mapped_rig._written_bones(rig)}
    turns = Rotation.random(len(ob.pose.bones), random_state=2).as_quat(scalar_first=True)
    for pose_bone, turn in zip(ob.pose.bones, turns):
        if pose_bone.name not in written:
            pose_bone.rotation_mode = "QUATERNION"
            pose_bone.rotation_quaternion = turn * 0.8  # any length: Blender normalises
    return rig_bridge.find_rig(ob), np.array([1, 2.5, 4, 7.25, 12, 14], dtype=float)


def evaluated_measure(rig, frames):
    """What _measure took before plain FK rigs were read from their F-curves: the scene evaluated at each frame."""
    def state():
        return mapped_rig.evaluated_deltas(rig), {b: rig_bridge.current_channels(
            rig.object.pose.bones[rig.converter.armature.names[b]]) for b in mapped_rig._written_bones(rig)}
    states = mapped_rig._at_frames(rig, frames, state)
    return np.stack([d for d, _ in states]), {b: np.stack([c[b] for _, c in states]) for b in states[0][1]}


@pytest.mark.parametrize("name", FK_RIGS)
def test_fk_track_is_read_from_its_curves_as_evaluated(name, monkeypatch):
    """A plain FK rig's track is read without evaluating the scene, and matches the evaluated pose (rotation
    deltas and the written bones' channels, every rotation mode, unkeyed bones turned, sub-frames)."""
    rig, frames = animated_fk_rig(name)
    expected_deltas, expected_channels = evaluated_measure(rig, frames)
    expected = rig.converter.read(expected_deltas)
    evaluations = []
    measure = mapped_rig._at_frames
    monkeypatch.setattr(mapped_rig, "_at_frames", lambda *args: evaluations.append(1) or measure(*args))
    frame = bpy.context.scene.frame_current
    read = rig_bridge.read_track(rig, frames)
    assert not evaluations and bpy.context.scene.frame_current == frame
    assert np.abs(read - expected).max() < 1e-5
    deltas, channels = rig.track["measured"]
    assert np.abs(deltas - expected_deltas).max() < 1e-6
    assert all(np.abs(channels[b] - expected_channels[b]).max() < 1e-6 for b in expected_channels)


def test_driven_or_scaled_fk_rigs_are_evaluated(monkeypatch):
    """Where the F-curves alone do not give the pose (a driver on a read bone, a scaled bone, an NLA track), the
    track is read from the evaluated scene, and matches it."""
    rig, frames = animated_fk_rig("mixamo")
    ob, spine = rig.object, rig.bone_names[JOINT_INDEX["spine1"]]
    evaluations = []
    measure = mapped_rig._at_frames
    monkeypatch.setattr(mapped_rig, "_at_frames", lambda *args: evaluations.append(1) or measure(*args))

    def read_as_evaluated():
        evaluations.clear()
        expected = rig.converter.read(evaluated_measure(rig, frames)[0])
        read = rig_bridge.read_track(rig_bridge.find_rig(ob), frames)
        assert len(evaluations) == 2 and np.abs(read - expected).max() < 1e-5

    ob.pose.bones[spine].scale = (1.0, 1.3, 1.0)
    read_as_evaluated()
    ob.pose.bones[spine].scale = (1.0, 1.0, 1.0)
    driver = ob.driver_add(f'pose.bones["{spine}"].rotation_quaternion', 1).driver
    driver.expression = "0.3"
    read_as_evaluated()
    ob.driver_remove(f'pose.bones["{spine}"].rotation_quaternion', 1)
    ob.animation_data.nla_tracks.new().strips.new("other", 1, bpy.data.actions.new("other"))
    read_as_evaluated()


def skinned_box(name: str, rig_object):
    """A box mesh deformed by `rig_object` (an Armature modifier), linked to the scene."""
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(x, y, z) for x in (-.3, .3) for y in (-.3, .3) for z in (0, 1.8)], [],
                     [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
    ob = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(ob)
    ob.modifiers.new("Armature", 'ARMATURE').object = rig_object
    return ob


def test_constrained_track_is_read_with_its_skins_out_of_the_evaluation(monkeypatch):
    """Reading a track on a constraint-driven rig evaluates the scene at each frame with the meshes the rig deforms
    disabled in the viewport, except one the rig reads (a constraint's target) and one in Weight Paint mode, and
    reads the same track; the meshes, selection and frame are as they were afterwards, after an error too. None
    is disabled in a scene that simulates."""
    ob = rigify_rig()
    rig = rig_bridge.find_rig(ob)
    mask = posable(rig)
    frames = np.array([1.0, 2.0, 3.0])
    rig_bridge.key_track(rig, varied_track(mask, 3), np.flatnonzero(mask), frames)
    expected = rig_bridge.read_track(rig, frames)
    body, held = skinned_box("body", ob), skinned_box("held", ob)
    constraint = ob.pose.bones["root"].constraints.new('COPY_SCALE')
    constraint.target, constraint.enabled = held, False
    body.select_set(True)
    painted = skinned_box("painted", ob)
    bpy.context.view_layer.objects.active = painted
    bpy.ops.object.mode_set(mode='WEIGHT_PAINT')  # as when painting its weights with the rig posed
    seen = []
    evaluate = mapped_rig._posed
    monkeypatch.setattr(mapped_rig, "_posed", lambda *args: seen.append(
        (body.hide_viewport, held.hide_viewport, painted.hide_viewport)) or evaluate(*args))
    read = rig_bridge.read_track(rig_bridge.find_rig(ob), frames)
    assert seen == [(True, False, False)] * len(frames)
    assert np.abs(read - expected).max() < 1e-9
    assert not body.hide_viewport and body.select_get() and bpy.context.scene.frame_current == 1
    assert painted.mode == 'WEIGHT_PAINT' and bpy.context.view_layer.objects.active == painted

    def fail(*args):
        assert body.hide_viewport
        raise RuntimeError("stop")
    monkeypatch.setattr(mapped_rig, "_posed", fail)
    with pytest.raises(RuntimeError):
        rig_bridge.read_track(rig_bridge.find_rig(ob), frames)
    assert not body.hide_viewport and body.select_get()

    monkeypatch.setattr(mapped_rig, "_posed", evaluate)
    assert mapped_rig._skins(rig)
    held.modifiers.new("Cloth", 'CLOTH')  # a simulation: the body might collide in its cached frames
    assert not mapped_rig._skins(rig)


@pytest.mark.parametrize("make", [RIGS["rigify"], RIGS["mixamo"]], ids=["rigify", "mixamo"])
def test_pose_assets_apply_the_generated_poses(make):
    """Pose assets made on a mapped rig, applied one after another as Blender's pose library applies them (every
    bone the Action animates, at its frame), give back each generated pose within the round-trip bar on every joint
    the assets hold (Rigify's spine and neck follow their controls only in part); making them changes no pose."""
    ob = make()
    rig = rig_bridge.find_rig(ob)
    mask = posable(rig)
    mask[0] = False  # as Generate Pose Library: the global orientation is not posed
    joints = np.flatnonzero(mask)
    poses = varied_track(mask, 3)
    poses[:, 3 * JOINT_INDEX["spine2"]:3 * JOINT_INDEX["spine2"] + 3] += [0.5, 0.2, -0.3]  # a strong chest bend
    select_bones(ob, set())  # the pose library applies to every bone when none is selected
    before = snapshot()
    assets = pose_library.create_pose_assets(rig, poses, joints, "Tests", "Test pose")
    made = {asset.name for asset in assets}
    after = {k: v for k, v in snapshot().items() if not (isinstance(k, tuple) and k[0] in made)}
    assert after == before | {"actions": sorted(before["actions"] + list(made))}
    for pose, asset in zip(poses, assets):
        ob.pose.apply_pose_from_action(asset, evaluation_time=1.0)
        errors = rotation_errors_degrees(pose, rig_bridge.read_pose(rig))[joints]
        assert errors.max() < ROUND_TRIP_DEGREES, (asset.name, dict(zip(joints, errors.round(3))))


def test_pose_library_that_cannot_be_set_changes_nothing(calls):
    """A Rigify elbow held straight by a constraint its map does not know of (on the bone read, not the one
    written): Generate Pose Library reports it and leaves the scene as it was, with no assets."""
    ob = rigify_rig()
    limit = ob.pose.bones["ORG-forearm.L"].constraints.new('LIMIT_ROTATION')
    limit.use_limit_x = limit.use_limit_y = limit.use_limit_z = True
    bpy.context.view_layer.objects.active = ob
    settings = bpy.context.scene.dposerx
    settings.library_count, settings.library_assets, settings.library_keys = 2, True, False
    before = snapshot()
    with pytest.raises(RuntimeError, match="left_elbow.* did not follow"):
        bpy.ops.dposerx.generate_library()
    assert snapshot() == before


@pytest.mark.parametrize("name", ["ue4_mannequin", "mpfb_default", "rigify"])
def test_npz_import_and_export_through_the_map(tmp_path, name):
    ob = RIGS[name]()
    rig = rig_bridge.find_rig(ob)
    mask = posable(rig)
    poses = varied_track(mask, 5)
    trans = np.random.default_rng(1).normal(size=(5, 3)) * 0.2
    bpy.context.scene.render.fps = 30
    write_amass_npz(tmp_path / "in.npz", AmassMotion(poses, trans, 30.0))
    assert bpy.ops.dposerx.import_smplx_npz(filepath=str(tmp_path / "in.npz"), up_axis='Y') == {'FINISHED'}
    assert bpy.context.object == ob
    assert bpy.ops.dposerx.export_smplx_npz(filepath=str(tmp_path / "out.npz"), frame_start=1, frame_end=5,
                                            up_axis='Y') == {'FINISHED'}
    back = read_amass_npz(tmp_path / "out.npz")
    assert rotation_errors_degrees(poses, back.poses)[:, mask].max() < ROUND_TRIP_DEGREES
    np.testing.assert_allclose(back.trans, trans, atol=1e-5)


def test_bad_map_reports_and_changes_nothing(calls):
    ob = build_rig("vrm_humanoid")
    group = ob.dposerx_rig_map
    for joint, bone in (("pelvis", "hips"), ("left_knee", "nope")):
        item = group.joints.add()
        item.joint, item.bone = joint, bone
    before = snapshot()
    with pytest.raises(RuntimeError, match="must be mapped"):
        bpy.ops.dposerx.complete_pose()
    assert not bpy.ops.dposerx.vary_pose.poll()
    assert snapshot() == before and not calls


def test_map_naming_absent_bones_reports_and_changes_nothing(calls):
    ob = build_rig("vrm_humanoid")
    bpy.ops.dposerx.rig_map_from_preset()
    next(i for i in ob.dposerx_rig_map.joints if i.joint == "left_elbow").bone = "leftForeArm"  # no such bone
    before = snapshot()
    with pytest.raises(RuntimeError, match="left_elbow.*leftForeArm"):
        bpy.ops.dposerx.vary_pose()
    assert snapshot() == before and not calls


def test_partial_preset_says_what_it_lacks():
    ob = build_rig("vrm_humanoid")  # no upperChest
    rig = rig_bridge.find_rig(ob)
    assert rig.lacking == ("spine3",)
    assert bpy.ops.dposerx.rig_map_from_preset() == {'FINISHED'}
    assert ob.dposerx_rig_map.name == "vrm_humanoid"


def test_unknown_armature_disables_the_solvers():
    armature = bpy.data.armatures.new("Blob")
    ob = bpy.data.objects.new("Blob", armature)
    bpy.context.scene.collection.objects.link(ob)
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode='EDIT')
    armature.edit_bones.new("Bone").tail = (0, 0, 1)
    bpy.ops.object.mode_set(mode='OBJECT')
    assert not bpy.ops.dposerx.complete_pose.poll()
    assert "Rig Map" in rig_bridge.rig_problem(ob)
    with pytest.raises(DPoserError, match="not an SMPL-X armature"):
        rig_bridge.find_rig(ob)


def test_constrained_write_bone_is_kept_and_named(calls):
    ob = build_rig("ue4_mannequin")
    constraint = ob.pose.bones["lowerarm_l"].constraints.new('COPY_ROTATION')
    constraint.target = ob
    constraint.subtarget = "hand_r"
    rig = rig_bridge.find_rig(ob)
    assert "constraint 'Copy Rotation' on bone 'lowerarm_l'" in rig.overridden[JOINT_INDEX["left_elbow"]]
    before = tuple(ob.pose.bones["lowerarm_l"].rotation_quaternion)
    assert bpy.ops.dposerx.vary_pose() == {'FINISHED'}
    assert tuple(ob.pose.bones["lowerarm_l"].rotation_quaternion) == before


def test_map_presets_save_and_load(tmp_path, monkeypatch):
    monkeypatch.setattr(rig_map_ui, "user_map_dir", lambda: tmp_path)
    ob = build_rig("mpfb_default")
    bpy.ops.dposerx.rig_map_from_preset()
    assert bpy.ops.dposerx.rig_map_save(name="My MPFB") == {'FINISHED'}
    saved = tmp_path / "My MPFB.toml"
    assert saved.is_file()
    bpy.ops.dposerx.rig_map_clear()
    assert not mapped_rig.has_map(ob)
    assert bpy.ops.dposerx.rig_map_load(filepath=str(saved)) == {'FINISHED'}
    assert mapped_rig.stored_map(ob).joints["left_elbow"] == "lowerarm01.L"
    assert rig_bridge.find_rig(ob).name == "My MPFB"


def test_mirror_copies_left_to_right():
    ob = build_rig("mixamo")
    bpy.ops.dposerx.rig_map_from_preset()
    next(i for i in ob.dposerx_rig_map.joints if i.joint == "right_elbow").bone = ""
    assert bpy.ops.dposerx.rig_map_mirror() == {'FINISHED'}
    assert mapped_rig.stored_map(ob).joints["right_elbow"] == "RightForeArm"


def test_calibrate_rest_from_current_pose():
    """An odd rest (forearms twisted 90 degrees about themselves, as some exports are): calibrated on the pose
    that straightens them, that pose reads as SMPL-X's rest."""
    ob = build_rig("ue4_mannequin")
    for name in ("lowerarm_l", "lowerarm_r"):
        ob.pose.bones[name].rotation_quaternion = (np.cos(np.pi / 4), 0, np.sin(np.pi / 4), 0)  # about the bone
    rig = rig_bridge.find_rig(ob)
    elbow = JOINT_INDEX["left_elbow"]
    assert np.degrees(np.linalg.norm(rig_bridge.read_pose(rig).reshape(55, 3)[elbow])) == pytest.approx(90, abs=1)
    assert bpy.ops.dposerx.rig_calibrate_rest() == {'FINISHED'}
    # The arms now read straight (the hands, turned with the forearms, show their own geometry in the fingers).
    assert np.abs(rig_bridge.read_pose(rig_bridge.find_rig(ob))[:3 * 20]).max() < 1e-4  # up to the elbows
    assert bpy.ops.dposerx.rig_calibrate_clear() == {'FINISHED'}
    assert np.degrees(np.linalg.norm(rig_bridge.read_pose(rig_bridge.find_rig(ob)).reshape(55, 3)[elbow])) > 89


def test_pins_library_and_hypotheses_through_the_map(calls):
    ob = build_rig("mixamo")
    rig = rig_bridge.find_rig(ob)
    select_bones(ob, {"LeftHand"})
    ob.data.bones.active = ob.data.bones["LeftHand"]
    assert bpy.ops.dposerx.add_pin() == {'FINISHED'}
    bpy.context.view_layer.objects.active = ob
    assert bpy.ops.dposerx.pin_to_target() == {'FINISHED'}
    name, args = calls[-1]
    assert name == "solve_pins" and list(args["targets"]) == [JOINT_INDEX["left_wrist"]]
    assert args["rest_joints"].shape == (55, 3) and np.isfinite(args["rest_joints"]).all()
    settings = bpy.context.scene.dposerx
    settings.library_count, settings.library_assets, settings.library_keys = 2, True, False
    assert bpy.ops.dposerx.generate_library() == {'FINISHED'}
    assets = [a for a in bpy.data.actions if a.asset_data]
    assert len(assets) == 2
    channelbag = action_get_channelbag_for_slot(assets[0], assets[0].slots[0])
    assert any('"LeftForeArm"' in fc.data_path for fc in channelbag.fcurves)
    assert not any('"Hips"' in fc.data_path for fc in channelbag.fcurves)  # the global orientation is not posed


def test_bvh_with_mixamo_names_onto_a_vrm_rig(tmp_path):
    """A BVH named like Mixamo's rig is read with the mixamo preset (armature presets serve files too) and keyed
    onto a VRM rig through its map: the body joints both maps drive match the retargeter's result."""

    from dposerx_blender.core.mocap.bvh import read_bvh, write_bvh
    from dposerx_blender.core.mocap.motion import Motion
    from dposerx_blender.core.mocap.retarget import detect_joint_map, retarget

    layout = preset_layout("mixamo", scale=100.0, skip=("left_eye_smplhf", "right_eye_smplhf"))
    index = {bone.name: k for k, bone in enumerate(layout)}
    parents = np.array([index[b.parent] if b.parent else -1 for b in layout])
    offsets = np.array([b.head - (layout[p].head if p >= 0 else 0) for b, p in zip(layout, parents)])
    rotations = Rotation.from_rotvec(np.random.default_rng(0).normal(size=(5 * len(layout), 3)) * 0.2)
    motion = Motion("mixamo take", [b.name for b in layout], parents, offsets,
                    rotations.as_matrix().reshape(5, len(layout), 3, 3), np.tile(layout[0].head, (5, 1)), 30.0)
    write_bvh(motion, tmp_path / "take.bvh")
    ob = build_rig("vrm_humanoid")
    bpy.context.scene.render.fps = 30
    assert bpy.ops.dposerx.import_bvh(filepath=str(tmp_path / "take.bvh")) == {'FINISHED'}
    source = read_bvh(tmp_path / "take.bvh")
    expected = retarget(source, detect_joint_map(source)).poses
    rig = rig_bridge.find_rig(ob)
    got = rig_bridge.read_track(rig, np.arange(1, 6, dtype=float))
    # This VRM rig has no upperChest: SMPL-X's spine3 is not modelled, so the joints hanging from it (neck,
    # collars) take its rotation into their own; every other body joint must match.
    differ = {JOINT_INDEX[n] for n in ("spine3", "neck", "left_collar", "right_collar")}
    both = [j for j in range(1, 22) if posable(rig)[j] and j not in differ]
    assert rotation_errors_degrees(expected, got)[:, both].max() < ROUND_TRIP_DEGREES
