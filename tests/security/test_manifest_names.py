"""Manifest shard names resolve inside the shard folder (issue #11, finding 4), refused at ``resolve_shards``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sslkit.data.manifest import resolve_shards, shard_location
from sslkit.errors import UserError


def _manifest(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shards = [{"name": n, "num_samples": 4, "sha256": "0" * 64, "num_bytes": 10} for n in names]
    (folder / "manifest.json").write_text(json.dumps({"shards": shards, "num_samples": 4 * len(names)}))
    return folder


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/hostname", "sub/../../x.tar", "pipe:touch PWNED",
                                  "~/x.tar", "..\\x.tar", "file:///etc/passwd", "https://example.com/a.tar"])
def test_names_leaving_the_folder_are_refused(name, tmp_path) -> None:
    folder = _manifest(tmp_path / "shards", "ok-000000.tar", name)
    with pytest.raises(UserError) as refused:
        resolve_shards(folder)
    message = str(refused.value)
    assert f"shard name {name!r} is refused" in message and "manifest.json" in message and "\n" not in message
    assert not (tmp_path / "shards" / "PWNED").exists() and not Path("PWNED").exists()


def test_a_symlink_out_of_the_folder_is_refused(tmp_path) -> None:
    (tmp_path / "outside.tar").write_bytes(b"x")
    folder = _manifest(tmp_path / "shards", "link.tar")
    os.symlink(tmp_path / "outside.tar", folder / "link.tar")
    with pytest.raises(UserError, match="shard name 'link.tar' is refused"):
        resolve_shards(folder)


def test_names_inside_the_folder_resolve(tmp_path) -> None:
    folder = _manifest(tmp_path / "shards", "a-000000.tar", "train/b-000001.tar")
    shards = resolve_shards(folder / "manifest.json").shards
    assert [s.url for s in shards] == [str(folder / "a-000000.tar"), str(folder / "train" / "b-000001.tar")]


def test_a_manifest_given_by_url_may_name_urls_but_no_shell() -> None:
    base, manifest = "https://data.example/cifar", "https://data.example/cifar/manifest.json"
    assert shard_location(base, "a-000000.tar", manifest) == "https://data.example/cifar/a-000000.tar"
    assert shard_location(base, "s3://bucket/a.tar", manifest) == "s3://bucket/a.tar"
    for name in ["https://x/a.tar';touch PWNED;'", "pipe:touch PWNED", "../a.tar", "a b.tar", "a.tar;id"]:
        with pytest.raises(UserError, match="is refused"):
            shard_location(base, name, manifest)
