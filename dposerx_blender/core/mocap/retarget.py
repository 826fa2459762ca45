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
without them, collars or spine joints of rigs with fewer bones) stay at identity and are reported as absent; a
joint whose child is left out aims at the next mapped joint down its chain (spine1 at spine3 or the neck).

The same maps drive users' armatures (core.rig_map): `source_rotations` inverts steps 1-2, giving the source
bone rotations that reproduce an SMPL-X pose, and a map entry may name the twist bone that carries a segment's
rotation ({bone = ..., twist = ...}).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import DPoserError
from ..rig_math import Z_UP_TO_Y_UP
from ..skeleton import (JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS, REST_JOINTS, TIP_OFFSETS,
                        forward_kinematics)

from .aim import aim, angle_between
from .calibration import calibration_matrices, settle_hinges
from .motion import Motion

JOINT_MAP_DIR = Path(__file__).with_name("joint_maps")
# The joints every map must name: the canonical frame needs the hips, shoulders, pelvis and neck; the limbs and
# the head carry the pose. Collars, spine1-3 (rigs have 2 to 5 spine bones), feet, fingers, jaw and eyes are
# optional: a joint left out is not modelled (identity) and its parent aims past it.
REQUIRED_JOINTS = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                   "right_ankle", "neck", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                   "left_wrist", "right_wrist")
TIP = ()  # aim target meaning "this joint's own tip" (an end site in the source)
# A hand end site (sources without fingers) stands for the knuckles: SMPL-X's middle1; a foot without a toe joint
# ends at the ball of the foot, SMPL-X's foot joint.
TIP_STAND_INS = {"left_wrist": "left_middle1", "right_wrist": "right_middle1", "left_ankle": "left_foot",
                 "right_ankle": "right_foot"}


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
    chain_next = {JOINT_NAMES[j]: JOINT_NAMES[c] for j in range(NUM_JOINTS)
                  if len(children := [c for c, p in enumerate(PARENTS) if p == j]) == 1 for c in children}
    chain_next["spine3"] = "neck"
    for name in JOINT_NAMES:
        # Down the chain while a child is left out (spine1 -> spine2, spine3 or neck), then the joint's own tip.
        further, following = [], chain_next.get(name)
        while following is not None:
            further.append((name, (following,)))
            following = chain_next.get(following) if following not in ("neck",) else None
        has_tip = JOINT_INDEX[name] in TIP_OFFSETS or name in TIP_STAND_INS
        choices.setdefault(name, further + [(name, TIP)] * has_tip)
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
    joints: dict  # SMPL-X name -> source joint name, {"between": [a, b], "at": f} or {"bone": b, "twist": t}
    tips: dict    # SMPL-X leaf name -> source joint marking the far end of that segment
    rest_frame: int | None = None  # re-base the rest pose on this frame (rigs whose rest is not human)
    calibration: dict = field(default_factory=dict)  # SMPL-X name -> axis-angle degrees (see calibration.py)
    # Armature presets (core.rig_map): bones to write where they differ from the bones read (Rigify's FK controls
    # drive the ORG bones), and the switches that put a limb in FK: bone -> {property, fk, joints}.
    write: dict = field(default_factory=dict)
    fk_switches: dict = field(default_factory=dict)
    kind: str = "file"  # "file": a mocap file's skeleton; "rig": an armature preset (also used for files)
    translation: str = ""  # armature presets: the bone whose location moves the whole body (default: the pelvis's)

    @classmethod
    def load(cls, path: str | Path) -> "JointMap":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise DPoserError(f"{path}: cannot read joint map ({exc})") from None
        return cls.from_dict(data, path.stem, str(path))

    @classmethod
    def from_dict(cls, data: dict, default_name: str, where: str) -> "JointMap":
        """A map from its TOML tables; DPoserError (naming `where`) for unknown joints or missing required ones.

        A joint or tip may list alternative names (["LeftArm", "mixamorig:LeftArm"]): `resolve` picks the one a
        skeleton has."""
        joints = data.get("joints", {})
        tables = (joints, data.get("tips", {}), data.get("write", {}))
        unknown = sorted({name for table in tables for name in table} - set(JOINT_INDEX))
        if unknown:
            raise DPoserError(f"{where}: not SMPL-X joint names: {', '.join(unknown)}")
        uncalibrated = sorted(set(data.get("calibration", {})) - set(joints))
        if uncalibrated:
            raise DPoserError(f"{where}: calibrated joints not mapped: {', '.join(uncalibrated)}")
        missing = [n for n in REQUIRED_JOINTS if n not in joints]
        if missing:
            raise DPoserError(f"{where}: these SMPL-X joints must be mapped: {', '.join(missing)}")
        return cls(data.get("name", default_name), data.get("description", ""), tuple(data.get("detect", ())),
                   joints, data.get("tips", {}), data.get("rest_frame"), calibration=data.get("calibration", {}),
                   write=data.get("write", {}), fk_switches=data.get("fk_switches", {}),
                   kind=data.get("kind", "file"), translation=data.get("translation", ""))

    def to_toml(self) -> str:
        """The map as a joint-map TOML file (what `load` reads back)."""
        def value(v):
            if isinstance(v, dict):
                return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
            if isinstance(v, (list, tuple)):
                return "[" + ", ".join(value(x) for x in v) + "]"
            return repr(float(v)) if isinstance(v, (int, float)) else '"' + str(v).replace('"', '\\"') + '"'

        lines = [f"name = {value(self.name)}", f"kind = {value(self.kind)}",
                 f"description = {value(self.description)}", f"detect = {value(list(self.detect))}"]
        if self.translation:
            lines.append(f"translation = {value(self.translation)}")
        if self.rest_frame is not None:
            lines.append(f"rest_frame = {int(self.rest_frame)}")
        for title, table in (("joints", self.joints), ("tips", self.tips), ("write", self.write),
                             ("fk_switches", self.fk_switches), ("calibration", self.calibration)):
            if table:
                lines += ["", f"[{title}]"] + [f"{value(k)} = {value(v)}" for k, v in table.items()]
        return "\n".join(lines) + "\n"

    def source_names(self) -> set[str]:
        names = set()
        for entry in (*self.joints.values(), *self.tips.values()):
            names.update(_entry_names(entry))
        return names

    def resolve(self, names) -> tuple["JointMap", tuple[str, ...]]:
        """This map with every entry narrowed to the names a skeleton has, and the optional joints it lacks.

        A name also matches with a namespace prefix ("mixamorig:Hips" for "Hips"). A joint whose names are all
        absent is dropped when optional (returned, so callers can say so); a missing required joint raises."""
        by_bare = {}
        for name in names:
            by_bare.setdefault(name.rsplit(":", 1)[-1], name)
        lookup = {name: name for name in names} | {k: v for k, v in by_bare.items() if k not in names}

        def pick(entry):
            if isinstance(entry, list):
                return next((lookup[n] for n in entry if n in lookup), None)
            if isinstance(entry, dict):
                parts = {key: pick(value) for key, value in entry.items() if key in ("bone", "twist")}
                if "between" in entry:
                    between = [pick(n) for n in entry["between"]]
                    return None if None in between else {**entry, "between": between}
                return None if None in parts.values() else {**entry, **parts}
            return lookup.get(entry)

        joints = {k: v for k, v in ((k, pick(e)) for k, e in self.joints.items()) if v is not None}
        lacking = tuple(k for k in self.joints if k not in joints)
        required = [k for k in lacking if k in REQUIRED_JOINTS]
        if required:
            raise DPoserError(f"'{self.name}' needs bones this skeleton lacks for {', '.join(required)} "
                              f"(looked for {'; '.join(' or '.join(_entry_names(self.joints[k])) for k in required)})")
        tips = {k: v for k, v in ((k, pick(e)) for k, e in self.tips.items()) if v is not None and k in joints}
        write = {k: v for k, v in ((k, pick(e)) for k, e in self.write.items()) if v is not None and k in joints}
        calibration = {k: v for k, v in self.calibration.items() if k in joints}
        return replace(self, joints=joints, tips=tips, write=write, calibration=calibration), lacking

    def aim(self, name: str) -> tuple[str, tuple[str, ...]] | None:
        """The first of joint `name`'s candidate aims this source can measure (None: it can measure none)."""
        if name not in self.joints:
            return None
        for origin, targets in AIM_CHOICES[name]:
            if all(t in self.joints for t in targets) and (targets or name in self.tips):
                return origin, targets
        return None


def _entry_names(entry) -> list[str]:
    """Every source name a joints/tips entry may use."""
    if isinstance(entry, list):
        return list(entry)
    if isinstance(entry, dict):
        return [n for key in ("between", "bone", "twist") for n in _entry_names(entry.get(key, []))]
    return [entry]


def load_joint_maps() -> dict[str, JointMap]:
    return {p.stem: JointMap.load(p) for p in sorted(JOINT_MAP_DIR.glob("*.toml"))}


def detected_maps(names, maps: dict[str, JointMap], prefer: str = "file") -> list[JointMap]:
    """The maps whose `detect` names all occur in `names` (with or without a namespace prefix; a list entry: any
    of its names): maps of kind `prefer` ("file" or "rig") first, in name order for files and most specific
    (longest detect list) first for armature presets."""
    bare = set(names) | {n.rsplit(":", 1)[-1] for n in names}
    present = lambda entry: bool(bare & set(entry if isinstance(entry, list) else [entry]))  # noqa: E731
    found = [m for m in maps.values() if m.detect and all(present(e) for e in m.detect)]
    return sorted(found, key=lambda m: (m.kind != prefer, 0 if m.kind == "file" else -len(m.detect)))


def detect_joint_map(motion: Motion, maps: dict[str, JointMap] | None = None) -> JointMap:
    """The joint map whose `detect` names all occur in the motion's skeleton (file maps before armature presets),
    narrowed to the names this skeleton has."""
    maps = load_joint_maps() if maps is None else maps
    found = detected_maps(motion.joint_names, maps)
    for joint_map in found:
        return joint_map.resolve(motion.joint_names)[0]
    raise DPoserError(f"{motion.name}: no joint map recognises this skeleton "
                      f"(first joints: {', '.join(motion.joint_names[:8])}). Joint maps are TOML files naming the "
                      f"bone of each SMPL-X joint ({', '.join(sorted(maps))}); add one for this skeleton to "
                      f"{JOINT_MAP_DIR}, or import the file with Blender's BVH importer and map the armature in "
                      f"DPoser-X > Rig Map.")


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

    def weights(self, entry) -> np.ndarray:
        """(source joints,) the blend of the source's joints that a map entry names: one joint, or a point
        `between` two."""
        weights = np.zeros(len(self.motion.joint_names))
        if isinstance(entry, dict) and "between" in entry:
            for name, share in zip(entry["between"], (1 - entry["at"], entry["at"])):
                weights[self.motion.index(name)] += share
        else:
            weights[self.motion.index(joint_source(entry, twist=False))] = 1.0
        return weights

    def _lookup(self, entry, positions: np.ndarray) -> np.ndarray:
        return np.tensordot(positions, self.weights(entry), axes=([-2], [0]))

    def rest_point(self, name: str, tip: bool = False) -> np.ndarray:
        entry = self.map.tips[name] if tip else self.map.joints[name]
        return self.frame @ self._lookup(entry, self.rest)

    def posed_point(self, name: str, tip: bool = False) -> np.ndarray:
        entry = self.map.tips[name] if tip else self.map.joints[name]
        return self._lookup(entry, self.posed) @ self.frame.T

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


def rest_fit(motion: Motion, joint_map: JointMap) -> RestFit:
    """The source's `RestFit`, from its rest pose (after the map's `rest_frame` re-basing)."""
    if joint_map.rest_frame is not None:
        motion = motion.rebased(joint_map.rest_frame)
    return RestFit.of(_SourcePoints(motion.slice(0, 1), joint_map))


def joint_source(entry, twist: bool) -> str:
    """The source joint of a map entry that gives the SMPL-X joint its position (twist False) or its rotation
    (twist True: a twist bone carries its segment's whole rotation; a "between" point turns with its first end)."""
    if isinstance(entry, dict):
        return entry["between"][0] if "between" in entry else entry["twist" if twist else "bone"]
    return entry


def _source_segment(name: str, aim_spec, points: _SourcePoints, posed: bool):
    """(start, end) of joint `name`'s aimed segment in the source, canonical axes."""
    point = points.posed_point if posed else points.rest_point
    origin, targets = aim_spec
    end = np.mean([point(t) for t in targets], axis=0) if targets else point(name, tip=True)
    return point(origin), end


def rest_alignments(points: _SourcePoints) -> tuple[np.ndarray, np.ndarray]:
    """(55, 3, 3) R_align per joint (step 2 of the module docstring) and (55,) degrees between the two rest bones
    before alignment (NaN where the map measures no segment)."""
    aligns = np.empty((NUM_JOINTS, 3, 3))
    rest_mismatch = np.full(NUM_JOINTS, np.nan)
    for j, name in enumerate(JOINT_NAMES):
        aligns[j] = np.eye(3) if PARENTS[j] < 0 else aligns[PARENTS[j]]
        aim_spec = points.map.aim(name)
        if aim_spec is None:
            continue
        source_start, source_end = _source_segment(name, aim_spec, points, posed=False)
        rest_dir = _smplx_rest_direction(name, aim_spec)
        rest_mismatch[j] = angle_between(rest_dir, source_end - source_start)
        aligns[j] = aim(aligns[j][None], rest_dir, source_end - source_start)[0]
    return aligns, rest_mismatch


def _smplx_rest_direction(name: str, aim_spec) -> np.ndarray:
    origin, targets = aim_spec
    return _smplx_rest_point(name, targets) - REST_JOINTS[JOINT_INDEX[origin]]


@dataclass(frozen=True)
class RestFit:
    """What retargeting takes from a source's rest pose and its joint map alone (steps 1-2 of the module
    docstring), fitted once per skeleton: core.rig_map converts an armature's poses many times in one job.

    Aimed joints (the `driven` ones) are batched: their segments' ends are fixed blends of the source's joints
    (`starts`, `ends`: (J, source joints) weights)."""

    joint_map: JointMap
    frame: np.ndarray  # (3, 3) source axes -> SMPL-X canonical
    aligns: np.ndarray  # (55, 3, 3) R_align
    rest_mismatch: np.ndarray  # (55,) degrees
    calibration: np.ndarray  # (55, 3, 3) the map's calibration
    driven: np.ndarray  # (55,) bool: joints that aim at a segment of the source
    follows: np.ndarray  # (55,) the joint itself when driven, else its nearest driven ancestor
    sources: np.ndarray  # (J,) source joint whose rotation each driven joint takes
    starts: np.ndarray  # (J, source joints) weights of the driven joints' segment starts
    ends: np.ndarray  # (J, source joints) and ends
    rest_dirs: np.ndarray  # (J, 3) SMPL-X rest directions of the driven joints' segments
    rest_lengths: np.ndarray  # (J,) source rest segment lengths

    @classmethod
    def of(cls, points: "_SourcePoints") -> "RestFit":
        joint_map, motion = points.map, points.motion
        aligns, rest_mismatch = rest_alignments(points)
        driven = np.array([joint_map.aim(name) is not None for name in JOINT_NAMES])
        follows = np.arange(NUM_JOINTS)
        for j, p in enumerate(PARENTS):
            if not driven[j]:
                follows[j] = follows[p]  # the pelvis is always driven (required)
        aimed = [JOINT_NAMES[j] for j in np.flatnonzero(driven)]
        weights = np.zeros((2, len(aimed), len(motion.joint_names)))
        for k, name in enumerate(aimed):
            origin, targets = joint_map.aim(name)
            weights[0, k] = points.weights(joint_map.joints[origin])
            weights[1, k] = (sum(points.weights(joint_map.joints[t]) for t in targets) / len(targets) if targets
                             else points.weights(joint_map.tips[name]))
        rest = points.rest @ points.frame.T
        rest_lengths = np.linalg.norm((weights[1] - weights[0]) @ rest, axis=-1)
        return cls(joint_map, points.frame, aligns, rest_mismatch, calibration_matrices(joint_map.calibration),
                   driven, follows,
                   np.array([motion.index(joint_source(joint_map.joints[n], twist=True)) for n in aimed]),
                   weights[0], weights[1],
                   np.array([_smplx_rest_direction(n, joint_map.aim(n)) for n in aimed]), rest_lengths)

    def transfer(self, rotations: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global rotations (T, 55, 3, 3) of SMPL-X's joints, calibrated (not-driven joints: their driven
        ancestor's, before calibration), and (T, 55) transfer errors (degrees, NaN where not driven), from the
        source's global rotation deltas (T, source joints, 3, 3) and positions (T, source joints, 3) in its
        own axes: steps 2-3 of the module docstring."""
        n_frames = len(rotations)
        reference = self.frame @ rotations[:, self.sources] @ self.frame.T @ self.aligns[self.driven]
        posed_dir = (self.ends - self.starts) @ positions @ self.frame.T
        carried = np.einsum("tjab,jb->tja", reference, self.rest_dirs)  # plain global-rotation transfer
        # Degenerate source segments (coincident joints) keep the reference: nothing to aim at.
        degenerate = np.linalg.norm(posed_dir, axis=-1) < 1e-6 * self.rest_lengths
        posed_dir = np.where(degenerate[..., None], carried, posed_dir)
        transfer_errors = np.full((n_frames, NUM_JOINTS), np.nan)
        transfer_errors[:, self.driven] = angle_between(carried, posed_dir)
        aimed = aim(reference.reshape(-1, 3, 3), np.broadcast_to(self.rest_dirs, posed_dir.shape).reshape(-1, 3),
                    posed_dir.reshape(-1, 3))
        globals_ = np.empty((n_frames, NUM_JOINTS, 3, 3))
        globals_[:, self.driven] = aimed.reshape(n_frames, -1, 3, 3)
        return globals_[:, self.follows] @ self.calibration, transfer_errors

    def poses(self, globals_: np.ndarray) -> np.ndarray:
        """Global rotations (T, 55, 3, 3) -> poses (T, 165), not-driven joints turned as their parents, the global
        orientation in AMASS's Z-up world."""
        globals_ = globals_[:, self.follows]
        locals_ = np.swapaxes(globals_[:, np.maximum(PARENTS, 0)], -1, -2) @ globals_
        locals_[:, 0] = Z_UP_TO_Y_UP.T @ globals_[:, 0]  # SMPL-X canonical -> AMASS world
        return Rotation.from_matrix(locals_.reshape(-1, 3, 3)).as_rotvec().reshape(len(globals_), 3 * NUM_JOINTS)


def retarget(motion: Motion, joint_map: JointMap, settle_twists: bool = True) -> Retargeted:
    """Retarget `motion` onto SMPL-X with `joint_map` (see the module docstring), then apply the map's calibration
    and, with `settle_twists`, settle the limbs' twist on this take (calibration.py). Reading a user's armature
    leaves twists as they are, so that `source_rotations` writes back exactly what was read."""
    if joint_map.rest_frame is not None:
        motion = motion.rebased(joint_map.rest_frame)
    points = _SourcePoints(motion, joint_map)
    fit = RestFit.of(points)
    globals_, transfer_errors = fit.transfer(points.rotations, points.posed)
    twists = settle_hinges(globals_) if settle_twists else {}
    poses = fit.poses(globals_)
    errors, joints = _direction_errors(poses, points, fit.calibration)
    scale = points.scale()
    trans = scale * points.posed_point("pelvis") @ Z_UP_TO_Y_UP
    frames = np.linspace(0, motion.num_frames - 1, min(motion.num_frames, 4)).astype(int)
    source = scale * points.posed[frames] @ points.frame.T
    preview = {"source": source - scale * points.posed_point("pelvis")[frames, None],
               "source_parents": motion.parents, "smplx": joints[frames] - joints[frames, :1], "frames": frames}
    return Retargeted(poses, trans, motion.fps, fit.driven, errors, transfer_errors, fit.rest_mismatch, preview,
                      motion.name, joint_map.name, twists)


def _direction_errors(poses: np.ndarray, points: _SourcePoints, calibration: np.ndarray):
    """Degrees (T, 55) between each aimed SMPL-X bone, from FK of the output axis-angle, and the source bone
    (the bone as the rig's calibration places it: calibration[j]^T turns the rest segment); and the FK joints
    (T, 55, 3) in canonical axes."""
    import torch  # here, not at import: Blender registers the extension (which reads rigs with this module)
    # without waiting for torch

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


def written_joints(joint_map: JointMap) -> dict[str, tuple[str, ...]]:
    """SMPL-X joint -> the source joints that carry its rotation (the bone, and its twist bone if any), for the
    joints the map drives through a joint of their own (not a point between two joints)."""
    out = {}
    for name, entry in joint_map.joints.items():
        if joint_map.aim(name) is None or (isinstance(entry, dict) and "between" in entry):
            continue
        out[name] = (entry["bone"], entry["twist"]) if isinstance(entry, dict) else (entry,)
    return out


def source_rotations(poses: np.ndarray, fit: RestFit) -> dict[str, np.ndarray]:
    """The inverse of retargeting's transfer (steps 1-2 and the map's calibration; not the per-take twist settling):
    source joint -> (T, 3, 3) global rotation delta in the source's axes that makes `retarget(...,
    settle_twists=False)` read `poses` (T, 165, global orientation in AMASS's Z-up world) back, for every joint of
    `written_joints`, with `fit` the source's (`rest_fit`). A twist bone gets its segment's whole rotation, so
    relative to its bone it turns by nothing."""
    local = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(len(poses), NUM_JOINTS, 3, 3)
    local[:, 0] = Z_UP_TO_Y_UP @ local[:, 0]  # AMASS world -> SMPL-X canonical
    globals_ = local.copy()
    for j, p in enumerate(PARENTS):
        if p >= 0:
            globals_[:, j] = globals_[:, p] @ local[:, j]
    out = {}
    for name, sources in written_joints(fit.joint_map).items():
        j = JOINT_INDEX[name]
        delta = fit.frame.T @ globals_[:, j] @ fit.calibration[j].T @ fit.aligns[j].T @ fit.frame
        out.update({source: delta for source in sources})
    return out
