"""Rig maps without Blender: presets resolved on armature layouts named like them (tests/rig_specs.py), SMPL-X
pose -> bone rotations -> SMPL-X round trips, partial and bad maps, and the aim fallbacks for optional joints."""
from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dposerx_blender.core.errors import DPoserError
from dposerx_blender.core.mocap.retarget import JointMap, detected_maps, load_joint_maps
from dposerx_blender.core.rig_map import ArmatureMap, ArmatureRest, bases_for, pass_steps, posed_deltas, stepped
from dposerx_blender.core.skeleton import JOINT_INDEX
from tests.rig_specs import TEST_RIGS, mapped_pose, preset_layout, rotation_errors_degrees


def armature(bones, seed=0) -> ArmatureRest:
    """Bone frames with Y along the bone and a random roll, as any rig may have."""
    rng = np.random.default_rng(seed)
    rest = []
    for bone in bones:
        y = (bone.tail - bone.head) / np.linalg.norm(bone.tail - bone.head)
        x = np.cross(y, rng.normal(size=3))
        x /= np.linalg.norm(x)
        rest.append(np.stack([x, y, np.cross(x, y)], axis=1))
    return ArmatureRest.from_bones([b.name for b in bones], [b.parent for b in bones], np.array(rest),
                                   [b.head for b in bones], [b.tail for b in bones])


def fitted(name, seed=0):
    spec = dict(TEST_RIGS[name])
    layout = preset_layout(**spec)
    arm = armature(layout, seed)
    joint_map, lacking = load_joint_maps()[spec["preset"]].resolve(arm.names)
    return ArmatureMap(joint_map, arm), lacking


@pytest.mark.parametrize("name", sorted(TEST_RIGS))
def test_detects_its_preset(name):
    names = [b.name for b in preset_layout(**TEST_RIGS[name])]
    assert detected_maps(names, load_joint_maps(), prefer="rig")[0].name == TEST_RIGS[name]["preset"]


def test_mixamo_prefix_is_recognised():
    names = ["mixamorig:" + b.name for b in preset_layout(**TEST_RIGS["mixamo"])]
    joint_map = detected_maps(names, load_joint_maps(), prefer="rig")[0]
    resolved, _ = joint_map.resolve(names)
    assert joint_map.name == "mixamo" and resolved.joints["left_elbow"] == "mixamorig:LeftForeArm"


@pytest.mark.parametrize("name", sorted(TEST_RIGS))
def test_round_trip_through_bone_bases(name):
    """pose -> written bone deltas -> bases (Blender's FK inverse) -> FK -> read: every mapped joint within 0.5 deg
    (in fact to float precision), whatever the rolls, A-pose, scale and unmapped helper bones."""
    rig, _ = fitted(name)
    assert round_trip_errors(rig).max() < 1e-6


def test_round_trip_with_a_calibrated_map():
    """A map's [calibration] (issue 11's per-rig rotations) is undone on writing: the round trip stays exact."""
    rig, _ = fitted("mixamo")
    calibration = {"spine3": [4.0, 0.0, 0.0], "left_collar": [0.0, 0.0, 12.0], "head": [0.0, 6.0, -3.0]}
    assert set(calibration) <= set(rig.joint_map.joints)
    calibrated = ArmatureMap(replace(rig.joint_map, calibration=calibration), rig.armature)
    assert round_trip_errors(calibrated).max() < 1e-6
    rest = np.broadcast_to(np.eye(3), (1,) + rig.armature.rest.shape)
    turned = rotation_errors_degrees(rig.read(rest), calibrated.read(rest))[0]
    assert turned[JOINT_INDEX["spine3"]] > 3 and turned[JOINT_INDEX["left_collar"]] > 10  # the calibration is used


def round_trip_errors(rig: ArmatureMap) -> np.ndarray:
    """pose -> written bone deltas -> bases -> FK -> read: degrees (4, mapped joints)."""
    arm = rig.armature
    poses = np.stack([mapped_pose(rig.mapped, seed) for seed in range(4)])
    current = np.broadcast_to(np.eye(3), arm.rest.shape)
    bases = np.broadcast_to(np.eye(3), (len(poses),) + arm.rest.shape).copy()
    targets = rig.write(poses)
    for b, basis in bases_for(arm, current, {b: np.eye(3) for b in targets}, targets).items():
        bases[:, b] = basis
    back = rig.read(posed_deltas(arm, bases))
    return rotation_errors_degrees(poses, back)[:, rig.mapped]


def test_rest_pose_reads_as_the_rest_geometry():
    """An A-pose rest reads as arms lowered (the geometry), not as SMPL-X's zero pose; a T-pose rest reads as zero."""
    mixamo, _ = fitted("mixamo")
    rest_pose = mixamo.read(np.broadcast_to(np.eye(3), (1,) + mixamo.armature.rest.shape))[0].reshape(55, 3)
    assert np.degrees(np.linalg.norm(rest_pose[16])) == pytest.approx(45, abs=1.0)  # left_shoulder
    ue4, _ = fitted("ue4_mannequin")
    rest_pose = ue4.read(np.broadcast_to(np.eye(3), (1,) + ue4.armature.rest.shape))[0].reshape(55, 3)
    assert np.degrees(np.linalg.norm(rest_pose[1:], axis=-1)).max() < 1e-6


def test_calibrated_reference_pose_reads_as_zero():
    """Rest calibration: the pose the user calls the rest reads as SMPL-X's rest geometry (here an odd rest with the
    forearms turned 90 degrees: calibrated from a pose that turns them back)."""
    rig, _ = fitted("ue4_mannequin")
    arm = rig.armature
    reference = np.broadcast_to(np.eye(3), arm.rest.shape).copy()
    reference[arm.index("lowerarm_l")] = Rotation.from_rotvec([0, 0, 1.0]).as_matrix()
    calibrated = ArmatureMap(rig.joint_map, arm, reference)
    pose = mapped_pose(calibrated.mapped, 3)
    deltas = np.broadcast_to(np.eye(3), (1,) + arm.rest.shape).copy()
    for b, delta in calibrated.write(pose[None]).items():
        deltas[:, b] = delta
    assert rotation_errors_degrees(pose, calibrated.read(deltas)[0])[calibrated.mapped].max() < 1e-6
    assert not np.allclose(calibrated.read(deltas), rig.read(deltas))


def test_partial_map_reports_missing_optional_joints_and_refuses_required_ones():
    names = [b.name for b in preset_layout(**TEST_RIGS["vrm_humanoid"])]
    _, lacking = load_joint_maps()["vrm_humanoid"].resolve(names)
    assert lacking == ("spine3",)
    without_elbow = [n for n in names if n != "leftLowerArm"]
    with pytest.raises(DPoserError, match="left_elbow.*leftLowerArm or J_Bip_L_LowerArm"):
        load_joint_maps()["vrm_humanoid"].resolve(without_elbow)


def test_missing_spine_joints_aim_down_the_chain():
    """VRM without upperChest: spine2 aims at the neck and SMPL-X's spine3 is not modelled."""
    rig, _ = fitted("vrm_humanoid")
    assert rig.joint_map.aim("spine2") == ("spine2", ("neck",))
    assert not rig.mapped[9] and rig.mapped[6]


def test_bad_map_is_refused():
    with pytest.raises(DPoserError, match="not SMPL-X joint names: left_arm"):
        JointMap.from_dict({"joints": {"left_arm": "x"}}, "bad", "my map")
    with pytest.raises(DPoserError, match="must be mapped: .*left_knee"):
        JointMap.from_dict({"joints": {"pelvis": "Hips"}}, "bad", "my map")


def test_twist_pairs_carry_their_segment():
    """Daz Genesis 8: the twist bone's rotation is read as the segment's; writing straightens it."""
    layout = preset_layout("daz_genesis8", a_pose_degrees=30.0, scale=100.0,
                           skip=("left_eye_smplhf", "right_eye_smplhf"))
    arm = armature(layout, 2)
    joint_map, _ = load_joint_maps()["daz_genesis8"].resolve(arm.names)
    rig = ArmatureMap(joint_map, arm)
    pose = mapped_pose(rig.mapped, 9)
    written = rig.write(pose[None])
    shoulder, twist = arm.index("lShldrBend"), arm.index("lShldrTwist")
    assert np.allclose(written[shoulder], written[twist])
    # A twist about the upper arm put on the twist bone alone reads as the shoulder's rotation.
    deltas = np.broadcast_to(np.eye(3), (1,) + arm.rest.shape).copy()
    axis = arm.tails[twist] - arm.heads[twist]
    turn = Rotation.from_rotvec(0.5 * axis / np.linalg.norm(axis)).as_matrix()
    for b in range(len(arm.names)):
        if b == twist or arm.parents[b] >= 0 and _descends(arm, b, twist):
            deltas[0, b] = turn
    at_rest = rig.read(np.broadcast_to(np.eye(3), deltas.shape))
    assert rotation_errors_degrees(at_rest, rig.read(deltas))[0, 16] == pytest.approx(np.degrees(0.5), abs=1e-6)


def _descends(arm, b, ancestor):
    while b >= 0:
        if b == ancestor:
            return True
        b = arm.parents[b]
    return False


def test_map_file_round_trip(tmp_path):
    """Saved maps (Rig Map > Save) load back as the same map, calibration and rest frame included."""
    for name in ("rigify", "daz_genesis8", "vrm_humanoid", "cmu_bvh", "iclone_bvh"):  # with calibration, rest_frame
        joint_map = load_joint_maps()[name]
        (tmp_path / f"{name}.toml").write_text(joint_map.to_toml())
        assert JointMap.load(tmp_path / f"{name}.toml") == joint_map


CGSPEED_3DSMAX = ["Hips", "LHipJoint", "LeftHip", "LeftKnee", "LeftAnkle", "LeftToe", "LeftToe_end", "RHipJoint",
                  "RightHip", "RightKnee", "RightAnkle", "RightToe", "RightToe_end", "lowerback", "Chest", "Chest2",
                  "lowerneck", "Neck", "Head", "Head_end", "LeftCollar", "LeftShoulder", "LeftElbow", "LeftWrist",
                  "lhand", "LFingers", "LFingers_end", "LThumb", "RightCollar", "RightShoulder", "RightElbow",
                  "RightWrist", "rhand", "RFingers", "RFingers_end", "RThumb"]


def test_cgspeed_3dsmax_bvh_names_have_a_map():
    from dposerx_blender.core.mocap.motion import Motion
    from dposerx_blender.core.mocap.retarget import detect_joint_map

    motion = Motion("cmu_3dsmax", CGSPEED_3DSMAX, np.r_[-1, np.zeros(len(CGSPEED_3DSMAX) - 1, int)],
                    np.zeros((len(CGSPEED_3DSMAX), 3)), np.broadcast_to(np.eye(3), (1, len(CGSPEED_3DSMAX), 3, 3)),
                    np.zeros((1, 3)), 120.0)
    assert detect_joint_map(motion).name == "cgspeed_3dsmax_bvh"


def test_refused_skeleton_says_how_to_add_a_map():
    from dposerx_blender.core.mocap.motion import Motion
    from dposerx_blender.core.mocap.retarget import detect_joint_map

    names = ["Root", "Thing"]
    motion = Motion("odd", names, np.array([-1, 0]), np.zeros((2, 3)), np.broadcast_to(np.eye(3), (1, 2, 3, 3)),
                    np.zeros((1, 3)), 30.0)
    with pytest.raises(DPoserError, match="no joint map recognises.*Joint maps are TOML files.*Rig Map"):
        detect_joint_map(motion)


def test_bones_copying_a_rotation_turn_with_their_leader():
    """A written bone hanging from a bone that copies another's rotation (Rigify's finger controls under the hand's
    DEF bone, which copies the ORG hand) is placed for where that leader goes, in one write; taken as following
    its own parent instead, it misses."""
    rng = np.random.default_rng(4)
    rest = Rotation.random(4, random_state=5).as_matrix()
    zeros = np.zeros((4, 3))
    # 0 root, 1 hand (child of root), 2 copy of 1's rotation (child of root), 3 finger (child of 2)
    arm = ArmatureRest(("root", "hand", "copy", "finger"), np.array([-1, 0, 0, 2]), rest, zeros, zeros + 1)

    def evaluated(bases):  # FK, then bone 2 copies bone 1's orientation (Copy Rotation in world space)
        deltas = posed_deltas(arm, bases[None])[0]
        deltas[2] = deltas[1] @ rest[1] @ rest[2].T
        deltas[3] = deltas[2] @ rest[3] @ bases[3] @ rest[3].T
        return deltas

    bases = Rotation.random(4, random_state=6).as_matrix()
    current = evaluated(bases)
    targets = {b: Rotation.from_rotvec(rng.normal(size=3)).as_matrix()[None] for b in (1, 3)}
    for copies, exact in (({2: ((1, 1.0),)}, True), (None, False)):
        found = bases_for(arm, current, {b: bases[b][None] for b in targets}, targets, copies=copies)
        written = bases.copy()
        written[1], written[3] = found[1][0], found[3][0]
        miss = np.degrees((Rotation.from_matrix(evaluated(written)[3]).inv()
                           * Rotation.from_matrix(targets[3][0])).magnitude())
        assert (miss < 1e-6) == exact


def test_secant_steps_finish_a_half_following_joint():
    """A joint that takes half of each correction (Rigify's spine twist) needs a step per halving with plain passes,
    and two or three with pass_steps; a joint whose error turns elsewhere keeps plain steps."""
    goal = np.array([[0.0, 0.4, 0.0], [0.3, 0.0, 0.1]])

    def passes(secant):
        achieved, previous, steps = np.zeros((2, 3)), None, np.ones(2)
        for count in range(1, 40):
            remaining = (Rotation.from_rotvec(achieved).inv() * Rotation.from_rotvec(goal)).as_rotvec()
            if np.degrees(np.linalg.norm(remaining, axis=-1)).max() < 0.01:
                return count - 1
            steps = pass_steps(remaining, previous, steps) if secant else np.ones(2)
            aimed = stepped(achieved, remaining, steps)
            # joint 0 follows half of what it is told, joint 1 all of it
            told = (Rotation.from_rotvec(achieved).inv() * Rotation.from_rotvec(aimed)).as_rotvec()
            achieved = stepped(achieved, told, np.array([0.5, 1.0]))
            previous = remaining
        return count

    assert passes(secant=False) >= 10 and passes(secant=True) <= 3
    turning = pass_steps(np.array([[0.0, 0.1, 0.0]]), np.array([[0.2, 0.0, 0.0]]), np.ones(1))
    assert turning.tolist() == [1.0]
