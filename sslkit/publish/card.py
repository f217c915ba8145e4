"""The model card (``README.md``): Hugging Face YAML front matter, recipe, budget, results, loading code."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from sslkit.publish.export import Architecture

HEADLINE_KNN = ("k20_t0.07_top1", "k20_t0.1_top1")  # DINO's reported setting first


@dataclass
class CardResult:
    """One evaluation result as the card lists it.

    Attributes:
        protocol: ``knn``, ``linear_probe`` or ``logistic_regression``.
        metric: Human-readable metric name.
        value: Top-1 accuracy in %.
        args: Protocol settings behind ``value`` (``k``, ``temperature``...).
        measured_on: What was evaluated (``published weights``, ``this checkpoint`` or a caveat).
        file: Path of the result JSON inside the published folder, if copied there.
        dataset: Dataset name, if known.
    """

    protocol: str
    metric: str
    value: float
    args: dict[str, Any] = field(default_factory=dict)
    measured_on: str = ""
    file: str = ""
    dataset: str | None = None


def headline(result: dict[str, Any]) -> tuple[str, float, dict[str, Any]] | None:
    """``(metric name, top-1 %, args)`` of a result JSON, or ``None`` if it has no top-1."""
    numbers = result.get("numbers") or {}
    if result.get("protocol") == "knn":
        keys = [k for k in HEADLINE_KNN if k in numbers] or sorted(k for k in numbers if k.endswith("_top1"))
        if not keys:
            return None
        k, t, _ = keys[0].split("_")
        args = {"k": int(k[1:]), "temperature": float(t[1:]), "key": keys[0]}
        return f"kNN top-1 (k={args['k']}, T={args['temperature']:g})", float(numbers[keys[0]]), args
    best = numbers.get("best") or {}
    if "test_top1" in best:
        args = {k: best[k] for k in ("lr", "wd", "C") if k in best}
        return f"{result['protocol'].replace('_', ' ')} top-1", float(best["test_top1"]), args
    return None


def front_matter(meta: dict[str, Any], results: list[CardResult]) -> str:
    """YAML front matter the Hub indexes: library, license, tags, datasets, metrics, model-index."""
    fm: dict[str, Any] = {
        "library_name": "timm",
        "license": meta["license"],
        "pipeline_tag": "image-feature-extraction",
        "tags": ["image-feature-extraction", "timm", "sslkit", "self-supervised", meta["objective_name"].lower()],
    }
    if meta.get("datasets"):
        fm["datasets"] = list(meta["datasets"])
    if results:
        fm["metrics"] = ["accuracy"]
        fm["model-index"] = [{
            "name": meta["name"],
            "results": [
                {
                    "task": {"type": "image-classification", "name": f"{r.protocol} on frozen features"},
                    "dataset": {"name": r.dataset or "unknown", "type": r.dataset or "unknown"},
                    "metrics": [{"type": "accuracy", "name": r.metric, "value": round(r.value, 4), "args": r.args}],
                }
                for r in results
            ],
        }]
    return "---\n" + yaml.safe_dump(fm, sort_keys=False) + "---\n"


def loading_snippets(arch: Architecture, config: dict[str, Any], folder_hint: str, repo_id: str | None) -> str:
    """The exact calls that load the published folder, for the card."""
    pre = config["pretrained_cfg"]
    overlay = {k: pre[k] for k in ("input_size", "interpolation", "crop_pct", "mean", "std")}
    overlay_src = ", ".join(f"{k}={v!r}" for k, v in overlay.items())
    kwargs = "".join(f", {k}={v!r}" for k, v in arch.model_args.items())
    lines = ["## How to load", ""]
    if arch.stem == "cifar":
        lines += [
            "This ResNet-18 has a **CIFAR stem** (3×3 stride-1 first conv, no max-pool). timm's `ResNet` has no "
            "constructor option for that stem (its stems all downsample by 4), so `timm.create_model(..., "
            "pretrained=True)` cannot load these weights by itself: build timm's `resnet18`, swap the two stem "
            "modules, then load the file (all other keys are timm's):",
            "",
            "<!-- sslkit:load-timm -->",
            "```python",
            "import timm, torch",
            "from safetensors.torch import load_file",
            f"model = timm.create_model({arch.name!r}, num_classes=0{kwargs})",
            "model.conv1 = torch.nn.Conv2d(model.conv1.in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)",
            "model.maxpool = torch.nn.Identity()",
            f"model.load_state_dict(load_file({folder_hint + '/model.safetensors'!r}))",
            "model.eval()",
            "```",
            "<!-- /sslkit:load-timm -->",
        ]
    else:
        source = f"hf-hub:{repo_id}" if repo_id else f"local-dir:{folder_hint}"
        lines += [
            "With timm alone, from the folder's `config.json` (architecture, `model_args`, preprocessing):",
            "",
            "```python",
            "import timm",
            f"model = timm.create_model({source!r}, pretrained=True)",
            "```",
            "",
            "or from the weights file, passing the architecture arguments and preprocessing yourself:",
            "",
            "<!-- sslkit:load-timm -->",
            "```python",
            "import timm",
            f"model = timm.create_model({arch.name!r}, pretrained=True, num_classes=0{kwargs},",
            f"    pretrained_cfg_overlay=dict(file={folder_hint + '/model.safetensors'!r}, {overlay_src}))",
            "model.eval()",
            "```",
            "<!-- /sslkit:load-timm -->",
        ]
    target = repo_id or folder_hint
    lines += [
        "",
        "With sslkit (verifies `SHA256SUMS`, applies `model_args` and the stem, never unpickles):",
        "",
        "```python",
        "import sslkit",
        f"model = sslkit.load_pretrained({target!r})  # timm model, num_classes=0: pooled features (B, "
        f"{config['num_features']})",
        "```",
        "",
        "Preprocessing for features (the `pretrained_cfg` of `config.json`):",
        "",
        "<!-- sslkit:preprocess -->",
        "```python",
        *(
            ["import json", f"pretrained_cfg = json.load(open({folder_hint + '/config.json'!r}))['pretrained_cfg']",
             "cfg = timm.data.resolve_data_config(pretrained_cfg=pretrained_cfg)"]
            if arch.stem == "cifar" else ["cfg = timm.data.resolve_data_config(model=model)"]
        ),
        "transform = timm.data.create_transform(**cfg)",
        "```",
        "<!-- /sslkit:preprocess -->",
        "",
    ]
    return "\n".join(lines)


def _results_section(results: list[CardResult]) -> str:
    if not results:
        return "## Evaluation\n\nNot evaluated: the run holds no kNN / probe result and none was requested.\n"
    lines = ["## Evaluation", "", "| protocol | metric | top-1 (%) | dataset | measured on | result file |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.protocol} | {r.metric} | {r.value:.2f} | {r.dataset or '?'} | {r.measured_on} | "
                     f"{'`' + r.file + '`' if r.file else ''} |")
    return "\n".join(lines) + "\n"


def render_card(
    meta: dict[str, Any], arch: Architecture, config: dict[str, Any], results: list[CardResult],
    folder_hint: str, repo_id: str | None,
) -> str:
    """The whole ``README.md``.

    Args:
        meta: ``name``, ``license``, ``objective``, ``objective_name``, ``paper``, ``which``,
            ``hparams``, ``budget`` (dict), ``datasets``, ``preprocessing``, ``checkpoint_sha256``,
            ``files`` (the folder's files, relative posix paths, as they will be when published).
        arch: The published architecture.
        config: The ``config.json`` written next to the card.
        results: Evaluation results to list.
        folder_hint: How the card refers to the folder in code (its name: a relative path).
        repo_id: Hub repository, when pushed.
    """
    budget = "\n".join(f"- {k}: {v}" for k, v in meta["budget"].items()) or "- unknown"
    stem = " with a CIFAR stem (3×3 stride-1 conv, no max-pool)" if arch.stem == "cifar" else ""
    pre = meta["preprocessing"]
    sections = [
        front_matter(meta, results),
        f"# {meta['name']}",
        "",
        f"A `{arch.name}`{stem} backbone pretrained with **{meta['objective_name']}** ({meta['paper']}) using "
        f"sslkit. These are the **{meta['which']}** weights (`{meta['objective']}`'s default for evaluation is "
        f"the {meta['default_which']}). The model is headless: it returns pooled features of size "
        f"{config['num_features']}.",
        "",
        "## Model",
        "",
        f"- timm architecture: `{arch.name}`; constructor arguments (`model_args`): `{json.dumps(arch.model_args)}`",
        f"- trained as sslkit backbone `{arch.source}`",
        f"- preprocessing: resize shorter side to {pre['resize']} ({pre['interpolation']}), centre crop "
        f"{pre['input_size']}, mean {pre['mean']}, std {pre['std']} (from: {_sources(pre['source'])})",
        f"- source checkpoint sha256: `{meta['checkpoint_sha256']}`",
        "",
        "## Objective and recipe",
        "",
        f"`{meta['objective']}` with these constructor arguments (the full resolved training config is in "
        f"`{meta['config_file']}`):",
        "",
        "```yaml",
        yaml.safe_dump(meta["hparams"], sort_keys=False).rstrip(),
        "```",
        "",
        "## Training budget",
        "",
        budget,
        "",
        "## Training data",
        "",
        ", ".join(meta.get("datasets") or []) or "unknown (not recorded in the run)",
        "",
        _results_section(results),
        loading_snippets(arch, config, folder_hint, repo_id),
        "## Files",
        "",
        ", ".join(f"`{name}` ({_FILE_ROLES.get(name.split('/')[0], 'file')})" for name in meta["files"])
        + (" (check with `sha256sum -c SHA256SUMS`)." if "SHA256SUMS" in meta["files"] else "."),
        "",
        "## License",
        "",
        f"The weights are released under `{meta['license']}`. Check that the training data's terms allow it.",
        "",
    ]
    return "\n".join(sections)


_FILE_ROLES = {
    "model.safetensors": "weights, timm keys", "config.json": "timm hub config", "README.md": "this card",
    "training_config.yaml": "training config", "eval": "result JSON", "SHA256SUMS": "checksums",
}


def _sources(sources: dict[str, str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sources.items())
