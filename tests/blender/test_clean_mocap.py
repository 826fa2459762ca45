"""Clean Mocap's keys: the range defaults to the action's keyed range, only existing keys change (sparse stays
sparse, dense stays dense, interpolation kept), and bones without curves get none unless Key Still Bones."""
import sys

import bpy
import numpy as np
import pytest
from conftest import mpi_rig

from dposerx_blender.blender import keyframes, rig_bridge
from dposerx_blender.core.skeleton import JOINT_INDEX

SPARSE = ("left_knee", "right_elbow", "spine1")  # the only bones keyed in the sparse action
OFFSET = 0.05  # what the fake cleaner adds to every free body joint's axis-angle components


@pytest.fixture
def cleaner(calls, monkeypatch):
    """A fake denoise_track that moves every free body joint by OFFSET and records the track it got."""
    seen = []

    def denoise_track(prior, track, locked=None, **kwargs):
        seen.append(track)
        out = np.array(track).reshape(len(track), 55, 3)
        body = np.zeros(55, bool)
        body[1:22] = True
        out[:, body & ~locked] += OFFSET
        return out.reshape(len(track), 165)

    monkeypatch.setattr(sys.modules["dposerx_blender.core.tasks"], "denoise_track", denoise_track)
    return seen


def curves(ob) -> dict:
    """(data_path, index) -> (key frames, interpolation names) of every F-curve of the rig's action."""
    channelbag = keyframes.object_channelbag(ob, create=False)
    return {(fc.data_path, fc.array_index): (tuple(keyframes.key_frames(fc)),
                                             tuple(k.interpolation for k in fc.keyframe_points))
            for fc in channelbag.fcurves}


def sparse_bezier_action():
    """Three Bezier keys per curve (frames 5, 20, 40) on SPARSE bones only, as an animator's blocking pass."""
    ob = mpi_rig()
    for name in SPARSE:
        pose_bone = ob.pose.bones[name]
        pose_bone.rotation_mode = 'QUATERNION'
        for frame, angle in ((5, 0.1), (20, 0.6), (40, 0.2)):
            pose_bone.rotation_quaternion = (np.cos(angle / 2), np.sin(angle / 2), 0, 0)
            pose_bone.keyframe_insert("rotation_quaternion", frame=frame)
    return ob


def test_sparse_bezier_keys_stay_sparse_and_bezier_over_the_action_range(cleaner):
    ob = sparse_bezier_action()
    rig = rig_bridge.find_rig(ob)
    before = curves(ob)
    assert {interp for _, (_, interps) in before.items() for interp in interps} == {'BEZIER'}
    bpy.context.scene.dposerx.clean_start, bpy.context.scene.dposerx.clean_end = 1, 250  # ignored: Whole Action
    expected = rig_bridge.read_track(rig, np.arange(5, 41, dtype=float))
    assert bpy.ops.dposerx.clean_mocap() == {'FINISHED'}
    assert len(cleaner) == 1 and cleaner[0].shape == (36, 165)  # frames 5..40, the action's keyed range
    assert curves(ob) == before  # same curves, same key frames, same interpolation: no new F-curves
    keyed = np.array([5.0, 20.0, 40.0])
    after = rig_bridge.read_track(rig, keyed).reshape(3, 55, 3)
    wanted = expected.reshape(-1, 55, 3)[(keyed - 5).astype(int)]
    for name in SPARSE:  # the keys carry the cleaned rotations
        j = JOINT_INDEX[name]
        np.testing.assert_allclose(after[:, j], wanted[:, j] + OFFSET, atol=1e-5)
    still = JOINT_INDEX["left_hip"]  # not keyed: no curve was added, it keeps its rest rotation
    np.testing.assert_allclose(after[:, still], 0.0, atol=1e-6)


def test_dense_capture_stays_keyed_on_every_frame(cleaner):
    ob = mpi_rig()
    rig = rig_bridge.find_rig(ob)
    poses = np.random.default_rng(0).normal(scale=0.2, size=(30, 165))
    frames = np.arange(11, 41, dtype=float)
    rig_bridge.key_track(rig, poses, range(55), frames)
    before = curves(ob)
    track = rig_bridge.read_track(rig, frames)
    assert bpy.ops.dposerx.clean_mocap() == {'FINISHED'}
    assert cleaner[0].shape == (30, 165)
    assert curves(ob) == before  # 30 keys per curve, all still LINEAR
    after = rig_bridge.read_track(rig, frames).reshape(30, 55, 3)
    expected = track.reshape(30, 55, 3)
    np.testing.assert_allclose(after[:, 1:22], expected[:, 1:22] + OFFSET, atol=1e-5)
    np.testing.assert_allclose(after[:, 22:], expected[:, 22:], atol=1e-6)


def test_custom_range_changes_only_its_keys(cleaner):
    ob = mpi_rig()
    rig = rig_bridge.find_rig(ob)
    frames = np.arange(1, 31, dtype=float)
    rig_bridge.key_track(rig, np.random.default_rng(1).normal(scale=0.2, size=(30, 165)), range(55), frames)
    track = rig_bridge.read_track(rig, frames)
    settings = bpy.context.scene.dposerx
    settings.clean_action_range = False
    settings.clean_start, settings.clean_end = 10, 20
    assert bpy.ops.dposerx.clean_mocap() == {'FINISHED'}
    assert cleaner[0].shape == (11, 165)
    moved = np.abs(rig_bridge.read_track(rig, frames) - track).reshape(30, 55, 3)[:, 1:22].max(axis=(1, 2))
    assert (moved[9:20] > OFFSET / 2).all() and (moved[:9] < 1e-6).all() and (moved[20:] < 1e-6).all()


def test_key_still_bones_adds_curves_only_when_asked(cleaner):
    ob = sparse_bezier_action()
    bpy.context.scene.dposerx.clean_add_curves = True
    before = curves(ob)
    assert bpy.ops.dposerx.clean_mocap() == {'FINISHED'}
    after = curves(ob)
    assert all(after[key] == value for key, value in before.items())  # existing curves keep keys and shape
    added = {path for path, _ in set(after) - set(before)}
    assert 'pose.bones["left_hip"].rotation_quaternion' in added
    assert not any(f'"{name}"' in path for path in added for name in SPARSE)
