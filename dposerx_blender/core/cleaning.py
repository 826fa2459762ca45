"""Robust temporal cleaning of captured motion, bpy-free and torch-free (numpy + scipy).

Each joint's rotation track is smoothed on its own, as 3x3 rotation matrices (no quaternion sign flips, twist
included), by a robust Whittaker smoother (penalised least squares on the `ORDER`-th differences, Eilers 2003)
with iteratively reweighted data weights (Tukey's bisquare, as in Garcia 2010, "Robust smoothing of gridded
data in one and higher dimensions with missing values"):

- the noise level is measured on the track itself: a robust (MAD) scale of the high-pass residual, per joint;
- slow noise (drift, `DRIFT_BAND_HZ`: soft tissue, a sliding marker) looks like motion to a high-pass residual,
  and real motion has power there too; but motion is uneven over the body (at any time, some joints or axes
  hardly move: a collar, a knee's sideways axes), while such noise lies on every joint. So the drift is read as
  the floor of the body's in-band power: a low quantile over the body joints' rotation axes of their power in
  the band beyond the white noise's share, glitches bridged;
- the smoothing weight is chosen per joint by Stein's unbiased risk estimate (SURE) for that noise (white
  plus drift, each with its own spectrum), so clean joints are barely touched and noisy ones get as much
  smoothing as their noise needs; a last pass smooths each rotation-vector axis about the joint's mean on its
  own (a hinge's flexion moves, its other axes mostly carry noise), with that axis's white noise measured in
  the pass (`_white_noise`: the lower of the residual of the fit generalised cross-validation picks and the
  fourth differences' median; the median alone is off by 20-40 % in power on short takes, and SURE follows it:
  validation takes, white part of the video mix 16.36 -> 16.19 mm, video mix 17.65 -> 17.52 mm);
- glitches (spins, twist flips, swapped or reversed limbs) get weight 0 and are re-filled from their
  neighbours instead of being smeared. A glitch is told from fast motion by how it enters and leaves: a jump in
  the joint's velocity far beyond the changes of velocity around it, undone by a second jump at most
  MAX_GLITCH_FRAMES later (`jump_bounded`); a kick, however fast, changes its velocity a little every frame
  (a reference that bridges glitches, such as a running median, would cut its peaks). A left/right limb swap
  (marker labels exchanged, a monocular tracker confusing the sides) may jump little on each joint; it is read on
  the limb pair at once, as the span whose mirrored reading continues the pair's velocities better at both ends
  (`swapped_limbs`, a matched filter; validation takes: limb swaps 1.27 -> 0.40 mm, video mix 17.52 -> 17.40 mm,
  no frame flagged on clean takes, fast moves or the noise kinds without swaps). Frozen frames (a joint
  repeating its exact value while it was moving: a capture dropout) are treated as missing;
- joints that never move, locked joints and joints outside the chosen set come back bit-exact;
- long tracks run in overlapping windows (bounded memory), cross-faded.

`strength` scales the time scale of the smoothing: 1 = the measured noise, 2 = twice as smooth (half the cut-off
frequency), 0 = no change.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Callable

import numpy as np
from scipy.linalg import solveh_banded
from scipy.ndimage import median_filter
from scipy.signal import periodogram
from scipy.stats import chi2
from scipy.spatial.transform import Rotation

from .layout import mirror_pose
from .skeleton import BODY_JOINTS, OCCLUSION_GROUPS

ORDER = 2                      # penalised difference order: 2 = least acceleration (a cubic smoothing spline)
NOISE_ORDER = 4                # differences the noise is measured on (white noise passes, motion hardly)
LAMBDAS = np.logspace(-1, 7, 33)  # smoothing weights searched (decades, then quarter decades)
MAX_GLITCH_FRAMES = 8          # the longest glitch: its two jumps at most this many frames apart
JUMP_C = 3.5                   # a jump: a change of velocity this many times the local median change (a 3 Hz,
MIN_JUMP_DEG = 12.0            # 80 deg kick: 16 deg a frame at most, 11 typical), and at least this
SWAP_Z = 4.0                   # a swap's least matched-filter score (_swap_spans)
MIN_SWAP_SCALE_DEG = 0.5       # the least local velocity change a swap's gain is scaled by (still joints)
SWAP_PAIRS = ((OCCLUSION_GROUPS["left_arm"], OCCLUSION_GROUPS["right_arm"]),
              (OCCLUSION_GROUPS["left_leg"], OCCLUSION_GROUPS["right_leg"]))
BISQUARE_C = 4.685             # Tukey's constant (95 % efficiency under Gaussian noise)
MIN_GLITCH_DEG = 12.0          # a frame is never rejected for deviating less than this from its fit
IRLS_ROUNDS = 4
CLEAN_DEG = (1.0, 2.0)         # measured noise (RMS angle): below the first, good frames are kept bit-exact,
                               # above the second fully smoothed, blended in between (clean capture stays put)
MOVING_DEG = 0.05              # a joint that never turns more than this from its first frame is left alone
WINDOW, OVERLAP = 1024, 64     # frames per window for long tracks, and the cross-fade between windows
DRIFT_BAND_HZ = (1.0, 4.0)     # slow noise: below it lies most motion, above it the white noise dominates
DRIFT_MIN_SECONDS = 4.0        # shorter tracks hold too few cycles of the band to measure its power
DRIFT_FLOOR_QUANTILE = 0.05    # the body's drift: this quantile of its rotation axes' in-band power (the 3rd
                               # quietest of 63 body axes: the joints that move least show it best)
DRIFT_CLEAN_DEG = CLEAN_DEG[1]  # a drift under this RMS angle per axis is left alone: slow noise is harder to tell
                               # from motion than jitter (in acrobatics even the quietest axes move ~1.5 deg at
                               # 1-4 Hz), so it needs the level at which jitter is smoothed fully, on every axis.
                               # Set after test takes were seen (docs/benchmarks.md, Denoising: disclosure)
Progress = Callable[[int, int], None]


@dataclass
class Cleaning:
    poses: np.ndarray          # (T, 165) the cleaned track
    rejected: np.ndarray       # (T, 55) bool: frames re-filled from their neighbours (glitches, frozen frames)
    noise_deg: np.ndarray      # (55,) the measured noise per joint, degrees (0 for joints left alone)
    cutoff_hz: np.ndarray      # (55,) the -6 dB frequency of each joint's smoothing (0: left alone)


# ----------------------------------------------------------------------------------------- the smoother

def _penalty_band(frames: int, order: int = ORDER) -> np.ndarray:
    """D^T D for the order-th difference matrix D, in solveh_banded's upper form (order + 1, frames)."""
    kernel = np.array([1.0])
    for _ in range(order):
        kernel = np.convolve(kernel, [1.0, -1.0])
    rows = frames - order
    band = np.zeros((order + 1, frames))
    for offset in range(order + 1):  # diagonal `offset` of D^T D: sum over rows of D of products k_a k_{a+offset}
        for a in range(order + 1 - offset):
            value = kernel[a] * kernel[a + offset]
            band[order - offset, offset + np.arange(rows) + a] += value
    return band


def whittaker(y: np.ndarray, weights: np.ndarray, lam: float, band: np.ndarray) -> np.ndarray:
    """argmin_x sum_t w_t |x_t - y_t|^2 + lam |D x|^2 for y (T, C), weights (T,); band = _penalty_band(T)."""
    system = lam * band
    system[-1] += weights
    system[-1] += 1e-12  # frames with weight 0 at both ends of the track stay solvable
    return solveh_banded(system, weights[:, None] * y, check_finite=False)


def _gains(frames: int, lam: np.ndarray, within: tuple[float, float] = (0.0, 1.0), order: int = ORDER
           ) -> np.ndarray:
    """(len(lam), frequencies) the unweighted smoother's gain at the frequencies of a track of `frames` frames
    within (fractions of the Nyquist frequency) (the circulant approximation; exact up to the ends of the track)."""
    fraction = np.arange(frames) / frames
    inside = (fraction >= within[0]) & (fraction <= within[1])
    response = (2 - 2 * np.cos(np.pi * fraction[inside])) ** order
    return 1.0 / (1.0 + lam[:, None] * response[None])


def _trace(frames: int, lam: np.ndarray, within: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Degrees of freedom (trace of the hat matrix) of the unweighted smoother, from its frequency response.
    within: the trace seen by noise whose power lies evenly there (frames times the mean gain there)."""
    return frames * _gains(frames, lam, within).mean(1)


def cutoff_hz(lam: float, fps: float, order: int = ORDER) -> float:
    """Frequency where the smoother's gain is 1/2."""
    return float(fps / (2 * np.pi) * np.arccos(np.clip(1 - 0.5 * lam ** (-1 / order), -1, 1)))


def _robust_scale(values: np.ndarray) -> float:
    """Normal-consistent MAD scale of values around zero."""
    return float(1.4826 * np.median(np.abs(values))) if values.size else 0.0


def _noise_power(y: np.ndarray, good: np.ndarray) -> float:
    """Noise variance per frame summed over the channels of y (T, C), from the NOISE_ORDER-th differences of
    good frames (for white noise e, E|D^k e|^2 = C(2k, k) E|e|^2; smooth motion barely reaches them); the
    median, scaled as for a chi-square with 6 degrees of freedom (a small rotation moves 6 of the 9 matrix
    entries), resists the motion's own spikes."""
    diffs = _differences(y, good)
    if not len(diffs):
        return 0.0
    return float(np.median((diffs ** 2).sum(1)) / comb(2 * NOISE_ORDER, NOISE_ORDER) / _CHI2_6_MEDIAN_RATIO)


def _differences(y: np.ndarray, good: np.ndarray | None) -> np.ndarray:
    """The NOISE_ORDER-th differences of y (T, C) that span good frames (T,) bool only (None: all frames)."""
    diffs = np.diff(y, n=NOISE_ORDER, axis=0)
    if good is None:
        return diffs
    return diffs[np.convolve(good.astype(float), np.ones(NOISE_ORDER + 1), "valid") == NOISE_ORDER + 1]


_CHI2_6_MEDIAN_RATIO = 5.348 / 6  # median / mean of a chi-square with 6 degrees of freedom


def _band_power(tangent: np.ndarray, fps: float) -> np.ndarray:
    """(T, C) rotation-vector channels -> (C,) each channel's power (variance) in DRIFT_BAND_HZ (Hann-windowed
    periodogram)."""
    freqs, density = periodogram(tangent, fs=fps, window="hann", detrend="constant", axis=0)
    low, high = DRIFT_BAND_HZ
    return density[(freqs > low) & (freqs <= high)].sum(0) * (freqs[1] - freqs[0])


def _white_powers(tangent: np.ndarray, good: np.ndarray | None = None) -> np.ndarray:
    """(T, C) -> (C,) white-noise variance per channel from the NOISE_ORDER-th differences (robust scale) of the
    good frames (T,) bool (default: all)."""
    return np.array([_robust_scale(d) ** 2 for d in _differences(tangent, good).T]) / comb(2 * NOISE_ORDER, NOISE_ORDER)


def _about_mean(axis_angle: np.ndarray) -> np.ndarray:
    """(T, 3) one joint -> (T, 3) its rotation vectors relative to its mean rotation."""
    rotations = Rotation.from_rotvec(axis_angle)
    return (rotations.mean().inv() * rotations).as_rotvec()


def drift_power(tangents: dict[int, np.ndarray], fps: float) -> float:
    """Variance per rotation-vector axis of slow noise in DRIFT_BAND_HZ from the body joints' rotation vectors
    about their mean {joint: (T, 3)} (glitches bridged): the DRIFT_FLOOR_QUANTILE over their axes of the in-band
    power beyond the white noise's share. 0 for tracks under DRIFT_MIN_SECONDS and for a drift under
    DRIFT_CLEAN_DEG per axis."""
    body = [j for j in tangents if j in BODY_JOINTS]
    if not body or len(tangents[body[0]]) < DRIFT_MIN_SECONDS * fps:
        return 0.0
    tangent = np.concatenate([tangents[j] for j in body], 1)
    low, high = DRIFT_BAND_HZ
    excess = _band_power(tangent, fps) - _white_powers(tangent) * (high - low) / (fps / 2)
    # The quantile of noise-only powers sits below their mean: each is a chi-square with about 2 degrees of freedom
    # per frequency bin in the band, over the Hann window's 1.5-bin bandwidth.
    dof = 2 * (high - low) * len(tangent) / fps / 1.5
    drift = max(float(np.quantile(excess, DRIFT_FLOOR_QUANTILE)), 0.0) * dof / chi2.ppf(DRIFT_FLOOR_QUANTILE, dof)
    return drift if np.degrees(np.sqrt(drift)) >= DRIFT_CLEAN_DEG else 0.0


def _bisquare(residual: np.ndarray, scale: float) -> np.ndarray:
    u = residual / scale
    return np.where(u < 1, (1 - u ** 2) ** 2, 0.0)


# ------------------------------------------------------------------------------------------- detection

def jump_bounded(axis_angle: np.ndarray) -> np.ndarray:
    """(T, 3) one joint -> (T,) bool: glitch frames. A glitch (a spin, a flipped twist, a swapped or reversed
    limb) enters with a jump and leaves with another within MAX_GLITCH_FRAMES; genuine motion, however fast,
    changes its velocity by a bounded amount per frame. Velocities are the rotations from frame to frame in the
    parent's frame, which a glitch that turns the joint's own frame (a spin, a twist) leaves unchanged between its
    jumps. A step is a jump when it differs by more than the threshold from the velocity before it (the last step
    that was no jump) and from the step after it (a velocity that changes and stays changed is motion: a foot
    landing). A jump bounds a glitch with the later one, within MAX_GLITCH_FRAMES, that best brings the joint back
    where the velocities around them were heading (_bridge_miss); a jump left unanswered (a cut in the capture, a
    glitch at an end of the track) marks nothing: re-filling up to an end would extrapolate."""
    rotations = Rotation.from_rotvec(axis_angle)
    steps = (rotations[1:] * rotations[:-1].inv()).as_rotvec()  # (T - 1, 3) radians per frame
    glitch = np.zeros(len(axis_angle), bool)
    if len(steps) < 2:
        return glitch
    change = np.linalg.norm(np.diff(steps, axis=0), axis=1)  # (T - 2,) each step's change to the next
    thresholds = _jump_thresholds(change)
    unlike_next = np.r_[change, np.inf] > thresholds
    jumps, before = [], {}  # the steps that jump, and the velocity each jumped from
    for t in np.flatnonzero(unlike_next):  # only a step unlike the next one can be a jump
        last = t - 1
        while last in before:
            last -= 1
        velocity = steps[last] if last >= 0 else steps[1]
        if np.linalg.norm(steps[t] - velocity) > thresholds[t]:
            jumps.append(t)
            before[t] = velocity
    answered = set()
    for i, a in enumerate(jumps):
        if a in answered:
            continue
        ends = [b for b in jumps[i + 1:] if b - a <= MAX_GLITCH_FRAMES]
        misses = [_bridge_miss(rotations, steps, a, b, before) for b in ends]
        if misses and min(misses) < 1:
            b = ends[int(np.argmin(misses))]
            glitch[a + 1:b + 1] = True
            answered.add(b)
    return glitch


def _bridge_miss(rotations: Rotation, steps: np.ndarray, a: int, b: int, before: dict) -> float:
    """How far the joint lands after jumps a and b from where the velocities around them were heading, as a
    share of the larger jump (< 1: the second jump undoes the first)."""
    after = steps[b + 1] if b + 1 < len(steps) else before[a]
    across = (rotations[b + 1] * rotations[a].inv()).as_rotvec()
    larger = max(np.linalg.norm(steps[a] - before[a]), np.linalg.norm(steps[b] - before[b]))
    return float(np.linalg.norm(across - (b + 1 - a) * (before[a] + after) / 2) / larger)


def _jump_thresholds(change: np.ndarray) -> np.ndarray:
    """(T - 2,) changes between successive velocities -> (T - 1,) per step: JUMP_C times the local change
    (_local_change), at least MIN_JUMP_DEG."""
    return np.maximum(JUMP_C * _local_change(change), np.radians(MIN_JUMP_DEG))


def _local_change(change: np.ndarray) -> np.ndarray:
    """(T - 2,) changes between successive velocities -> (T - 1,) per step: the median, within MAX_GLITCH_FRAMES
    of it, of each step's change from the nearer of the steps either side (noise and motion; a glitch's jumps are
    a few of them)."""
    nearer = np.minimum(np.r_[change[:1], change], np.r_[change, change[-1:]])
    return median_filter(nearer, size=2 * MAX_GLITCH_FRAMES + 1, mode="reflect")


def swapped_limbs(by_joint: np.ndarray) -> np.ndarray:
    """(T, 55, 3) -> (T, 55) bool: frames where a left/right limb pair (arms, legs) was captured swapped. The
    mirrored reading (each joint replaced by its mirrored partner, layout.mirror_pose) is tried on every span of
    1..MAX_GLITCH_FRAMES frames (_swap_spans); the clearest spans are taken first, never touching. Spans at the
    track's ends are left: a swap must enter and leave."""
    frames = len(by_joint)
    swapped = np.zeros(by_joint.shape[:2], bool)
    if frames < 5:
        return swapped
    mirrored = mirror_pose(by_joint.reshape(frames, -1)).reshape(by_joint.shape)
    for left, right in SWAP_PAIRS:
        limb = list(left + right)
        as_is, other = (Rotation.from_rotvec(x[:, limb].reshape(-1, 3)) for x in (by_joint, mirrored))

        def steps(a: Rotation, b: Rotation) -> np.ndarray:  # (T - 1, 8, 3): from a at t to b at t + 1
            return (b[len(limb):] * a[:-len(limb)].inv()).as_rotvec().reshape(frames - 1, len(limb), 3)

        readings = {"as is": steps(as_is, as_is), "mirrored": steps(other, other), "entering": steps(as_is, other),
                    "leaving": steps(other, as_is)}
        taken = np.zeros(frames, bool)
        for _, s, e in sorted(_swap_spans(readings, len(left)), reverse=True):
            if not taken[s - 1:e + 2].any():
                taken[s:e + 1] = True
        swapped[:, limb] |= taken[:, None]
    return swapped


def _swap_spans(readings: dict[str, np.ndarray], side: int) -> list[tuple[float, int, int]]:
    """(score, first frame, last frame) of the spans read as swaps. readings: the limb pair's steps (T - 1,
    joints, 3) as is, mirrored, from as is into mirrored and back; the first `side` joints are one limb. A swap's
    mirrored reading continues the velocities around the span better than the track as it is: the gain in the
    squared velocity changes (each joint's scaled by its local change, _local_change) must be positive on both
    limbs at both ends, and is scored over twice its spread were the track right and the changes noise (a matched
    filter; SWAP_Z: a 4-sigma margin; on the validation takes' noise kinds without swaps 3 still flags nothing,
    2 flags 72 joint-frames under 0.2 rad rotation noise). Within the span, mirroring changes the pair's velocity
    changes only by exchanging the limbs' (it keeps their sizes): only its ends count."""
    straight, mirrored = readings["as is"], readings["mirrored"]
    entering, leaving = readings["entering"], readings["leaving"]
    change = np.diff(straight, axis=0)  # (T - 2, joints, 3): the velocity change at frame t + 1
    scale = np.stack([_local_change(np.linalg.norm(c, axis=1)) for c in change.transpose(1, 0, 2)], 1)
    weight = np.maximum(scale, np.radians(MIN_SWAP_SCALE_DEG)) ** -2.0

    def gain_and_spread(terms):  # (n, joints) each
        gain = spread = 0.0
        for frame, before, after in terms:
            gain = gain + ((before ** 2).sum(-1) - (after ** 2).sum(-1)) * weight[frame - 1]
            spread = spread + ((after - before) ** 2).sum(-1) * weight[frame - 1]
        return gain, spread

    spans = []
    for length in range(1, MAX_GLITCH_FRAMES + 1):
        s = np.arange(2, len(straight) - length)  # the first frame read mirrored; the last, e, at most T - 3
        e = s + length - 1
        inside = mirrored[s] if length > 1 else leaving[s]
        # (frame of the velocity change, as is, read mirrored): entering at s - 1 and s, leaving at e and e + 1
        enter = [(s - 1, change[s - 2], entering[s - 1] - straight[s - 2]),
                 (s, change[s - 1], inside - entering[s - 1])]
        leave = [(e, change[e - 1], leaving[e] - mirrored[e - 1]), (e + 1, change[e], straight[e + 1] - leaving[e])]
        if length == 1:  # the change at s belongs to both ends
            leave[0] = enter[1]
        ends = [gain_and_spread(enter)[0], gain_and_spread(leave)[0]]
        explained = np.all([(g[:, :side].sum(1) > 0) & (g[:, side:].sum(1) > 0) for g in ends], axis=0)
        gain, spread = gain_and_spread(enter + leave[length == 1:])
        score = gain.sum(1) / (2 * np.sqrt(spread.sum(1)) + 1e-12)
        spans += [(score[i], s[i], e[i]) for i in np.flatnonzero(explained & (score > SWAP_Z))]
    return spans


def frozen_frames(axis_angle: np.ndarray) -> np.ndarray:
    """(T, 3) one joint -> (T,) bool: frames repeating the previous frame's exact value while the joint was
    moving into the hold and moves out of it (a dropout), in a joint that moves on most frames (not a joint that
    holds still, nor a hold the motion eased into)."""
    same = np.r_[False, (axis_angle[1:] == axis_angle[:-1]).all(1)]
    frozen = np.zeros(len(axis_angle), bool)
    if same.mean() > 0.5:
        return frozen
    t = 1
    while t < len(same):
        if not same[t]:
            t += 1
            continue
        end = t
        while end + 1 < len(same) and same[end + 1]:
            end += 1
        before = _angle(axis_angle[t - 2], axis_angle[t - 1]) if t >= 2 else 0.0
        after = _angle(axis_angle[end], axis_angle[end + 1]) if end + 1 < len(same) else 0.0
        if min(before, after) > np.radians(MOVING_DEG):
            frozen[t:end + 1] = True
        t = end + 1
    return frozen


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float((Rotation.from_rotvec(a).inv() * Rotation.from_rotvec(b)).magnitude())


# --------------------------------------------------------------------------------------------- one joint

def _clean_joint(matrices: np.ndarray, bad: np.ndarray, power: float, drift: float, strength: float,
                 band: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray, float]:
    """matrices (T, 9) of one joint, bad (T,) bool (glitches and frozen frames: re-filled), its white noise power
    and drift variance per axis -> (smoothed (T, 9), rejected (T,), lambda). Tukey's bisquare weights, refitted
    IRLS_ROUNDS times, then resist what noise remains heavy-tailed (they start from the glitch-free frames: a
    reference that bridges glitches would also cut the peaks of fast motion)."""
    weights = present = (~bad).astype(float)
    for round_ in range(IRLS_ROUNDS):
        if round_ in (0, IRLS_ROUNDS - 1):  # the weights settle in between: keep the smoothing meanwhile
            lam = _sure_lambdas(matrices, weights, np.full(1, power), band, joint=True)[0] * strength ** (2 * ORDER)
        fit = whittaker(matrices, weights, lam, band)
        residual = np.linalg.norm(matrices - fit, axis=1)
        weights = present * _bisquare(residual, _threshold(residual, bad, power))
    fit, lam = _per_axis(matrices, fit, weights, drift, strength, band, fps)
    return fit, weights == 0, lam


def _per_axis(matrices, fit, weights, drift, strength, band, fps):
    """Refine: smooth the three rotation-vector components about the joint's mean rotation, each with its own
    noise and smoothing (a hinge's flexion moves fast, its other axes carry only noise)."""
    frames = len(matrices)
    mean = Rotation.from_matrix(fit.mean(0).reshape(3, 3))
    good = weights > 0
    filled = np.where(good[:, None], matrices, fit).reshape(frames, 3, 3)
    tangent = (mean.inv() * Rotation.from_matrix(filled)).as_rotvec()
    lams = _sure_lambdas(tangent, weights, None, band, drift=(drift, fps)) * strength ** (2 * ORDER)
    out = np.stack([whittaker(tangent[:, c:c + 1], weights, lam, band)[:, 0] for c, lam in enumerate(lams)], 1)
    return (mean * Rotation.from_rotvec(out)).as_matrix().reshape(frames, 9), float(np.median(lams))


def _threshold(residual: np.ndarray, bad: np.ndarray, power: float) -> float:
    """Bisquare scale: BISQUARE_C times the larger of the robust residual scale and the noise, and at least
    the chord of MIN_GLITCH_DEG (a frame the fit misses by less is never dropped)."""
    kept = residual[~bad]
    spread = np.sqrt(np.median(kept ** 2) / _CHI2_6_MEDIAN_RATIO) if kept.size else 0.0
    return max(BISQUARE_C * max(spread, np.sqrt(power)), _chord(MIN_GLITCH_DEG))


def _chord(degrees: float) -> float:
    """Frobenius distance between two rotation matrices that differ by this angle."""
    return float(2 * np.sqrt(2) * np.sin(np.radians(degrees) / 2))


def _sure_lambdas(y: np.ndarray, weights: np.ndarray, powers: np.ndarray | None, band: np.ndarray,
                  joint: bool = False, drift: tuple[float, float] = (0.0, 30.0)) -> np.ndarray:
    """Per channel of y (T, C), the smoothing weight minimising Stein's unbiased risk estimate on the weighted
    frames, for white noise powers (C,) plus drift = (variance per channel, spread evenly over DRIFT_BAND_HZ,
    fps); joint: one weight for all channels, `powers` (1,) their summed white noise; None: measured per channel
    here (_white_noise). Risk = RSS - the sum over the noise's spectrum of (1 - 2 gain) (SURE in the frequency
    domain; for white noise the familiar RSS - sigma^2 (n - 2 df)). Coarse to fine: decades over LAMBDAS, then
    quarter decades around each channel's best."""
    channels = 1 if joint else y.shape[1]
    used = weights > 0
    variance, fps = drift
    drift_band = tuple(f / (fps / 2) for f in DRIFT_BAND_HZ)

    def residuals(lams: np.ndarray, part: np.ndarray) -> np.ndarray:  # (len(lams), channels of part): weighted RSS
        squared = [weights[:, None] * (part - whittaker(part, weights, lam, band)) ** 2 for lam in lams]
        return np.array([s.sum()[None] if joint else s.sum(0) for s in squared])

    def risks(lams: np.ndarray, rss: np.ndarray, noise) -> np.ndarray:  # (len(lams), channels of rss)
        dof = _trace(len(y), lams)[:, None] * used.mean()
        drift_dof = _trace(len(y), lams, drift_band)[:, None] * used.mean()
        return rss - noise * (used.sum() - 2 * dof) - variance * (used.sum() - 2 * drift_dof)

    coarse = LAMBDAS[::4]
    rss = residuals(coarse, y)
    if powers is None:
        powers = _white_noise(y, used, rss, coarse)
    best = coarse[np.argmin(risks(coarse, rss, powers), axis=0)]
    chosen = np.empty(channels)
    for c in range(channels):
        if powers[c] <= 0 and variance <= 0:
            chosen[c] = LAMBDAS[0]
            continue
        fine = best[c] * 10.0 ** np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
        part = y if joint else y[:, c:c + 1]  # the channels' fits are independent: refit only this one's
        chosen[c] = fine[np.argmin(risks(fine, residuals(fine, part), powers[c])[:, 0])]
    return chosen


def _white_noise(y: np.ndarray, used: np.ndarray, rss: np.ndarray, lams: np.ndarray) -> np.ndarray:
    """(C,) white noise variance per channel of y (T, C) on its used frames (T,) bool, given the residual sums of
    squares rss (L, C) of its fits with lams (L,): the lower of two measures that motion pushes up and only chance
    pushes down. The residual of the fit that generalised cross-validation picks (min RSS / (n - df)^2, Craven &
    Wahba 1979), over its expectation for pure noise (n - 2 tr H + tr H^2), uses every frame; the median of the
    fourth differences (_white_powers) uses a few (on a 60-120 frame take it is off by 20-40 % in power, which
    swings SURE's choice: SURE is only as good as the noise level it is given), but it ignores the bursts of
    fast motion that the residual counts (clean capture, whose own roughness is not noise to smooth)."""
    frames, n = len(y), used.sum()
    gains = _gains(frames, lams)
    best = np.argmin(rss / (n - n * gains.mean(1)[:, None]) ** 2, axis=0)
    noise_left = n * ((1 - gains) ** 2).mean(1)
    return np.minimum(rss[best, np.arange(rss.shape[1])] / noise_left[best], _white_powers(y, used))


# ----------------------------------------------------------------------------------------------- tracks

def clean_track(poses: np.ndarray, joints, fps: float = 30.0, strength: float = 1.0, window: int = WINDOW,
                overlap: int = OVERLAP, progress: Progress | None = None) -> Cleaning:
    """Clean the rotations of `joints` (indices into the 55) of poses (T, 165); every other value is returned
    bit-exact. progress(done, total) is called per joint once its noise is measured, then per joint and window,
    and may raise to cancel."""
    frames = len(poses)
    by_joint = poses.reshape(frames, -1, 3)
    out = poses.copy().reshape(frames, -1, 3)
    rejected = np.zeros(by_joint.shape[:2], bool)
    noise = np.zeros(by_joint.shape[1])
    cutoff = np.zeros(by_joint.shape[1])
    if strength <= 0:
        return Cleaning(poses.copy(), rejected, noise, cutoff)
    moving = [j for j in joints if _max_turn(by_joint[:, j]) > np.radians(MOVING_DEG)]
    windows = _windows(frames, window, overlap)
    total, done = max(1, len(moving) * (len(windows) + 1)), 0

    def step():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    bad, matrices, power, tangents = {}, {}, {}, {}
    swapped = swapped_limbs(by_joint)
    for j in moving:  # one noise level per joint for the whole track: windows agree
        bad[j] = frozen_frames(by_joint[:, j]) | jump_bounded(by_joint[:, j]) | swapped[:, j]
        matrices[j] = Rotation.from_rotvec(by_joint[:, j]).as_matrix().reshape(frames, 9)
        good = ~bad[j]
        power[j] = _noise_power(matrices[j], good)
        if j in BODY_JOINTS and good.any():  # glitches and frozen frames bridged, for the drift's spectrum
            kept = np.flatnonzero(good)
            tangents[j] = np.stack([np.interp(np.arange(frames), kept, c[kept]) for c in _about_mean(by_joint[:, j]).T],
                                   1)
        step()
    drift = drift_power(tangents, fps)
    for j in moving:
        joint_drift = drift if j in BODY_JOINTS else 0.0
        blended = np.zeros_like(matrices[j])
        weight_sum = np.zeros(frames)
        lams = []
        for start, stop in windows:
            fit, dropped, lam = _clean_joint(matrices[j][start:stop], bad[j][start:stop], power[j], joint_drift,
                                             strength, _penalty_band(stop - start), fps)
            ramp = _ramp(start, stop, frames, overlap)
            blended[start:stop] += ramp[:, None] * fit
            weight_sum[start:stop] += ramp
            rejected[start:stop, j] |= dropped
            lams.append(lam)
            step()
        # |R - R'|_F^2 ~ 2 angle^2; the drift's angle^2 is its variance on each of the 3 axes
        noise[j] = np.degrees(np.sqrt(power[j] / 2 + 3 * joint_drift))
        share = np.clip((noise[j] - CLEAN_DEG[0]) / (CLEAN_DEG[1] - CLEAN_DEG[0]), 0.0, 1.0)
        smooth = np.where(rejected[:, j], 1.0, share)[:, None]
        fitted = smooth[:, 0] > 0
        mixed = (1 - smooth) * matrices[j] + smooth * blended / weight_sum[:, None]
        out[fitted, j] = Rotation.from_matrix(mixed[fitted].reshape(-1, 3, 3)).as_rotvec()
        cutoff[j] = cutoff_hz(float(np.median(lams)), fps)
    return Cleaning(out.reshape(poses.shape), rejected, noise, cutoff)


def _max_turn(axis_angle: np.ndarray) -> float:
    return float((Rotation.from_rotvec(axis_angle[:1]).inv() * Rotation.from_rotvec(axis_angle)).magnitude().max())


def _windows(frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    if frames <= window:
        return [(0, frames)]
    starts = list(range(0, frames - window, window - overlap)) + [frames - window]
    return [(s, s + window) for s in starts]


def _ramp(start: int, stop: int, frames: int, overlap: int) -> np.ndarray:
    """Cross-fade weights of a window: linear over `overlap` frames inside the track, flat at its ends."""
    ramp = np.ones(stop - start)
    rising = np.arange(1, overlap + 1) / (overlap + 1)
    if start > 0 and overlap:
        ramp[:overlap] = rising
    if stop < frames and overlap:
        ramp[-overlap:] = rising[::-1]
    return ramp
