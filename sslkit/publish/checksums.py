"""``SHA256SUMS`` for a published folder, in ``sha256sum`` format (``sha256sum -c SHA256SUMS`` checks it)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from sslkit.provenance import file_sha256

SUMS_FILE = "SHA256SUMS"
REQUIRED = ("model.safetensors", "config.json")  # a folder whose sums skip these proves nothing


class ChecksumError(ValueError):
    """A published folder does not match its ``SHA256SUMS``."""


def write_sums(folder: str | Path) -> Path:
    """Hash every file under ``folder`` (recursively, sorted) into ``folder/SHA256SUMS``."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != SUMS_FILE)
    lines = [f"{file_sha256(p)}  {p.relative_to(folder).as_posix()}" for p in files]
    out = folder / SUMS_FILE
    out.write_text("\n".join(lines) + "\n")
    return out


def read_sums(folder: str | Path) -> dict[str, str]:
    """``{relative posix path: hex sha256}`` from ``folder/SHA256SUMS``; rejects paths leaving the folder."""
    path = Path(folder) / SUMS_FILE
    if not path.is_file():
        raise ChecksumError(f"{folder} has no {SUMS_FILE}: its weights cannot be verified")
    sums: dict[str, str] = {}
    for num, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        name = name.lstrip("*")  # sha256sum's binary-mode marker
        rel = PurePosixPath(name)
        if not sep or len(digest) != 64 or rel.is_absolute() or ".." in rel.parts or not name:
            raise ChecksumError(f"{path}:{num}: malformed line {line!r}")
        sums[name] = digest.lower()
    return sums


def verify_sums(folder: str | Path, required: tuple[str, ...] = REQUIRED) -> dict[str, str]:
    """Check every file listed in ``SHA256SUMS``; ``required`` files must be listed.

    Raises:
        ChecksumError: naming the first file that is missing or whose hash differs.
    """
    folder = Path(folder)
    sums = read_sums(folder)
    for name in required:
        if name not in sums:
            raise ChecksumError(f"{folder}/{SUMS_FILE} does not list {name}: refusing unverified weights")
    for name, expected in sums.items():
        path = folder / name
        if not path.is_file():
            raise ChecksumError(f"{path} is listed in {SUMS_FILE} but missing")
        actual = file_sha256(path)
        if actual != expected:
            raise ChecksumError(
                f"SHA256 mismatch for {path}: expected {expected}, got {actual}. The file was changed or "
                "corrupted after publishing; re-download it or re-publish from the checkpoint."
            )
    return sums
