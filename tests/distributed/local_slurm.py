"""A real single-node SLURM cluster on localhost for tests (Debian ``slurm-wlm`` + ``munge``).

:class:`LocalSlurm` installs the packages when missing (``apt-get``, as root), writes a munge key
and a minimal ``slurm.conf`` into a private folder (own ports, state, spool and logs: nothing under
``/etc`` or ``/var`` is touched), starts ``munged``, ``slurmctld`` and ``slurmd``, and waits until the
node is idle. :meth:`LocalSlurm.env` is the environment for ``sbatch``/``squeue``/``scontrol`` (it
sets ``SLURM_CONF``). :meth:`LocalSlurm.stop` ends the daemons it started, by pid.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")


class SlurmUnavailable(RuntimeError):
    """The packages are missing and cannot be installed here (no root, no apt, no network)."""


def ensure_installed() -> None:
    """Install ``slurm-wlm`` and ``munge`` with apt-get if a daemon is missing."""
    if all(shutil.which(d) for d in DAEMONS):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SlurmUnavailable("slurm-wlm/munge are not installed and apt-get as root is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise SlurmUnavailable(f"{' '.join(cmd)} failed: {result.stderr[-2000:]}")
    if not all(shutil.which(d) for d in DAEMONS):
        raise SlurmUnavailable(f"installed {PACKAGES} but {DAEMONS} are not on PATH")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """``NodeName=localhost CPUs=... RealMemory=...`` from ``slurmd -C`` (the machine's real resources)."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    line = next(li for li in out.splitlines() if li.startswith("NodeName="))
    fields = dict(f.split("=", 1) for f in line.split())
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    return "NodeName=localhost NodeAddr=127.0.0.1 " + " ".join(f"{k}={fields[k]}" for k in keep if k in fields)


class LocalSlurm:
    """Start/stop munged + slurmctld + slurmd on localhost with everything under ``root``.

    Args:
        root: private folder for config, key, state, spool and logs.
        partition: the one partition's name (the default partition).
    """

    def __init__(self, root: Path, partition: str = "debug") -> None:
        self.root = Path(root)
        self.partition = partition
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self._pids: dict[str, int] = {}

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        return {**(os.environ if base is None else base), "SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 60) -> LocalSlurm:
        if os.geteuid() != 0:
            raise SlurmUnavailable("the local cluster runs slurmctld/slurmd as root (SlurmUser=root)")
        ensure_installed()
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self._write_conf()
        munge = self.root / "munge"
        self._spawn("munged", ["munged", "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={key}", f"--pid-file={munge / 'munged.pid'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}", f"--seed-file={munge / 'seed'}"])
        self._wait(lambda: self.munge_socket.exists(), timeout, "munged socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(self.conf)])
        self._wait(self._node_idle, timeout, "node localhost idle in sinfo")
        return self

    def stop(self) -> None:
        for name in reversed(list(self._pids)):
            pid = self._pids.pop(name)
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, 9)
                os.waitpid(pid, 0)

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def logs(self) -> str:
        """Tails of the daemon logs, for failure messages."""
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted((self.root / "log").glob("*.log")))

    def _write_conf(self) -> None:
        r = self.root
        self.conf.write_text(f"""# written by tests.distributed.local_slurm.LocalSlurm
ClusterName=sslkit-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
JobRequeue=1
ReturnToService=2
KillWait=15
MinJobAge=600
{_node_line()} State=UNKNOWN
PartitionName={self.partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "ab")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)
        log.close()
        self._pids[name] = proc.pid
        time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited at start ({proc.returncode}):\n{self.logs()}")

    def _node_idle(self) -> bool:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], env=self.env(), capture_output=True, text=True)
        return bool(re.search(r"^localhost idle", out.stdout, re.M))

    def _wait(self, ready, timeout: float, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}:\n{self.logs()}")
