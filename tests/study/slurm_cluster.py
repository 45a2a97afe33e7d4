"""A real single-node SLURM (slurmctld, slurmd, slurmdbd with MariaDB, munge) on 127.0.0.1 in a
temporary folder, for the cluster tests. Started as root from Debian's packages, stopped by the pid
in each daemon's pid file (never by name). The recipe: shared/docs/slurm-recipe.md."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "sbatch", "sacct", "sacctmgr", "mariadb-install-db")


def why_not_here() -> str | None:
    """Why this machine cannot run the cluster (``None``: it can)."""
    if os.geteuid() != 0:
        return "the SLURM tests start slurmctld, slurmd, slurmdbd and MariaDB as root; this user is not root"
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing); `make setup` installs it as root with apt"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=check, timeout=120)


def _wait(what: str, ok, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        if time.monotonic() > deadline:
            raise RuntimeError(f"SLURM test cluster: {what} did not come up within {seconds:.0f} s")
        time.sleep(0.5)


class Cluster:
    """Start with :meth:`start`, stop with :meth:`stop`; ``env`` has ``SLURM_CONF`` for every command."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = dict(os.environ, SLURM_CONF=str(folder / "slurm.conf"))
        self.pid_files: list[Path] = []

    def start(self) -> "Cluster":
        f = self.folder
        f.mkdir(parents=True, exist_ok=True)
        # munge
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        if not Path("/etc/munge/munge.key").exists():
            _run(["/usr/sbin/mungekey", "--create"], check=False)
        if _run(["munge", "-n"], check=False).returncode != 0:
            pid_file = Path(f"/run/munge/munged-{os.getpid()}.pid")  # munged runs as munge: a folder it may write
            _run(["runuser", "-u", "munge", "--", "/usr/sbin/munged", f"--pid-file={pid_file}"])
            self.pid_files.append(pid_file)
            _wait("munged", lambda: _run(["munge", "-n"], check=False).returncode == 0)
        # MariaDB for the accounting daemon
        data, sock = f / "mysql", f / "mysqld.sock"
        _run(["mariadb-install-db", "--user=root", f"--datadir={data}", "--auth-root-authentication-method=normal"])
        subprocess.Popen(["mariadbd", "--user=root", f"--datadir={data}", f"--socket={sock}", "--skip-networking",
                          f"--pid-file={f / 'mariadbd.pid'}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid_files.append(f / "mariadbd.pid")
        _wait("MariaDB", sock.exists)
        Path("/run/mysqld").mkdir(exist_ok=True)
        link = Path("/run/mysqld/mysqld.sock")
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(sock)
        _wait("MariaDB", lambda: _run(["mariadb", f"--socket={sock}", "-e", "CREATE DATABASE IF NOT EXISTS slurm_acct_db"],
                                      check=False).returncode == 0)
        dbd_port, ctld_port, slurmd_port = _free_port(), _free_port(), _free_port()
        (f / "slurmdbd.conf").write_text(
            f"AuthType=auth/munge\nDbdHost=localhost\nDbdPort={dbd_port}\nSlurmUser=root\n"
            "StorageType=accounting_storage/mysql\nStorageHost=localhost\nStorageLoc=slurm_acct_db\nStorageUser=root\n"
            f"LogFile={f / 'slurmdbd.log'}\nPidFile={f / 'slurmdbd.pid'}\n")
        (f / "slurmdbd.conf").chmod(0o600)
        cpus = os.cpu_count() or 2
        (f / "slurm.conf").write_text(
            f"ClusterName=mirltest\nSlurmctldHost=localhost\nSlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\n"
            f"SlurmctldPort={ctld_port}\nSlurmdPort={slurmd_port}\n"
            f"StateSaveLocation={f / 'state'}\nSlurmdSpoolDir={f / 'spool'}\n"
            f"SlurmctldPidFile={f / 'slurmctld.pid'}\nSlurmdPidFile={f / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={f / 'slurmctld.log'}\nSlurmdLogFile={f / 'slurmd.log'}\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n"
            "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/slurmdbd\n"
            f"AccountingStorageHost=localhost\nAccountingStoragePort={dbd_port}\nReturnToService=2\n"
            "MinJobAge=2\nKillWait=5\n"
            f"NodeName=localhost CPUs={cpus} RealMemory=16000 State=UNKNOWN\n"
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n")
        for name in ("state", "spool"):
            (f / name).mkdir(exist_ok=True)
        _run(["slurmdbd"], env=self.env)
        self.pid_files.append(f / "slurmdbd.pid")
        _wait("slurmdbd", lambda: _run(["sacctmgr", "-i", "add", "cluster", "mirltest"], env=self.env, check=False).returncode == 0)
        _run(["slurmctld"], env=self.env)
        self.pid_files.append(f / "slurmctld.pid")
        _run(["slurmd"], env=self.env)
        self.pid_files.append(f / "slurmd.pid")
        _wait("slurmd", lambda: "idle" in _run(["sinfo", "-h", "-o", "%T"], env=self.env, check=False).stdout)
        return self

    def sacct(self, job_ids: list[str]) -> str:
        """``sacct``'s table of the jobs (state and exit code)."""
        return _run(["sacct", "-X", "-j", ",".join(job_ids), "--format=JobID,JobName%40,State,ExitCode,Elapsed"], env=self.env).stdout

    def stop(self) -> None:
        for pid_file in reversed(self.pid_files):
            try:
                os.kill(int(pid_file.read_text().split()[0]), 15)
            except (OSError, ValueError):
                pass
        time.sleep(1)
