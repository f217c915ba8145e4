"""Write a published folder: weights, timm config, model card, training config, eval results, SHA256SUMS.

The folder is assembled in a sibling staging directory and moved into place only when complete (and
after plain timm has reproduced the backbone's features), so a failure never leaves half a folder.
"""

from __future__ import annotations

import csv
import importlib
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
from sslkit.publish.checksums import file_sha256, verify_sums, write_sums
from sslkit.publish.export import architecture_from_hparams, check_roundtrip, export_state_dict, hub_config
from sslkit.publish.preprocessing import resolve_preprocessing
from sslkit.publish.source import PublishError, Source, open_source, select_backbone

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


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("sslkit", "timm", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _paper(class_path: str) -> str:
    """The first docstring line of the objective's module: ``Method: Authors, year, "Title"``."""
    module = importlib.import_module(class_path.rpartition(".")[0])
    first = (module.__doc__ or "").strip().splitlines()
    return " ".join(first[:2]).split(": ", 1)[-1].strip().rstrip(".") if first else "see sslkit.objectives"


def _budget(source: Source, config: dict[str, Any] | None) -> dict[str, Any]:
    raw = source.raw
    budget: dict[str, Any] = {"optimizer steps": raw.get("global_step"), "epochs completed": raw.get("epoch")}
    trainer = (config or {}).get("trainer") or {}
    data = ((config or {}).get("data") or {}).get("init_args") or {}
    per_device = data.get("batch_size_per_device")
    devices, nodes = trainer.get("devices"), trainer.get("num_nodes", 1)
    if per_device:
        budget["batch size per device"] = per_device
        if isinstance(devices, int) and isinstance(nodes, int):
            budget["global batch size"] = per_device * devices * nodes
            if isinstance(raw.get("global_step"), int):
                budget["images seen (steps x global batch)"] = raw["global_step"] * per_device * devices * nodes
        else:
            budget["devices"] = f"{devices} x {nodes} node(s)"
    for key in ("max_epochs", "max_steps", "precision", "accumulate_grad_batches"):
        if trainer.get(key) not in (None, -1):
            budget[f"trainer.{key}"] = trainer[key]
    loss = _last_logged(source.run_dir / "metrics.csv" if source.run_dir else None, "train/loss")
    if loss is not None:
        budget["last logged train/loss (metrics.csv)"] = loss
    if source.deepspeed:
        budget["checkpoint"] = "DeepSpeed (converted to fp32 with zero_to_fp32)"
    return {k: v for k, v in budget.items() if v is not None}


def _last_logged(metrics_csv: Path | None, column: str) -> str | None:
    """The last non-empty value of ``column`` in Lightning's ``metrics.csv``."""
    if metrics_csv is None or not metrics_csv.is_file():
        return None
    with metrics_csv.open(newline="") as f:
        values = [row[column] for row in csv.DictReader(f) if row.get(column)]
    return values[-1] if values else None


def _datasets(config: dict[str, Any] | None, extra: list[str | None]) -> list[str]:
    """Dataset names from the shards' ``manifest.json`` ``source`` field."""
    data = ((config or {}).get("data") or {}).get("init_args") or {}
    names: list[str] = []
    for shards in [data.get("train_shards"), *extra]:
        if not isinstance(shards, str):
            continue
        path = Path(shards)
        manifest = path / "manifest.json" if path.is_dir() else path.with_name("manifest.json")
        try:
            name = str(json.loads(manifest.read_text())["source"]).split(":")[0]
        except (OSError, ValueError, KeyError, TypeError):  # no manifest only costs the card a name
            continue
        if name and name not in names:
            names.append(name)
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


def _write(source: Source, staging: Path, out: Path, options: PublishOptions) -> None:
    hparams = dict(source.objective.hparams)
    arch = architecture_from_hparams(hparams)
    backbone, which = select_backbone(source.objective, options.which)
    _, default_which = select_backbone(source.objective, None)
    config = source.config()
    run_results = [r for _, r in source.results]
    pre = resolve_preprocessing(backbone, config, run_results, options.input_size, options.resize,
                                options.mean, options.std)
    state = export_state_dict(backbone)
    check_roundtrip(backbone, arch, state, (int(arch.model_args.get("in_chans", 3)), pre["input_size"], pre["input_size"]))
    save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})

    checkpoint_sha = file_sha256(source.checkpoint)
    class_path = source.raw["sslkit_objective"]
    provenance = {"objective": class_path, "backbone": which, "checkpoint_sha256": checkpoint_sha, **_versions()}
    hub_cfg = hub_config(backbone, arch, pre, options.license, provenance)
    (staging / "config.json").write_text(json.dumps(hub_cfg, indent=2) + "\n")
    (staging / CONFIG_FILE).write_text(_training_config(source, config))

    datasets = _datasets(config, [options.train_shards])
    results = _copy_results(source, staging, checkpoint_sha, which == default_which, datasets)
    if options.train_shards and options.val_shards:
        from sslkit.publish.evaluate import knn_on_published

        path, result = knn_on_published(staging, options, source.checkpoint, pre)
        results.insert(0, _card_result(result, path.relative_to(staging).as_posix(), "published weights",
                                       (_datasets(None, [options.val_shards]) or datasets or [None])[0]))
    elif bool(options.train_shards) != bool(options.val_shards):
        raise PublishError("kNN needs both --train-shards and --val-shards")

    meta = {
        "name": options.name or out.name,
        "license": options.license,
        "objective": class_path,
        "objective_name": class_path.rpartition(".")[2],
        "paper": _paper(class_path),
        "which": which,
        "default_which": default_which,
        "hparams": {k: v for k, v in hparams.items() if not k.startswith("_")},
        "budget": _budget(source, config),
        "datasets": datasets,
        "preprocessing": pre,
        "checkpoint_sha256": checkpoint_sha,
        "config_file": CONFIG_FILE,
    }
    card = render_card(meta, arch, hub_cfg, [r for r in results if r is not None], str(out.resolve()), options.repo_id)
    (staging / "README.md").write_text(card)
    write_sums(staging)


def _card_result(result: dict[str, Any], file: str, measured_on: str, dataset: str | None) -> CardResult | None:
    head = headline(result)
    if head is None:
        return None
    metric, value, args = head
    return CardResult(result["protocol"], metric, value, args, measured_on, file, dataset)


def _copy_results(
    source: Source, staging: Path, checkpoint_sha: str, default_backbone: bool, datasets: list[str]
) -> list[CardResult | None]:
    """Copy the run's eval JSONs into ``eval/`` and describe what each measured."""
    results: list[CardResult | None] = []
    for num, (path, result) in enumerate(source.results):
        dest = staging / "eval" / f"{num:02d}_{path.name}"
        dest.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, dest)
        same = (result.get("checkpoint") or {}).get("sha256") == checkpoint_sha
        if same and default_backbone:
            measured_on = "this checkpoint's evaluation backbone (= these weights)"
        elif same:
            measured_on = "this checkpoint's default evaluation backbone (NOT the weights published here)"
        else:
            measured_on = "another checkpoint of this run (sha256 differs)"
        results.append(_card_result(result, dest.relative_to(staging).as_posix(), measured_on,
                                    datasets[0] if datasets else None))
    return results
