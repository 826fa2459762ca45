"""Acclaim ASF (skeleton) / AMC (motion) reader, converted to `Motion` (CMU and HDM05 use this format).

Conventions:
- Euler angles (a bone's `axis`, the root's `orientation`, AMC dof values) are applied in the order listed,
  about fixed world axes: "axis a b c XYZ" or "dof rx ry rz" give R = R_z(c) @ R_y(b) @ R_x(a) (values are
  read in the order of the axis letters). With C_b the bone's `axis` rotation and M_b its AMC rotation, the
  bone's global rotation relative to rest is G_b = G_parent(b) @ C_b @ M_b @ C_b^T, so its local rotation in
  `Motion`'s world-aligned convention is simply R_b = C_b @ M_b @ C_b^T. The root is the same with
  C_root = `:root orientation` (in the `:root axis` order) and M_root from the AMC root line.
  Verified on real clips: with this order a planted foot stays put (HDM05 jogs and sneaks, CMU 02_05: about
  5-10 cm/s of slide) where reading every triple the other way round makes it slide 4-20x faster, and CMU's
  elbow and knee flex the anatomical way from the T-pose (tests/training/test_asf_amc.py).
- Joints: "root", then one joint per bone placed at the bone's START (the joint named after bone b sits where
  b begins and its rotation turns b), in hierarchy order, plus "<bone>_end" at the end of every leaf bone.
  A bone starts at its parent bone's end (parent direction * length); bones on the root start at the root.
- Units are kept as written: offsets are `direction * length` and the root translation is the AMC tx ty tz
  plus `:root position`, both in the ASF length unit (`:units length` is a scale factor recorded in
  `AsfSkeleton.length_scale`, not applied). Translation dofs (tx ty tz l) on non-root bones are read and
  ignored: the skeleton is rigid.
- AMC files carry no frame rate; `fps` defaults to 120 (CMU, HDM05).

Malformed input raises `DPoserError("<file>:<line>: <what is wrong>")`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dposerx_blender.core.mocap.bvh import axis_rotations
from dposerx_blender.core.mocap.motion import Motion
from dposerx_blender.core.mocap.text import is_float, parse_error

_ROTATION_DOFS = {"rx": "X", "ry": "Y", "rz": "Z"}
_TRANSLATION_DOFS = {"tx": 0, "ty": 1, "tz": 2}
_KNOWN_DOFS = set(_ROTATION_DOFS) | set(_TRANSLATION_DOFS) | {"l"}
_LINE = re.compile(r"^[ \t]*(\S*)[ \t]*(.*?)[ \t]*$", re.MULTILINE)  # (first token, the rest) of every line


@dataclass
class AsfBone:
    name: str
    direction: np.ndarray  # (3,) unit vector, world axes at rest
    length: float
    axis: np.ndarray  # (3, 3) C: the bone's dof frame in world axes
    dofs: tuple[str, ...] = ()  # AMC value layout, e.g. ("rx", "rz")
    parent: str = ""  # "root" or a bone name, set by :hierarchy


@dataclass
class AsfSkeleton:
    name: str
    bones: dict[str, AsfBone]  # in :hierarchy depth-first order, parents first
    children: dict[str, list[str]]  # "root" and bone names -> child bone names
    root_order: tuple[str, ...] = ("tx", "ty", "tz", "rx", "ry", "rz")  # AMC root line layout
    root_axis: np.ndarray = field(default_factory=lambda: np.eye(3))  # C_root from :root orientation
    root_position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    length_scale: float = 1.0  # :units length, informational
    degrees: bool = True  # :units angle
    source_path: str = ""


def read_asf_amc(asf_path, amc_path, fps: float = 120.0, name: str | None = None) -> Motion:
    return read_amc(amc_path, read_asf(asf_path), fps=fps, name=name)


def read_asf(path) -> AsfSkeleton:
    path = Path(path)
    return _AsfParser(_read_lines(path), path.name, str(path)).skeleton()


def read_amc(path, skeleton: AsfSkeleton, fps: float = 120.0, name: str | None = None) -> Motion:
    """Read an AMC motion for `skeleton` (see the module docstring for the conversion)."""
    path = Path(path)
    label = path.name
    bones = skeleton.bones
    layouts = {"root": skeleton.root_order} | {b.name: b.dofs for b in bones.values()}
    text = path.read_text(encoding="utf-8", errors="replace")  # HDM05 headers hold Latin-1 file names
    values, n_frames, degrees = _parse_amc(text, layouts, skeleton.degrees, label)
    to_degrees = 1.0 if degrees else 180.0 / np.pi

    def rotation(dofs: tuple[str, ...], dof_values: np.ndarray, axis: np.ndarray) -> np.ndarray:
        rotation_dofs = [(k, _ROTATION_DOFS[d]) for k, d in enumerate(dofs) if d in _ROTATION_DOFS]
        if not rotation_dofs:
            return np.broadcast_to(np.eye(3), (n_frames, 3, 3))
        columns, axes = zip(*rotation_dofs)
        motion = _fixed_axes_rotation("".join(axes), dof_values[:, list(columns)] * to_degrees)
        return axis @ motion @ axis.T

    names, parents, offsets, rotations = ["root"], [-1], [skeleton.root_position], []
    rotations.append(rotation(skeleton.root_order, values["root"], skeleton.root_axis))
    for bone in bones.values():
        parent = names.index(bone.parent)
        names.append(bone.name)
        parents.append(parent)
        parent_bone = bones.get(bone.parent)
        offsets.append(np.zeros(3) if parent_bone is None else parent_bone.direction * parent_bone.length)
        rotations.append(rotation(bone.dofs, values[bone.name], bone.axis))
        if not skeleton.children[bone.name]:
            names.append(f"{bone.name}_end")
            parents.append(len(names) - 2)
            offsets.append(bone.direction * bone.length)
            rotations.append(np.broadcast_to(np.eye(3), (n_frames, 3, 3)))
    translation = np.tile(skeleton.root_position, (n_frames, 1))
    for k, dof in enumerate(skeleton.root_order):
        if dof in _TRANSLATION_DOFS:
            translation[:, _TRANSLATION_DOFS[dof]] += values["root"][:, k]
    return Motion(name or path.stem, names, np.array(parents), np.array(offsets), np.stack(rotations, axis=1),
                  translation, float(fps), str(path))


def _fixed_axes_rotation(axes: str, degrees: np.ndarray) -> np.ndarray:
    """Rotations applied in the order listed about fixed axes: "XYZ" -> R_Z @ R_Y @ R_X."""
    return axis_rotations(axes[::-1], degrees[..., ::-1])


def _read_lines(path: Path) -> list[tuple[int, list[str]]]:
    """Non-empty lines as (1-based number, tokens), comments (#) dropped."""
    text = path.read_text(encoding="utf-8", errors="replace")  # HDM05 headers hold Latin-1 file names
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = (line.split("#", 1)[0] if "#" in line else line).split()
        if tokens:
            lines.append((number, tokens))
    return lines


def _parse_amc(text: str, layouts: dict, degrees: bool, label: str) -> tuple[dict, int, bool]:
    """Per bone (frames, dofs) values (0 where a frame lacks the bone), the frame count and the angle unit.

    One cheap pass files each line's value text under its bone; the numbers are then converted per bone in
    bulk (a 5000-frame CMU file has 150k lines)."""
    entries = {bone: ([], [], []) for bone in layouts}  # bone -> (frame indices, line numbers, value texts)
    n_frames, seen = 0, set()
    # One match per line (blank ones too), so the match index gives the line number.
    for number, (head, rest) in enumerate(_LINE.findall(text), start=1):
        entry = entries.get(head)
        if entry is not None and n_frames:  # the common case: one bone of the current frame
            if head in seen:
                raise parse_error(label, number, f"bone {head!r} appears twice in frame {n_frames}")
            seen.add(head)
            entry[0].append(n_frames - 1)
            entry[1].append(number)
            entry[2].append(rest)
        elif not head or head.startswith("#"):
            continue
        elif head.startswith(":"):
            if head.upper() in (":DEGREES", ":RADIANS"):
                degrees = head.upper() == ":DEGREES"
        elif head.isdigit() and not rest:
            n_frames, seen = n_frames + 1, set()
        elif entry is not None:
            raise parse_error(label, number, f"bone {head!r} before the first frame number")
        else:
            raise parse_error(label, number, f"unknown bone {head!r}" if n_frames else
                         f"expected a frame number, found {head!r}")
    if not n_frames:
        raise parse_error(label, 1, "no frames")
    values = {}
    for bone, (frames, numbers, texts) in entries.items():
        n_dofs = len(layouts[bone])
        values[bone] = np.zeros((n_frames, n_dofs))
        tokens = " ".join(texts).split()
        if len(tokens) != len(texts) * n_dofs:
            number, found = next((n, len(t.split())) for n, t in zip(numbers, texts) if len(t.split()) != n_dofs)
            raise parse_error(label, number, f"bone {bone!r} has {n_dofs} dofs ({' '.join(layouts[bone]) or 'none'}), "
                         f"found {found} values")
        if not n_dofs:
            continue
        try:
            rows = np.array(tokens, dtype=np.float64).reshape(len(texts), n_dofs)
        except ValueError:
            number, token = next((n, tok) for n, t in zip(numbers, texts) for tok in t.split() if not is_float(tok))
            raise parse_error(label, number, f"non-numeric value {token!r}") from None
        bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
        if bad.size:
            raise parse_error(label, numbers[bad[0]], f"bone {bone!r} has a value that is not finite")
        values[bone][frames] = rows
    return values, n_frames, degrees


class _AsfParser:
    """Reads the ASF sections (:units :root :bonedata :hierarchy; others are skipped)."""

    def __init__(self, lines: list[tuple[int, list[str]]], label: str, path: str):
        self.label, self.path = label, path
        self.name = Path(path).stem
        self.length_scale, self.degrees = 1.0, True
        self.root_order = ("tx", "ty", "tz", "rx", "ry", "rz")
        self.root_axis_order, self.root_orientation = "XYZ", np.zeros(3)
        self.root_position = np.zeros(3)
        self.bones: dict[str, dict] = {}  # name -> raw fields, in file order
        self.children: dict[str, list[str]] | None = None
        self.has_bonedata = False
        self.last_line = lines[-1][0] if lines else 1
        if not lines:
            raise parse_error(label, 1, "empty file")
        section, bone = None, None
        for number, tokens in lines:
            if tokens[0].startswith(":"):
                section = tokens[0][1:].lower()
                if section == "name" and len(tokens) > 1:
                    self.name = tokens[1]
                elif section == "bonedata":
                    self.has_bonedata = True
                elif section == "hierarchy":
                    self.children = {"root": []}
                continue
            if section == "units":
                self.parse_units(number, tokens)
            elif section == "root":
                self.parse_root(number, tokens)
            elif section == "bonedata":
                bone = self.parse_bone_line(number, tokens, bone)
            elif section == "hierarchy":
                self.parse_hierarchy_line(number, tokens)
        if bone is not None:
            raise parse_error(label, self.last_line, f"bone opened at line {bone['line']} has no 'end'")

    def numbers(self, number: int, tokens: list[str], count: int, what: str) -> np.ndarray:
        if len(tokens) < count:
            raise parse_error(self.label, number, f"{what} needs {count} numbers, found {len(tokens)}")
        try:
            values = np.array(tokens[:count], dtype=np.float64)
        except ValueError:
            raise parse_error(self.label, number, f"non-numeric value in {what}: {' '.join(tokens)!r}") from None
        if not np.isfinite(values).all():
            raise parse_error(self.label, number, f"{what} is not finite")
        return values

    def parse_units(self, number: int, tokens: list[str]) -> None:
        if tokens[0] == "length":
            self.length_scale = float(self.numbers(number, tokens[1:], 1, "length")[0])
        elif tokens[0] == "angle":
            unit = tokens[1].lower() if len(tokens) > 1 else ""
            if not unit.startswith(("deg", "rad")):
                raise parse_error(self.label, number, f"angle unit must be deg or rad, found {unit!r}")
            self.degrees = unit.startswith("deg")

    def parse_root(self, number: int, tokens: list[str]) -> None:
        key, rest = tokens[0].lower(), tokens[1:]
        if key == "order":
            order = tuple(t.lower() for t in rest)
            unknown = [t for t in order if t not in _ROTATION_DOFS and t not in _TRANSLATION_DOFS]
            if unknown:
                raise parse_error(self.label, number, f"unknown root channel {unknown[0]!r}")
            self.root_order = order
        elif key == "axis":
            self.root_axis_order = self.axis_order(number, rest[0] if rest else "")
        elif key == "position":
            self.root_position = self.numbers(number, rest, 3, "root position")
        elif key == "orientation":
            self.root_orientation = self.numbers(number, rest, 3, "root orientation")

    def axis_order(self, number: int, order: str) -> str:
        order = order.upper()
        if sorted(order) != ["X", "Y", "Z"]:
            raise parse_error(self.label, number, f"axis order must be a permutation of XYZ, found {order!r}")
        return order

    def parse_bone_line(self, number: int, tokens: list[str], bone: dict | None) -> dict | None:
        key, rest = tokens[0].lower(), tokens[1:]
        if key == "begin":
            if bone is not None:
                raise parse_error(self.label, number, f"'begin' inside the bone opened at line {bone['line']}")
            return {"line": number}
        if bone is None:
            raise parse_error(self.label, number, f"expected 'begin' in :bonedata, found {tokens[0]!r}")
        if key == "end":
            self.finish_bone(number, bone)
            return None
        if key == "name" and rest:
            bone["name"] = rest[0]
        elif key == "direction":
            bone["direction"] = self.numbers(number, rest, 3, "direction")
        elif key == "length":
            bone["length"] = float(self.numbers(number, rest, 1, "length")[0])
        elif key == "axis":
            angles = self.numbers(number, rest, 3, "axis")
            bone["axis"] = (angles, self.axis_order(number, rest[3] if len(rest) > 3 else ""))
        elif key == "dof":
            unknown = [d for d in rest if d.lower() not in _KNOWN_DOFS]
            if unknown:
                raise parse_error(self.label, number, f"unknown dof {unknown[0]!r}")
            bone["dofs"] = tuple(d.lower() for d in rest)
        # id, bodymass, cofmass and limits (also their continuation lines "(a b)") carry nothing we use.
        return bone

    def finish_bone(self, number: int, bone: dict) -> None:
        missing = [key for key in ("name", "direction", "length") if key not in bone]
        if missing:
            raise parse_error(self.label, number, f"bone opened at line {bone['line']} has no {missing[0]}")
        if bone["name"] in self.bones or bone["name"] == "root":
            raise parse_error(self.label, bone["line"], f"duplicate bone name {bone['name']!r}")
        self.bones[bone["name"]] = bone

    def parse_hierarchy_line(self, number: int, tokens: list[str]) -> None:
        if not self.has_bonedata:
            raise parse_error(self.label, number, "missing :bonedata section before :hierarchy")
        if tokens[0].lower() in ("begin", "end"):
            return
        for name in tokens:
            if name != "root" and name not in self.bones:
                raise parse_error(self.label, number, f"unknown bone {name!r} in :hierarchy")
        parent, *children = tokens
        for child in children:
            if child == "root" or any(child in c for c in self.children.values()):
                raise parse_error(self.label, number, f"bone {child!r} is given a second parent")
            self.children[parent].append(child)
            self.children.setdefault(child, [])
        self.children.setdefault(parent, [])

    def skeleton(self) -> AsfSkeleton:
        for section, present in ((":bonedata", self.has_bonedata), (":hierarchy", self.children is not None)):
            if not present:
                raise parse_error(self.label, self.last_line, f"missing {section} section")
        order, stack = [], list(reversed(self.children["root"]))
        parents = {child: parent for parent, children in self.children.items() for child in children}
        while stack:  # depth first, children in listed order
            name = stack.pop()
            order.append(name)
            stack.extend(reversed(self.children[name]))
        unplaced = [name for name in self.bones if name not in order]
        if unplaced:
            raise parse_error(self.label, self.last_line, f"bone {unplaced[0]!r} is not connected to root in :hierarchy")
        bones = {}
        for name in order:
            raw = self.bones[name]
            direction = raw["direction"]
            norm = np.linalg.norm(direction)
            angles, axis_order = raw.get("axis", (np.zeros(3), "XYZ"))
            bones[name] = AsfBone(name, direction / norm if norm > 0 else direction, raw["length"],
                                  self.rotation(angles, axis_order), raw.get("dofs", ()), parents[name])
        return AsfSkeleton(self.name, bones, {n: list(c) for n, c in self.children.items()}, self.root_order,
                           self.rotation(self.root_orientation, self.root_axis_order), self.root_position,
                           self.length_scale, self.degrees, self.path)

    def rotation(self, angles: np.ndarray, order: str) -> np.ndarray:
        return _fixed_axes_rotation(order, np.degrees(angles) if not self.degrees else angles)
