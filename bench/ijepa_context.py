"""I-JEPA's context policy by kNN per wall-clock second: ``context="all"`` against ``"truncate"``.

``MultiBlockMaskCollator(context="all")`` keeps every patch of each context block (rows padded or
packed); ``"truncate"`` (the authors' and lightly's policy) cuts every row to the batch's shortest
context, so a step encodes fewer tokens. The two sslkit I-JEPA models start from identical weights
and see the identical batches and mask blocks (the policy only decides how many context patches are
kept); they train in lockstep for ``--steps`` steps (alternating, so their times are comparable on a
shared machine), then the truncated one goes on alone until it has used the untruncated one's
training time. Reported per seed: kNN top-1 at equal steps and at equal wall-clock, and the kNN
gain over random init per training second. Model, data, views, masks and kNN are
``bench/quality.py``'s (small ViT at 32 px, 4-px patches, first 10,000 CIFAR-10 training images).

Usage::

    python bench/ijepa_context.py                 # CIFAR-10 shards in /tmp/shards (docs/benchmarks.md)
    python bench/ijepa_context.py --seeds 0 1 2 --steps 40
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from common import machine, save_json, stub_trainer  # noqa: I001  (bench/ is on sys.path)
from quality import build, knn_top1, load_uint8, views_for
from vs_lightly import make_step

POLICIES = ("all", "truncate")


def batches(data: dict[str, torch.Tensor], batch_size: int, seed: int) -> Iterator[list[dict[str, Any]]]:
    """Collator inputs, one list per step: crops of seeded random training images (quality.py's)."""
    aug, g = views_for("ijepa"), torch.Generator().manual_seed(seed + 1)
    train = data["train"]
    for i in range(10**9):
        idx = torch.randint(0, len(train), (batch_size,), generator=g)
        views = aug(train[idx], generator=g)[0]
        yield [{"views": [v], "label": 0, "key": f"{int(j):06d}-{i}"} for v, j in zip(views, idx)]


def trainer_for(policy: str, vit: dict[str, int], args: argparse.Namespace, seed: int) -> tuple[Any, Callable]:
    """(objective, step function taking collator inputs) for one policy; same weights for every policy."""
    model, _, collate, _ = build("ijepa", vit, seed, policy)
    model.trainer = stub_trainer(total_steps=args.steps)
    step = make_step(model, lambda b: model.training_step(b, 0), "cpu", False, lr=args.lr)

    def run(samples: list[dict[str, Any]]) -> float:
        batch = collate(samples)
        t0 = time.perf_counter()
        step(batch)
        model.trainer.global_step += 1
        return time.perf_counter() - t0

    return model, run


def run_seed(data: dict[str, torch.Tensor], args: argparse.Namespace, seed: int) -> dict[str, float]:
    vit = dict(img_size=32, patch_size=4, depth=args.depth, embed_dim=args.dim, num_heads=3)
    models, steps = zip(*(trainer_for(policy, vit, args, seed) for policy in POLICIES))
    out = {"random": knn_top1(models[0].eval_backbone(), data)}
    seconds = dict.fromkeys(POLICIES, 0.0)
    stream = batches(data, args.batch_size, seed)
    for i in range(args.steps):
        samples = next(stream)
        order = POLICIES if i % 2 == 0 else POLICIES[::-1]
        for policy in order:
            took = steps[POLICIES.index(policy)](samples)
            seconds[policy] += took if i > 0 else 0.0  # each model's first step pays one-time set-up
    for policy, model in zip(POLICIES, models):
        out[f"{policy}_knn"], out[f"{policy}_s"] = knn_top1(model.eval_backbone(), data), seconds[policy]
    extra = 0
    while seconds["truncate"] < seconds["all"]:  # the same batches continue
        seconds["truncate"] += steps[1](next(stream))
        extra += 1
    out["truncate_equal_time_knn"] = knn_top1(models[1].eval_backbone(), data)
    out["truncate_equal_time_steps"], out["truncate_equal_time_s"] = args.steps + extra, seconds["truncate"]
    out["all_equal_time_knn"] = out["all_knn"]
    for policy in POLICIES:
        out[f"{policy}_gain_per_s"] = (out[f"{policy}_knn"] - out["random"]) / out[f"{policy}_s"]
    return out


def summary(results: dict[int, dict[str, float]]) -> list[str]:
    """Mean ± standard error over seeds of the differences (truncate - all) that decide the default."""
    lines = []
    for name, key, digits in (("equal steps, kNN top-1", "knn", 2), ("equal time, kNN top-1", "equal_time_knn", 2),
                              ("kNN gain over random init per training second", "gain_per_s", 4)):
        values = torch.tensor([r[f"truncate_{key}"] - r[f"all_{key}"] for r in results.values()])
        se = float(values.std() / len(values) ** 0.5) if len(values) > 1 else float("nan")
        per_seed = ", ".join(f"{v:+.{digits}f}" for v in values)
        lines.append(f"truncate - all, {name}: mean {values.mean():+.{digits}f} ± {se:.{digits}f} ({per_seed})")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-shards", default="/tmp/shards/cifar10-train")
    p.add_argument("--test-shards", default="/tmp/shards/cifar10-test")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--dim", type=int, default=96)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--num-train", type=int, default=10000)
    p.add_argument("--num-bank", type=int, default=5000)
    p.add_argument("--num-test", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    print(f"I-JEPA, ViT depth {args.depth}, width {args.dim}, 4-px patches at 32 px; {args.steps} steps of batch "
          f"{args.batch_size} per policy; AdamW lr {args.lr}; kNN k=20 T=0.07 on {args.num_bank} bank / "
          f"{args.num_test} test images\n")
    train, train_labels = load_uint8(args.train_shards, args.num_train)
    test, test_labels = load_uint8(args.test_shards, args.num_test)
    data = {"train": train, "train_labels": train_labels, "bank": train[: args.num_bank],
            "bank_labels": train_labels[: args.num_bank], "test": test, "test_labels": test_labels}
    print("| seed | random | all kNN | all s | truncate kNN | truncate s | truncate at equal time (steps) "
          "| gain/s all | gain/s truncate |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = {}
    for seed in args.seeds:
        r = results[seed] = run_seed(data, args, seed)
        print(f"| {seed} | {r['random']:.1f} | {r['all_knn']:.1f} | {r['all_s']:.1f} | {r['truncate_knn']:.1f} | "
              f"{r['truncate_s']:.1f} | {r['truncate_equal_time_knn']:.1f} ({r['truncate_equal_time_steps']}) | "
              f"{r['all_gain_per_s']:.3f} | {r['truncate_gain_per_s']:.3f} |", flush=True)
    print()
    print("\n".join(summary(results)))
    if args.json:
        save_json(args.json, results)


if __name__ == "__main__":
    main()
