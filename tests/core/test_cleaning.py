"""core.cleaning on synthetic tracks with known noise, glitches and dropouts."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dposerx_blender.core import cleaning
from dposerx_blender.core.errors import Cancelled
from dposerx_blender.core.layout import mirror_pose

FRAMES = 240
KNEE, ELBOW = 4, 18


def smooth_track(frames=FRAMES, seed=0) -> np.ndarray:
    """Every body joint turning smoothly (sums of slow sines, under 1 Hz at 30 fps), the rest still."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / 30.0
    freqs, phases = rng.uniform(0.1, 1.0, size=(2, 21, 3)), rng.uniform(0, 2 * np.pi, size=(2, 21, 3))
    body = 0.4 * np.sin(2 * np.pi * freqs[0] * t + phases[0]) + 0.2 * np.sin(2 * np.pi * freqs[1] * t + phases[1])
    poses = np.zeros((frames, 55, 3))
    poses[:, 1:22] = body
    return poses.reshape(frames, 165)


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 165) x 2 -> (T, 55) geodesic angle per joint."""
    ra, rb = (Rotation.from_rotvec(x.reshape(-1, 3)) for x in (a, b))
    return np.degrees((ra.inv() * rb).magnitude()).reshape(len(a), 55)


BODY = range(1, 22)


def test_whittaker_keeps_a_straight_line_and_interpolates_gaps():
    t = np.arange(50.0)
    line = np.stack([2 * t + 1, -t], 1)
    weights = np.ones(50)
    weights[20:25] = 0  # missing frames: filled from the penalty alone
    fit = cleaning.whittaker(line + np.r_[0, 1] * 0, weights, 1e6, cleaning._penalty_band(50))
    np.testing.assert_allclose(fit, line, atol=1e-6)


def test_degrees_of_freedom_match_the_exact_hat_matrix():
    frames, lam = 120, 30.0
    band = cleaning._penalty_band(frames)
    exact = np.trace(np.stack([cleaning.whittaker(np.eye(frames)[:, [i]], np.ones(frames), lam, band)[:, 0]
                               for i in range(frames)], 1))
    assert cleaning._trace(frames, np.array([lam]))[0] == pytest.approx(exact, rel=0.05)


def test_white_noise_per_channel_is_measured_closely_on_a_short_take():
    """SURE is only as good as the noise level it is given: on a 90-frame take the per-channel noise measured for
    it is within 25 % of the truth on most channels (the fourth differences' median alone: 57 % of them, mean
    |log ratio| 0.26)."""
    frames, sigma = 90, 0.05
    truth = smooth_track(frames).reshape(frames, 55, 3)[:, 1:22].reshape(frames, 63)
    rng = np.random.default_rng(3)
    band, lams, weights = cleaning._penalty_band(frames), cleaning.LAMBDAS[::4], np.ones(frames)
    ratios = []
    for _ in range(5):
        noisy = truth + rng.normal(scale=sigma, size=truth.shape)
        rss = np.array([((noisy - cleaning.whittaker(noisy, weights, lam, band)) ** 2).sum(0) for lam in lams])
        ratios.append(cleaning._white_noise(noisy, weights > 0, rss, lams) / sigma ** 2)
    ratios = np.concatenate(ratios)
    assert (np.abs(ratios - 1) < 0.25).mean() > 0.7
    assert np.abs(np.log(ratios)).mean() < 0.22


def test_noise_is_measured_from_the_track_and_removed():
    truth = smooth_track()
    rng = np.random.default_rng(1)
    for sigma in (0.03, 0.1):
        noisy = truth + np.repeat(np.arange(55) > 0, 3) * rng.normal(scale=sigma, size=truth.shape) * \
            np.repeat((np.arange(55) >= 1) & (np.arange(55) <= 21), 3)
        result = cleaning.clean_track(noisy, BODY)
        rms_angle = np.degrees(sigma * np.sqrt(3))
        assert np.median(result.noise_deg[1:22]) == pytest.approx(rms_angle, rel=0.25)
        before, after = angle_deg(noisy, truth)[:, 1:22].mean(), angle_deg(result.poses, truth)[:, 1:22].mean()
        assert after < 0.45 * before


def test_clean_input_is_left_bit_exact():
    truth = smooth_track()
    result = cleaning.clean_track(truth, range(1, 55))
    assert np.array_equal(result.poses, truth) and not result.rejected.any()


def drift(frames: int, rms: float, seed: int) -> np.ndarray:
    """(frames, 21, 3) band-limited 1-4 Hz rotation noise, `rms` radians per axis."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, (1.0, 4.0), btype="bandpass", fs=30.0, output="sos")
    band = sosfiltfilt(sos, np.random.default_rng(seed).normal(size=(frames + 120, 21, 3)), axis=0)[60:-60]
    return band * rms / band.std()


def test_slow_drift_is_measured_and_removed():
    frames = 300
    truth = 0.1 * smooth_track(frames)  # a few degrees of slow motion per axis, as most joints have in capture
    noisy = truth.reshape(frames, 55, 3).copy()
    noisy[:, 1:22] = (Rotation.from_rotvec(noisy[:, 1:22].reshape(-1, 3))
                      * Rotation.from_rotvec(drift(frames, 0.05, 2).reshape(-1, 3))).as_rotvec().reshape(frames, 21, 3)
    noisy = noisy.reshape(frames, 165)
    result = cleaning.clean_track(noisy, BODY)
    assert np.median(result.noise_deg[1:22]) > 2.0  # 0.05 rad per axis: about 5 degrees in all, mostly in band
    before, after = angle_deg(noisy, truth)[:, 1:22].mean(), angle_deg(result.poses, truth)[:, 1:22].mean()
    assert after < 0.6 * before


def test_fast_clean_motion_of_a_few_joints_is_not_read_as_drift():
    frames = 300
    kick = smooth_track(frames).reshape(frames, 55, 3)
    t = np.arange(frames) / 30.0
    burst = np.exp(-0.5 * ((t - 5.0) / 0.4) ** 2) * np.sin(2 * np.pi * 2.5 * t)  # a 2.5 Hz kick, about a second
    for joint, gain in ((1, 0.6), (4, 0.8), (7, 0.4), (10, 0.3)):  # left hip, knee, ankle, foot
        kick[:, joint, 0] += gain * burst
    kick = kick.reshape(frames, 165)
    tangents = {j: cleaning._about_mean(kick[:, 3 * j:3 * j + 3]) for j in BODY}
    assert cleaning.drift_power(tangents, 30.0) == 0
    result = cleaning.clean_track(kick, BODY)
    others = [j for j in BODY if j not in (1, 4, 7, 10)]
    assert np.array_equal(result.poses.reshape(frames, 55, 3)[:, others], kick.reshape(frames, 55, 3)[:, others])


def test_glitches_are_refilled_not_smeared():
    truth = smooth_track()
    glitched = truth.copy().reshape(FRAMES, 55, 3)
    spin = Rotation.from_rotvec([0.0, np.radians(70), 0.0])
    glitched[100:103, KNEE] = (Rotation.from_rotvec(glitched[100:103, KNEE]) * spin).as_rotvec()
    flip = Rotation.from_rotvec([np.pi, 0.0, 0.0])  # a half turn about the forearm (+X at rest)
    glitched[150:155, ELBOW] = (Rotation.from_rotvec(glitched[150:155, ELBOW]) * flip).as_rotvec()
    result = cleaning.clean_track(glitched.reshape(FRAMES, 165), BODY)
    errors = angle_deg(result.poses, truth)
    assert result.rejected[100:103, KNEE].all() and result.rejected[150:155, ELBOW].all()
    assert errors[100:103, KNEE].max() < 1.0 and errors[150:155, ELBOW].max() < 1.0
    assert errors[:95].max() < 1e-6  # far from the glitches, the clean track is untouched


def test_fast_clean_kicks_are_kept_and_a_glitch_inside_one_is_refilled():
    t = np.arange(FRAMES) / 30.0
    burst = (t >= 3) & (t < 3 + 3 / 2.5)  # three 2.5 Hz kicks of 75 deg: up to 20 deg a frame, genuine
    flexion = np.where(burst, np.radians(75) * 0.5 * (1 - np.cos(2 * np.pi * 2.5 * (t - 3))), 0.0)
    kicked = smooth_track().reshape(FRAMES, 55, 3)
    kicked[:, KNEE] = (Rotation.from_rotvec(kicked[:, KNEE])
                       * Rotation.from_rotvec(np.outer(flexion, [1.0, 0, 0]))).as_rotvec()
    kicked = kicked.reshape(FRAMES, 165)
    result = cleaning.clean_track(kicked, BODY)
    assert not result.rejected.any() and np.array_equal(result.poses, kicked)
    glitched = kicked.copy().reshape(FRAMES, 55, 3)
    spin = Rotation.from_rotvec([0.0, np.radians(50), 0.0])
    glitched[108:110, KNEE] = (Rotation.from_rotvec(glitched[108:110, KNEE]) * spin).as_rotvec()  # at a kick's peak
    result = cleaning.clean_track(glitched.reshape(FRAMES, 165), BODY)
    assert result.rejected[108:110, KNEE].all() and result.rejected.sum() == 2
    assert angle_deg(result.poses, kicked)[108:110, KNEE].max() < 3.0


def test_frozen_frames_are_refilled_but_still_joints_and_eased_holds_are_not():
    truth = smooth_track()
    frozen = truth.copy()
    frozen[60:66] = frozen[59]  # a dropout: the whole pose held while moving
    result = cleaning.clean_track(frozen, BODY)
    assert result.rejected[60:66, 1:22].all()
    assert angle_deg(result.poses, truth)[60:66, 1:22].max() < 1.0
    held = np.zeros((40, 3))
    held[:10, 0] = np.linspace(0, 0.5, 10) ** 2  # a hold the motion eases into (arrives at speed ~0)... and
    held[10:] = held[9]  # ...stays: not a dropout
    assert not cleaning.frozen_frames(held).any()


def test_only_the_given_joints_change_and_strength_scales_the_smoothing():
    truth = smooth_track()
    noisy = truth + np.random.default_rng(2).normal(scale=0.08, size=truth.shape)
    result = cleaning.clean_track(noisy, [KNEE, ELBOW])
    others = np.ones(165, bool)
    others[[3 * KNEE, 3 * KNEE + 1, 3 * KNEE + 2, 3 * ELBOW, 3 * ELBOW + 1, 3 * ELBOW + 2]] = False
    assert np.array_equal(result.poses[:, others], noisy[:, others])
    assert np.array_equal(cleaning.clean_track(noisy, BODY, strength=0).poses, noisy)
    smoother = cleaning.clean_track(noisy, [KNEE], strength=2.0)
    assert smoother.cutoff_hz[KNEE] == pytest.approx(result.cutoff_hz[KNEE] / 2, rel=0.35)


def test_long_tracks_run_in_windows_with_progress_and_cancel():
    track = smooth_track(frames=3000) + np.random.default_rng(3).normal(scale=0.05, size=(3000, 165))
    calls = []
    cleaning.clean_track(track, [KNEE, ELBOW], window=1024, overlap=64, progress=lambda d, t: calls.append((d, t)))
    steps = 2 * (len(cleaning._windows(3000, 1024, 64)) + 1)  # 2 joints: measured, then 4 windows of 1024 frames
    assert [d for d, _ in calls] == list(range(1, steps + 1)) and {t for _, t in calls} == {steps}

    def cancel(done, total):
        raise Cancelled()

    with pytest.raises(Cancelled):
        cleaning.clean_track(track, [KNEE], progress=cancel)


ARMS = [13, 16, 18, 20, 14, 17, 19, 21]  # left collar, shoulder, elbow, wrist; the right ones


def _arms_blended(track: np.ndarray, share: np.ndarray) -> np.ndarray:
    """The arms turned by `share` (T,) of the way from the track's pose to its mirrored pose (1: swapped)."""
    frames = len(track)
    start = Rotation.from_rotvec(track.reshape(frames, 55, 3)[:, ARMS].reshape(-1, 3))
    end = Rotation.from_rotvec(mirror_pose(track).reshape(frames, 55, 3)[:, ARMS].reshape(-1, 3))
    turn = (start.inv() * end).as_rotvec() * np.repeat(share, len(ARMS))[:, None]
    out = track.copy().reshape(frames, 55, 3)
    out[:, ARMS] = (start * Rotation.from_rotvec(turn)).as_rotvec().reshape(frames, len(ARMS), 3)
    return out.reshape(track.shape)


def test_a_limb_swap_that_jumps_little_on_each_joint_is_refilled():
    """The arms nearly mirror each other (7 deg apart on every joint: under the jump a single joint's glitch
    needs), swapped for 3 frames: together, the 8 joints' jumps in and out are a swap."""
    truth = smooth_track().reshape(FRAMES, 55, 3)
    mirrored = mirror_pose(truth.reshape(FRAMES, 165)).reshape(FRAMES, 55, 3)
    t = np.arange(FRAMES) / 30.0
    for k, (left, right) in enumerate(zip(ARMS[:4], ARMS[4:])):
        offset = np.radians(7) * np.stack([np.cos(0.5 * t + k), np.sin(0.5 * t + k), np.full(FRAMES, 0.3)], 1)
        truth[:, right] = (Rotation.from_rotvec(mirrored[:, right]) * Rotation.from_rotvec(offset)).as_rotvec()
    truth = truth.reshape(FRAMES, 165)
    share = np.zeros(FRAMES)
    share[100:103] = 1
    swapped = _arms_blended(truth, share)
    assert angle_deg(swapped, truth)[100:103, ARMS].min() > 5.0
    result = cleaning.clean_track(swapped, BODY)
    assert result.rejected[100:103, ARMS].all() and result.rejected.sum() == 3 * len(ARMS)
    assert angle_deg(result.poses, truth)[100:103, ARMS].max() < 1.0


def test_arms_exchanging_places_fast_but_smoothly_are_left_alone():
    """The arms move to each other's (mirrored) pose in 4 frames, about 60 deg at up to 22 deg a frame, hold and
    come back: a swap's end points, but entered and left over several frames, as motion does."""
    track = smooth_track()
    ease = 0.5 * (1 - np.cos(np.pi * np.arange(1, 4) / 4))  # 0.15, 0.5, 0.85
    share = np.zeros(FRAMES)
    share[100:103], share[103:107], share[107:110] = ease, 1.0, ease[::-1]
    exchanged = _arms_blended(track, share)
    assert angle_deg(exchanged, track)[103:107, ARMS].max() > 45.0
    assert not cleaning.swapped_limbs(exchanged.reshape(FRAMES, 55, 3)).any()
    result = cleaning.clean_track(exchanged, BODY)
    assert not result.rejected.any() and np.array_equal(result.poses, exchanged)
