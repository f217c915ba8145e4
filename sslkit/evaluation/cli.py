"""``sslkit eval {extract,knn,probe,report}``: frozen-feature evaluation from the command line.

    sslkit eval extract --ckpt C --train-shards S --val-shards S --features DIR [--pool cls --last-k 4]
    sslkit eval knn     --features DIR | --ckpt C --train-shards S --val-shards S   [--k 20 200 --t 0.07 0.1]
    sslkit eval probe   --features DIR | ...                                           [--mode grid|lbfgs]
    sslkit eval report  --results a.json b.json [--logs run/metrics.csv] --out docs/eval.png

Features are extracted once per (checkpoint, preprocessing, pooling) into ``DIR/{train,val}`` and
reused by every later command (an interrupted extraction resumes). Every evaluation writes a JSON
(checkpoint path + sha256, protocol, numbers) and a markdown table next to it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sslkit.errors import UserError

SPLITS = ("train", "val")
POOL_MODES = ("pooled", "cls", "mean", "cls_mean")  # sslkit.evaluation.features.POOL_MODES (not imported: help stays fast)
DEFAULT_KS, DEFAULT_TEMPS = (10, 20, 100, 200), (0.07, 0.1)  # sslkit.evaluation.knn's (checked in tests)
DEFAULT_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
DEFAULT_WDS = (0.0, 1e-4, 1e-3)


def _add_source(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("features (reused when DIR already holds them; else extracted from --ckpt)")
    g.add_argument("--features", type=Path, required=required, help="directory of the train/ and val/ features")
    g.add_argument("--ckpt", type=Path, help="sslkit objective checkpoint (its eval backbone is evaluated)")
    g.add_argument("--train-shards", help="training split: shard dir, manifest or brace pattern")
    g.add_argument("--val-shards", help="evaluation split (the kNN queries / probe test set)")
    g.add_argument("--pool", choices=POOL_MODES, default="pooled", help="image vector (default: backbone's own)")
    g.add_argument("--last-k", type=int, default=1, help="concatenate the pooled last k blocks (dinov2 n_last_blocks)")
    g.add_argument("--input-size", type=int, help="centre-crop size (default: the checkpoint's run record)")
    g.add_argument("--resize", type=int, help="shorter side before the crop (default: the run's; none <= 64 px)")
    g.add_argument("--mean", type=float, nargs=3, help="normalisation mean (default: the run's, else ImageNet's)")
    g.add_argument("--std", type=float, nargs=3, help="normalisation std (default: the run's, else ImageNet's)")
    g.add_argument("--batch-size", type=int, default=256, help="extraction batch size")
    g.add_argument("--num-workers", type=int, default=4, help="keep it fixed when resuming (it sets the order)")
    g.add_argument("--chunk-size", type=int, default=2048,
                   help="rows per committed chunk: an interrupted extraction resumes after the last one")
    g.add_argument("--device", help="default: cuda when available, else cpu")
    g.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sslkit eval", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        "--threads", type=int,
        help="CPU threads for torch and FAISS (default: theirs). On a shared, busy machine 1 can be "
        "several times faster than oversubscribing.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_source(sub.add_parser("extract", help="extract train/val features once, to disk"), required=True)

    knn = sub.add_parser("knn", help="weighted kNN (FAISS, inner product on L2-normalised features)")
    _add_source(knn)
    knn.add_argument("--k", type=int, nargs="+", default=list(DEFAULT_KS))
    knn.add_argument("--t", type=float, nargs="+", default=list(DEFAULT_TEMPS))
    knn.add_argument("--index", choices=("flat", "ivf"), default="flat", help="ivf for banks of ~1M+")
    knn.add_argument("--nlist", type=int, help="IVF cells (default 4 sqrt(N))")
    knn.add_argument("--nprobe", type=int, default=32, help="IVF cells visited per query")
    knn.add_argument("--num-classes", type=int)
    knn.add_argument("--out", type=Path, help="result JSON (default: FEATURES/knn.json)")

    probe = sub.add_parser("probe", help="linear probe on cached features")
    _add_source(probe)
    probe.add_argument("--mode", choices=("grid", "lbfgs"), default="grid")
    probe.add_argument("--lrs", type=float, nargs="+", default=list(DEFAULT_LRS))
    probe.add_argument("--wds", type=float, nargs="+", default=list(DEFAULT_WDS))
    probe.add_argument("--cs", type=float, nargs="+", default=[0.01, 0.1, 1.0, 10.0], help="lbfgs: inverse L2")
    probe.add_argument("--epochs", type=int, default=50)
    probe.add_argument("--probe-batch-size", type=int, default=1024)
    probe.add_argument("--holdout", type=float, default=0.1, help="fraction of train held out to pick the head")
    probe.add_argument("--seed", type=int, default=0)
    probe.add_argument("--num-classes", type=int)
    probe.add_argument("--probe-device", help="default: cuda when available, else cpu")
    probe.add_argument("--out", type=Path, help="result JSON (default: FEATURES/probe.json)")

    report = sub.add_parser("report", help="draw the evaluation PNG")
    report.add_argument("--results", type=Path, nargs="*", default=[], help="kNN / probe result JSONs")
    report.add_argument("--logs", type=Path, nargs="*", default=[], help="metrics.csv or TensorBoard dirs")
    report.add_argument("--metric", default="val/knn_top1", help="logged metric to draw over epochs")
    report.add_argument("--out", type=Path, required=True)
    return parser


def _identity(args: argparse.Namespace, split: str, pre: dict[str, Any]) -> dict[str, Any]:
    """What these features depend on besides pooling (added by extract_to_disk)."""
    from sslkit.evaluation.results import checkpoint_record
    from sslkit.run_record import dataset_from_manifest

    shards = getattr(args, f"{split}_shards")
    dataset = dataset_from_manifest(shards)
    return {
        "checkpoint": checkpoint_record(args.ckpt),
        "shards": shards,
        "dataset": dataset.name if dataset else None,
        "preprocessing": {"transform": "sslkit.transforms.views.EvalTransform", **pre},
    }


def default_features_dir(ckpt: Path) -> Path:
    """``<run>/eval/<ckpt stem>-<sha256[:8]>/`` for a checkpoint in a run folder, else ``<ckpt>.eval/``:
    results of a later ``last.ckpt`` never land on an earlier one's."""
    from sslkit.evaluation.results import file_sha256

    tag = f"{ckpt.stem}-{file_sha256(ckpt)[:8]}"
    run = ckpt.resolve().parent.parent if ckpt.resolve().parent.name == "checkpoints" else None
    return (run / "eval" / tag if run is not None else Path(f"{ckpt}.eval") / tag) / "features"


def _extract(args: argparse.Namespace) -> Path:
    """Make sure ``args.features/{train,val}`` hold features (extracting from ``--ckpt`` if needed)."""
    from sslkit.evaluation.feature_store import is_complete

    if args.features is None:
        if args.ckpt is None:
            raise UserError("give --features DIR, or --ckpt with --train-shards and --val-shards")
        args.features = Path(args.out).parent / "features" if getattr(args, "out", None) else default_features_dir(args.ckpt)
    if args.ckpt is None:
        if not all(is_complete(args.features / s) for s in SPLITS):
            raise UserError(f"{args.features} holds no complete train/ and val/ features: pass --ckpt and shards")
        return args.features
    if not (args.train_shards and args.val_shards):
        raise UserError("--ckpt needs --train-shards and --val-shards")
    _extract_from_checkpoint(args)
    return args.features


def _extract_from_checkpoint(args: argparse.Namespace) -> None:
    import torch

    from sslkit.data import build_eval_loader
    from sslkit.evaluation.feature_store import extract_to_disk
    from sslkit.evaluation.features import Pooling
    from sslkit.evaluation.matching import check_bank_and_queries, checkpoint_preprocessing
    from sslkit.objectives import load_objective
    from sslkit.preflight import check_shards

    for split in SPLITS:
        check_shards(getattr(args, f"{split}_shards"), f"--{split}-shards")
    backbone = load_objective(args.ckpt).eval_backbone()
    pre, sources = checkpoint_preprocessing(args.ckpt, backbone, args.input_size, args.resize, args.mean, args.std)
    check_bank_and_queries(args.train_shards, args.val_shards, pre.input_size, args.ckpt)
    print(f"preprocessing: {pre.input_size} px (resize {pre.resize}), mean {list(pre.mean)}, std {list(pre.std)} "
          f"(from {', '.join(sorted(set(sources.values())))})", file=sys.stderr)
    pooling = Pooling(args.pool, args.last_k)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    for split in SPLITS:
        loader = build_eval_loader(getattr(args, f"{split}_shards"), pre.transform(), args.batch_size, args.num_workers)
        total = getattr(getattr(loader, "dataset", None), "num_samples", None)
        extract_to_disk(
            backbone, loader, args.features / split, _identity(args, split, pre.as_dict()), pooling, device,
            args.chunk_size, progress=not args.no_progress, total=total,
        )


def _context(features: Path) -> dict[str, Any]:
    from sslkit.evaluation.feature_store import read_meta

    identity = read_meta(features / "train")["identity"]
    return {
        "checkpoint": identity.get("checkpoint"),
        "features": {s: read_meta(features / s)["identity"] | {"dir": str((features / s).resolve())} for s in SPLITS},
    }


def _write(out: Path, protocol: str, numbers: dict[str, Any], features: Path, settings: dict[str, Any]) -> None:
    """The result JSON + markdown, registered with the checkpoint's run (so ``publish`` finds it anywhere)."""
    from sslkit.evaluation.results import register_result, write_result

    context = _context(features)
    write_result(out, protocol, numbers, **context, settings=settings)
    register_result(out, context.get("checkpoint") or {})


def run_knn(args: argparse.Namespace) -> dict[str, Any]:
    from sslkit.evaluation.feature_store import load_features
    from sslkit.evaluation.knn import IndexSpec, knn_classify

    features = _extract(args)
    train, val = load_features(features / "train"), load_features(features / "val")
    spec = IndexSpec(args.index, args.nlist, args.nprobe)
    numbers = knn_classify(train.feats, train.labels, val.feats, val.labels, args.k, args.t, args.num_classes, spec)
    out = args.out or features / "knn.json"
    settings = {"ks": args.k, "temps": args.t, "index": vars(spec), "normalise": "l2", "vote": "exp(sim/T)"}
    _write(out, "knn", numbers, features, settings)
    print(f"kNN results written to {out} and {out.with_suffix('.md')}")
    return numbers


def run_probe(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from sslkit.evaluation.feature_store import load_features
    from sslkit.evaluation.linear_probe import linear_probe, logistic_regression_probe

    features = _extract(args)
    train, val = load_features(features / "train"), load_features(features / "val")
    if args.mode == "grid":
        numbers = linear_probe(
            train.feats, train.labels, val.feats, val.labels, args.lrs, args.wds, args.epochs,
            args.probe_batch_size, args.holdout, args.seed, args.num_classes,
            args.probe_device or ("cuda" if torch.cuda.is_available() else "cpu"),
        )
        protocol = "linear_probe"
    else:
        numbers = logistic_regression_probe(
            train.feats, train.labels, val.feats, val.labels, args.cs, args.holdout, args.seed
        )
        protocol = "logistic_regression"
    out = args.out or features / f"{protocol}.json"
    _write(out, protocol, numbers, features, {"standardise": True, "seed": args.seed})
    print(f"{protocol}: test top-1 {numbers['best']['test_top1']:.2f}; written to {out}")
    return numbers


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sslkit eval``; returns the process exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        import faiss
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    if args.command == "extract":
        print(f"features in {_extract(args)}")
    elif args.command == "knn":
        run_knn(args)
    elif args.command == "probe":
        run_probe(args)
    else:
        from sslkit.evaluation.report import draw_report

        print(f"report drawn to {draw_report(args.results, args.logs, args.out, args.metric)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
