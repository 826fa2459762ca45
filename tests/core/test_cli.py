"""`python -m dposerx_blender` on small AMASS-style files with the bundled weights: round trips for every
command, observed and locked joints bit-exact, the input's keys kept, and bad input answered by one clear
message, a non-zero exit and no output file."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dposerx_blender import api, cli
from dposerx_blender.core.skeleton import JOINT_INDEX, OCCLUSION_GROUPS

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--threads", "1"]  # the tasks are tiny; one thread avoids contention on shared machines


def run(capsys, *argv):
    """main(argv) in-process -> (exit code, stderr)."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err


def python_m(cwd, *argv, options=()):
    """`python [options] -m dposerx_blender argv` as a subprocess, with this checkout importable."""
    return subprocess.run([sys.executable, *options, "-m", "dposerx_blender", *map(str, argv)], cwd=cwd,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=120,
                          check=False)


def poses(n, seed=0):
    return np.random.default_rng(seed).normal(0.0, 0.15, (n, 165))


def joint_values(array, joints):
    return array.reshape(*array.shape[:-1], 55, 3)[..., list(joints), :]


@pytest.fixture
def two_poses(tmp_path):
    path = tmp_path / "in.npz"
    np.savez(path, poses=poses(2), trans=np.ones((2, 3), np.float32), gender="female")
    return path


# ------------------------------------------------------------------------------------------------ round trips

def test_complete_fills_the_occluded_groups_and_keeps_the_rest_exact(capsys, tmp_path, two_poses):
    out = tmp_path / "out.npz"
    code, err = run(capsys, "complete", "--input", two_poses, "--output", out, "--occlude", "left_arm,hands",
                    "--hypotheses", 2, "--seed", 3, *FAST)
    assert code == 0, err
    source = np.load(two_poses)["poses"]
    with np.load(out) as result:
        assert result["poses"].shape == (2, 165)
        assert result["hypotheses"].shape == (2, 2, 165) and result["energy"].shape == (2, 2)
        np.testing.assert_array_equal(result["poses"], result["hypotheses"][:, 0])
        assert (np.diff(result["energy"], axis=1) >= 0).all()  # most plausible first
        occluded = sorted(set(OCCLUSION_GROUPS["left_arm"] + OCCLUSION_GROUPS["hands"]))
        observed = [j for j in range(55) if j not in occluded]
        assert (joint_values(result["hypotheses"], observed) == joint_values(source[:, None], observed)).all()
        assert not np.allclose(joint_values(result["poses"], occluded), joint_values(source, occluded))
        assert result["mask"].dtype == bool and not result["mask"][:, occluded].any()
        assert str(result["gender"]) == "female"
        np.testing.assert_array_equal(result["trans"], np.ones((2, 3)))


def test_a_mask_in_the_input_wins_over_occlude(capsys, tmp_path):
    source = poses(2, seed=1)
    mask = np.ones((2, 55), bool)
    left_leg = list(OCCLUSION_GROUPS["left_leg"])
    mask[:, left_leg] = False
    path, out = tmp_path / "in.npz", tmp_path / "out.npz"
    np.savez(path, poses=source, mask=mask)
    code, err = run(capsys, "complete", "--input", path, "--output", out, "--occlude", "hands", "--hypotheses", 2,
                    *FAST)
    assert code == 0, err
    assert "--occlude is ignored" in err
    result = np.load(out)["poses"]
    hands = OCCLUSION_GROUPS["hands"]
    assert (joint_values(result, hands) == joint_values(source, hands)).all()
    assert not np.allclose(joint_values(result, left_leg), joint_values(source, left_leg))


def test_denoise_keeps_every_other_key_and_the_locked_joints(capsys, tmp_path):
    rng = np.random.default_rng(2)
    track = np.cumsum(rng.normal(0.0, 0.02, (20, 165)), axis=0) + rng.normal(0.0, 0.05, (20, 165))
    other = {"trans": rng.normal(size=(20, 3)), "betas": np.arange(10.0), "gender": np.array("male"),
             "mocap_framerate": np.float32(60), "note": np.arange(4)}
    path, out = tmp_path / "track.npz", tmp_path / "clean.npz"
    np.savez(path, poses=track, **other)
    code, err = run(capsys, "denoise", "--input", path, "--output", out, "--lock", "left_wrist,head", *FAST)
    assert code == 0, err
    assert "at 60 fps" in err  # the file's frame rate key is the default
    with np.load(out) as result:
        for key, value in other.items():
            np.testing.assert_array_equal(result[key], value)
        assert result["poses"].shape == (20, 165)
        kept = [0, JOINT_INDEX["left_wrist"], JOINT_INDEX["head"]]  # global orientation always passes through
        assert (joint_values(result["poses"], kept) == joint_values(track, kept)).all()
        assert not np.allclose(result["poses"], track)
        locked = ~api.observed_mask(joints=["left_wrist", "head"])  # what the operator passes for locked bones
        np.testing.assert_array_equal(result["poses"], api.denoise_track(api.load_prior(), track, locked, fps=60))


def test_denoise_a_short_track(capsys, tmp_path):
    path = tmp_path / "short.npz"
    np.savez(path, poses=poses(12))
    assert run(capsys, "denoise", "--input", path, "--output", tmp_path / "out.npz", "--quiet", *FAST)[0] == 0


def test_generate_as_a_subprocess(tmp_path):
    out = tmp_path / "library.npz"
    done = python_m(tmp_path, "generate", "--count", "3", "--steps", "2", "--parts", "body", "--output", out,
                    "--quiet", *FAST)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # --quiet
    result = np.load(out)["poses"]
    assert result.shape == (3, 165) and np.isfinite(result).all()
    not_body = [j for j in range(55) if j > 21]
    assert (joint_values(result, not_body) == 0).all()  # parts not generated stay flat
    assert not np.allclose(joint_values(result, range(1, 22)), 0)


def test_generate_same_seed_same_poses(capsys, tmp_path):
    outputs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        outputs.append(tmp_path / f"{name}.npz")
        assert run(capsys, "generate", "--count", 2, "--steps", 2, "--seed", seed, "--output", outputs[-1],
                   "--quiet", *FAST)[0] == 0
    a, b, c = (np.load(p)["poses"] for p in outputs)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_vary_the_chosen_pose(capsys, tmp_path, two_poses):
    out = tmp_path / "varied.npz"
    code, err = run(capsys, "vary", "--input", two_poses, "--output", out, "--index", 1, "--count", 2,
                    "--strength", 0.2, *FAST)
    assert code == 0, err
    source = np.load(two_poses)["poses"][1]
    result = np.load(out)["poses"]
    assert result.shape == (2, 165)
    np.testing.assert_array_equal(result[:, :3], np.broadcast_to(source[:3], (2, 3)))
    assert not np.allclose(result[0], result[1])


# ---------------------------------------------------------------------------------------- help and interrupts

def test_help_does_not_import_torch_and_lists_every_group(capsys, tmp_path):
    done = python_m(tmp_path, "--help", options=("-X", "importtime"))
    assert done.returncode == 0 and "complete" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "dposerx_blender.cli" in imported and "torch" not in imported
    with pytest.raises(SystemExit) as exc:
        cli.main(["complete", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(group in text for group in OCCLUSION_GROUPS)


def test_ctrl_c_exits_130_and_leaves_an_existing_output_alone(capsys, tmp_path, monkeypatch):
    from dposerx_blender.core import tasks

    def interrupted(*args, **kwargs):
        kwargs["progress"](1, 10)
        raise KeyboardInterrupt

    monkeypatch.setattr(tasks, "generate", interrupted)
    out = tmp_path / "out.npz"
    out.write_bytes(b"previous")
    code, err = run(capsys, "generate", "--count", 2, "--output", out, *FAST)
    assert code == 130 and "interrupted" in err
    assert out.read_bytes() == b"previous" and os.listdir(tmp_path) == ["out.npz"]


# ---------------------------------------------------------------------------------------------- bad input

def write(path, **arrays):
    np.savez(path, **arrays)
    return path


NAN_POSES = poses(2)
NAN_POSES[1, 7] = np.nan
BAD = {  # name: (make the input in tmp_path or None, extra arguments, exit code, words in the message)
    "missing file": (None, ["complete", "--occlude", "hands"], 1, "file not found"),
    "not an npz": (lambda p: p.write_text("poses,1,2\n"), ["complete", "--occlude", "hands"], 1, "not a readable"),
    "no poses": (lambda p: write(p, trans=np.zeros((2, 3))), ["complete", "--occlude", "hands"], 1,
                 "missing the 'poses'"),
    "wrong shape": (lambda p: write(p, poses=np.zeros((2, 100))), ["complete", "--occlude", "hands"], 1,
                    "must have shape"),
    "NaN": (lambda p: write(p, poses=NAN_POSES), ["denoise"], 1, "NaN"),
    "unknown group": (lambda p: write(p, poses=poses(2)), ["complete", "--occlude", "hands,elbows"], 1,
                      "unknown occlusion group 'elbows'"),
    "nothing to complete": (lambda p: write(p, poses=poses(2)), ["complete"], 1, "--occlude"),
    "mask not bool": (lambda p: write(p, poses=poses(2), mask=np.ones((2, 55), int)), ["complete"], 1,
                      "'mask' must be a boolean"),
    "mask shape": (lambda p: write(p, poses=poses(2), mask=np.ones((2, 54), bool)), ["complete"], 1,
                   "'mask' must be a boolean array of shape (2, 55)"),
    "output folder missing": (lambda p: write(p, poses=poses(2)), ["vary", "--output", "no/such/dir/out.npz"], 1,
                              "does not exist"),
    "unknown joint": (lambda p: write(p, poses=poses(20)), ["denoise", "--lock", "left_elbow,tail"], 1,
                      "unknown joint 'tail'"),
    "index out of range": (lambda p: write(p, poses=poses(2)), ["vary", "--index", "2"], 1, "out of range"),
    "vary strength": (lambda p: write(p, poses=poses(2)), ["vary", "--strength", "1.5"], 1, "strength must be"),
    "count 0": (None, ["generate", "--count", "0"], 1, "count must be positive"),
    "unknown part": (None, ["generate", "--count", "2", "--parts", "body,tail"], 1, "parts must be"),
    "unknown sampler": (None, ["generate", "--count", "2", "--sampler", "heun"], 2, "invalid choice"),
    "threads 0": (None, ["generate", "--count", "2", "--threads", "0"], 2, "1 or more, got '0'"),
    "no command": (None, [], 2, "required"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_one_clear_error_and_no_file(capsys, tmp_path, name):
    make, argv, expected_code, words = BAD[name]
    source = tmp_path / "in.npz"
    if make is not None:
        make(source)
    before = sorted(os.listdir(tmp_path))
    argv = [str(tmp_path / a) if a.startswith("no/") else a for a in argv]
    if argv and argv[0] != "generate":
        argv += ["--input", str(source)]
    if argv and "--output" not in argv:
        argv += ["--output", str(tmp_path / "out.npz")]
    code, err = run(capsys, *argv)
    assert code == expected_code
    assert err.startswith("dposerx: error: ") and words in err and err.count("\n") == 1, err
    assert sorted(os.listdir(tmp_path)) == before  # no output, no temporary file
