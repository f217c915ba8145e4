"""Wall time of `sslkit --help` and each command's `--help` (median of 5 fresh processes), next to the
bare interpreter start (`python -c pass`), the floor any command pays.

    flock -x /tmp/sslkit-cpu.lock python bench/cli.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "sslkit --help": [sys.executable, "-m", "sslkit.cli", "--help"],
    "sslkit pretrain --help": [sys.executable, "-m", "sslkit.cli", "pretrain", "--help"],
    "sslkit recipes": [sys.executable, "-m", "sslkit.cli", "recipes"],
    "sslkit eval --help": [sys.executable, "-m", "sslkit.cli", "eval", "--help"],
    "sslkit publish --help": [sys.executable, "-m", "sslkit.cli", "publish", "--help"],
    "sslkit embed --help": [sys.executable, "-m", "sslkit.cli", "embed", "--help"],
}


def median_seconds(argv: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    floor = median_seconds(COMMANDS["python -c pass"])
    print("| command | median of 5 (s) | x interpreter start |\n|---|---|---|")
    for name, argv in COMMANDS.items():
        seconds = median_seconds(argv)
        print(f"| `{name}` | {seconds:.3f} | {seconds / floor:.1f} |")


if __name__ == "__main__":
    main()
