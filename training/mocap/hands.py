"""SMPL-X finger poses fitted to MediaPipe hand landmarks, and the project's rest hand as joint frames.

Source: the ASL letters set (`asl_ai_hand_landmarks_mit/raw_gestures.tar`, MIT licence): 10,508 static hands,
`data/raw_gestures/<letter>/frame_<n>.npy`, each a flat (63,) array of 21 MediaPipe landmarks x (x, y, z).
MediaPipe order: 0 wrist; thumb 1 CMC, 2 MCP, 3 IP, 4 tip; index 5 MCP, 6 PIP, 7 DIP, 8 tip; middle 9-12;
ring 13-16; pinky 17-20. SMPL-X joints: thumb1 = CMC, thumb2 = MCP, thumb3 = IP; finger1 = MCP, 2 = PIP, 3 = DIP.

Landmark frame. x is divided by the image width, y by its height and points down; z is depth (larger = farther).
Making rigid bones keep their length across the set fixes the missing scales (per-sample hand size removed,
log-length spread minimised): the wrist->MCP bones, the most rigid ones, give y/x = 0.555 and z/x = 1.35; the
phalanges give z/x = 1.7-2.2 (every group says z must be stretched). So the video was 16:9 (9/16 = 0.5625) and
MediaPipe's z is compressed: `read_asl_landmarks` scales y by 9/16 and z by 1.5 and flips y and z, which keeps
the frame right-handed (x right, y up, z towards the camera) so that chirality survives.

Chirality. In that frame 99 % of the samples are LEFT hands (`left_handed`), probably a right-handed signer
filmed mirrored (a flipped depth sign would do the same). Either way the geometry is a valid hand of one side; `fit_hand_pose`
mirrors the samples of the other side (x -> -x) before fitting.

Joint frames (`right_hand_frames`, right hand; the left is its mirror): per hand joint, b = its rest bone (to its
child joint or tip), f = the direction flexion moves the bone (the pad side), l = b x f. For the fingers f is
the palmar normal of the rest palm, so l (the flexion axis) is about +Z for a right hand. For the thumb f points
from the joint to the palmar side of the little finger's base (thumb flexion crosses the palm towards it, as
the rest thumb's own curve does), so its flexion axis is about -Y. A joint's child direction d = R b gives
flexion = atan2(d.f, d.b) and abduction = asin(d.l); positive abduction is radial for the fingers (towards the
thumb) and palmar for the thumb.

Curled fingers. MediaPipe puts too little flexion at the MCP and too much at the PIP of curled fingers: the raw
angle between landmark segments of the ring and pinky in the ASL fists is 130-145 deg at the PIP (beyond any
hand) with about 50 at the MCP. `fit_hand_pose` therefore passes its fit through `limit_flexion` by default.
"""
from __future__ import annotations

import io
import re
import sys
import tarfile
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from dposerx_blender.core.errors import DPoserError
from dposerx_blender.core.skeleton import FINGERS, JOINT_INDEX, REST_OFFSETS, TIP_OFFSETS

from dposerx_blender.core.mocap.aim import aim, angle_between
from .sources import mocap_root

NUM_LANDMARKS = 21
# MediaPipe landmarks of each finger's joints and tip, in SMPL-X finger order.
CHAINS = {"index": (5, 6, 7, 8), "middle": (9, 10, 11, 12), "pinky": (17, 18, 19, 20), "ring": (13, 14, 15, 16),
          "thumb": (1, 2, 3, 4)}
# The landmark segment each of the 15 hand joints (SMPL-X order) aims along: from the joint to its child.
SEGMENTS = np.array([(CHAINS[f][k], CHAINS[f][k + 1]) for f in FINGERS for k in range(3)])
HAND_JOINT_NAMES = tuple(f"{f}{k}" for f in FINGERS for k in (1, 2, 3))
WRIST, THUMB_CMC, THUMB_TIP, INDEX_MCP, MIDDLE_MCP, PINKY_MCP = 0, 1, 4, 5, 9, 17

# Scales that make the ASL landmarks isotropic (see module docstring), then the y and z flips.
ASL_AXIS_SCALE = np.array([1.0, -9.0 / 16.0, -1.5])

# Flexion limits per joint kind, degrees (lower: hyperextension, upper: flexion), after the AAOS normals (MCP 90 / -45,
# PIP 100, DIP 90 / -10, thumb MCP 50, thumb IP 80 / -20) with PIP to 110 as several clinical texts give and
# room for landmark noise. Thumb CMC flexion is measured across the palm from the rest thumb, which already
# stands about 25 deg radially off the index metacarpal.
FLEXION_LIMITS = {"mcp": (-30.0, 90.0), "pip": (-10.0, 110.0), "dip": (-20.0, 90.0),
                  "thumb_cmc": (-30.0, 60.0), "thumb_mcp": (-20.0, 60.0), "thumb_ip": (-20.0, 90.0)}
JOINT_KINDS = tuple(kind for f in FINGERS
                    for kind in (("thumb_cmc", "thumb_mcp", "thumb_ip") if f == "thumb" else ("mcp", "pip", "dip")))
LIMITS = np.array([FLEXION_LIMITS[kind] for kind in JOINT_KINDS])  # (15, 2)

_PALM_THICKNESS = 0.02  # metres from the metacarpal line to the palmar skin, where thumb flexion heads


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# --- The rest hand ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RestHand:
    """One side of the project's rest hand, wrist at the origin, rest frames = world frame.

    joints (15,): SMPL-X joint indices; offsets (15, 3): each joint's offset from its parent (finger1 from the
    wrist); bones (15, 3): each joint's bone, to its child joint or (finger3) its tip.
    """

    side: str
    joints: tuple[int, ...]
    offsets: np.ndarray
    bones: np.ndarray

    @property
    def starts(self) -> np.ndarray:
        """Rest positions (15, 3) of the hand joints."""
        return np.cumsum(self.offsets.reshape(5, 3, 3), axis=1).reshape(15, 3)


@cache
def rest_hand(side: str = "right") -> RestHand:
    _check_side(side)
    joints = tuple(JOINT_INDEX[f"{side}_{name}"] for name in HAND_JOINT_NAMES)
    offsets = REST_OFFSETS[list(joints)]
    bones = np.array([offsets[j + 1] if j % 3 < 2 else TIP_OFFSETS[joints[j]] for j in range(15)])
    return RestHand(side, joints, offsets, bones)


def _check_side(side: str) -> None:
    if side not in ("left", "right"):
        raise DPoserError(f"side must be 'left' or 'right', got {side!r}")


@cache
def right_hand_frames() -> np.ndarray:
    """(15, 3, 3): rows b, f, l of each right-hand joint (module docstring); the left hand is the mirror."""
    rest = rest_hand("right")
    # wrist->middle MCP x pinky->index MCP is dorsal for a right hand (here +Y: the rest palm faces down).
    palm_normal = -_unit(np.cross(rest.offsets[3], rest.offsets[0] - rest.offsets[6]))
    toward = np.tile(palm_normal, (15, 1))
    thumb_target = rest.starts[6] + _PALM_THICKNESS * palm_normal  # palmar side of the little finger's base
    toward[12:] = thumb_target - rest.starts[12:]
    b = _unit(rest.bones)
    f = _unit(toward - np.sum(toward * b, -1, keepdims=True) * b)
    return np.stack([b, f, np.cross(b, f)], axis=1)


def _axis_angle_matrices(axes: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """axes (..., 3) unit, degrees (...) broadcasting together -> (..., 3, 3)."""
    rotvecs = np.asarray(axes) * np.radians(degrees)[..., None]
    return Rotation.from_rotvec(rotvecs.reshape(-1, 3)).as_matrix().reshape(rotvecs.shape + (3,))


def _mirror_for(hand_pose: np.ndarray, side: str) -> np.ndarray:
    """A left-hand pose as the right-hand pose it mirrors (and back); right-hand poses unchanged."""
    _check_side(side)
    return hand_pose * np.array([1.0, -1.0, -1.0]) if side == "left" else hand_pose


def hand_pose_from_angles(flexion: np.ndarray, abduction: np.ndarray, side: str = "right") -> np.ndarray:
    """(N, 15) degrees each -> hand_pose (N, 15, 3) axis-angle; inverse of `joint_angles`.

    Each joint turns its bone b to d = cos(abd) (cos(flex) b + sin(flex) f) + sin(abd) l by the smallest
    rotation (no twist about the bone), the convention of `fit_hand_pose`, since landmarks do not see twist.
    """
    frames = right_hand_frames()
    flexion, abduction = np.radians(flexion)[..., None], np.radians(abduction)[..., None]
    d = np.cos(abduction) * (np.cos(flexion) * frames[:, 0] + np.sin(flexion) * frames[:, 1]) \
        + np.sin(abduction) * frames[:, 2]
    rest = np.broadcast_to(frames[:, 0], d.shape).reshape(-1, 3)
    local = aim(np.broadcast_to(np.eye(3), (len(rest), 3, 3)), rest, d.reshape(-1, 3))
    return _mirror_for(Rotation.from_matrix(local).as_rotvec().reshape(d.shape), side)


def joint_angles(hand_pose: np.ndarray, side: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """hand_pose (N, 15, 3) -> flexion, abduction (N, 15) in degrees, from where each joint sends its bone:
    flexion is the angle in the b-f plane, abduction the angle out of it."""
    rot = Rotation.from_rotvec(_mirror_for(np.asarray(hand_pose), side).reshape(-1, 3)).as_matrix()
    frames = right_hand_frames()
    d = np.einsum("njrk,jk->njr", rot.reshape(-1, 15, 3, 3), frames[:, 0])
    coords = np.einsum("njk,jrk->njr", d, frames)  # components along b, f, l
    flexion = np.degrees(np.arctan2(coords[..., 1], coords[..., 0]))
    abduction = np.degrees(np.arcsin(np.clip(coords[..., 2], -1.0, 1.0)))
    return flexion, abduction


def out_of_range(hand_pose: np.ndarray, side: str = "right") -> np.ndarray:
    """(N, 15) bool: flexion outside FLEXION_LIMITS for the joint's kind (by more than rounding)."""
    flexion, _ = joint_angles(hand_pose, side)
    return (flexion < LIMITS[:, 0] - 1e-6) | (flexion > LIMITS[:, 1] + 1e-6)


def limit_flexion(hand_pose: np.ndarray, side: str = "right") -> np.ndarray:
    """hand_pose (N, 15, 3) -> the same with every flexion inside FLEXION_LIMITS: flexion beyond a joint's limit
    is handed to its parent joint in the finger (about the parent's flexion axis, nearly parallel, so the distal
    segments keep their directions), what the finger's first joint cannot take is dropped, and hyperextension
    beyond a limit is clamped where it is. Made for MediaPipe's curled fingers (module docstring), whose
    fingertip curl, what the image shows best, is plausible while its split between the joints is not.
    """
    right = Rotation.from_rotvec(_mirror_for(np.asarray(hand_pose, dtype=np.float64), side).reshape(-1, 3))
    local = right.as_matrix().reshape(-1, 15, 3, 3)
    flexion, _ = joint_angles(_mirror_for(hand_pose, side), "right")
    axes = right_hand_frames()[:, 2]
    for finger in range(5):
        carried = np.zeros(len(local))
        for j in (3 * finger + 2, 3 * finger + 1, 3 * finger):
            wanted = flexion[:, j] + carried
            change = np.clip(wanted, *LIMITS[j]) - flexion[:, j]
            local[:, j] = _axis_angle_matrices(axes[j], change) @ local[:, j]
            carried = np.maximum(wanted - LIMITS[j, 1], 0.0)
    pose = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(-1, 15, 3)
    return _mirror_for(pose, side)


# --- Kinematics and fitting ------------------------------------------------------------------------------

def hand_points(local: np.ndarray, wrist_rotation: np.ndarray, side: str = "right") -> np.ndarray:
    """Forward kinematics of one hand: local (N, 15, 3, 3) joint rotations, wrist_rotation (N, 3, 3) global
    -> landmark positions (N, 21, 3) in MediaPipe order, wrist at the origin, rest-skeleton lengths (metres)."""
    rest = rest_hand(side)
    points = np.zeros((len(local), NUM_LANDMARKS, 3))
    for i, finger in enumerate(FINGERS):
        chain, parent, position = CHAINS[finger], wrist_rotation, 0.0
        for k in range(3):
            j = 3 * i + k
            position = position + parent @ rest.offsets[j]
            points[:, chain[k]] = position
            parent = parent @ local[:, j]
        points[:, chain[3]] = position + parent @ rest.bones[3 * i + 2]
    return points


def degenerate_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """(N, 21, 3) -> (N,) bool: non-finite values, a zero-length bone or palm segment, or a flat palm
    (wrist->middle MCP parallel to pinky->index MCP), none of which gives a rotation to fit."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    finite = np.isfinite(landmarks).all(axis=(1, 2))
    safe = np.where(finite[:, None, None], landmarks, 0.0)
    scale = np.ptp(safe, axis=1).max(axis=1)
    segments = safe[:, SEGMENTS[:, 1]] - safe[:, SEGMENTS[:, 0]]
    short = (np.linalg.norm(segments, axis=-1) <= 1e-6 * scale[:, None]).any(axis=1)
    forward, across = safe[:, MIDDLE_MCP] - safe[:, WRIST], safe[:, INDEX_MCP] - safe[:, PINKY_MCP]
    palm_area = np.linalg.norm(np.cross(forward, across), axis=-1)
    flat = palm_area <= 1e-3 * np.linalg.norm(forward, axis=-1) * np.linalg.norm(across, axis=-1)
    return ~finite | short | flat


def left_handed(landmarks: np.ndarray) -> np.ndarray:
    """(N, 21, 3) positions in a right-handed frame -> (N,) bool, True for a left hand.

    wrist->middle MCP x pinky->index MCP points to the back of a right hand and to the palm of a left one. Three
    cues say which side the palm is on, each as a signed fraction of the finger length or palm width, summed:
    the fingers curl towards it (tips relative to their MCPs), the thumb's CMC sits on it (thenar eminence) and
    the thumb tip works in front of it. On 50,000 synthetic right hands, including flat hands with every MCP
    hyperextended, the sum never takes the wrong sign.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    normal = _unit(np.cross(landmarks[:, MIDDLE_MCP] - landmarks[:, WRIST],
                            landmarks[:, INDEX_MCP] - landmarks[:, PINKY_MCP]))
    curl = 0.0
    for finger in ("index", "middle", "ring", "pinky"):
        mcp, tip = CHAINS[finger][0], CHAINS[finger][3]
        reach = landmarks[:, tip] - landmarks[:, mcp]
        curl = curl + np.sum(reach * normal, -1) / np.linalg.norm(reach, axis=-1) / 4
    palm_centre = (landmarks[:, WRIST] + landmarks[:, INDEX_MCP] + landmarks[:, PINKY_MCP]) / 3
    width = np.linalg.norm(landmarks[:, INDEX_MCP] - landmarks[:, PINKY_MCP], axis=-1)
    thenar = np.sum((landmarks[:, THUMB_CMC] - palm_centre) * normal, -1) / width
    thumb_tip = np.sum((landmarks[:, THUMB_TIP] - palm_centre) * normal, -1) / width
    return curl + thenar + thumb_tip > 0


def as_side(landmarks: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """landmarks (N, 21, 3) -> (landmarks with the other side's samples mirrored x -> -x, (N,) bool mirrored)."""
    _check_side(side)
    left = left_handed(landmarks)
    mirrored = left if side == "right" else ~left
    return np.where(mirrored[:, None, None], landmarks * np.array([-1.0, 1.0, 1.0]), landmarks), mirrored


def _checked_landmarks(landmarks) -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (NUM_LANDMARKS, 3):
        raise DPoserError(f"hand landmarks must have shape (N, 21, 3), got {landmarks.shape}")
    bad = np.flatnonzero(degenerate_landmarks(landmarks))
    if len(bad):
        raise DPoserError(f"{len(bad)} hand landmark sets are degenerate (NaN, zero-length bone or flat palm), "
                          f"e.g. sample {bad[0]}: drop them with degenerate_landmarks() first")
    return landmarks


def fit_hand_pose(landmarks: np.ndarray, side: str = "right", within_limits: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Hand pose of `side` whose bones point along the landmark segments.

    landmarks (N, 21, 3): MediaPipe-ordered positions in a right-handed, isotropic frame (any scale and origin).
    Samples whose geometry is the other hand (`left_handed`) are mirrored x -> -x first, so every output is a
    `side` hand; wrist_rotation then belongs to the mirrored sample. within_limits: pass the fit through
    `limit_flexion` (False: the plain fit, every bone on its segment).
    -> hand_pose (N, 15, 3) axis-angle in SMPL-X joint order, wrist_rotation (N, 3, 3) global.

    The wrist is aimed along wrist->middle MCP with its twist from pinky->index MCP; each finger joint is aimed
    along its segment, twist-free relative to its parent (landmarks do not see finger twist).
    """
    landmarks, _ = as_side(_checked_landmarks(landmarks), side)
    rest = rest_hand(side)
    n = len(landmarks)
    wrist = aim(np.broadcast_to(np.eye(3), (n, 3, 3)), rest.offsets[3],
                landmarks[:, MIDDLE_MCP] - landmarks[:, WRIST],
                rest_side=rest.offsets[0] - rest.offsets[6],
                target_side=landmarks[:, INDEX_MCP] - landmarks[:, PINKY_MCP])
    local = np.empty((n, 15, 3, 3))
    joint_global = wrist
    for j, (start, end) in enumerate(SEGMENTS):
        parent = wrist if j % 3 == 0 else joint_global  # joints run finger by finger, root first
        joint_global = aim(parent, rest.bones[j], landmarks[:, end] - landmarks[:, start])
        local[:, j] = np.swapaxes(parent, 1, 2) @ joint_global
    hand_pose = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(n, 15, 3)
    return (limit_flexion(hand_pose, side) if within_limits else hand_pose), wrist


def landmark_direction_error(landmarks: np.ndarray, hand_pose: np.ndarray, wrist_rotation: np.ndarray,
                             side: str = "right") -> np.ndarray:
    """Angle (N, 15) in degrees between each landmark segment and the posed rest bone that should follow it.

    Takes the landmarks as given to `fit_hand_pose` (samples of the other side are mirrored the same way).
    """
    landmarks, _ = as_side(np.asarray(landmarks, dtype=np.float64), side)
    local = Rotation.from_rotvec(np.asarray(hand_pose).reshape(-1, 3)).as_matrix().reshape(-1, 15, 3, 3)
    posed = hand_points(local, wrist_rotation, side)
    observed = landmarks[:, SEGMENTS[:, 1]] - landmarks[:, SEGMENTS[:, 0]]
    return angle_between(observed, posed[:, SEGMENTS[:, 1]] - posed[:, SEGMENTS[:, 0]])


# --- The ASL landmark set --------------------------------------------------------------------------------

ASL_TAR = Path("asl_ai_hand_landmarks_mit") / "raw_gestures.tar"
_MEMBER = re.compile(r"(?:^|/)raw_gestures/([A-Za-z]+)/frame_(\d+)\.npy$")


def read_asl_landmarks(tar_path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Landmarks of every sample in the tar, read in place, sorted by letter then frame number.

    -> landmarks (N, 21, 3) float64 in the isotropic right-handed frame of the module docstring (units of image
    width), letters [N]. Members that do not load as 63 numbers, or whose landmarks are degenerate, are skipped
    and counted in a warning.
    """
    tar_path = Path(tar_path)
    if not tar_path.is_file():
        raise DPoserError(f"ASL landmark archive not found: {tar_path}")
    samples, unreadable = [], 0
    with tarfile.open(tar_path) as tar:
        for member in tar:
            match = _MEMBER.search(member.name)
            if not (member.isfile() and match):
                continue
            try:
                values = np.load(io.BytesIO(tar.extractfile(member).read()), allow_pickle=False)
                values = np.asarray(values, dtype=np.float64).reshape(NUM_LANDMARKS, 3)
            except (ValueError, OSError, EOFError):
                unreadable += 1
                continue
            samples.append((match[1], int(match[2]), values))
    samples.sort(key=lambda sample: sample[:2])
    landmarks = np.array([s[2] for s in samples]).reshape(-1, NUM_LANDMARKS, 3) * ASL_AXIS_SCALE
    letters = [s[0] for s in samples]
    degenerate = degenerate_landmarks(landmarks)
    if unreadable or degenerate.any():
        warnings.warn(f"{tar_path.name}: skipped {unreadable} unreadable or malformed members and "
                      f"{int(degenerate.sum())} degenerate landmark sets", stacklevel=2)
    return landmarks[~degenerate], [letter for letter, bad in zip(letters, degenerate) if not bad]


def validation_report(landmarks: np.ndarray, letters: list[str], plain: np.ndarray, wrist: np.ndarray) -> str:
    """Plain-text table: chirality, landmark direction error and flexion statistics of a plain fit
    (`fit_hand_pose(..., within_limits=False)`), and the direction error after `limit_flexion`."""
    left = left_handed(landmarks)
    limited = limit_flexion(plain, side="right")
    plain_error = landmark_direction_error(landmarks, plain, wrist, side="right")
    limited_error = landmark_direction_error(landmarks, limited, wrist, side="right")
    flexion, abduction = joint_angles(plain, side="right")
    outside = out_of_range(plain, side="right")
    lines = [f"{len(landmarks)} samples, {len(set(letters))} letters; chirality: {int(left.sum())} left "
             f"(mirrored to right), {int((~left).sum())} right",
             "                    plain fit                                           |  after limit_flexion",
             "joint    kind       dir.err mean/max  flexion p5  p50  p95  |abd| p50  outside |  dir.err mean  p99   max"]
    for j, (name, kind) in enumerate(zip(HAND_JOINT_NAMES, JOINT_KINDS)):
        p5, p50, p95 = np.percentile(flexion[:, j], [5, 50, 95])
        error = limited_error[:, j]
        lines.append(f"{name:8s} {kind:9s}  {plain_error[:, j].mean():6.0e} {plain_error[:, j].max():6.0e}"
                     f"  {p5:10.1f} {p50:4.0f} {p95:4.0f}  {np.median(np.abs(abduction[:, j])):8.1f}  "
                     f"{outside[:, j].mean():7.2%} |  {error.mean():11.2f} {np.percentile(error, 99):5.1f} {error.max():5.1f}")
    lines.append(f"samples with a joint outside FLEXION_LIMITS in the plain fit: {outside.any(axis=1).mean():.2%}; "
                 f"after limit_flexion: {out_of_range(limited, side='right').any(axis=1).mean():.2%}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """Fit the whole ASL set and print the validation summary."""
    tar_path = Path(argv[0]) if argv else mocap_root() / ASL_TAR
    landmarks, letters = read_asl_landmarks(tar_path)
    plain, wrist = fit_hand_pose(landmarks, side="right", within_limits=False)
    print(validation_report(landmarks, letters, plain, wrist))


if __name__ == "__main__":
    main(sys.argv[1:])
