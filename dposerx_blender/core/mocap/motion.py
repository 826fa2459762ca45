"""`Motion`: the one plain-data form every mocap parser returns and the retargeter reads.

Convention (the BVH one, which ASF/AMC and FBX are converted into by their parsers):
- The rest pose is given by `offsets`: joint j sits at `offsets[j]` from its parent, in the source's world
  axes and units, with every joint frame aligned to the world frame at rest.
- `rotations[t, j]` is joint j's local rotation relative to that rest pose, so the global rotation is
  `G_j = G_parent(j) @ R_j` and a child sits at `p_child = p_j + G_j @ offsets[child]`.
- End sites are ordinary joints (named `<parent>_end`) whose rotation is the identity.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Motion:
    """A source skeleton and its animation (see module docstring for the frame convention).

    Attributes:
        name: a readable id, e.g. "cmu_asf/01_01".
        joint_names: J names, unique.
        parents: (J,) int, -1 for the root; every parent comes before its children.
        offsets: (J, 3) rest offset from the parent, source units; offsets[root] is the rest root position.
        rotations: (T, J, 3, 3) local rotations relative to rest.
        root_translation: (T, 3) root position per frame, source units.
        fps: frames per second.
        source_path: file the motion came from ("" when built in memory).
    """

    name: str
    joint_names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    rotations: np.ndarray
    root_translation: np.ndarray
    fps: float
    source_path: str = ""

    def __post_init__(self):
        n_joints = len(self.joint_names)
        if len(set(self.joint_names)) != n_joints:
            raise ValueError(f"{self.name}: duplicate joint names")
        self.parents = np.asarray(self.parents, dtype=np.int64)
        if self.parents.shape != (n_joints,) or self.parents[0] != -1:
            raise ValueError(f"{self.name}: parents must have shape ({n_joints},) with the root first")
        if np.any(self.parents[1:] >= np.arange(1, n_joints)) or np.any(self.parents[1:] < 0):
            raise ValueError(f"{self.name}: every parent must come before its child")
        if self.offsets.shape != (n_joints, 3):
            raise ValueError(f"{self.name}: offsets must have shape ({n_joints}, 3)")
        n_frames = self.rotations.shape[0]
        if self.rotations.shape != (n_frames, n_joints, 3, 3):
            raise ValueError(f"{self.name}: rotations must have shape (T, {n_joints}, 3, 3)")
        if self.root_translation.shape != (n_frames, 3):
            raise ValueError(f"{self.name}: root_translation must have shape ({n_frames}, 3)")

    @property
    def num_frames(self) -> int:
        return self.rotations.shape[0]

    def index(self, joint_name: str) -> int:
        return self.joint_names.index(joint_name)

    def global_rotations(self) -> np.ndarray:
        """(T, J, 3, 3) rotation of each joint frame relative to its rest orientation, world axes."""
        out = np.empty_like(self.rotations)
        for j, p in enumerate(self.parents):
            out[:, j] = self.rotations[:, j] if p < 0 else out[:, p] @ self.rotations[:, j]
        return out

    def positions(self) -> np.ndarray:
        """(T, J, 3) joint positions in source units (forward kinematics)."""
        rot = self.global_rotations()
        pos = np.empty(rot.shape[:2] + (3,))
        for j, p in enumerate(self.parents):
            if p < 0:
                pos[:, j] = self.root_translation
            else:
                pos[:, j] = pos[:, p] + rot[:, p] @ self.offsets[j]
        return pos

    def rest_positions(self) -> np.ndarray:
        """(J, 3) joint positions of the rest pose, root at offsets[root]."""
        pos = np.empty((len(self.joint_names), 3))
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] if p < 0 else pos[p] + self.offsets[j]
        return pos

    def rebased(self, frame: int) -> "Motion":
        """The same animation with frame `frame`'s pose as the rest pose, for rigs whose zero-rotation pose
        is not a human pose (e.g. every bone along +Y). Positions over time are unchanged."""
        rest_globals = self.global_rotations()[frame]
        offsets = self.offsets.copy()
        for j, p in enumerate(self.parents):
            if p >= 0:
                offsets[j] = rest_globals[p] @ self.offsets[j]
        globals_ = self.global_rotations() @ np.swapaxes(rest_globals, -1, -2)
        rotations = globals_.copy()
        for j, p in enumerate(self.parents):
            if p >= 0:
                rotations[:, j] = np.swapaxes(globals_[:, p], -1, -2) @ globals_[:, j]
        return Motion(self.name, list(self.joint_names), self.parents.copy(), offsets, rotations,
                      self.root_translation.copy(), self.fps, self.source_path)

    def slice(self, start: int, stop: int, step: int = 1) -> "Motion":
        """A copy holding frames [start:stop:step]; fps is divided by step."""
        return Motion(self.name, list(self.joint_names), self.parents.copy(), self.offsets.copy(),
                      self.rotations[start:stop:step].copy(), self.root_translation[start:stop:step].copy(),
                      self.fps / step, self.source_path)
