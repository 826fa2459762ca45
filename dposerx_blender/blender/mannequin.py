"""A licence-free body for any SMPL-X armature: a wooden-mannequin mesh of tapered capsules (the project's own
geometry), each rigidly weighted to one bone, with fingers, eyes, nose and jaw so that pose, contact and facing
read at a glance. Capsules that meet at a joint are centred on it, so they stay closed however the joint turns.

Sizes are in metres in the SMPL-X frame (x left, y up, z forward) around the rig's own joints, so the body fits
the project's skeleton, the MPI rig and the Meshcapade add-on's armature alike.
"""
from __future__ import annotations

import bpy
import numpy as np

from ..core.skeleton import JOINT_INDEX, TIP_OFFSETS
from . import rig_bridge

SEGMENTS = 12  # around a capsule
RINGS = 3  # per hemisphere, pole excluded
COLOR = (0.8, 0.68, 0.52, 1.0)  # light wood

# (bone, end a, end b, radius a, radius b); an end is (joint, offset) or (joint, "tip").
_CENTRE = [
    ("pelvis", ("left_hip", (0.0, 0.01, 0.0)), ("right_hip", (0.0, 0.01, 0.0)), 0.095, 0.095),
    ("pelvis", ("pelvis", (0, 0, 0)), ("spine1", (0, 0, 0)), 0.095, 0.09),
    ("spine1", ("spine1", (0.06, 0.02, 0.0)), ("spine1", (-0.06, 0.02, 0.0)), 0.09, 0.09),
    ("spine2", ("spine2", (0.065, 0.02, 0.005)), ("spine2", (-0.065, 0.02, 0.005)), 0.095, 0.095),
    ("spine3", ("spine3", (0.07, 0.07, 0.0)), ("spine3", (-0.07, 0.07, 0.0)), 0.1, 0.1),
    ("neck", ("neck", (0, 0, 0)), ("head", (0, 0, 0)), 0.05, 0.045),
    ("head", ("head", (0.0, 0.05, 0.03)), ("head", (0.0, 0.1, 0.015)), 0.085, 0.085),
    ("head", ("head", (0.0, 0.075, 0.1)), ("head", (0.0, 0.06, 0.11)), 0.014, 0.011),  # nose: which way it faces
    ("jaw", ("jaw", (0.0, 0.0, -0.01)), ("jaw", (0.0, -0.03, 0.045)), 0.04, 0.03),
]
_FINGER_RADII = {"index": 0.0095, "middle": 0.0095, "ring": 0.009, "pinky": 0.008, "thumb": 0.011}
_LEFT = [
    ("left_eye_smplhf", ("left_eye_smplhf", (0.0, 0.0, 0.014)), ("left_eye_smplhf", (0.0, 0.0, 0.018)), 0.013, 0.013),
    ("left_collar", ("left_collar", (0, 0, 0)), ("left_shoulder", (0, 0, 0)), 0.05, 0.055),
    ("left_shoulder", ("left_shoulder", (0, 0, 0)), ("left_elbow", (0, 0, 0)), 0.055, 0.042),
    ("left_elbow", ("left_elbow", (0, 0, 0)), ("left_wrist", (0, 0, 0)), 0.042, 0.03),
    ("left_wrist", ("left_wrist", (0, 0, 0)), ("left_index1", (0, 0, 0)), 0.022, 0.02),  # palm
    ("left_wrist", ("left_wrist", (0.0, 0.0, -0.025)), ("left_pinky1", (0, 0, 0)), 0.022, 0.018),
    ("left_wrist", ("left_index1", (0, 0, 0)), ("left_pinky1", (0, 0, 0)), 0.02, 0.018),
    *[(f"left_{finger}{k}", (f"left_{finger}{k}", (0, 0, 0)),
       (f"left_{finger}{k + 1}", (0, 0, 0)) if k < 3 else (f"left_{finger}3", "tip"),
       radius * 0.92 ** (k - 1), radius * 0.92 ** k)
      for finger, radius in _FINGER_RADII.items() for k in (1, 2, 3)],
    ("left_hip", ("left_hip", (0, 0, 0)), ("left_knee", (0, 0, 0)), 0.08, 0.055),
    ("left_knee", ("left_knee", (0, 0, 0)), ("left_ankle", (0, 0, 0)), 0.052, 0.037),
    ("left_ankle", ("left_ankle", (0, 0, 0)), ("left_foot", (0, 0, 0)), 0.037, 0.03),
    ("left_ankle", ("left_ankle", (0.0, -0.045, -0.03)), ("left_foot", (0, 0, 0)), 0.025, 0.028),  # heel to ball
    ("left_foot", ("left_foot", (0, 0, 0)), ("left_foot", "tip"), 0.028, 0.02),
]


def _mirror(part):
    def side(name):
        return name.replace("left_", "right_")

    def end(spec):
        joint, offset = spec
        return side(joint), offset if offset == "tip" else (-offset[0], *offset[1:])

    bone, a, b, ra, rb = part
    return side(bone), end(a), end(b), ra, rb


PARTS = _CENTRE + _LEFT + [_mirror(part) for part in _LEFT]


def _capsule_template() -> tuple[np.ndarray, np.ndarray, list]:
    """Unit capsule: vertices (n, 3) on two unit hemispheres about z, a flag (n,) for the +z one, and faces."""
    around = np.linspace(0, 2 * np.pi, SEGMENTS, endpoint=False)
    latitudes = np.linspace(0, np.pi / 2, RINGS + 1)[1:]  # from the +z pole down to the equator
    rings = [(lat, True) for lat in latitudes] + [(np.pi - lat, False) for lat in latitudes[::-1]]
    verts, top = [(0.0, 0.0, 1.0)], [True]
    for lat, upper in rings:
        verts += [(np.sin(lat) * np.cos(a), np.sin(lat) * np.sin(a), np.cos(lat)) for a in around]
        top += [upper] * SEGMENTS
    verts.append((0.0, 0.0, -1.0))
    top.append(False)
    faces = [(0, 1 + (s + 1) % SEGMENTS, 1 + s) for s in range(SEGMENTS)]
    for r in range(len(rings) - 1):
        first, nxt = 1 + r * SEGMENTS, 1 + (r + 1) * SEGMENTS
        faces += [(first + s, first + (s + 1) % SEGMENTS, nxt + (s + 1) % SEGMENTS, nxt + s)
                  for s in range(SEGMENTS)]
    last, pole = 1 + (len(rings) - 1) * SEGMENTS, len(verts) - 1
    faces += [(last + s, last + (s + 1) % SEGMENTS, pole) for s in range(SEGMENTS)]
    return np.array(verts), np.array(top), faces


def _frame(direction: np.ndarray) -> np.ndarray:
    """A rotation (3, 3) taking +z to the unit `direction`."""
    z = direction / np.linalg.norm(direction)
    helper = np.array([1.0, 0, 0]) if abs(z[0]) < 0.9 else np.array([0, 1.0, 0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def body_geometry(joints: np.ndarray) -> tuple[np.ndarray, list, list[tuple[str, range]]]:
    """The mannequin around `joints` (55, 3) (metres, SMPL-X frame): vertices (n, 3) in that frame, faces, and
    per part its SMPL-X joint name and vertex range."""
    template, top, faces = _capsule_template()
    verts, all_faces, parts = [], [], []
    for bone, *ends, ra, rb in PARTS:
        a, b = (joints[JOINT_INDEX[joint]] + (TIP_OFFSETS[JOINT_INDEX[joint]] if isinstance(offset, str)
                                              else np.asarray(offset)) for joint, offset in ends)
        turn = _frame(b - a if np.linalg.norm(b - a) > 1e-6 else np.array([0, 1.0, 0]))
        scaled = template * np.where(top, rb, ra)[:, None]
        part = scaled @ turn.T + np.where(top[:, None], b, a)
        start = sum(len(v) for v in verts)
        verts.append(part)
        all_faces += [tuple(start + i for i in face) for face in faces]
        parts.append((bone, range(start, start + len(part))))
    return np.concatenate(verts), all_faces, parts


def add_mannequin(rig: rig_bridge.Rig, name: str | None = None):
    """The mannequin as a mesh object parented to the rig, in its rest pose, deformed by an Armature modifier
    through one vertex group per bone (weight 1: each capsule moves rigidly with its bone)."""
    ob = rig.object
    heads = np.array([ob.data.bones[bone].head_local for bone in rig.bone_names])
    verts, faces, parts = body_geometry(rig_bridge.rest_joints(rig))
    verts = heads[0] + verts @ rig.axes / rig.metres_per_unit  # SMPL-X metres -> armature space
    mesh = bpy.data.meshes.new(name or f"{ob.name} Body")
    mesh.from_pydata(verts.tolist(), [], faces)
    mesh.polygons.foreach_set("use_smooth", [True] * len(mesh.polygons))
    mesh.update()
    body = bpy.data.objects.new(mesh.name, mesh)
    for collection in ob.users_collection:
        collection.objects.link(body)
    body.parent, body.color = ob, COLOR
    for bone, indices in parts:
        group = body.vertex_groups.get(rig.bone_names[JOINT_INDEX[bone]]) or body.vertex_groups.new(
            name=rig.bone_names[JOINT_INDEX[bone]])
        group.add(list(indices), 1.0, 'REPLACE')
    modifier = body.modifiers.new("Armature", 'ARMATURE')
    modifier.object = ob
    return body


def bodies(armature_object) -> list:
    """The mesh objects the armature deforms (the mannequin, the SMPL-X add-on's body, ...)."""
    return [ob for ob in bpy.data.objects if ob.type == 'MESH' and any(
        m.type == 'ARMATURE' and m.object == armature_object for m in ob.modifiers)]
