"""`python build.py data`: real mocap (plus labelled synthetic hands, jaw and eyes) -> SMPL-X training set.

Writes to data/ (git-ignored):
  whole/{train,val,test}.npz   model (N, 162) float32 model vectors, present (N, 5) bool over PARTS_ORDER,
                               origin (N,) int index into `origins` (which source made the row)
  body/, hand/, face/{split}.npz   poses (N, D) float32 per part (hand: right-hand convention, both hands)
  {body,hand,face}/normalizer.npz  mean, std (per dimension, train split)
  manifest.json                counts per source/part/split, the split rule, sources used, content hash

Body poses come from CMU (all formats) split by CMU subject; MakeHuman poses, ASL hands and synthetic parts
are split by item. Deterministic: same inputs and options give the same bytes and hash.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from dposerx_blender.core.layout import MODEL_DIM, MODEL_SLICES, mirror_pose, pose_to_model
from dposerx_blender.core.limits import within_limits
from dposerx_blender.core.mocap.conventions import resample_poses
from dposerx_blender.core.skeleton import (
    EYE_JOINTS,
    JAW_JOINT,
    JOINT_INDEX,
    LEFT_HAND_JOINTS,
    NUM_JOINTS,
    RIGHT_HAND_JOINTS,
)

from dposerx_blender.core.mocap.motion import Motion
from dposerx_blender.core.mocap.retarget import Retargeted, detect_joint_map, load_joint_maps, retarget
from .mocap.sources import mocap_root

ROOT = Path(__file__).resolve().parents[1]
PARTS_ORDER = ("body", "left_hand", "right_hand", "jaw", "eyes")
SPLITS = ("train", "val", "test")
TARGET_FPS = 30.0
MIN_TRACK_FRAMES = 60
# Held-out CMU subjects (no subject is in two splits). Chosen so that val and test each get a few thousand
# frames of varied motion from several capture formats.
VAL_SUBJECTS = {"06", "09", "14", "49"}
TEST_SUBJECTS = {"02", "08", "13", "85"}
HDM05_ACTOR_SPLIT = {"bd": "val", "mm": "test"}  # of the five actors bd, bk, dg, mm, tr


@dataclass
class Source:
    """One folder of the mocap collection: how to read it and under what terms."""

    name: str
    folder: str
    kind: str              # bvh | asfamc | fbx | aistpp
    licence: str
    default: bool = True   # used unless excluded; False = opt-in (--with NAME)
    joint_map: str = ""    # joint-map file stem; empty = detect from joint names
    # Recorded takes: calibration poses at the ends, real timing (trim, resample, filter glitches). False for
    # pose collections, where every frame is a pose of its own.
    takes: bool = True


SOURCES = (
    Source("cmu_asfamc", "cyun9601_cmu_asfamc", "asfamc", "CMU mocap terms (commercial use in products OK)"),
    Source("cmu_cgspeed_bvh", "przestr_cgspeed_daz_bvh", "bvh", "CMU mocap terms"),
    Source("cmu_iclone_bvh", "iclone_cmu_bvh", "bvh", "CMU mocap terms"),
    Source("cmu_keijiro_fbx", "keijiro_cmu_fbx", "fbx", "CMU mocap terms"),
    Source("cmu_poselib_fbx", "poselib_cmu_fbx", "fbx", "CMU mocap terms (repo MIT)"),
    # Same bone names as the cgspeed BVH, but Blender's importer makes different leaf bones: its own map.
    Source("cmu_mesh2motion_fbx", "mesh2motion_cmu_fbx", "fbx", "CMU mocap terms (repo CC0)",
           joint_map="mesh2motion_fbx"),
    Source("makehuman_poses", "makehuman_assets_cc0_poses", "bvh", "CC0", takes=False),
    Source("makehuman_anims", "makehuman_cc0_anims", "bvh", "CC0", takes=False),
    Source("hdm05", "hdm05_cc-by-sa", "asfamc", "CC BY-SA 3.0 (share-alike)", default=False),
    Source("aistpp", "aistpp_cc-by", "aistpp", "CC BY 4.0 annotations; AIST video terms unverified", default=False),
)


def cmu_subject(path: Path) -> str | None:
    """CMU subject id from a trial file name ('02_01.bvh', '005_02.bvh', '49_08_cmu.fbx' -> '02', '05', '49')."""
    head = path.stem.split("_")[0]
    return f"{int(head):02d}" if head.isdigit() else None


def split_of_item(key: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """Deterministic split for items without a subject (a stable hash of the key)."""
    u = zlib.crc32(key.encode()) / 2**32
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def glitch_frames(poses: np.ndarray, max_degrees: float = 45.0) -> np.ndarray:
    """(T,) bool: frames whose body joints jump more than `max_degrees` from the previous frame (at 30 fps,
    i.e. 1350 deg/s: beyond human joint speeds; capture glitches such as swapped or lost markers)."""
    rot = Rotation.from_rotvec(poses[:, 3:66].reshape(-1, 3))
    rot = rot.as_quat().reshape(len(poses), 21, 4)
    dots = np.abs(np.sum(rot[1:] * rot[:-1], axis=-1)).clip(max=1.0)
    jump = np.degrees(2 * np.arccos(dots)).max(axis=1)
    return np.concatenate([np.zeros(min(len(poses), 1), bool), jump > max_degrees])


def calibration_frames(poses: np.ndarray, max_degrees: float = 30.0) -> np.ndarray:
    """(T,) bool: leading/trailing frames in a calibration T-pose (both upper arms within `max_degrees` of
    SMPL-X's rest T-pose, which is what a T-pose source retargets to)."""
    arms = [JOINT_INDEX["left_shoulder"], JOINT_INDEX["right_shoulder"]]
    angles = np.stack([np.linalg.norm(poses[:, 3 * j:3 * j + 3], axis=1) for j in arms], 1)
    t_pose = np.degrees(angles).max(1) < max_degrees
    drop = np.zeros(len(poses), bool)
    for order in (slice(None), slice(None, None, -1)):
        run = np.logical_and.accumulate(t_pose[order])
        drop[order] |= run
    return drop


def longest_clean_run(poses: np.ndarray, glitches: np.ndarray) -> slice:
    """The longest run of consecutive frames inside the anatomical bounds with no glitch jump between them (a
    held-out take with a capture error keeps its clean part: its frames are no less held out)."""
    inside = within_limits(poses)
    best, start = slice(0, 0), 0
    for t in range(len(poses) + 1):
        if t == len(poses) or not inside[t] or glitches[t]:
            if t - start > best.stop - best.start:
                best = slice(start, t)
            start = t + 1 if t < len(poses) and not inside[t] else t
    return best


@dataclass
class Collected:
    """Rows gathered for the output, per split."""

    model: dict = field(default_factory=lambda: {s: [] for s in SPLITS})
    present: dict = field(default_factory=lambda: {s: [] for s in SPLITS})
    origin: dict = field(default_factory=lambda: {s: [] for s in SPLITS})
    origins: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)  # frames outside anatomical bounds, per source
    # Held-out takes (val/test, 30 fps; the longest clean run of each: no glitch, inside the bounds) for denoising;
    # not training data.
    tracks: dict = field(default_factory=lambda: {"val": [], "test": []})

    def add(self, split: str, origin: str, model: np.ndarray, parts: tuple[str, ...]) -> None:
        if origin not in self.origins:
            self.origins.append(origin)
        present = np.array([p in parts for p in PARTS_ORDER])
        self.model[split].append(model.astype(np.float32))
        self.present[split].append(np.broadcast_to(present, (len(model), len(PARTS_ORDER))))
        self.origin[split].append(np.full(len(model), self.origins.index(origin)))
        key = f"{origin}/{'+'.join(parts)}/{split}"
        self.counts[key] = self.counts.get(key, 0) + len(model)


def _read_motions(source: Source, root: Path) -> list[tuple[Path, Motion]]:
    folder = root / source.folder
    if source.kind == "bvh":
        from dposerx_blender.core.mocap.bvh import read_bvh

        return [(p, read_bvh(p)) for p in sorted(folder.rglob("*.bvh"))]
    if source.kind == "asfamc":
        from .mocap.asf_amc import read_amc, read_asf

        motions = []
        for asf_path in sorted(folder.rglob("*.asf")):
            skeleton = read_asf(asf_path)
            # CMU: subject folder with NN.asf + NN_MM.amc; HDM05: asf/HDM_xx.asf + amc/HDM_xx_*.amc
            amcs = folder.rglob(f"{asf_path.stem}_*.amc")
            motions += [(p, read_amc(p, skeleton)) for p in sorted(amcs)]
        return motions
    if source.kind == "fbx":
        from .mocap.fbx import read_fbx

        return [(p, m) for p in sorted(folder.rglob("*.fbx")) for m in read_fbx(p)]
    raise ValueError(source.kind)


def _aistpp(source: Source, root: Path) -> list[tuple[Path, np.ndarray, float]]:
    """AIST++ SMPL poses: the first 22 joints are SMPL-X's pelvis + body joints; the SMPL hand roots drop."""
    import pickle

    out = []
    for path in sorted((root / source.folder).rglob("*.pkl")):
        with open(path, "rb") as f:
            data = pickle.load(f)  # a local training file from the collection, not user input
        smpl = np.asarray(data["smpl_poses"], dtype=np.float64)
        poses = np.zeros((len(smpl), 3 * NUM_JOINTS))
        poses[:, :66] = smpl[:, :66]
        out.append((path, poses, 60.0))
    return out


def collect_motion(collected: Collected, source: Source, root: Path, mirror: bool,
                   reports: list[Retargeted]) -> None:
    """Retarget every motion of a source into body rows (and hand/jaw rows where the rig has them)."""
    if source.kind == "aistpp":
        items = [(p, poses, fps, ("body",)) for p, poses, fps in _aistpp(source, root)]
    else:
        maps = load_joint_maps()
        items = []
        for path, motion in _read_motions(source, root):
            joint_map = maps[source.joint_map] if source.joint_map else detect_joint_map(motion, maps)
            result = retarget(motion, joint_map)
            reports.append(result)
            parts = ["body"]
            if result.driven[list(LEFT_HAND_JOINTS + RIGHT_HAND_JOINTS)].all():
                parts += ["left_hand", "right_hand"]
            if result.driven[JAW_JOINT]:
                parts.append("jaw")
            if result.driven[list(EYE_JOINTS)].all():
                parts.append("eyes")
            items.append((path, result.poses, result.fps, tuple(parts)))
    for path, poses, fps, parts in items:
        subject = cmu_subject(path) if source.name.startswith("cmu") else None
        if source.takes:
            poses = resample_poses(poses[~calibration_frames(poses)], fps, TARGET_FPS)
            glitches = glitch_frames(poses)
            held_out = {"val": VAL_SUBJECTS, "test": TEST_SUBJECTS}
            take = "_".join(path.stem.split("_")[:2])  # '02_01' in every CMU conversion's file names
            clean = longest_clean_run(poses, glitches)
            for split, subjects in held_out.items():
                taken = {name for name, _ in collected.tracks[split]}  # a take converted twice counts once
                if subject in subjects and take not in taken and clean.stop - clean.start >= MIN_TRACK_FRAMES:
                    collected.tracks[split].append((take, poses[clean].astype(np.float32)))
            poses = poses[~glitches]
            # Gross capture errors (a foot twisted 180 degrees, a knee bent forwards) fall outside generous
            # anatomical bounds; they are dropped and counted.
            inside = within_limits(poses)
            collected.dropped[source.name] = collected.dropped.get(source.name, 0) + int((~inside).sum())
            poses = poses[inside]
        if not len(poses):  # nothing but a calibration pose
            continue
        split = ("val" if subject in VAL_SUBJECTS else "test" if subject in TEST_SUBJECTS else "train") \
            if subject else split_of_item(f"{source.name}/{path.name}")
        if source.name == "hdm05":  # split by actor, like CMU by subject
            split = HDM05_ACTOR_SPLIT.get(path.stem.split("_")[1], "train")
        collected.add(split, source.name, pose_to_model(poses), parts)
        if mirror and split == "train":
            collected.add(split, source.name + "+mirrored", pose_to_model(mirror_pose(poses)), parts)


def collect_hands_and_face(collected: Collected, root: Path, seed: int, n_synthetic: int) -> str:
    """ASL landmark hands (real shapes, MIT) and labelled synthetic hands, jaw and eyes. Returns the ASL fit's
    validation report."""
    from .mocap.hands import ASL_TAR, fit_hand_pose, limit_flexion, read_asl_landmarks, validation_report
    from .synthetic import synthetic_eye_poses, synthetic_hand_poses, synthetic_jaw_poses

    landmarks, letters = read_asl_landmarks(root / ASL_TAR)
    plain, wrist = fit_hand_pose(landmarks, side="right", within_limits=False)
    # MediaPipe splits a curled finger's bend wrongly between its joints (ring/pinky PIP beyond 110 degrees in
    # half the fists); limit_flexion hands the excess to the joint nearer the palm, keeping the curl.
    right = limit_flexion(plain, side="right").reshape(len(plain), 45)
    keys = [f"asl/{i}" for i in range(len(right))]
    _add_hands(collected, "asl_landmarks", right, [split_of_item(k) for k in keys])
    rng = np.random.default_rng(seed)
    for split, n in zip(SPLITS, (n_synthetic, n_synthetic // 10, n_synthetic // 10)):
        _add_hands(collected, "synthetic_hands", synthetic_hand_poses(n, rng).reshape(n, 45), [split] * n)
        face = np.zeros((n, MODEL_DIM))
        face[:, MODEL_SLICES["jaw"]] = synthetic_jaw_poses(n, rng)
        face[:, MODEL_SLICES["eyes"]] = synthetic_eye_poses(n, rng).reshape(n, 6)
        collected.add(split, "synthetic_face", face, ("jaw", "eyes"))
    return validation_report(landmarks, letters, plain, wrist)


def _add_hands(collected: Collected, origin: str, right_hands: np.ndarray, splits: list[str]) -> None:
    """Single right-hand poses go alternately into the right and the left slot (as DPoser-X does with
    single-hand data). The model vector stores the left hand mirrored into right-hand convention, so a
    right-hand pose placed in the left slot is stored unchanged and means its mirror image on the left."""
    splits = np.asarray(splits)
    slot = np.arange(len(right_hands)) % 2
    for split in SPLITS:
        for side_index, side in enumerate(("right_hand", "left_hand")):
            rows = right_hands[(splits == split) & (slot == side_index)]
            model = np.zeros((len(rows), MODEL_DIM))
            model[:, MODEL_SLICES[side]] = rows
            collected.add(split, origin, model, (side,))


PART_SLICES = {
    "body": (MODEL_SLICES["body"],),
    "hand": (MODEL_SLICES["right_hand"],),
    "face": (MODEL_SLICES["jaw"], MODEL_SLICES["eyes"]),
}


def write_outputs(collected: Collected, out: Path, options: dict) -> dict:
    digest = hashlib.sha256()
    manifest = {"options": options, "origins": collected.origins, "counts": collected.counts,
                "dropped_outside_limits": collected.dropped,
                "split_rule": {"cmu_val_subjects": sorted(VAL_SUBJECTS), "cmu_test_subjects": sorted(TEST_SUBJECTS),
                               "others": "crc32 of the item key: 10% val, 10% test"},
                "sizes": {}}
    whole = {}
    for split in SPLITS:
        whole[split] = {"model": np.concatenate(collected.model[split]),
                        "present": np.concatenate(collected.present[split]),
                        "origin": np.concatenate(collected.origin[split]).astype(np.int16)}
        _save(out / "whole" / f"{split}.npz", digest, origins=np.array(collected.origins), **whole[split])
    for part, slices in PART_SLICES.items():
        for split in SPLITS:
            rows = _part_rows(whole[split], part)
            manifest["sizes"][f"{part}/{split}"] = len(rows)
            _save(out / part / f"{split}.npz", digest, poses=rows)
            if split == "train":
                std = rows.std(0)
                _save(out / part / "normalizer.npz", digest, mean=rows.mean(0), std=np.maximum(std, 1e-4))
    manifest["content_sha256"] = digest.hexdigest()
    manifest["tracks"] = {}
    for split, tracks in collected.tracks.items():
        # Kept out of content_sha256: the training data's hash must not change with the evaluation tracks.
        lengths = np.array([len(poses) for _, poses in tracks], dtype=np.int64)
        track_digest = hashlib.sha256()
        _save(out / "tracks" / f"{split}.npz", track_digest, names=np.array([n for n, _ in tracks]),
              lengths=lengths, poses=np.concatenate([poses for _, poses in tracks]) if tracks
              else np.zeros((0, 3 * NUM_JOINTS), np.float32))
        manifest["tracks"][split] = {"takes": len(tracks), "frames": int(lengths.sum()),
                                     "sha256": track_digest.hexdigest()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _part_rows(whole: dict, part: str) -> np.ndarray:
    """Rows of one part: body rows; both hands (each in right-hand convention); jaw+eyes rows."""
    present = {p: whole["present"][:, i] for i, p in enumerate(PARTS_ORDER)}
    model = whole["model"]
    if part == "body":
        return model[present["body"], MODEL_SLICES["body"]]
    if part == "hand":
        return np.concatenate([model[present[side], MODEL_SLICES[side]] for side in ("right_hand", "left_hand")])
    face_rows = present["jaw"] & present["eyes"]
    return np.concatenate([model[face_rows, MODEL_SLICES["jaw"]], model[face_rows, MODEL_SLICES["eyes"]]], 1)


def _save(path: Path, digest, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for key in sorted(arrays):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    np.savez(path, **arrays)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python build.py data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "data")
    parser.add_argument("--mocap", type=Path, default=None, help="mocap folder (default: ../shared/data/mocap)")
    parser.add_argument("--with", dest="extra", action="append", default=[],
                        choices=[s.name for s in SOURCES if not s.default], help="add an opt-in source")
    parser.add_argument("--without", action="append", default=[], choices=[s.name for s in SOURCES])
    parser.add_argument("--no-mirror", action="store_true", help="do not add left/right mirrored train poses")
    parser.add_argument("--synthetic", type=int, default=20000, help="synthetic hand/face train samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = args.mocap or mocap_root()
    if not root.is_dir():
        sys.exit(f"mocap folder not found: {root} (set --mocap or DPOSERX_MOCAP_DIR)")
    sources = [s for s in SOURCES if (s.default or s.name in args.extra) and s.name not in args.without]
    collected, reports = Collected(), []
    for source in sources:
        print(f"reading {source.name} ({source.folder}) ...", flush=True)
        collect_motion(collected, source, root, not args.no_mirror, reports)
    hand_report = collect_hands_and_face(collected, root, args.seed, args.synthetic)
    convention_report = _convention_report(collected, root)
    options = {"sources": [s.name for s in sources], "mirror": not args.no_mirror, "fps": TARGET_FPS,
               "synthetic": args.synthetic, "seed": args.seed}
    manifest = write_outputs(collected, args.out, options)
    from .validate_retarget import write_doc_block, write_report

    write_report(reports)
    print(hand_report)
    write_doc_block("hand-validation", f"Generated by `python build.py data`.\n\n```\n{hand_report}\n```")
    counts = _counts_table(manifest)
    print(counts)
    print(f"content hash: {manifest['content_sha256']}")
    write_doc_block("dataset-counts", f"Generated by `{' '.join(['python build.py data', *(argv or sys.argv[1:])])}`"
                    f".\n\n```\n{counts}\ncontent hash: {manifest['content_sha256']}\n```")
    print(convention_report)
    write_doc_block("convention-table", convention_report)
    from .conventions import cross_conversion_markdown

    cross = cross_conversion_markdown(reports, root)
    print(cross)
    write_doc_block("cross-conversion", cross)
    print(f"written to {args.out}")


def _convention_report(collected: Collected, root: Path) -> str:
    """Per-source training-split body means against the AMASS reference (training/conventions.py)."""
    from .conventions import amass_stats_path, compare, convention_markdown, convention_verdict, load_amass_stats

    model = np.concatenate(collected.model["train"])
    present = np.concatenate(collected.present["train"])[:, PARTS_ORDER.index("body")]
    origin = np.concatenate(collected.origin["train"])
    body = model[:, MODEL_SLICES["body"]].astype(np.float64)
    by_source = {name: body[present & (origin == k)] for k, name in enumerate(collected.origins)
                 if not name.endswith("+mirrored") and (present & (origin == k)).any()}
    by_source["all (training set, mirrored incl.)"] = body[present]
    mean, std = load_amass_stats(amass_stats_path(root))
    summary = compare(by_source, mean, std)
    verdicts = "\n".join(f"- {convention_verdict(summary, s)}" for s in summary)
    return (f"Generated by `python build.py data` (training/conventions.py). Reference: AMASS training-split pose "
            f"statistics of DPoser-X (`../shared/reference/{amass_stats_path(root).name}`, moonbow721/DPoser-X "
            "commit 1829905c, axis_normalize2.pt), used for conventions only. Per cell: our training-split mean "
            "(axis-angle x, y, z, degrees), its geodesic angle to the AMASS mean, and the largest per-axis "
            "difference in AMASS standard deviations.\n\n" + convention_markdown(summary, mean, std)
            + "\n\n" + verdicts)


def _counts_table(manifest: dict) -> str:
    rows = {}
    for key, n in manifest["counts"].items():
        origin, parts, split = key.rsplit("/", 2)
        rows.setdefault((origin, parts), {})[split] = n
    lines = [f"{'origin':28} {'parts':34} " + " ".join(f"{s:>8}" for s in SPLITS)]
    for (origin, parts), by_split in sorted(rows.items()):
        lines.append(f"{origin:28} {parts:34} " + " ".join(f"{by_split.get(s, 0):8d}" for s in SPLITS))
    lines.append("frames dropped outside anatomical bounds: "
                 + ", ".join(f"{k} {v}" for k, v in manifest["dropped_outside_limits"].items()))
    lines.append("part sizes: " + ", ".join(f"{k} {v}" for k, v in manifest["sizes"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
