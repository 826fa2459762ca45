"""Retargeting any source skeleton onto SMPL-X by global-rotation transfer with per-bone rest alignment.

For every SMPL-X joint k mapped to a source joint (joint-map TOML in joint_maps/):
1. Frame: a rotation A takes the source world axes to SMPL-X canonical axes (+X subject's left, +Y up), found
   from the source rest pose (hips and shoulders give "left", pelvis-to-neck gives "up").
2. Rest alignment: R_align_k turns SMPL-X's rest bone k onto the source's rest bone (T-pose vs A-pose,
   different proportions), so the source's global rotation delta can be applied to the SMPL-X bone:
   reference_k(t) = A G_src(t) A^T R_align_k. Each R_align_k is the parent's alignment plus the smallest
   extra swing, so a rest bend at one joint (an A-pose shoulder) carries down its chain without twist.
3. Aim: the SMPL-X bone is then swung (smallest rotation) onto the source's posed bone direction, measured
   between the mapped joint positions, so intermediate source joints fold into their SMPL-X neighbours; its
   twist stays the one carried by the source's rotation.
Local rotations follow as parent_global^T @ global. Joints the map leaves out (fingers, jaw, eyes of sources
without them) stay at identity and are reported as absent.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..errors import DPoserError
from ..rig_math import Z_UP_TO_Y_UP
from ..skeleton import (BODY_JOINTS, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS, REST_JOINTS, TIP_OFFSETS,
                        forward_kinematics)

from .aim import aim, angle_between
from .calibration import calibration_matrices, settle_hinges
from .motion import Motion

JOINT_MAP_DIR = Path(__file__).with_name("joint_maps")
REQUIRED_JOINTS = ("pelvis",) + tuple(JOINT_NAMES[j] for j in BODY_JOINTS)
TIP = ()  # aim target meaning "this joint's own tip" (an end site in the source)
# A hand end site (sources without fingers) stands for the knuckles: SMPL-X's middle1.
TIP_STAND_INS = {"left_wrist": "left_middle1", "right_wrist": "right_middle1"}


def _aim_choices() -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """SMPL-X joint -> candidate aims in order of preference: (origin joint, target joints averaged, or TIP).

    Every origin and target is a child or tip of the joint (or the joint itself), so the aimed segment is
    rigid in the joint's frame."""
    choices = {
        # The pelvis aims along its hip axis: rigid with the pelvis in every source, unlike the spine base,
        # which some skeletons place exactly at the root.
        "pelvis": [("right_hip", ("left_hip",))],
        "spine3": [("spine3", ("neck",))],
        # Sources without a head-top end site give the head its direction through the eyes.
        "head": [("head", TIP), ("head", ("left_eye_smplhf", "right_eye_smplhf"))],
        "left_wrist": [("left_wrist", ("left_middle1",)), ("left_wrist", TIP)],
        "right_wrist": [("right_wrist", ("right_middle1",)), ("right_wrist", TIP)],
    }
    for j, name in enumerate(JOINT_NAMES):
        children = tuple(JOINT_NAMES[c] for c, p in enumerate(PARENTS) if p == j)
        choices.setdefault(name, [(name, children if len(children) == 1 else TIP)])
    return choices


AIM_CHOICES = _aim_choices()
# Plain-English aims for the report.
AIM_LABELS = {name: " or ".join(f"{o} -> {'+'.join(t) or 'tip'}" for o, t in options)
              for name, options in AIM_CHOICES.items()}


def _smplx_rest_point(name: str, targets: tuple[str, ...]) -> np.ndarray:
    """SMPL-X rest position of an aim's end: the mean of its target joints, or the joint's tip."""
    if targets:
        return np.mean([REST_JOINTS[JOINT_INDEX[t]] for t in targets], axis=0)
    j = JOINT_INDEX[name]
    return REST_JOINTS[j] + TIP_OFFSETS[j] if j in TIP_OFFSETS else REST_JOINTS[JOINT_INDEX[TIP_STAND_INS[name]]]


@dataclass(frozen=True)
class JointMap:
    """A source skeleton's mapping onto SMPL-X (parsed from a joint-map TOML)."""

    name: str
    description: str
    detect: tuple[str, ...]
    joints: dict  # SMPL-X name -> source joint name, or {"between": [a, b], "at": f}
    tips: dict    # SMPL-X leaf name -> source joint marking the far end of that segment
    rest_frame: int | None = None  # re-base the rest pose on this frame (rigs whose rest is not human)
    calibration: dict = field(default_factory=dict)  # SMPL-X name -> axis-angle degrees (see calibration.py)

    @classmethod
    def load(cls, path: str | Path) -> "JointMap":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise DPoserError(f"{path}: cannot read joint map ({exc})") from None
        joints = data.get("joints", {})
        unknown = sorted(set(joints) - set(JOINT_INDEX)) + sorted(set(data.get("tips", {})) - set(JOINT_INDEX)) \
            + sorted(set(data.get("calibration", {})) - set(joints))
        if unknown:
            raise DPoserError(f"{path}: not SMPL-X joint names (or calibrated joints not mapped): "
                              f"{', '.join(unknown)}")
        missing = [n for n in REQUIRED_JOINTS if n not in joints]
        if missing:
            raise DPoserError(f"{path}: every SMPL-X body joint must be mapped; missing {', '.join(missing)}")
        return cls(data.get("name", path.stem), data.get("description", ""), tuple(data.get("detect", ())),
                   joints, data.get("tips", {}), data.get("rest_frame"), data.get("calibration", {}))

    def source_names(self) -> set[str]:
        names = set()
        for entry in (*self.joints.values(), *self.tips.values()):
            names.update(entry["between"] if isinstance(entry, dict) else [entry])
        return names

    def aim(self, name: str) -> tuple[str, tuple[str, ...]] | None:
        """The first of joint `name`'s candidate aims this source can measure (None: it can measure none)."""
        if name not in self.joints:
            return None
        for origin, targets in AIM_CHOICES[name]:
            if all(t in self.joints for t in targets) and (targets or name in self.tips):
                return origin, targets
        return None


def load_joint_maps() -> dict[str, JointMap]:
    return {p.stem: JointMap.load(p) for p in sorted(JOINT_MAP_DIR.glob("*.toml"))}


def detect_joint_map(motion: Motion, maps: dict[str, JointMap] | None = None) -> JointMap:
    """The joint map whose `detect` names all occur in the motion's skeleton."""
    maps = load_joint_maps() if maps is None else maps
    names = set(motion.joint_names)
    for joint_map in maps.values():
        if joint_map.detect and set(joint_map.detect) <= names:
            return joint_map
    raise DPoserError(f"{motion.name}: no joint map recognises this skeleton "
                      f"(first joints: {', '.join(motion.joint_names[:8])})")


@dataclass
class Retargeted:
    """SMPL-X result of one source motion.

    poses (T, 165) axis-angle, global orientation in AMASS's Z-up world; trans (T, 3) metres (pelvis position,
    Z-up); fps; driven (55,) bool: joints whose own segment the source measures (others follow their parent); errors (T, 55) degrees between source
    and SMPL-X aimed bone directions (NaN where not measured); transfer_errors (T, 55) the same angle for plain
    global-rotation transfer, before the aim step; rest_mismatch (55,) degrees between the two rest bones
    before alignment.
    """

    poses: np.ndarray
    trans: np.ndarray
    fps: float
    driven: np.ndarray
    errors: np.ndarray
    transfer_errors: np.ndarray
    rest_mismatch: np.ndarray
    preview: dict  # a few frames for pictures: source/smplx joint positions (canonical axes, metres), parents
    name: str = ""
    rig: str = ""
    twists: dict = field(default_factory=dict)  # hinge twists settled on this take, degrees per bone


class _SourcePoints:
    """Positions and global rotations of the source at the SMPL-X joints and tips, in canonical axes."""

    def __init__(self, motion: Motion, joint_map: JointMap):
        missing = sorted(joint_map.source_names() - set(motion.joint_names))
        if missing:
            raise DPoserError(f"{motion.name}: joint map '{joint_map.name}' names joints this skeleton lacks: "
                              f"{', '.join(missing)}")
        self.motion, self.map = motion, joint_map
        self.rest = motion.rest_positions()
        self.posed = motion.positions()
        self.rotations = motion.global_rotations()
        self.frame = self._canonical_frame()

    def _lookup(self, entry, positions: np.ndarray) -> np.ndarray:
        if isinstance(entry, dict):
            a, b = (self.motion.index(n) for n in entry["between"])
            return (1 - entry["at"]) * positions[..., a, :] + entry["at"] * positions[..., b, :]
        return positions[..., self.motion.index(entry), :]

    def rest_point(self, name: str, tip: bool = False) -> np.ndarray:
        entry = self.map.tips[name] if tip else self.map.joints[name]
        return self.frame @ self._lookup(entry, self.rest)

    def posed_point(self, name: str, tip: bool = False) -> np.ndarray:
        entry = self.map.tips[name] if tip else self.map.joints[name]
        return self._lookup(entry, self.posed) @ self.frame.T

    def rotation(self, name: str) -> np.ndarray:
        """(T, 3, 3) source global rotation delta driving SMPL-X joint `name`, canonical axes."""
        entry = self.map.joints[name]
        source = entry["between"][0] if isinstance(entry, dict) else entry
        return self.frame @ self.rotations[:, self.motion.index(source)] @ self.frame.T

    def _canonical_frame(self) -> np.ndarray:
        """Rotation from source axes to SMPL-X's: the source's rest "left" (hips and shoulders) and "up"
        (pelvis to neck) are turned onto the same vectors of SMPL-X's rest skeleton."""
        def left_and_up(point):
            left = point("left_hip") - point("right_hip") + point("left_shoulder") - point("right_shoulder")
            return left, point("neck") - point("pelvis")

        source_left, source_up = left_and_up(lambda n: self._lookup(self.map.joints[n], self.rest))
        smplx_left, smplx_up = left_and_up(lambda n: REST_JOINTS[JOINT_INDEX[n]])
        return aim(np.eye(3)[None], source_left, smplx_left, source_up, smplx_up)[0]

    def scale(self) -> float:
        """SMPL-X rest leg length over the source's (source units -> metres)."""
        chain = ("left_hip", "left_knee", "left_ankle")
        source = sum(np.linalg.norm(self.rest_point(b) - self.rest_point(a)) for a, b in zip(chain, chain[1:]))
        target = sum(np.linalg.norm(REST_JOINTS[JOINT_INDEX[b]] - REST_JOINTS[JOINT_INDEX[a]])
                     for a, b in zip(chain, chain[1:]))
        return target / source


def _source_segment(name: str, aim_spec, points: _SourcePoints, posed: bool):
    """(start, end) of joint `name`'s aimed segment in the source, canonical axes."""
    point = points.posed_point if posed else points.rest_point
    origin, targets = aim_spec
    end = np.mean([point(t) for t in targets], axis=0) if targets else point(name, tip=True)
    return point(origin), end


def retarget(motion: Motion, joint_map: JointMap) -> Retargeted:
    """Retarget `motion` onto SMPL-X with `joint_map` (see the module docstring)."""
    if joint_map.rest_frame is not None:
        motion = motion.rebased(joint_map.rest_frame)
    points = _SourcePoints(motion, joint_map)
    n_frames = motion.num_frames
    identity = np.broadcast_to(np.eye(3), (n_frames, 3, 3))
    globals_ = np.empty((n_frames, NUM_JOINTS, 3, 3))
    aligns = np.empty((NUM_JOINTS, 3, 3))
    driven = np.zeros(NUM_JOINTS, bool)
    errors = np.full((n_frames, NUM_JOINTS), np.nan)
    transfer_errors = np.full((n_frames, NUM_JOINTS), np.nan)
    rest_mismatch = np.full(NUM_JOINTS, np.nan)
    for j, name in enumerate(JOINT_NAMES):
        parent_global = identity if PARENTS[j] < 0 else globals_[:, PARENTS[j]]
        aligns[j] = np.eye(3) if PARENTS[j] < 0 else aligns[PARENTS[j]]
        aim_spec = joint_map.aim(name)
        if aim_spec is None:
            globals_[:, j] = parent_global  # absent, or a leaf without an end: follows its parent
            continue
        driven[j] = True
        origin, targets = aim_spec
        rest_dir = _smplx_rest_point(name, targets) - REST_JOINTS[JOINT_INDEX[origin]]
        segment = _source_segment(name, aim_spec, points, posed=True)
        source_rest_start, source_rest_end = _source_segment(name, aim_spec, points, posed=False)
        source_rest_dir = source_rest_end - source_rest_start
        rest_mismatch[j] = angle_between(rest_dir, source_rest_dir)
        aligns[j] = aim(aligns[j][None], rest_dir, source_rest_dir)[0]
        reference = points.rotation(name) @ aligns[j]
        posed_dir = segment[1] - segment[0]
        # Degenerate source segments (coincident joints) keep the reference: nothing to aim at.
        degenerate = np.linalg.norm(posed_dir, axis=-1) < 1e-6 * np.linalg.norm(source_rest_dir)
        posed_dir = np.where(degenerate[:, None], reference @ rest_dir, posed_dir)
        transfer_errors[:, j] = angle_between(reference @ rest_dir, posed_dir)
        globals_[:, j] = aim(reference, rest_dir, posed_dir)
    calibration = calibration_matrices(joint_map.calibration)
    globals_ = globals_ @ calibration
    twists = settle_hinges(globals_)
    for j, p in enumerate(PARENTS):
        if not driven[j] and p >= 0:
            globals_[:, j] = globals_[:, p]
    locals_ = globals_.copy()
    for j, p in enumerate(PARENTS):
        if p >= 0:
            locals_[:, j] = np.swapaxes(globals_[:, p], -1, -2) @ globals_[:, j]
    locals_[:, 0] = Z_UP_TO_Y_UP.T @ globals_[:, 0]  # SMPL-X canonical -> AMASS world
    poses = Rotation.from_matrix(locals_.reshape(-1, 3, 3)).as_rotvec().reshape(n_frames, 3 * NUM_JOINTS)
    errors[:], joints = _direction_errors(poses, points, calibration)
    scale = points.scale()
    trans = scale * points.posed_point("pelvis") @ Z_UP_TO_Y_UP
    frames = np.linspace(0, n_frames - 1, min(n_frames, 4)).astype(int)
    source = scale * points.posed[frames] @ points.frame.T
    preview = {"source": source - scale * points.posed_point("pelvis")[frames, None],
               "source_parents": motion.parents, "smplx": joints[frames] - joints[frames, :1], "frames": frames}
    return Retargeted(poses, trans, motion.fps, driven, errors, transfer_errors, rest_mismatch, preview, motion.name,
                      joint_map.name, twists)


def _direction_errors(poses: np.ndarray, points: _SourcePoints, calibration: np.ndarray):
    """Degrees (T, 55) between each aimed SMPL-X bone, from FK of the output axis-angle, and the source bone
    (the bone as the rig's calibration places it: calibration[j]^T turns the rest segment); and the FK joints
    (T, 55, 3) in canonical axes."""
    rot = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(len(poses), NUM_JOINTS, 3, 3)
    rot[:, 0] = Z_UP_TO_Y_UP @ rot[:, 0]  # back to canonical axes for the comparison
    joints = forward_kinematics(torch.from_numpy(rot)).numpy()
    globals_ = rot.copy()
    for j, p in enumerate(PARENTS):
        if p >= 0:
            globals_[:, j] = globals_[:, p] @ rot[:, j]
    errors = np.full((len(poses), NUM_JOINTS), np.nan)
    for j, name in enumerate(JOINT_NAMES):
        aim_spec = points.map.aim(name)
        if aim_spec is None:
            continue
        origin, targets = aim_spec
        # Both ends are rigid in joint j's frame: place them with its posed global rotation.
        start, end = (joints[:, j] + (point - REST_JOINTS[j]) @ calibration[j] @ np.swapaxes(globals_[:, j], -1, -2)
                      for point in (REST_JOINTS[JOINT_INDEX[origin]], _smplx_rest_point(name, targets)))
        source = _source_segment(name, aim_spec, points, posed=True)
        errors[:, j] = angle_between(end - start, source[1] - source[0])
    return errors, joints
