"""Issue 14: the animator's scene is respected. One test per reported problem, each failing on the old behaviour:
pins per rig, locks that give back what they took, slider ranges, pose assets matching the keys, hypotheses
keeping manual edits, constraints, frame ranges, preferences fallback, the mannequin body."""
import sys
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from conftest import make_rig, meshcapade_rig, mpi_rig, posed_rig, project_rig, select_bones

from dposerx_blender.blender import locks, rig_bridge
from dposerx_blender.blender.props import ADDON_PACKAGE
from dposerx_blender.core.skeleton import JOINT_INDEX


def fake_tasks():
    return sys.modules["dposerx_blender.core.tasks"]


# 1. Pins belong to a rig ------------------------------------------------------------------------------------


def add_pin(ob, bone, lift):
    select_bones(ob, {bone})
    ob.data.bones.active = ob.data.bones[bone]
    bpy.ops.dposerx.add_pin()
    pin = bpy.context.scene.objects[f"Pin {bone}"]
    pin.location.z += lift
    bpy.ops.object.mode_set(mode='OBJECT')
    return pin


def test_pins_pull_only_their_own_rig(calls, monkeypatch, capfd):
    rig_a, rig_b = make_rig("A"), make_rig("B")
    add_pin(rig_a, "left_wrist", 0.2)
    bpy.context.view_layer.objects.active = rig_b
    with pytest.raises(RuntimeError, match="No targets for 'B'"):
        bpy.ops.dposerx.pin_to_target()
    assert not calls  # the solver never ran with A's pin
    add_pin(rig_b, "right_wrist", 0.2)
    bpy.context.view_layer.objects.active = rig_b
    solve = fake_tasks().solve_pins

    def unreachable(*args, **kwargs):
        result = solve(*args, **kwargs)
        return SimpleNamespace(pose=result.pose, residual_mm={j: 1754.0 for j in result.residual_mm})

    monkeypatch.setattr(fake_tasks(), "solve_pins", unreachable)
    capfd.readouterr()
    assert bpy.ops.dposerx.pin_to_target() == {'FINISHED'}
    assert list(calls[-1][1]["targets"]) == [JOINT_INDEX["right_wrist"]]
    out = capfd.readouterr().out
    assert "Warning" in out and "not reached: right_wrist (1754 mm away)" in out


# 2. Locks give back exactly what they took ------------------------------------------------------------------


def test_unlock_gives_back_colours_and_partial_padlocks(capfd):
    ob = mpi_rig()
    knee, elbow, head = (ob.pose.bones[n] for n in ("left_knee", "left_elbow", "head"))
    knee.color.palette = 'THEME03'
    elbow.lock_rotation = (False, True, True)  # the rig's own partial lock: not a DPoser-X lock
    head.lock_rotation, head.lock_rotation_w = (True, True, True), True  # a full padlock counts as locked
    select_bones(ob, {"left_knee", "left_elbow"})
    bpy.ops.dposerx.lock_selected()
    rig = rig_bridge.find_rig(ob)
    assert np.flatnonzero(locks.locked_mask(rig)).tolist() == [4, 15, 18]
    assert knee.color.palette == locks.LOCKED_PALETTE
    assert not any(knee.lock_rotation) and tuple(elbow.lock_rotation) == (False, True, True)  # rotatable by hand
    capfd.readouterr()
    bpy.ops.dposerx.unlock_all()
    assert "Unlocked 2 bone(s)" in capfd.readouterr().out
    assert knee.color.palette == 'THEME03' and elbow.color.palette == 'DEFAULT'
    assert tuple(elbow.lock_rotation) == (False, True, True) and all(head.lock_rotation)
    assert np.flatnonzero(locks.locked_mask(rig)).tolist() == [15]  # the padlocked head stays locked
    bpy.ops.dposerx.unlock_all()
    assert "Unlocked 0 bone(s)" in capfd.readouterr().out


def test_locked_bone_can_be_rotated_by_hand():
    ob = mpi_rig()
    select_bones(ob, {"left_elbow"})
    bpy.ops.dposerx.lock_selected()
    elbow = ob.pose.bones["left_elbow"]
    before = elbow.matrix_basis.copy()
    window = bpy.context.window_manager.windows[0]
    area = next(a for a in window.screen.areas)
    with bpy.context.temp_override(window=window, area=area):
        bpy.ops.transform.rotate(value=0.5, orient_axis='X', orient_type='LOCAL')
    assert not np.allclose(np.array(elbow.matrix_basis), np.array(before))
    assert locks.is_locked(elbow)


# 3. Every slider's range is one the operator accepts ----------------------------------------------------------


def test_vary_slider_range_is_accepted_by_the_prior():
    ob, rig = posed_rig(project_rig)
    settings = bpy.context.scene.dposerx
    settings.vary_strength = 0.0  # the slider's lower end
    assert settings.vary_strength > 0
    from dposerx_blender.blender.props import preferences

    preferences(bpy.context).threads = 1
    assert bpy.ops.dposerx.vary_pose() == {'FINISHED'}


# 8. Preferences fall back to their defaults ------------------------------------------------------------------


def test_jobs_run_when_registered_without_preferences(calls):
    addons = bpy.context.preferences.addons
    addons.remove(addons[ADDON_PACKAGE])
    posed_rig(mpi_rig)
    assert bpy.ops.dposerx.vary_pose() == {'FINISHED'}


# 4. Pose assets store what the keys change, under unique names -----------------------------------------------


def bones_of(channelbag):
    return {fc.data_path.split('"')[1] for fc in channelbag.fcurves}


def test_pose_assets_match_the_keys(calls):
    from dposerx_blender.blender import keyframes

    ob, rig = posed_rig(mpi_rig, locked=("left_elbow",))
    settings = bpy.context.scene.dposerx
    settings.part_hands, settings.library_conditioned = False, False
    settings.library_count, settings.library_keys = 2, True
    assert bpy.ops.dposerx.generate_library() == {'FINISHED'}
    keyed = bones_of(keyframes.object_channelbag(ob))
    assert "left_elbow" not in keyed and "left_index1" not in keyed and "left_knee" in keyed
    assets = sorted((a for a in bpy.data.actions if a.asset_data), key=lambda a: a.name)
    assert [a.name for a in assets] == ["DPoser-X pose 001", "DPoser-X pose 002"]
    for action in assets:
        assert bones_of(action.layers[0].strips[0].channelbags[0]) == keyed
    objects, scenes, meshes = (sorted(getattr(bpy.data, n).keys()) for n in ("objects", "scenes", "meshes"))
    assert bpy.ops.dposerx.generate_library() == {'FINISHED'}
    names = sorted(a.name for a in bpy.data.actions if a.asset_data)
    assert names == [f"DPoser-X pose {i:03d}" for i in range(1, 5)]
    for action in bpy.data.actions:
        if action.asset_data:  # a thumbnail with a figure on a transparent background
            alpha = np.array(action.preview.image_pixels_float[:]).reshape(-1, 4)[:, 3]
            assert tuple(action.preview.image_size) == (128, 128) and 0.02 < (alpha > 0.5).mean() < 0.5
    assert [sorted(getattr(bpy.data, n).keys()) for n in ("objects", "scenes", "meshes")] == [objects, scenes, meshes]


# 5. Next Hypothesis keeps manual edits ------------------------------------------------------------------------


def test_next_hypothesis_keeps_manual_edits_and_their_keys(calls, capfd):
    ob, rig = posed_rig(mpi_rig)
    bpy.context.scene.tool_settings.use_keyframe_insert_auto = True
    bpy.context.scene.frame_set(3)
    assert bpy.ops.dposerx.complete_pose() == {'FINISHED'}
    wrist = ob.pose.bones["left_wrist"]
    wrist.rotation_quaternion = (0.8, 0.6, 0.0, 0.0)  # the animator's edit, keyed as auto-keying would
    wrist.keyframe_insert("rotation_quaternion", frame=3)
    edited = tuple(wrist.rotation_quaternion)
    shoulder = tuple(ob.pose.bones["right_shoulder"].rotation_quaternion)
    capfd.readouterr()
    assert bpy.ops.dposerx.cycle_hypothesis(step=1) == {'FINISHED'}
    assert "kept your edits to 1 bone(s): left_wrist" in capfd.readouterr().out
    assert tuple(wrist.rotation_quaternion) == edited
    assert tuple(ob.pose.bones["right_shoulder"].rotation_quaternion) != shoulder  # the rest moved on
    bpy.context.scene.frame_set(3)
    assert np.allclose(tuple(wrist.rotation_quaternion), edited, atol=1e-6)  # the edit's key survived


# 6. Constraints: the visual pose is read, overrides are reported ------------------------------------------------


def ik_arm():
    """The project's skeleton with an IK constraint bending the left arm towards a target near the chest."""
    ob = project_rig()
    target = bpy.data.objects.new("IK target", None)
    bpy.context.scene.collection.objects.link(target)
    wrist = ob.matrix_world @ ob.pose.bones["left_wrist"].head
    shoulder = ob.matrix_world @ ob.pose.bones["left_shoulder"].head
    target.location = shoulder + (wrist - shoulder) * 0.6 + type(wrist)((0, -0.15, 0))
    ik = ob.pose.bones["left_elbow"].constraints.new('IK')
    ik.target, ik.chain_count = target, 2
    bpy.context.view_layer.update()
    return ob, rig_bridge.find_rig(ob)


def test_constraint_driven_bones_are_read_as_seen(calls):
    ob, rig = ik_arm()
    elbow = JOINT_INDEX["left_elbow"]
    bent = np.linalg.norm(rig_bridge.read_pose(rig).reshape(55, 3)[elbow])
    assert np.degrees(bent) > 5  # the channels alone say 0
    assert np.linalg.norm(rig_bridge.read_pose(rig, visual=False).reshape(55, 3)[elbow]) == 0
    select_bones(ob, {"left_elbow", "left_shoulder", "pelvis"})
    bpy.ops.dposerx.lock_selected()
    assert bpy.ops.dposerx.complete_pose() == {'FINISHED'}
    observed_pose = calls[0][1]["pose"].reshape(55, 3)
    assert np.isclose(np.linalg.norm(observed_pose[elbow]), bent)


def test_constraint_overriding_a_written_bone_is_reported(calls, capfd):
    ob, rig = ik_arm()
    select_bones(ob, {"pelvis", "head"})
    bpy.ops.dposerx.lock_selected()
    capfd.readouterr()
    assert bpy.ops.dposerx.complete_pose() == {'FINISHED'}
    out = capfd.readouterr().out
    assert "Warning" in out and "constraints override 2 bone(s): left_shoulder, left_elbow" in out


# 7. Export defaults to the keyed range; import extends the scene range (an option) -----------------------------


def test_export_defaults_to_the_keyed_range(tmp_path):
    from dposerx_blender.core.amass import AmassMotion, read_amass_npz, write_amass_npz

    rng = np.random.default_rng(0)
    write_amass_npz(tmp_path / "in.npz", AmassMotion(rng.normal(scale=0.3, size=(120, 165)), np.zeros((120, 3)), 30.0))
    scene = bpy.context.scene
    scene.render.fps, scene.frame_start, scene.frame_end = 30, 1, 250  # a default scene
    assert bpy.ops.dposerx.import_smplx_npz(filepath=str(tmp_path / "in.npz")) == {'FINISHED'}
    assert scene.frame_end == 250  # extends only, never shortens
    assert bpy.ops.dposerx.export_smplx_npz(filepath=str(tmp_path / "out.npz")) == {'FINISHED'}
    assert len(read_amass_npz(tmp_path / "out.npz").poses) == 120


@pytest.mark.parametrize("extend", [True, False])
def test_import_extends_the_scene_range_when_asked(tmp_path, extend):
    from dposerx_blender.core.amass import AmassMotion, write_amass_npz

    write_amass_npz(tmp_path / "in.npz", AmassMotion(np.zeros((80, 165)), np.zeros((80, 3)), 30.0))
    scene = bpy.context.scene
    scene.render.fps, scene.frame_start, scene.frame_end = 30, 1, 50
    bpy.ops.dposerx.import_smplx_npz(filepath=str(tmp_path / "in.npz"), extend_scene=extend)
    assert scene.frame_end == (80 if extend else 50)


# 9. A licence-free body ---------------------------------------------------------------------------------------


def evaluated_vertices(body):
    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = body.evaluated_get(depsgraph).to_mesh()
    co = np.zeros(3 * len(mesh.vertices))
    mesh.vertices.foreach_get("co", co)
    body.evaluated_get(depsgraph).to_mesh_clear()
    return co.reshape(-1, 3)


def test_skeleton_comes_with_a_skinned_mannequin():
    ob = project_rig()
    body, = (o for o in bpy.data.objects if o.type == 'MESH' and o.parent == ob)
    assert [m.object for m in body.modifiers if m.type == 'ARMATURE'] == [ob]
    assert bpy.context.object == ob and body.parent == ob
    groups = {g.index: g.name for g in body.vertex_groups}
    weights = [[(groups[g.group], g.weight) for g in v.groups] for v in body.data.vertices]
    assert all(len(w) == 1 and w[0][1] == 1.0 for w in weights)  # each vertex follows exactly one bone
    weighted = {w[0][0] for w in weights}
    assert {f"{side}_{finger}{k}" for side in ("left", "right") for finger in ("thumb", "index", "middle", "ring",
                                                                                "pinky") for k in (1, 2, 3)} <= weighted
    heights = evaluated_vertices(body)[:, 2]
    assert -0.03 < heights.min() < 0.02 and 1.6 < heights.max() < 1.85  # stands on the floor, about 1.7 m tall
    rig = rig_bridge.find_rig(ob)
    hand = [i for i, w in enumerate(weights) if w[0][0] == "left_index3"]
    before = evaluated_vertices(body)[hand]
    rig_bridge.apply_pose(rig, _bent_elbow(), range(55))
    bpy.context.view_layer.update()
    assert np.linalg.norm(evaluated_vertices(body)[hand] - before, axis=1).min() > 0.1  # the finger follows


def test_mannequin_fits_a_centimetre_rig():
    from dposerx_blender.blender import mannequin

    ob = meshcapade_rig()
    body = mannequin.add_mannequin(rig_bridge.find_rig(ob))
    bpy.context.view_layer.update()
    world = np.array([body.matrix_world @ v.co for v in body.data.vertices])
    feet = np.array(ob.matrix_world @ ob.data.bones["left_ankle"].head_local)
    assert 1.6 < np.ptp(world[:, 2]) < 1.85 and world[:, 2].min() < feet[2]  # metres, upright, feet at the ankles


def _bent_elbow():
    pose = np.zeros((55, 3))
    pose[JOINT_INDEX["left_elbow"]] = (0.0, 1.5, 0.0)
    return pose.ravel()


def test_skeleton_without_body_and_operators_on_a_body_mesh(calls):
    from dposerx_blender.blender import mannequin

    bpy.ops.dposerx.add_skeleton(body=False)
    assert not mannequin.bodies(bpy.context.object)
    ob, rig = posed_rig(mpi_rig)
    bpy.ops.object.mode_set(mode='OBJECT')
    body = mannequin.add_mannequin(rig)  # stands in for the SMPL-X add-on's mesh: a mesh with an Armature modifier
    bpy.context.view_layer.objects.active = body
    assert bpy.ops.dposerx.vary_pose.poll() and bpy.ops.dposerx.vary_pose() == {'FINISHED'}
    assert calls[-1][0] == "vary"
