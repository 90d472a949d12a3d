"""A throwaway single-node SLURM cluster on localhost for the test suite.

Real daemons (munged, slurmctld, slurmd from the distribution's packages), no mocks. The config
must live at the compiled-in /etc/slurm/slurm.conf (the executor's job steps strip SLURM_*
variables, so SLURM_CONF elsewhere would not reach the inner srun); an existing file that this
module did not write is never touched. Without systemd and cgroups: linuxproc process tracking,
no task plugin, no accounting (so `squeue` answers status queries and MinJobAge keeps finished
jobs visible). Two fake GPUs (gres/gpu backed by empty files) let the GPU submission path be
exercised on a CPU machine. Teardown stops exactly the daemons started here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
GRES = Path("/etc/slurm/gres.conf")
MARK = "# written by the first-layer test suite; removed when its SLURM test ends"
DAEMONS = ("munged", "slurmctld", "slurmd")


def missing() -> str | None:
    """Why no cluster can be started here, or None."""
    absent = [
        name
        for name in (*DAEMONS, "sbatch", "squeue", "sinfo")
        if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists()
    ]
    if absent:
        return (
            f"SLURM is not installed ({', '.join(absent)} missing; Debian: apt-get install "
            f"slurmctld slurmd slurm-client munge)"
        )
    if os.geteuid() != 0:
        return "starting SLURM daemons needs root"
    for path in (CONF, GRES):
        if path.exists() and MARK not in path.read_text():
            return f"{path} exists and was not written by this test suite; not overwriting it"
    for name in DAEMONS:
        running = subprocess.run(
            ["pgrep", "-x", name], capture_output=True, text=True
        ).stdout.split()
        if running:
            return f"a {name} is already running (pid {running[0]}); the test starts its own"
    return None


def _binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class Cluster:
    def __init__(self, workdir: Path, cpus: int | None = None):
        self.workdir = Path(workdir)
        self.cpus = cpus or os.cpu_count() or 1
        self.processes: list[subprocess.Popen] = []
        self.host = socket.gethostname().split(".")[0]

    def config(self) -> str:
        state = self.workdir / "state"
        memory = max(
            1024, (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2**20 - 1024
        )
        return "\n".join(
            [
                MARK,
                "ClusterName=firstlayer-test",
                f"SlurmctldHost={self.host}(127.0.0.1)",
                "AuthType=auth/munge",
                "SlurmUser=root",
                "SlurmdUser=root",
                f"StateSaveLocation={state}/ctld",
                f"SlurmdSpoolDir={state}/d",
                f"SlurmctldPidFile={state}/slurmctld.pid",
                f"SlurmdPidFile={state}/slurmd.pid",
                f"SlurmctldLogFile={self.workdir}/slurmctld.log",
                f"SlurmdLogFile={self.workdir}/slurmd.log",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "SchedulerType=sched/backfill",
                "GresTypes=gpu",
                "MpiDefault=none",
                "ReturnToService=2",
                "MinJobAge=3600",
                "SlurmctldTimeout=30",
                "SlurmdTimeout=30",
                f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={memory} "
                f"Gres=gpu:2 State=UNKNOWN",
                "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )

    def start(self, timeout: float = 60) -> Cluster:
        for folder in ("state/ctld", "state/d", "munge"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(self.config())
        for index in range(2):  # stand-ins for device files: nothing opens them
            (self.workdir / f"gpu{index}").touch()
        GRES.write_text(f"{MARK}\nNodeName={self.host} Name=gpu File={self.workdir}/gpu[0-1]\n")
        munge = self.workdir / "munge"
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        self._spawn(
            [
                _binary("munged"),
                "--foreground",
                "--force",
                "--socket=/run/munge/munge.socket.2",
                f"--pid-file={munge}/munged.pid",
                f"--log-file={munge}/munged.log",
                f"--seed-file={munge}/seed",
            ]
        )
        time.sleep(0.5)
        self._spawn([_binary("slurmctld"), "-D", "-i"])
        self._spawn([_binary("slurmd"), "-D"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
            if state.returncode == 0 and state.stdout.strip() in ("idle", "mix", "alloc"):
                return self
            for process in self.processes:
                if process.poll() is not None:
                    self.stop()
                    raise RuntimeError(
                        f"{process.args[0]} exited with {process.returncode}; "
                        f"logs in {self.workdir}"
                    )
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"the test cluster did not become idle in {timeout} s; logs in {self.workdir}"
        )

    def _spawn(self, command):
        log = open(self.workdir / f"{Path(command[0]).name}.out", "w")
        self.processes.append(
            subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )

    def stop(self) -> None:
        """Cancel leftover jobs, then stop exactly the daemons started here, newest first."""
        subprocess.run(["scancel", "--full", "--quiet", "-p", "debug"], capture_output=True)
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        for path in (CONF, GRES):
            if path.exists() and MARK in path.read_text():
                path.unlink()
