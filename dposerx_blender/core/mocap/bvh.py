"""BVH (Biovision hierarchy) reader and writer, to and from `Motion`.

Conventions the reader applies:
- Rotation channels are intrinsic, in degrees, in the order listed: channels `c1 c2 c3` give the local rotation
  R = R_c1 @ R_c2 @ R_c3. Any order and any number of rotation channels is accepted.
- The root's position channels are added to its OFFSET (the Biovision rule; iClone exports rely on it, with the
  root OFFSET at hip height and channel values near 0). An axis without a channel keeps the OFFSET value.
- Some exporters (MakeHuman) put 6 channels on every joint: position channels on non-root joints are read and
  ignored, since the skeleton is rigid and its bones are the OFFSETs.
- `End Site` blocks become joints named "<parent>_end" with identity rotation.
- Units are kept as in the file (the retargeter normalises by skeleton size); fps = 1 / Frame Time, snapped to
  the nearest integer when within 0.1 % of it (0.00833333 s -> 120 fps).

Malformed input raises `DPoserError("<file>:<line>: <what is wrong>")`.
"""
from __future__ import annotations

import warnings
from itertools import chain
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import DPoserError
from .motion import Motion
from .text import is_float, parse_error

_POSITION_CHANNELS = {"xposition": 0, "yposition": 1, "zposition": 2}
_ROTATION_CHANNELS = {"xrotation": "X", "yrotation": "Y", "zrotation": "Z"}
# For a rotation about an axis: that axis, then the two coordinates it mixes (cyclic order).
_AXIS_PLANES = {"X": (0, 1, 2), "Y": (1, 2, 0), "Z": (2, 0, 1)}


def axis_rotations(axes: str, degrees: np.ndarray) -> np.ndarray:
    """(..., 3, 3) product R_axes[0] @ R_axes[1] @ ... of rotations by degrees[..., k] about world axes[k]."""
    degrees = np.asarray(degrees, dtype=np.float64)
    result = np.broadcast_to(np.eye(3), degrees.shape[:-1] + (3, 3)).copy()
    for k, axis in enumerate(axes):
        fixed, i, j = _AXIS_PLANES[axis]
        angle = np.radians(degrees[..., k])
        single = np.zeros(angle.shape + (3, 3))
        single[..., fixed, fixed] = 1.0
        single[..., i, i] = single[..., j, j] = np.cos(angle)
        single[..., i, j] = -np.sin(angle)
        single[..., j, i] = np.sin(angle)
        result = result @ single
    return result


def read_bvh(path, name: str | None = None) -> Motion:
    """Read a BVH file; `name` defaults to the file stem."""
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    return parse_bvh(text, name or path.stem, str(path))


def parse_bvh(text: str, name: str, path: str = "") -> Motion:
    """Parse BVH text; errors name `path`'s file name (or `name` when there is no path) and the line."""
    label = Path(path).name if path else name
    lines = text.splitlines()
    if not text.strip():
        raise parse_error(label, 1, "empty file")
    motion_index = next((i for i, line in enumerate(lines) if line.split()[:1] == ["MOTION"]), len(lines))
    skeleton = _Hierarchy(lines[:motion_index], label)
    if motion_index == len(lines):
        raise parse_error(label, len(lines), "missing MOTION section")
    values, frame_time = _parse_motion(lines, motion_index, skeleton.num_channels, label)

    n_frames, n_joints = values.shape[0], len(skeleton.names)
    offsets = np.array(skeleton.offsets)
    rotations = np.broadcast_to(np.eye(3), (n_frames, n_joints, 3, 3)).copy()
    for j, channels in enumerate(skeleton.channels):
        rotation_channels = [(col, axis) for col, axis in channels if isinstance(axis, str)]
        if rotation_channels:
            cols, axes = zip(*rotation_channels)
            rotations[:, j] = axis_rotations("".join(axes), values[:, list(cols)])
    root_translation = np.tile(offsets[0], (n_frames, 1))
    for col, axis in skeleton.channels[0]:
        if isinstance(axis, int):
            root_translation[:, axis] += values[:, col]
    return Motion(name, skeleton.names, np.array(skeleton.parents), offsets, rotations, root_translation,
                  _fps(frame_time), path)


def write_bvh(motion: Motion, path, order: str = "ZXY") -> None:
    """Write `motion` as BVH: 6 channels on the root, 3 rotation channels (`order`) on every other joint.

    Leaf joints named "<parent>_end" become End Sites (their rotation, identity by convention, is not written).
    """
    order = order.upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise DPoserError(f"write_bvh: rotation order must be a permutation of XYZ, got {order!r}")
    names = motion.joint_names
    children = [[] for _ in names]
    for j, parent in enumerate(motion.parents[1:], start=1):
        children[parent].append(j)

    def is_end_site(j):
        return not children[j] and j > 0 and names[j] == names[motion.parents[j]] + "_end"

    rotation_channels = " ".join(f"{axis}rotation" for axis in order)
    header, written = ["HIERARCHY"], []

    def write_joint(j, depth):
        pad = "  " * depth
        offset = " ".join(f"{v:.10g}" for v in motion.offsets[j])
        if is_end_site(j):
            header.extend([f"{pad}End Site", f"{pad}{{", f"{pad}  OFFSET {offset}", f"{pad}}}"])
            return
        header.extend([f"{pad}{'ROOT' if j == 0 else 'JOINT'} {names[j]}", f"{pad}{{", f"{pad}  OFFSET {offset}"])
        position_channels = "Xposition Yposition Zposition " if j == 0 else ""
        header.append(f"{pad}  CHANNELS {6 if j == 0 else 3} {position_channels}{rotation_channels}")
        written.append(j)
        for child in children[j]:
            write_joint(child, depth + 1)
        header.append(f"{pad}}}")

    write_joint(0, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gimbal lock: scipy still returns a valid decomposition
        eulers = [Rotation.from_matrix(motion.rotations[:, j].reshape(-1, 3, 3)).as_euler(order, degrees=True)
                  for j in written]
    data = np.concatenate([motion.root_translation - motion.offsets[0]] + eulers, axis=1)
    frame_time = 1.0 / motion.fps
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(header) + f"\nMOTION\nFrames: {motion.num_frames}\nFrame Time: {frame_time:.8f}\n")
        np.savetxt(fh, data, fmt="%.10g")


class _Hierarchy:
    """The HIERARCHY section: joint names, parents, offsets and, per joint, its channels as
    (column in a motion line, axis) with axis "X"/"Y"/"Z" for rotations and 0/1/2 for positions."""

    def __init__(self, lines: list[str], label: str):
        self.label = label
        self.tokens = [(token, number) for number, line in enumerate(lines, start=1) for token in line.split()]
        self.position = 0
        self.last_line = max(len(lines), 1)
        self.names, self.parents, self.offsets, self.channels = [], [], [], []
        self.num_channels = 0
        self.expect("HIERARCHY", "expected HIERARCHY at the start of the file")
        self.expect("ROOT", "expected ROOT after HIERARCHY")
        self.parse_joint("ROOT", parent=-1)
        if self.position < len(self.tokens):
            token, line = self.tokens[self.position]
            message = "only one ROOT is supported" if token == "ROOT" else f"unexpected {token!r} after the root joint"
            raise parse_error(label, line, message)

    def next(self, what: str) -> tuple[str, int]:
        if self.position >= len(self.tokens):
            raise parse_error(self.label, self.last_line, f"unexpected end of hierarchy, expected {what}")
        self.position += 1
        return self.tokens[self.position - 1]

    def expect(self, keyword: str, message: str) -> int:
        token, line = self.next(keyword)
        if token != keyword:
            raise parse_error(self.label, line, f"{message}, found {token!r}")
        return line

    def number(self, what: str, kind=float):
        token, line = self.next(what)
        try:
            value = kind(token)
        except ValueError:
            raise parse_error(self.label, line, f"expected a number for {what}, found {token!r}") from None
        if not np.isfinite(value):
            raise parse_error(self.label, line, f"{what} is not finite ({token})")
        return value

    def add_joint(self, name: str, parent: int, line: int) -> int:
        if name in self.names:
            raise parse_error(self.label, line, f"duplicate joint name {name!r}")
        self.names.append(name)
        self.parents.append(parent)
        self.offsets.append([self.number("OFFSET") for _ in range(3)])
        self.channels.append([])
        return len(self.names) - 1

    def parse_joint(self, kind: str, parent: int) -> None:
        name, name_line = self.next(f"a {kind} name")
        open_line = self.expect("{", f"expected '{{' after {kind} name")
        self.expect("OFFSET", f"expected OFFSET in {name!r}")
        joint = self.add_joint(name, parent, name_line)
        if self.position < len(self.tokens) and self.tokens[self.position][0] == "CHANNELS":
            self.next("CHANNELS")
            for _ in range(self.number("the CHANNELS count", int)):
                channel, line = self.next("a channel name")
                key = channel.lower()
                if key not in _POSITION_CHANNELS and key not in _ROTATION_CHANNELS:
                    raise parse_error(self.label, line, f"unknown channel {channel!r} in {name!r}")
                axis = _ROTATION_CHANNELS.get(key, _POSITION_CHANNELS.get(key))
                self.channels[joint].append((self.num_channels, axis))
                self.num_channels += 1
        while True:
            if self.position >= len(self.tokens):
                raise parse_error(self.label, self.last_line,
                             f"unbalanced braces: {name!r} opened at line {open_line} is never closed")
            token, line = self.next("'}'")
            if token == "}":
                return
            if token == "JOINT":
                self.parse_joint("JOINT", joint)
            elif token == "End":
                self.expect("Site", "expected 'Site' after 'End'")
                self.expect("{", "expected '{' after End Site")
                self.expect("OFFSET", f"expected OFFSET in the End Site of {name!r}")
                self.add_joint(f"{name}_end", joint, line)
                self.expect("}", f"expected '}}' closing the End Site of {name!r}")
            else:
                raise parse_error(self.label, line, f"unexpected {token!r} in joint {name!r}")


def _parse_motion(lines: list[str], motion_index: int, num_channels: int, label: str) -> tuple[np.ndarray, float]:
    """(frames, channels) values and the frame time from the MOTION section starting at lines[motion_index]."""
    rows = [(number, line.split()) for number, line in enumerate(lines[motion_index + 1:], start=motion_index + 2)
            if line.strip()]
    header = {}
    for key in ("Frames", "Frame Time"):
        if not rows:
            raise parse_error(label, len(lines), f"missing '{key}:' line")
        number, tokens = rows.pop(0)
        field, _, value = " ".join(tokens).partition(":")
        if field.strip().lower() != key.lower():
            raise parse_error(label, number, f"expected '{key}:', found {' '.join(tokens)!r}")
        try:
            header[key] = (int(value) if key == "Frames" else float(value), number)
        except ValueError:
            raise parse_error(label, number, f"expected a number after '{key}:', found {value.strip()!r}") from None
    (n_frames, frames_line), (frame_time, frame_time_line) = header["Frames"], header["Frame Time"]
    if not frame_time > 0 or not np.isfinite(frame_time):
        raise parse_error(label, frame_time_line, f"Frame Time must be > 0, found {frame_time}")
    if len(rows) != n_frames:
        raise parse_error(label, frames_line, f"Frames says {n_frames} but {len(rows)} motion lines follow")
    for number, tokens in rows:
        if len(tokens) != num_channels:
            raise parse_error(label, number, f"expected {num_channels} values, found {len(tokens)}")
    try:
        values = np.array(list(chain.from_iterable(tokens for _, tokens in rows)), dtype=np.float64)
    except ValueError:
        number, token = next((number, token) for number, tokens in rows for token in tokens if not is_float(token))
        raise parse_error(label, number, f"non-numeric value {token!r}") from None
    values = values.reshape(n_frames, num_channels)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        frame, column = divmod(int(bad[0]), num_channels)
        raise parse_error(label, rows[frame][0], f"value {values[frame, column]} is not finite (column {column + 1})")
    return values, frame_time


def _fps(frame_time: float) -> float:
    fps = 1.0 / frame_time
    return float(round(fps)) if abs(round(fps) - fps) <= 1e-3 * fps else fps
