"""Rig bridge on the project's skeleton, MPI-style (+Z bones), Meshcapade-style (+Y bones, cm, rotated object)
and random-roll rigs, in every rotation mode."""
import bpy
import numpy as np
import pytest
import torch
from conftest import make_rig, meshcapade_rig, mpi_rig, project_rig, random_pose

from dposerx_blender.blender import rig_bridge
from dposerx_blender.core import rig_math
from dposerx_blender.core.errors import DPoserError
from dposerx_blender.core.rotations import axis_angle_to_matrix
from dposerx_blender.core.skeleton import forward_kinematics

RIGS = {
    "project": project_rig,
    "mpi": mpi_rig,
    "meshcapade": meshcapade_rig,
    "random_roll": lambda: make_rig(bone_vector="random", roll="random"),
}
MODES = list(rig_math.CHANNEL_SIZES)


@pytest.mark.parametrize("make", RIGS.values(), ids=RIGS.keys())
def test_round_trip_every_rotation_mode(make):
    rig = rig_bridge.find_rig(make())
    for j, pose_bone in enumerate(rig.pose_bones):
        pose_bone.rotation_mode = MODES[j % len(MODES)]
    pose = random_pose(1)
    rig_bridge.apply_pose(rig, pose, range(55))
    assert np.abs(rig_bridge.read_pose(rig) - pose).max() < 1e-6
    assert [pb.rotation_mode for pb in rig.pose_bones] == [MODES[j % len(MODES)] for j in range(55)]


@pytest.mark.parametrize("make", RIGS.values(), ids=RIGS.keys())
def test_posed_joints_match_smplx_forward_kinematics(make):
    """The formula means what SMPL-X means: Blender's posed bone heads equal FK on the rig's rest joints."""
    rig = rig_bridge.find_rig(make())
    pose = random_pose(2)
    rig_bridge.apply_pose(rig, pose, range(55))
    bpy.context.view_layer.update()
    rest = rig_bridge.rest_joints(rig)
    rot_mats = axis_angle_to_matrix(torch.from_numpy(pose.reshape(1, 55, 3)))
    expected = forward_kinematics(rot_mats, rest)[0].numpy()
    world = rig.object.matrix_world
    posed = np.array([rig_bridge.world_to_smplx(rig, world @ pb.head) for pb in rig.pose_bones])
    assert np.abs(posed - expected).max() < 1e-5  # metres, float32 bone matrices


def test_meshcapade_rest_joints_in_metres():
    rest = rig_bridge.rest_joints(rig_bridge.find_rig(meshcapade_rig()))
    mpi = rig_bridge.rest_joints(rig_bridge.find_rig(mpi_rig()))
    assert np.abs(rest - mpi).max() < 1e-6


def test_detects_eye_aliases_and_optional_root():
    rig = rig_bridge.find_rig(meshcapade_rig())
    assert rig.bone_names[23] == "left_eye" and rig.root is None
    assert rig_bridge.find_rig(mpi_rig()).root == "root"


def test_track_reads_keys_frame_by_frame():
    rig = rig_bridge.find_rig(mpi_rig())
    poses = np.stack([random_pose(s, 0.3) for s in range(4)])
    frames = np.array([3.0, 4.0, 5.0, 6.0])
    rig_bridge.key_track(rig, poses, range(55), frames)
    assert np.abs(rig_bridge.read_track(rig, frames) - poses).max() < 1e-6


@pytest.mark.parametrize("rig_kwargs, message", [
    (dict(skip=("left_knee", "right_thumb3")), "lacks SMPL-X bones: left_knee, right_thumb3"),
    (dict(skip=tuple(n for n in rig_bridge.JOINT_NAMES if n not in ("pelvis", "spine1"))),
     "not an SMPL-X armature"),
])
def test_bad_rigs_are_named(rig_kwargs, message):
    with pytest.raises(DPoserError, match=message):
        rig_bridge.find_rig(make_rig(**rig_kwargs))


def test_nan_rotation_is_reported():
    rig = rig_bridge.find_rig(mpi_rig())
    rig.pose_bones[4].rotation_quaternion = (float("nan"), 0, 0, 0)
    with pytest.raises(DPoserError, match="left_knee"):
        rig_bridge.read_pose(rig)
