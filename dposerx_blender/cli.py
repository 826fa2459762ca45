"""`python -m dposerx_blender`: the prior's tasks on AMASS-style npz files (docs/cli.md).

Exit codes: 0 done, 1 bad data (the message names the file and the problem), 2 bad command line, 130 Ctrl-C.
Outputs are written to a temporary name and renamed, so a failed or interrupted run leaves no file behind.
torch and the prior are imported only once a command runs, so `--help` is quick.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from .core.errors import DPoserError  # torch-free

PROG = "dposerx"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """One line, like the data errors, instead of the usage dump."""
        self.exit(2, f"{PROG}: error: {message} (see: {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number, 1 or more, got {text!r}")
    return int(text)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--weights", metavar="DIR", help="prior weights folder (default: the bundled weights)")
    common.add_argument("--variant", choices=("combined", "fused"),
                        help="prior network (default: the one the weights recommend)")
    common.add_argument("--threads", type=_positive_int, metavar="N", help="CPU threads for torch")
    common.add_argument("--quiet", action="store_true", help="no progress bars or messages, only errors")
    seeded = _Parser(add_help=False, parents=[common])
    seeded.add_argument("--seed", type=int, default=0, help="random seed; same seed, same result (default 0)")
    io = _Parser(add_help=False, parents=[seeded])
    io.add_argument("--input", required=True, type=Path, metavar="IN.npz", help="AMASS-style npz with 'poses'")
    io.add_argument("--output", required=True, type=Path, metavar="OUT.npz", help="npz to write")

    parser = _Parser(prog=PROG, description="DPoser-X pose prior on AMASS-style npz files "
                                     "('poses' (N, 165) axis-angle, SMPL-X joint order).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    complete = commands.add_parser("complete", parents=[io], help="fill in unobserved joints, K hypotheses each",
                                   description="Complete each pose's unobserved joints. Observed joints come "
                                   "from a boolean 'mask' (N, 55) in IN.npz (True = observed), else from --occlude.")
    complete.add_argument("--occlude", type=_names, metavar="GROUP[,GROUP]",
                          help="joint groups to fill in: left_leg, right_leg, left_arm, right_arm, trunk, hands, "
                          "legs, arms (ignored when IN.npz has a 'mask')")
    complete.add_argument("--hypotheses", type=int, default=10, metavar="K", help="completions per pose (default 10)")
    complete.add_argument("--strength", type=float, default=1.0, help="prior pull, 1 = tuned (default 1)")
    complete.add_argument("--method", choices=("sampling", "optimisation"), default=None,
                          help="sampling (mask-conditioned network, the default when the weights have one) or "
                          "optimisation (the paper's DPoser completion)")

    denoise = commands.add_parser("denoise", parents=[io], help="clean a noisy motion track",
                                  description="Denoise one motion 'poses' (T, 165); every other key is kept.")
    denoise.add_argument("--fps", type=float, help="frame rate (default: the file's, else 30)")
    denoise.add_argument("--strength", type=float, default=1.0,
                         help="smoothing time scale: 1 = the noise measured in the track, 2 = twice as smooth, "
                              "0 = no change (default 1)")
    denoise.add_argument("--lock", type=_names, default=[], metavar="JOINT[,JOINT]",
                         help="SMPL-X joint names kept exactly, e.g. left_wrist,right_wrist")

    generate = commands.add_parser("generate", parents=[seeded], help="draw new poses from the prior")
    generate.add_argument("--count", type=int, required=True, metavar="N", help="how many poses")
    generate.add_argument("--output", required=True, type=Path, metavar="OUT.npz", help="npz to write")
    generate.add_argument("--steps", type=int, default=10, metavar="K", help="sampler steps (default 10)")
    generate.add_argument("--sampler", choices=("ddim", "euler_maruyama"), default="ddim",
                          help="ddim (few steps) or euler_maruyama (the paper's, use ~1000 steps) (default ddim)")
    generate.add_argument("--temperature", type=float, default=1.0,
                          help="noise scale: < 1 more typical, > 1 more diverse (default 1)")
    generate.add_argument("--parts", type=_names, default=["body", "hands", "face"], metavar="PART[,PART]",
                          help="what to generate among body, hands, face; the rest stays flat (default all)")

    vary = commands.add_parser("vary", parents=[io], help="variations of one pose",
                               description="Noise one pose of IN.npz part way and denoise it back, --count times.")
    vary.add_argument("--index", type=int, default=0, metavar="I", help="which pose of IN.npz (default 0)")
    vary.add_argument("--strength", type=float, default=0.3, help="how far to move, in (0, 1] (default 0.3)")
    vary.add_argument("--count", type=int, default=1, metavar="N", help="how many variations (default 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        message = _COMMANDS[args.command](args)
    except (DPoserError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted, nothing written", file=sys.stderr)
        return 130
    _say(args, message)
    return 0


def _say(args, message: str) -> None:
    if not args.quiet:
        print(f"{PROG}: {message}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------- commands

def _complete(args) -> str:
    import numpy as np

    from .api import observed_mask
    from .core import tasks
    from .core.skeleton import NUM_JOINTS

    motion = _read(args)
    n = len(motion.poses)
    if "mask" in motion.extra:
        observed = motion.extra["mask"]
        if observed.dtype != bool or observed.shape != (n, NUM_JOINTS):
            raise DPoserError(f"{args.input}: 'mask' must be a boolean array of shape ({n}, {NUM_JOINTS}) "
                              f"(True = observed), got {observed.dtype} {observed.shape}")
        if args.occlude:
            _say(args, f"note: {args.input} has a 'mask' array; --occlude is ignored")
    elif args.occlude:
        observed = np.repeat(observed_mask(occlude=args.occlude)[None], n, axis=0)
    else:
        raise DPoserError(f"nothing to complete: give --occlude GROUP[,GROUP] or put a boolean 'mask' array "
                          f"({n}, {NUM_JOINTS}) (True = observed) in {args.input}")
    result = _run(args, "complete", tasks.complete, motion.poses, observed, hypotheses=args.hypotheses,
                  seed=args.seed, strength=args.strength, method=args.method)
    _write_like_input(args, motion, result.poses, mask=observed, hypotheses=result.hypotheses, energy=result.energy)
    return f"wrote {args.output}: {n} poses x {args.hypotheses} hypotheses"


def _denoise(args) -> str:
    from .api import observed_mask
    from .core import tasks

    motion = _read(args)
    locked = ~observed_mask(joints=args.lock)
    fps = motion.fps if args.fps is None else args.fps
    poses = _run(args, "denoise", tasks.denoise_track, motion.poses, locked, fps=fps, strength=args.strength,
                 seed=args.seed)
    _write_like_input(args, motion, poses)
    return f"wrote {args.output}: {len(poses)} frames at {fps:g} fps"


def _generate(args) -> str:
    from .core import tasks
    from .core.amass import write_amass_npz

    _check_output(args.output)
    poses = _run(args, "generate", tasks.generate, args.count, seed=args.seed, steps=args.steps,
                 sampler=args.sampler, temperature=args.temperature, parts=tuple(args.parts))
    write_amass_npz(args.output, _pose_set(poses))
    return f"wrote {args.output}: {len(poses)} poses"


def _vary(args) -> str:
    from .core import tasks
    from .core.amass import write_amass_npz

    motion = _read(args)
    if not 0 <= args.index < len(motion.poses):
        raise DPoserError(f"--index {args.index} is out of range: {args.input} holds poses 0 to "
                          f"{len(motion.poses) - 1}")
    poses = _run(args, "vary", tasks.vary, motion.poses[args.index], strength=args.strength, seed=args.seed,
                 count=args.count)
    write_amass_npz(args.output, _pose_set(poses))
    return f"wrote {args.output}: {len(poses)} variations of pose {args.index}"


_COMMANDS = {"complete": _complete, "denoise": _denoise, "generate": _generate, "vary": _vary}


# ---------------------------------------------------------------------------------------------------- shared

def _read(args):
    """The input motion, after checking that the output can be written (before any long computation)."""
    from .core.amass import read_amass_npz

    motion = read_amass_npz(args.input)
    _check_output(args.output)
    return motion


def _check_output(path: Path) -> None:

    if not path.parent.is_dir():
        raise DPoserError(f"{path}: the output folder {path.parent} does not exist")


def _run(args, label: str, task, *task_args, **kwargs):
    """Load the prior, then run `task(prior, *task_args, **kwargs)` with a tqdm bar fed by its progress callback."""
    import torch
    from tqdm import tqdm

    from .core.weights import load_prior

    if args.threads:
        torch.set_num_threads(args.threads)
    prior = load_prior(args.weights, args.variant)
    with tqdm(desc=label, unit="step", disable=args.quiet, leave=False, delay=0.5, file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        return task(prior, *task_args, progress=progress, **kwargs)


def _write_like_input(args, motion, poses, **arrays) -> None:
    """Write `poses` and `arrays` with every other key of the input file kept (frame-rate keys under the names
    the file uses; write_amass_npz adds the standard `mocap_frame_rate`)."""
    import numpy as np

    from .core.amass import FPS_KEYS, write_amass_npz

    with np.load(args.input) as stored:
        rates = {key: stored[key] for key in FPS_KEYS if key in stored.files}
    write_amass_npz(args.output, replace(motion, poses=poses, extra={**motion.extra, **rates, **arrays}))


def _pose_set(poses):
    """Unrelated poses as an AMASS-style file (no root motion; the frame rate is nominal)."""
    import numpy as np

    from .core.amass import AmassMotion

    return AmassMotion(poses, np.zeros((len(poses), 3)), 30.0)
