"""SYNTHETIC hand, jaw and eye poses: seeded procedural generators, labelled as such wherever they are used.

Everything here is made up from anatomical ranges and simple geometry, not recorded: it fills the hand, jaw and
eye parts that the licence-free mocap barely covers. Every generator takes a numpy Generator and is
deterministic given its state.

Hand angles use the right-hand joint frames of `training.mocap.hands` (flexion towards the pad side, abduction
radial for the fingers and palmar for the thumb; see that module's docstring), and every joint is a twist-free
swing as in the landmark fits (thumb pronation in opposition is therefore not modelled). Ranges, degrees
(right hand):

    joint            flexion     abduction     source / note
    finger MCP       -20 .. 90   -20 .. 20     AAOS: flexion 90, hyperextension up to 45; abduction ~20
    finger PIP         0 .. 110     0          AAOS 100; 110 in several clinical texts
    finger DIP         0 .. 80      0          AAOS 90; coupled, DIP ~ 2/3 PIP (Rijpkema & Girard 1991)
    thumb CMC        -20 .. 45     0 .. 60     flexion across the palm from the rest thumb; palmar abduction
                                               AAOS 70
    thumb MCP        -10 .. 50      0          AAOS 50
    thumb IP         -15 .. 80      0          AAOS 80, hyperextension 20

AAOS: American Academy of Orthopaedic Surgeons, "Joint Motion: Method of Measuring and Recording" (1965).
"""
from __future__ import annotations

from functools import cache

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from dposerx_blender.core.skeleton import EYE_JOINTS, REST_JOINTS, TIP_OFFSETS

from dposerx_blender.core.mocap.aim import aim
from .mocap.hands import CHAINS, hand_points, hand_pose_from_angles, rest_hand, right_hand_frames

# Finger slots in SMPL-X order (index, middle, pinky, ring, thumb) of the four fingers in anatomical order
# (index, middle, ring, pinky), where neighbours are neighbours.
FINGER_SLOTS = np.array([0, 1, 3, 2])
FLEXION_BOUNDS = np.array([(-20.0, 90.0), (0.0, 110.0), (0.0, 80.0)] * 4 + [(-20.0, 45.0), (-10.0, 50.0),
                                                                           (-15.0, 80.0)])
ABDUCTION_BOUNDS = np.array([(-20.0, 20.0), (0.0, 0.0), (0.0, 0.0)] * 4 + [(0.0, 60.0), (0.0, 0.0), (0.0, 0.0)])
DIP_PER_PIP = 2.0 / 3.0
# Neighbouring fingers move together: finger flexion varies through two latent synergies, a common curl and an
# index-to-pinky gradient (the first two hand synergies of Santello et al. 1998), plus a little per finger.
_SYNERGY_LOADINGS = np.array([[1.0, -1.0], [1.0, -1.0 / 3.0], [1.0, 1.0 / 3.0], [1.0, 1.0]])
_PAD_GAP = 0.014  # metres between the tip points of two fingers whose pads touch

ARCHETYPES = ("relaxed", "fist", "flat", "point", "pinch", "power_grasp", "precision_grasp", "interpolation")
ARCHETYPE_WEIGHTS = np.array([0.18, 0.1, 0.12, 0.08, 0.12, 0.12, 0.1, 0.18])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class _Angles:
    """Flexion and abduction (n, 15) degrees being built, with finger helpers in anatomical order."""

    def __init__(self, n: int):
        self.flexion = np.zeros((n, 15))
        self.abduction = np.zeros((n, 15))

    def fingers(self, mcp, pip, abduction=0.0, dip=None):
        """mcp, pip, abduction, dip: broadcastable to (n, 4), fingers in order index, middle, ring, pinky."""
        n = len(self.flexion)
        mcp, pip = np.broadcast_to(mcp, (n, 4)), np.clip(np.broadcast_to(pip, (n, 4)), *FLEXION_BOUNDS[1])
        dip = DIP_PER_PIP * pip if dip is None else np.broadcast_to(dip, (n, 4))
        for column, slot in enumerate(FINGER_SLOTS):
            self.flexion[:, 3 * slot:3 * slot + 3] = np.stack([mcp[:, column], pip[:, column], dip[:, column]], 1)
            self.abduction[:, 3 * slot] = np.broadcast_to(abduction, (n, 4))[:, column]

    def thumb(self, cmc_flexion, cmc_abduction, mcp, ip):
        n = len(self.flexion)
        self.flexion[:, 12:15] = np.stack([np.broadcast_to(a, (n,)) for a in (cmc_flexion, mcp, ip)], 1)
        self.abduction[:, 12] = cmc_abduction

    def finger_flexion(self) -> tuple[np.ndarray, np.ndarray]:
        """(n, 4) MCP and PIP flexion in anatomical order."""
        return self.flexion[:, 3 * FINGER_SLOTS], self.flexion[:, 3 * FINGER_SLOTS + 1]


def _synergy(n: int, rng: np.random.Generator, spread: float) -> np.ndarray:
    """(n, 4) correlated flexion offsets, degrees, finger order index..pinky."""
    return spread * (rng.normal(size=(n, 2)) @ _SYNERGY_LOADINGS.T + 0.3 * rng.normal(size=(n, 4)))


def _posed(angles: _Angles) -> np.ndarray:
    """Angles clipped to the bounds -> hand pose (n, 15, 3)."""
    flexion = np.clip(angles.flexion, FLEXION_BOUNDS[:, 0], FLEXION_BOUNDS[:, 1])
    abduction = np.clip(angles.abduction, ABDUCTION_BOUNDS[:, 0], ABDUCTION_BOUNDS[:, 1])
    return hand_pose_from_angles(flexion, abduction)


def _points(hand_pose: np.ndarray) -> np.ndarray:
    """Right-hand landmark positions (n, 21, 3) with the wrist at rest."""
    local = Rotation.from_rotvec(hand_pose.reshape(-1, 3)).as_matrix().reshape(-1, 15, 3, 3)
    return hand_points(local, np.broadcast_to(np.eye(3), (len(local), 3, 3)), "right")


def _pad_directions(hand_pose: np.ndarray, slot: int) -> np.ndarray:
    """(n, 3) unit direction the pad of finger `slot`'s last phalanx faces, wrist at rest."""
    local = Rotation.from_rotvec(hand_pose.reshape(-1, 3)).as_matrix().reshape(-1, 15, 3, 3)
    global_rot = local[:, 3 * slot] @ local[:, 3 * slot + 1] @ local[:, 3 * slot + 2]
    return global_rot @ right_hand_frames()[3 * slot + 2, 1]


@cache
def _thumb_reach() -> tuple[cKDTree, np.ndarray]:
    """Thumb tip positions over a grid of thumb angles inside the bounds, for placing the tip on a target."""
    grids = np.meshgrid(np.arange(-20.0, 45.1, 5.0), np.arange(0.0, 60.1, 5.0), np.arange(-10.0, 50.1, 5.0),
                        np.arange(-15.0, 80.1, 5.0), indexing="ij")
    thumb = np.stack([g.reshape(-1) for g in grids], 1)  # cmc flexion, cmc abduction, mcp, ip
    angles = _Angles(len(thumb))
    angles.thumb(*thumb.T)
    tips = _points(_posed(angles))[:, CHAINS["thumb"][3]]
    return cKDTree(tips), thumb


def _thumb_to(angles: _Angles, targets: np.ndarray, rng: np.random.Generator) -> None:
    """Thumb angles whose tip lands nearest each target (n, 3), with a little jitter."""
    tree, thumb = _thumb_reach()
    _, nearest = tree.query(targets)
    chosen = thumb[nearest] + rng.normal(scale=1.5, size=(len(targets), 4))
    angles.thumb(*chosen.T)


def _relaxed(n: int, rng: np.random.Generator) -> _Angles:
    """The resting hand: each finger towards the pinky a little more curled (the cascade), fingers slightly
    apart, thumb loosely flexed."""
    angles = _Angles(n)
    cascade = np.arange(4) * 5.0
    curl = _synergy(n, rng, 8.0)
    spread = [6.0, 0.0, -5.0, -10.0] + rng.normal(0, 3, (n, 4))
    angles.fingers(20 + cascade + curl, 35 + cascade + 1.2 * curl, spread)
    angles.thumb(rng.uniform(5, 20, n), rng.uniform(15, 35, n), rng.uniform(5, 25, n), rng.uniform(5, 25, n))
    return angles


def _fist(n: int, rng: np.random.Generator) -> _Angles:
    """Fingers curled into the palm, the thumb wrapped over them."""
    angles = _Angles(n)
    curl = _synergy(n, rng, 4.0)
    angles.fingers(84 + curl, 102 + curl, rng.normal(0, 3, (n, 4)))
    angles.thumb(rng.uniform(30, 45, n), rng.uniform(15, 35, n), rng.uniform(30, 50, n), rng.uniform(20, 50, n))
    return angles


def _flat(n: int, rng: np.random.Generator) -> _Angles:
    """Straight fingers, from together to fully spread (the thumb swinging out with them)."""
    angles = _Angles(n)
    spread = rng.uniform(0, 1, (n, 1))
    angles.fingers(rng.uniform(-15, 5, (n, 4)) + _synergy(n, rng, 3.0), rng.uniform(0, 6, (n, 4)),
                   spread * [15.0, 2.0, -8.0, -18.0] + rng.normal(0, 2, (n, 4)))
    angles.thumb(-20 * spread[:, 0] + rng.normal(0, 3, n), rng.uniform(0, 20, n), rng.uniform(-10, 10, n),
                 rng.uniform(-15, 10, n))
    return angles


def _point(n: int, rng: np.random.Generator) -> _Angles:
    """A fist with the index finger out."""
    angles = _fist(n, rng)
    mcp, pip = angles.finger_flexion()
    mcp[:, 0], pip[:, 0] = rng.uniform(-10, 20, n), rng.uniform(0, 15, n)
    angles.fingers(mcp, pip, angles.abduction[:, 3 * FINGER_SLOTS])
    return angles


def _pinch(n: int, rng: np.random.Generator) -> _Angles:
    """Thumb tip on the index fingertip, a pad's thickness away; the other fingers curled or spread (as in an
    "OK" sign). The tips meet; with twist-free thumb joints the pads need not face each other."""
    angles = _relaxed(n, rng)
    mcp, pip = angles.finger_flexion()
    spread_others = rng.uniform(0, 1, n) < 0.4
    mcp[:, 1:] = np.where(spread_others[:, None], rng.uniform(-5, 15, (n, 3)), mcp[:, 1:] + 20)
    pip[:, 1:] = np.where(spread_others[:, None], rng.uniform(0, 15, (n, 3)), pip[:, 1:] + 20)
    mcp[:, 0], pip[:, 0] = rng.uniform(40, 65, n), rng.uniform(40, 75, n)  # where the rest thumb reaches the tip
    angles.fingers(mcp, pip, angles.abduction[:, 3 * FINGER_SLOTS])
    pose = _posed(angles)
    index_tip = _points(pose)[:, CHAINS["index"][3]]
    _thumb_to(angles, index_tip + _PAD_GAP * _pad_directions(pose, 0), rng)
    return angles


def _power_grasp(n: int, rng: np.random.Generator) -> _Angles:
    """Fingers wrapped round a cylinder across the palm: each phalanx a chord of a circle of the cylinder's
    radius plus half a finger, so a joint bends by the two chords' half-angles (thinner = more curled)."""
    angles = _Angles(n)
    radius = rng.uniform(0.01, 0.04, n) + 0.01  # cylinder diameter 2-8 cm, plus the finger's half thickness
    lengths = np.linalg.norm(_finger_phalanges(), axis=-1)  # (4, 3), anatomical finger order
    half = np.degrees(np.arcsin(np.clip(lengths[None] / (2 * radius[:, None, None]), 0, 1)))  # (n, 4, 3)
    contact = rng.uniform(15, 30, (n, 1))  # MCP flexion that lays the proximal phalanx on the cylinder
    angles.fingers(contact + half[..., 0], half[..., 0] + half[..., 1], rng.normal(0, 3, (n, 4)),
                   dip=half[..., 1] + half[..., 2])
    wrap = (0.05 - radius) / 0.03  # 0 for the thickest cylinder, 1 for the thinnest
    angles.thumb(10 + 25 * wrap + rng.normal(0, 4, n), rng.uniform(35, 60, n),
                 15 + 25 * wrap + rng.normal(0, 4, n), 10 + 30 * wrap + rng.normal(0, 5, n))
    return angles


@cache
def _finger_phalanges() -> np.ndarray:
    """(4, 3, 3) phalanx vectors of the right hand's fingers, anatomical order."""
    bones = rest_hand("right").bones
    return np.stack([bones[3 * slot:3 * slot + 3] for slot in FINGER_SLOTS])


def _precision_grasp(n: int, rng: np.random.Generator) -> _Angles:
    """Index and middle (sometimes ring) tips and the thumb tip on opposite sides of a small object."""
    angles = _Angles(n)
    curl = _synergy(n, rng, 6.0)
    angles.fingers(40 + curl, 35 + curl, [4.0, 0.0, -4.0, -8.0] + rng.normal(0, 3, (n, 4)))
    mcp, pip = angles.finger_flexion()
    uses_ring = rng.uniform(0, 1, n) < 0.4
    mcp[:, 3] += 25  # the pinky tucks in
    pip[:, 3] += 30
    mcp[:, 2] += np.where(uses_ring, 0, 25)
    pip[:, 2] += np.where(uses_ring, 0, 30)
    angles.fingers(mcp, pip, angles.abduction[:, 3 * FINGER_SLOTS])
    pose = _posed(angles)
    points = _points(pose)
    tips = np.stack([points[:, CHAINS["index"][3]], points[:, CHAINS["middle"][3]]], 1)
    pads = np.stack([_pad_directions(pose, 0), _pad_directions(pose, 1)], 1)
    size = rng.uniform(0.01, 0.06, n)[:, None]  # object diameter
    _thumb_to(angles, tips.mean(1) + (size + _PAD_GAP) * _unit(pads.mean(1)), rng)
    return angles


_MAKERS = {"relaxed": _relaxed, "fist": _fist, "flat": _flat, "point": _point, "pinch": _pinch,
           "power_grasp": _power_grasp, "precision_grasp": _precision_grasp}


def _interpolation(n: int, rng: np.random.Generator) -> _Angles:
    """Blends of two other archetypes (the bounds are a box, so blends stay inside)."""
    first, second = (_archetype_angles(rng.choice(list(_MAKERS), n), rng) for _ in range(2))
    weight = rng.uniform(0, 1, (n, 1))
    angles = _Angles(n)
    angles.flexion = weight * first.flexion + (1 - weight) * second.flexion
    angles.abduction = weight * first.abduction + (1 - weight) * second.abduction
    return angles


def _archetype_angles(kinds: np.ndarray, rng: np.random.Generator) -> _Angles:
    angles = _Angles(len(kinds))
    for kind in dict.fromkeys(kinds):  # first-seen order: deterministic
        rows = np.flatnonzero(kinds == kind)
        made = (_interpolation if kind == "interpolation" else _MAKERS[kind])(len(rows), rng)
        angles.flexion[rows] = np.clip(made.flexion, FLEXION_BOUNDS[:, 0], FLEXION_BOUNDS[:, 1])
        angles.abduction[rows] = np.clip(made.abduction, ABDUCTION_BOUNDS[:, 0], ABDUCTION_BOUNDS[:, 1])
    return angles


def synthetic_hand_archetypes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """SYNTHETIC right-hand poses and the archetype each was drawn from.

    -> hand_pose (n, 15, 3) axis-angle, SMPL-X right-hand joint order, kinds (n,) names from ARCHETYPES.
    """
    kinds = rng.choice(ARCHETYPES, size=n, p=ARCHETYPE_WEIGHTS)
    return _posed(_archetype_angles(kinds, rng)), kinds


def synthetic_hand_poses(n: int, rng: np.random.Generator) -> np.ndarray:
    """SYNTHETIC right-hand poses (n, 15, 3) axis-angle in SMPL-X right-hand joint order (index1-3, middle1-3,
    pinky1-3, ring1-3, thumb1-3), inside the ranges of the module docstring. Left hands: `mirror_hand`."""
    return synthetic_hand_archetypes(n, rng)[0]


# --- Jaw and eyes ------------------------------------------------------------------------------------------

JAW_OPENING_RANGE = (-3.0, 30.0)  # degrees; below 0 the chin goes up and forward, as in a slight protrusion
JAW_LATERAL_LIMIT = 6.0  # degrees of lateral deviation (~1 cm at the chin)
JAW_ROLL_LIMIT = 2.0


def synthetic_jaw_poses(n: int, rng: np.random.Generator) -> np.ndarray:
    """SYNTHETIC jaw poses (n, 3) axis-angle. Opening is a turn about +X (the chin, jaw TIP_OFFSETS, goes down and
    back); half the samples are near closed, the rest open following a skewed Beta up to 30 deg; small lateral
    deviation about +Y and roll about +Z."""
    near_closed = rng.uniform(0, 1, n) < 0.5
    opening = np.where(near_closed, rng.normal(0, 1.5, n), 30 * rng.beta(1.5, 3.0, n))
    opening = np.clip(opening, *JAW_OPENING_RANGE)
    lateral = np.clip(rng.normal(0, 2.5, n), -JAW_LATERAL_LIMIT, JAW_LATERAL_LIMIT)
    roll = np.clip(rng.normal(0, 0.8, n), -JAW_ROLL_LIMIT, JAW_ROLL_LIMIT)
    rot = Rotation.from_euler("YXZ", np.stack([lateral, opening, roll], 1), degrees=True)
    return rot.as_rotvec()


GAZE_YAW_LIMIT = 35.0  # degrees, positive towards +X (the subject's left)
GAZE_PITCH_RANGE = (-30.0, 25.0)  # degrees, positive up
FIXATION_DISTANCE_RANGE = (0.4, 20.0)  # metres, log-uniform: vergence up to ~9 deg


def gaze_angles(directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaze directions (..., 3) -> yaw (towards +X) and pitch (up), degrees."""
    yaw = np.degrees(np.arctan2(directions[..., 0], directions[..., 2]))
    pitch = np.degrees(np.arctan2(directions[..., 1], np.hypot(directions[..., 0], directions[..., 2])))
    return yaw, pitch


def synthetic_eye_poses(n: int, rng: np.random.Generator) -> np.ndarray:
    """SYNTHETIC eye poses (n, 2, 3) axis-angle, (left eye, right eye): both eyes fixate one point in front of the
    face (conjugate gaze with the vergence its distance implies), every eye inside the yaw/pitch limits; each eye
    turns from its rest gaze (+Z, TIP_OFFSETS) without torsion (Listing's law), aimed with `aim`."""
    eyes = REST_JOINTS[list(EYE_JOINTS)]
    directions = np.empty((n, 2, 3))
    todo = np.arange(n)
    while len(todo):  # rejection: redraw the rows where an eye would leave the limits
        m = len(todo)
        yaw = np.radians(rng.uniform(-GAZE_YAW_LIMIT, GAZE_YAW_LIMIT, m))
        pitch = np.radians(rng.uniform(*GAZE_PITCH_RANGE, m))
        distance = np.exp(rng.uniform(*np.log(FIXATION_DISTANCE_RANGE), m))
        gaze = np.stack([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)], 1)
        target = eyes.mean(0) + distance[:, None] * gaze
        candidate = _unit(target[:, None] - eyes[None])
        eye_yaw, eye_pitch = gaze_angles(candidate)
        inside = ((np.abs(eye_yaw) <= GAZE_YAW_LIMIT) & (eye_pitch >= GAZE_PITCH_RANGE[0])
                  & (eye_pitch <= GAZE_PITCH_RANGE[1])).all(axis=1)
        directions[todo[inside]] = candidate[inside]
        todo = todo[~inside]
    rest_gaze = np.stack([TIP_OFFSETS[j] for j in EYE_JOINTS])
    rot = aim(np.broadcast_to(np.eye(3), (2 * n, 3, 3)), np.tile(rest_gaze, (n, 1)), directions.reshape(-1, 3))
    return Rotation.from_matrix(rot).as_rotvec().reshape(n, 2, 3)

