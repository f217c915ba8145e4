"""``precision: auto``: bf16-mixed only where bf16 matmuls are native; the resolved value is what runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sslkit.distributed import precision
from sslkit.distributed.precision import cpu_flags, cpu_has_native_bf16, resolve_precision

AMX_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
AVX2_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse avx2 fma\n"


def _fake_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    monkeypatch.setattr(precision, "cpu_flags", lambda: cpu_flags(path))
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: False)


def test_cpu_flags_parse_proc_cpuinfo(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(AMX_CPUINFO)
    assert {"amx_bf16", "avx512_bf16", "avx2"} <= cpu_flags(path)
    assert cpu_has_native_bf16(cpu_flags(path))
    path.write_text(AVX2_CPUINFO)
    assert not cpu_has_native_bf16(cpu_flags(path))
    assert cpu_flags(tmp_path / "absent") == set()


@pytest.mark.parametrize(("cpuinfo", "expected"), [(AMX_CPUINFO, "bf16-mixed"), (AVX2_CPUINFO, "32-true")])
def test_auto_resolves_by_cpu_features(
    cpuinfo: str, expected: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_cpu(monkeypatch, tmp_path, cpuinfo)
    for accelerator in ("auto", "cpu"):
        assert resolve_precision("auto", accelerator)[0] == expected
    assert resolve_precision("auto", "mps")[0] == "32-true"


def test_explicit_precision_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_cpu(monkeypatch, tmp_path, AMX_CPUINFO)
    assert resolve_precision("32-true", "cpu") == ("32-true", "set explicitly")
    assert resolve_precision("bf16-true", "cpu")[0] == "bf16-true"


def test_cuda_without_native_bf16_stays_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(precision.torch.cuda, "get_device_name", lambda: "Tesla V100")
    monkeypatch.setattr(precision, "cuda_has_bf16", lambda: False)
    assert resolve_precision("auto", "gpu")[0] == "32-true"
    monkeypatch.setattr(precision, "cuda_has_bf16", lambda: True)
    assert resolve_precision("auto", "auto")[0] == "bf16-mixed"


@pytest.mark.parametrize(("cpuinfo", "expected"), [(AMX_CPUINFO, "bf16-mixed"), (AVX2_CPUINFO, "32-true")])
def test_cli_resolves_auto_prints_it_and_the_trainer_runs_it(
    cpuinfo: str, expected: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sslkit.config import load_recipe
    from sslkit.training import build_cli

    _fake_cpu(monkeypatch, tmp_path, cpuinfo)
    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "simclr" / "vit_tiny_cifar10.yaml")
    assert recipe["trainer"]["precision"] == "auto"  # the default every recipe inherits
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    cli = build_cli(["--config", str(path), "--trainer.accelerator=cpu", "--trainer.devices=1"], tmp_path / "run")
    assert cli.config.trainer.precision == expected  # what SaveConfigCallback writes to config.yaml
    assert cli.trainer.precision == expected
    assert f"precision: auto -> {expected}" in capsys.readouterr().out


def test_cli_rejects_unknown_precision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sslkit.errors import UserError
    from sslkit.training import build_cli

    with pytest.raises((SystemExit, UserError)) as exc:  # the CLI turns the parser's exit into one line
        build_cli(["--trainer.precision=autox", "--trainer.accelerator=cpu"], tmp_path / "run")
    assert "trainer.precision" in str(exc.value) + capsys.readouterr().err
