"""A user's armature (Rigify, Mixamo, Unreal, VRM, MPFB...) <-> SMPL-X pose vectors through a joint map.

One retargeter serves mocap files and armatures: the armature's pose is read as a one-frame `Motion` and goes
through `core.mocap.retarget`, and its inverse (`source_rotations`) gives the bone rotations that write a pose
back. bpy-free: the Blender layer (blender/mapped_rig.py) passes the bones' rest matrices and posed rotations.

Armature conventions (armature space): a bone's rest orientation M (bone.matrix_local), its posed orientation
E (pose_bone.matrix, the evaluated pose, constraints included) and its rotation delta D = E M^T, which is the
`Motion` convention's global rotation. Blender's FK: E_b = E_parent M_parent^T M_b B_b, B_b the bone's basis.
Bones are joints of the Motion, their tails joints named "<bone>_end" (like BVH end sites), so presets and maps
name tips the same way for files and armatures.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial.transform import Rotation

from .errors import DPoserError
from .mocap.motion import Motion
from .mocap.retarget import AIM_CHOICES, TIP, JointMap, joint_source, rest_fit, source_rotations, written_joints
from .rig_math import Z_UP_TO_Y_UP  # retarget's AMASS world -> SMPL-X's own
from .skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS

END = "_end"
ORIGIN = "<armature origin>"  # the Motion's root: every root bone hangs from it


@dataclass(frozen=True)
class ArmatureRest:
    """An armature's bones at rest, parents first: names (B,), parents (B,) (-1: none), rest (B, 3, 3) bone
    orientations, heads and tails (B, 3), armature space and units."""

    names: tuple[str, ...]
    parents: np.ndarray
    rest: np.ndarray
    heads: np.ndarray
    tails: np.ndarray

    @classmethod
    def from_bones(cls, names, parent_names, rest, heads, tails) -> "ArmatureRest":
        """From bones in any order (parent_names[i] None for a root bone)."""
        position = {name: i for i, name in enumerate(names)}
        order, placed = [], set()

        def place(i):
            if i in placed:
                return
            if parent_names[i] is not None:
                place(position[parent_names[i]])
            placed.add(i)
            order.append(i)

        for i in range(len(names)):
            place(i)
        new_index = {old: new for new, old in enumerate(order)}
        parents = np.array([-1 if parent_names[i] is None else new_index[position[parent_names[i]]] for i in order])
        take = lambda a: np.asarray(a, dtype=np.float64)[order]  # noqa: E731
        return cls(tuple(names[i] for i in order), parents, take(rest), take(heads), take(tails))

    def index(self, name: str) -> int:
        return self.names.index(name)

    def reposed(self, deltas: np.ndarray) -> "ArmatureRest":
        """The armature in the pose given by rotation deltas (B, 3, 3) as its new rest (rest calibration)."""
        heads, tails = self.heads.copy(), self.tails.copy()
        for b, p in enumerate(self.parents):
            if p >= 0:
                heads[b] = heads[p] + deltas[p] @ (self.heads[b] - self.heads[p])
            tails[b] = heads[b] + deltas[b] @ (self.tails[b] - self.heads[b])
        return replace(self, rest=deltas @ self.rest, heads=heads, tails=tails)

    def motion(self, deltas: np.ndarray, bones: list[int], name: str = "armature") -> Motion:
        """A Motion of `bones` (indices, parents first, closed under parents) posed by rotation deltas
        (T, B, 3, 3), with their tails as "<bone>_end" joints."""
        joint = {b: k + 1 for k, b in enumerate(bones)}
        parents = [-1] + [joint.get(self.parents[b], 0) for b in bones] + [joint[b] for b in bones]
        offsets = np.concatenate([np.zeros((1, 3)),
                                  [self.heads[b] - (self.heads[self.parents[b]] if self.parents[b] >= 0 else 0)
                                   for b in bones],
                                  [self.tails[b] - self.heads[b] for b in bones]])
        n_frames = len(deltas)
        globals_ = deltas[:, bones]
        parent_globals = np.stack([globals_[:, joint[self.parents[b]] - 1] if self.parents[b] >= 0
                                   else np.broadcast_to(np.eye(3), (n_frames, 3, 3)) for b in bones], axis=1)
        rotations = np.broadcast_to(np.eye(3), (n_frames, 1 + 2 * len(bones), 3, 3)).copy()
        rotations[:, 1:1 + len(bones)] = np.swapaxes(parent_globals, -1, -2) @ globals_
        names = [ORIGIN] + [self.names[b] for b in bones] + [self.names[b] + END for b in bones]
        return Motion(name, names, np.array(parents), offsets, rotations, np.zeros((n_frames, 3)), 30.0)


class ArmatureMap:
    """A joint map fitted to one armature: its bone rotations <-> SMPL-X poses (T, 165) in SMPL-X's own Y-up
    frame, global orientation included (rig_bridge's convention; `axes` maps armature axes onto that frame).

    `reference` (B, 3, 3), optional: rotation deltas of a pose to use as the rest pose instead of the
    armature's own (rest calibration, for rigs whose rest pose is not a T- or A-pose)."""

    def __init__(self, joint_map: JointMap, armature: ArmatureRest, reference: np.ndarray | None = None):
        self.armature = armature
        self.reference = np.broadcast_to(np.eye(3), armature.rest.shape) if reference is None else reference
        fitted = armature.reposed(self.reference) if reference is not None else armature
        names = set(armature.names)
        # An armature bone always has a tail: joints that can aim at their own tip get their bone's.
        tips = {name: joint_source(entry, twist=True) + END for name, entry in joint_map.joints.items()
                if TIP in (targets for _, targets in AIM_CHOICES[name])
                and joint_source(entry, twist=True) in names} | joint_map.tips
        self.joint_map = replace(joint_map, tips=tips, rest_frame=None)
        used = {n.removesuffix(END) for n in self.joint_map.source_names()} & names
        missing = sorted(self.joint_map.source_names() - names - {n + END for n in names})
        if missing:
            raise DPoserError(f"map '{joint_map.name}' names bones this armature lacks: {', '.join(missing)}")
        keep = set()
        for b in (armature.index(n) for n in used):
            while b >= 0 and b not in keep:
                keep.add(b)
                b = armature.parents[b]
        self.bones = sorted(keep)
        self.rest_motion = fitted.motion(np.eye(3)[None, None].repeat(len(armature.names), 1), self.bones)
        self.fit = rest_fit(self.rest_motion, self.joint_map)  # the map's rest alignment, fitted once
        self.axes = self.fit.frame
        # The Motion's forward kinematics as one product: a joint's position sums its chain's turned offsets.
        parents = self.rest_motion.parents
        self._chains = np.zeros((len(parents), len(parents)))
        for j, p in enumerate(parents):
            self._chains[j] = self._chains[p] if p >= 0 else 0
            self._chains[j, j] = 1
        self.written = {name: tuple(armature.index(s) for s in sources)
                        for name, sources in written_joints(self.joint_map).items()}

    @property
    def mapped(self) -> np.ndarray:
        """(55,) bool: joints the map reads (the others are not modelled: identity relative to their parent)."""
        return np.array([self.joint_map.aim(n) is not None for n in JOINT_NAMES])

    @property
    def writable(self) -> np.ndarray:
        """(55,) bool: joints with a bone of their own to write (not a point between two bones)."""
        return np.isin(np.arange(NUM_JOINTS), [JOINT_INDEX[n] for n in self.written])

    def read(self, deltas: np.ndarray) -> np.ndarray:
        """Bone rotation deltas (T, B, 3, 3) from the armature's rest -> poses (T, 165): `retarget` (without
        settling twists) of the armature's Motion in that pose, from its rest fit."""
        relative = (deltas @ np.swapaxes(self.reference, -1, -2))[:, self.bones]
        origin = np.broadcast_to(np.eye(3), (len(deltas), 1, 3, 3))
        rotations = np.concatenate([origin, relative, relative], axis=1)  # origin, bones, their tails
        motion = self.rest_motion
        turned = np.einsum("tjab,jb->tja", rotations[:, np.maximum(motion.parents, 0)], motion.offsets)
        globals_, _ = self.fit.transfer(rotations, self._chains @ turned)
        poses = self.fit.poses(globals_)
        root = Z_UP_TO_Y_UP @ Rotation.from_rotvec(poses[:, :3]).as_matrix()
        return np.concatenate([Rotation.from_matrix(root).as_rotvec(), poses[:, 3:]], axis=1)

    def write(self, poses: np.ndarray, joints=None) -> dict[int, np.ndarray]:
        """Poses (T, 165) -> bone index -> (T, 3, 3) rotation delta from the armature's rest, for the writable
        joints among `joints` (indices; default all)."""
        zup = np.array(poses, dtype=np.float64)
        zup[:, :3] = Rotation.from_matrix(Z_UP_TO_Y_UP.T @ Rotation.from_rotvec(zup[:, :3]).as_matrix()).as_rotvec()
        deltas = source_rotations(zup, self.fit)
        chosen = set(range(NUM_JOINTS) if joints is None else np.asarray(joints).tolist())
        out = {}
        for name, bones in self.written.items():
            if JOINT_INDEX[name] in chosen:
                out.update({b: deltas[self.armature.names[b]] @ self.reference[b] for b in bones})
        return out


def bases_for(armature: ArmatureRest, current: np.ndarray, current_bases: dict[int, np.ndarray],
              targets: dict[int, np.ndarray], expected: dict[int, np.ndarray] | None = None,
              copies: dict[int, tuple] | None = None) -> dict[int, np.ndarray]:
    """Basis rotations (T, 3, 3) that give the bones in `targets` their target rotation deltas (T, 3, 3).

    current (B, 3, 3) or per frame (T, B, 3, 3): every bone's present rotation delta (evaluated); current_bases:
    the targeted bones' present bases ((T,) 3, 3). Each bone turns from where it is: its parent space is taken as
    evaluated now (so scaled or constrained parents, e.g. Rigify's stretchy tweaks, count as they are), moved with
    its parent as that parent will move. A bone not written is expected at its `expected` delta (the bones a
    constraint turns after written ones, e.g. Rigify's ORG bones), or else turns as its parent does, then towards
    the bones it copies the rotation of: copies {bone: ((bone copied, influence), ...)} in constraint order
    (Rigify's neck control hangs from a bone that turns half with the chest, half with the torso). Exact for plain
    FK bones; for constrained ones the best guess before the scene is evaluated again."""
    current = np.asarray(current)[None] if np.ndim(current) == 3 else np.asarray(current)  # (T or 1, B, 3, 3)
    expected, copies = expected or {}, copies or {}
    turn = lambda a: np.swapaxes(a, -1, -2)  # noqa: E731
    memo: dict[int, np.ndarray] = {}

    def turned(b: int) -> np.ndarray:  # how bone b turns in armature space, (T or 1, 3, 3)
        return posed(b) @ turn(current[:, b]) if b >= 0 else np.eye(3)[None]

    def posed(b: int) -> np.ndarray:
        if b not in memo:
            memo[b] = current[:, b]  # stands for itself within a cycle of copies (a dependency cycle in the rig)
            if b in targets:
                memo[b] = targets[b]
            elif b in expected:
                memo[b] = expected[b]
            else:
                rotation = turned(armature.parents[b])
                for copied, influence in copies.get(b, ()):
                    rotation = _towards(rotation, turned(copied), influence)
                memo[b] = rotation @ current[:, b]
        return memo[b]

    out = {}
    for b in sorted(targets):
        rest = armature.rest[b]
        out[b] = current_bases[b] @ rest.T @ turn(current[:, b]) @ turn(turned(armature.parents[b])) @ targets[b] @ rest
    return out


def _towards(a: np.ndarray, b: np.ndarray, fraction: float) -> np.ndarray:
    """Rotations (..., 3, 3) `fraction` of the way from a to b (slerp, as a constraint's influence blends)."""
    if fraction >= 1:
        return np.broadcast_to(b, np.broadcast_shapes(a.shape, b.shape))
    a, b = np.broadcast_arrays(a, b)
    shape = a.shape
    a, b = Rotation.from_matrix(a.reshape(-1, 3, 3)), Rotation.from_matrix(b.reshape(-1, 3, 3))
    return (a * Rotation.from_rotvec((a.inv() * b).as_rotvec() * fraction)).as_matrix().reshape(shape)


def posed_deltas(armature: ArmatureRest, bases: np.ndarray) -> np.ndarray:
    """Forward kinematics of plain FK bones: bases (T, B, 3, 3) -> rotation deltas (T, B, 3, 3)."""
    out = np.empty_like(bases)
    for b, p in enumerate(armature.parents):
        rest = armature.rest[b]
        local = rest @ bases[:, b] @ rest.T
        out[:, b] = local if p < 0 else out[:, p] @ local
    return out


MAX_STEP = 4.0


def pass_steps(errors: np.ndarray, previous: np.ndarray | None, steps: np.ndarray) -> np.ndarray:
    """Step sizes (J,) for the next pass of writing a pose to a constraint-driven rig (mapped_rig.apply_pose).

    errors, previous (J, 3): rotation vectors from each joint's pose as read to its goal, after the last pass and
    before it; steps (J,): the step sizes the last pass took. A joint whose bone follows its written control only in
    part (Rigify's spine takes half the control's twist: the error halves with each plain pass) kept its error's
    direction and shrank it by a ratio r, so it follows with gain (1 - r) / step: its next step is step / (1 - r)
    (a secant step), at most MAX_STEP. Any other joint takes a plain step (1)."""
    if previous is None:
        return np.ones(len(errors))
    length = np.einsum("ja,ja->j", previous, previous)
    ratio = np.einsum("ja,ja->j", errors, previous) / np.maximum(length, 1e-30)
    across = np.linalg.norm(errors - ratio[:, None] * previous, axis=-1)
    steady = (length > 0) & (ratio > 0) & (ratio < 1) & (across < 0.1 * np.linalg.norm(errors, axis=-1) + 1e-12)
    return np.where(steady, np.minimum(steps / np.maximum(1 - ratio, 1e-12), MAX_STEP), 1.0)


def stepped(achieved: np.ndarray, errors: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Joint rotations (J, 3) `steps` times the `errors` (J, 3) beyond `achieved` (J, 3), rotation vectors
    (errors in each joint's achieved frame: achieved * exp(error) is the goal)."""
    turned = Rotation.from_rotvec(achieved) * Rotation.from_rotvec(errors * steps[:, None])
    return turned.as_rotvec()
