"""Reading and writing AMASS-style SMPL-X motion files (.npz).

Keys: `poses` (N, 165) axis-angle in SMPL-X joint order, `trans` (N, 3) metres, `mocap_frame_rate` (scalar),
optional `betas`. SMPL+H files from AMASS (`poses` (N, 156): no jaw or eyes) are read with zero jaw and eyes.
Files from video capture tools often split the pose by body part instead (SPLIT_KEYS: `body_pose` required,
the others zero when absent, full axis-angle hands) and call the translation `transl`.
Other keys are kept and written back unchanged.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DPoserError
from .layout import POSE_DIM

FPS_KEYS = ("mocap_frame_rate", "mocap_framerate", "fps")
_SMPLH_DIM = 156  # global + 21 body + 2 x 15 hand joints
_SMPLH_TO_SMPLX = np.r_[0:66, 75:165]  # where SMPL+H values go in the 165 vector (jaw/eyes 66:75 stay zero)
# Split-pose keys and where each goes in the 165 vector (smplx's SMPLX.forward order).
SPLIT_KEYS = {"global_orient": slice(0, 3), "body_pose": slice(3, 66), "jaw_pose": slice(66, 69),
              "leye_pose": slice(69, 72), "reye_pose": slice(72, 75), "left_hand_pose": slice(75, 120),
              "right_hand_pose": slice(120, 165)}


@dataclass
class AmassMotion:
    """poses (N, 165), trans (N, 3), fps, betas (B,) or None, extra: other arrays from the file."""

    poses: np.ndarray
    trans: np.ndarray
    fps: float
    betas: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def read_amass_npz(path: str | Path, default_fps: float = 30.0) -> AmassMotion:
    """Read an AMASS-style npz; raises DPoserError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise DPoserError(f"{path}: file not found")
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files"):  # a single .npy array, not an archive of named arrays
            raise ValueError("it holds a single array, not named arrays")
        with data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DPoserError(f"{path}: not a readable .npz file ({exc})") from None
    if "poses" not in arrays and "body_pose" not in arrays:
        raise DPoserError(f"{path}: missing the 'poses' array (or split keys 'body_pose', 'global_orient', ...; "
                          f"found: {', '.join(sorted(arrays)) or 'nothing'})")
    poses = _numbers(path, "poses", arrays.pop("poses")) if "poses" in arrays else _join_parts(path, arrays)
    if poses.ndim == 3 and poses.shape[1:] == (55, 3):
        poses = poses.reshape(len(poses), POSE_DIM)
    if poses.ndim != 2 or poses.shape[1] not in (POSE_DIM, _SMPLH_DIM) or len(poses) == 0:
        raise DPoserError(f"{path}: 'poses' must have shape (N, 165) (SMPL-X) or (N, 156) (SMPL+H), "
                          f"got {poses.shape}")
    if poses.shape[1] == _SMPLH_DIM:
        full = np.zeros((len(poses), POSE_DIM))
        full[:, _SMPLH_TO_SMPLX] = poses
        poses = full
    trans_key = "trans" if "trans" in arrays or "transl" not in arrays else "transl"
    trans = _numbers(path, trans_key, arrays.pop(trans_key, np.zeros((len(poses), 3))))
    if trans.shape != (len(poses), 3):
        raise DPoserError(f"{path}: '{trans_key}' must have shape ({len(poses)}, 3), got {trans.shape}")
    for name, values in (("poses", poses), (trans_key, trans)):
        if not np.all(np.isfinite(values)):
            frame = int(np.nonzero(~np.isfinite(values).all(axis=1))[0][0])
            raise DPoserError(f"{path}: '{name}' holds NaN or infinite values (first at frame {frame})")
    fps = default_fps
    for key in FPS_KEYS:
        if key in arrays:
            value = np.asarray(arrays.pop(key))
            if value.size != 1 or value.dtype.kind not in "iuf":
                raise DPoserError(f"{path}: '{key}' must be a single number, got {value!r}")
            fps = float(value.reshape(()))
            break
    if not fps > 0:
        raise DPoserError(f"{path}: frame rate must be positive, got {fps}")
    betas = arrays.pop("betas", None)
    return AmassMotion(poses, trans, fps, None if betas is None else np.asarray(betas), arrays)


def _numbers(path: Path, key: str, values) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise DPoserError(f"{path}: '{key}' must hold numbers, got {values.dtype} values")
    return values.astype(np.float64)


def _join_parts(path: Path, arrays: dict) -> np.ndarray:
    """The split-pose keys of `arrays` (removed from it) -> poses (N, 165); a missing part is zero."""
    parts = {}
    for key, where in SPLIT_KEYS.items():
        if key in arrays:
            values = _numbers(path, key, arrays.pop(key))
            values = values.reshape(1, -1) if values.ndim == 1 else values.reshape(len(values), -1)
            width = where.stop - where.start
            if values.shape[1] != width:
                hint = " (PCA hand components are not supported: save full axis-angle hands, use_pca=False)" \
                    if key.endswith("hand_pose") and values.shape[1] < width else ""
                raise DPoserError(f"{path}: '{key}' must have {width} values per frame, got shape "
                                  f"{values.shape}{hint}")
            parts[key] = values
    frames = len(parts["body_pose"])
    poses = np.zeros((frames, POSE_DIM))
    for key, values in parts.items():
        if len(values) != frames:
            raise DPoserError(f"{path}: '{key}' has {len(values)} frames but 'body_pose' has {frames}")
        poses[:, SPLIT_KEYS[key]] = values
    return poses


def write_amass_npz(path: str | Path, motion: AmassMotion) -> None:
    """Write `motion` as an AMASS-style npz (written to a temporary name first, so no partial file remains)."""
    path = Path(path)
    poses = np.asarray(motion.poses)
    if poses.ndim != 2 or poses.shape[1] != POSE_DIM:
        raise DPoserError(f"{path}: poses must have shape (N, 165), got {poses.shape}")
    trans = np.asarray(motion.trans)
    if trans.shape != (len(poses), 3):
        raise DPoserError(f"{path}: trans must have shape ({len(poses)}, 3), got {trans.shape}")
    arrays = dict(motion.extra)
    arrays.update(poses=poses, trans=trans, mocap_frame_rate=np.float64(motion.fps))
    if motion.betas is not None:
        arrays["betas"] = np.asarray(motion.betas)
    tmp = path.with_name(path.name + ".tmp.npz")
    try:
        np.savez(tmp, **arrays)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
