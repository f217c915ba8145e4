"""Write a published folder: weights, timm config, model card, training config, eval results, SHA256SUMS.

The folder is assembled in a sibling staging directory and moved into place only when complete (and
after plain timm has reproduced the backbone's features), so a failure never leaves half a folder.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import save_file

from sslkit.publish.card import CardResult, headline, render_card
from sslkit.evaluation.matching import backbone_img_size
from sslkit.provenance import file_sha256, package_versions
from sslkit.publish.checksums import verify_sums, write_sums
from sslkit.publish.export import architecture_from_hparams, check_roundtrip, export_state_dict, hub_config
from sslkit.publish.source import PublishError, Source, open_source, select_backbone
from sslkit.run_record import Budget, RunRecord, dataset_from_manifest, from_checkpoint, resolve_preprocessing

CONFIG_FILE = "training_config.yaml"


@dataclass
class PublishOptions:
    """What ``sslkit publish`` was asked for (see ``sslkit.publish.cli``)."""

    which: str | None = None
    license: str = "apache-2.0"
    name: str | None = None
    repo_id: str | None = None
    input_size: int | None = None
    resize: int | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    train_shards: str | None = None
    val_shards: str | None = None
    batch_size: int = 256
    num_workers: int = 0
    overwrite: bool = False


def _budget(source: Source, record: RunRecord | None) -> dict[str, Any]:
    """What the trainer state says the run did (the checkpoint's run record and step counter)."""
    raw, budget = source.raw, record.budget if record else Budget()
    steps = raw.get("global_step") if isinstance(raw.get("global_step"), int) else budget.global_step
    out: dict[str, Any] = {"optimizer steps": steps}
    if budget.steps_per_epoch and steps is not None:
        epochs = dataclasses.replace(budget, global_step=steps).epochs_completed
        out["epochs completed"] = f"{epochs:.3g} ({steps} of {budget.steps_per_epoch} steps per epoch)"
    out["batch size per device"] = budget.batch_size_per_device
    if budget.world_size:
        out["devices"] = f"{budget.world_size} ({budget.num_nodes or 1} node(s))"
    if budget.global_batch_size:
        out["global batch size"] = budget.global_batch_size
        if steps is not None:
            out["images seen (steps x global batch)"] = steps * budget.global_batch_size
    out["trainer.max_epochs"], out["trainer.max_steps"] = budget.max_epochs, budget.max_steps
    out["precision"] = budget.precision
    loss = _last_logged(source.run_dir / "metrics.csv" if source.run_dir else None, "train/loss")
    if loss is not None:
        out["last logged train/loss (metrics.csv)"] = loss
    if source.deepspeed:
        out["checkpoint"] = "DeepSpeed (converted to fp32 with zero_to_fp32)"
    return {k: v for k, v in out.items() if v is not None}


def _last_logged(metrics_csv: Path | None, column: str) -> str | None:
    """The last non-empty value of ``column`` in Lightning's ``metrics.csv``."""
    if metrics_csv is None or not metrics_csv.is_file():
        return None
    with metrics_csv.open(newline="") as f:
        values = [row[column] for row in csv.DictReader(f) if row.get(column)]
    return values[-1] if values else None


def _dataset_names(record: RunRecord | None, extra: str | None) -> list[str]:
    """The training data's name from the shards' manifest (recorded by the run), plus ``--train-shards``'."""
    names: list[str] = []
    for dataset in (record.train if record else None, dataset_from_manifest(extra)):
        if dataset is not None and dataset.name and dataset.name not in names:
            names.append(dataset.name)
    return names


def _training_config(source: Source, config: dict[str, Any] | None) -> str:
    if config is not None:
        return source.run_dir.joinpath("config.yaml").read_text()  # type: ignore[union-attr]
    hparams = {k: v for k, v in dict(source.raw.get("hyper_parameters") or {}).items() if not k.startswith("_")}
    return (
        "# No run directory: the objective as recorded in the checkpoint (not the full LightningCLI config).\n"
        + yaml.safe_dump({"model": {"class_path": source.raw["sslkit_objective"], "init_args": hparams}},
                         sort_keys=False)
    )


def _prepare_out(out: Path, overwrite: bool) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise PublishError(f"{out} exists and is not empty; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))


def _move_into_place(staging: Path, out: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    for path in [staging, *staging.rglob("*")]:  # mkdtemp / safetensors create owner-only modes
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{staging.name.rsplit('-', 1)[-1]}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old)


def publish(source_path: str | Path, out: str | Path, options: PublishOptions | None = None) -> Path:
    """Publish a run directory / checkpoint / DeepSpeed folder as a timm-loadable folder ``out``.

    Returns:
        ``out``, complete and verified against its ``SHA256SUMS``.
    """
    out, options = Path(out), options or PublishOptions()
    staging = _prepare_out(out, options.overwrite)
    try:
        with tempfile.TemporaryDirectory(prefix="sslkit-publish-") as work:
            _write(open_source(source_path, Path(work), exclude=out), staging, out, options)
        verify_sums(staging)
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _preprocessing(source: Source, record: RunRecord | None, backbone: Any, options: PublishOptions) -> dict[str, Any]:
    """The card's and ``config.json``'s preprocessing: the same resolution ``sslkit eval`` uses."""
    pre, sources = resolve_preprocessing(record, backbone_img_size(backbone), options.input_size, options.resize,
                                         options.mean, options.std)
    return {**pre.as_dict(), "crop_pct": pre.input_size / pre.resize, "source": sources}


def _write(source: Source, staging: Path, out: Path, options: PublishOptions) -> None:
    hparams = dict(source.objective.hparams)
    arch = architecture_from_hparams(hparams)
    backbone, which = select_backbone(source.objective, options.which)
    _, default_which = select_backbone(source.objective, None)
    record = from_checkpoint(source.raw)
    pre = _preprocessing(source, record, backbone, options)
    state = export_state_dict(backbone)
    check_roundtrip(backbone, arch, state, (int(arch.model_args.get("in_chans", 3)), pre["input_size"], pre["input_size"]))
    save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})

    checkpoint_sha = file_sha256(source.checkpoint)
    class_path = source.raw["sslkit_objective"]
    provenance = {"objective": class_path, "backbone": which, "checkpoint_sha256": checkpoint_sha, **package_versions()}
    hub_cfg = hub_config(backbone, arch, pre, options.license, provenance)
    (staging / "config.json").write_text(json.dumps(hub_cfg, indent=2) + "\n")
    (staging / CONFIG_FILE).write_text(_training_config(source, source.config()))

    results = _copy_results(source, staging, checkpoint_sha, which == default_which)
    if options.train_shards and options.val_shards:
        from sslkit.publish.evaluate import knn_on_published

        path, result = knn_on_published(staging, options, source.checkpoint, pre)
        results.insert(0, _card_result(result, path.relative_to(staging).as_posix(), "published weights"))
    elif bool(options.train_shards) != bool(options.val_shards):
        raise PublishError("kNN needs both --train-shards and --val-shards")

    meta = {
        "name": options.name or out.name,
        "license": options.license,
        "objective": class_path,
        "objective_name": class_path.rpartition(".")[2],
        "paper": type(source.objective).paper,
        "which": which,
        "default_which": default_which,
        "hparams": {k: v for k, v in hparams.items() if not k.startswith("_")},
        "budget": _budget(source, record),
        "datasets": _dataset_names(record, options.train_shards),
        "preprocessing": pre,
        "checkpoint_sha256": checkpoint_sha,
        "config_file": CONFIG_FILE,
    }
    written = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    meta["files"] = sorted({*written, "README.md", "SHA256SUMS"})
    card = render_card(meta, arch, hub_cfg, [r for r in results if r is not None], out.name, options.repo_id)
    (staging / "README.md").write_text(card)
    write_sums(staging)


def _card_result(result: dict[str, Any], file: str, measured_on: str) -> CardResult | None:
    """A result as the card lists it; its dataset is the one its own queries came from."""
    head = headline(result)
    if head is None:
        return None
    metric, value, args = head
    return CardResult(result["protocol"], metric, value, args, measured_on, file, result_dataset(result))


def result_dataset(result: dict[str, Any]) -> str | None:
    """The dataset a result was measured on: its query features' recorded dataset, else their manifest."""
    val = ((result.get("features") or {}).get("val")) or {}
    if val.get("dataset"):
        return str(val["dataset"])
    dataset = dataset_from_manifest(val.get("shards")) if isinstance(val.get("shards"), str) else None
    return dataset.name if dataset else None


def _copy_results(source: Source, staging: Path, checkpoint_sha: str, default_backbone: bool) -> list[CardResult | None]:
    """Copy into ``eval/`` the results measured on this very checkpoint (sha256 match); others are left out."""
    results: list[CardResult | None] = []
    matching = [(p, r) for p, r in source.results if (r.get("checkpoint") or {}).get("sha256") == checkpoint_sha]
    for num, (path, result) in enumerate(matching):
        dest = staging / "eval" / f"{num:02d}_{path.name}"
        dest.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, dest)
        measured_on = ("this checkpoint's evaluation backbone (= these weights)" if default_backbone else
                       "this checkpoint's default evaluation backbone (NOT the weights published here)")
        results.append(_card_result(result, dest.relative_to(staging).as_posix(), measured_on))
    return results
