"""How much power real motion has in core.cleaning's drift band, relative to its slower power: per body joint and
rotation-vector axis, the ratio (in-band power / power below the band) over the training takes, and its
quantile. Prints the table core.cleaning.MOTION_BAND_RATIO holds.

    python -m training.motion_spectrum        (after `python build.py data`)

The training rows (data/body/train.npz) keep each take's frames in order, without its glitch frames and frames
outside the anatomical bounds; the takes are cut apart where the pose jumps (more than JUMP_DEG in one frame,
beyond the dataset's own 45 degree glitch rule), and pieces shorter than cleaning.DRIFT_MIN_SECONDS are skipped.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from dposerx_blender.core import cleaning
from dposerx_blender.core.skeleton import BODY_JOINTS

ROOT = Path(__file__).resolve().parents[1]
FPS = 30.0
JUMP_DEG = 30.0


def training_pieces(data: Path) -> list[np.ndarray]:
    """The training takes' body rotations (T, 63), cut where consecutive rows jump (take boundaries)."""
    body = np.load(data / "body" / "train.npz")["poses"].astype(np.float64)
    quats = Rotation.from_rotvec(body.reshape(-1, 3)).as_quat().reshape(len(body), -1, 4)
    turn = np.degrees(2 * np.arccos(np.abs((quats[1:] * quats[:-1]).sum(-1)).clip(max=1.0))).max(1)
    cuts = np.r_[0, np.flatnonzero(turn > JUMP_DEG) + 1, len(body)]
    shortest = cleaning.DRIFT_MIN_SECONDS * FPS
    return [body[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b - a >= shortest]


def band_ratios(pieces: list[np.ndarray]) -> np.ndarray:
    """(pieces, bands, 21, 3): each piece's power in each drift band over its power below the bands, per joint
    and axis."""
    out = []
    for body in pieces:
        tangent = np.concatenate([cleaning._about_mean(body[:, 3 * k:3 * k + 3]) for k in range(len(BODY_JOINTS))],
                                 1)
        powers = cleaning.band_powers(tangent, FPS)
        out.append((powers[1:] / np.maximum(powers[0], 1e-12)).reshape(-1, len(BODY_JOINTS), 3))
    return np.array(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--quantile", type=float, default=cleaning.MOTION_BAND_QUANTILE)
    args = parser.parse_args(argv)
    pieces = training_pieces(args.data)
    table = np.quantile(band_ratios(pieces), args.quantile, axis=0)
    print(f"# {len(pieces)} training pieces, {sum(map(len, pieces))} frames; quantile {args.quantile}")
    edges = cleaning.DRIFT_BANDS_HZ
    print("MOTION_BAND_RATIO = np.array([")
    for lo, hi, band in zip(edges[:-1], edges[1:], table):
        print(f"    [  # {lo:g}-{hi:g} Hz")
        for row in band:
            print("        [" + ", ".join(f"{v:.3g}" for v in row) + "],")
        print("    ],")
    print("])")


if __name__ == "__main__":
    main()
