"""The SLURM profile (workflow/profiles/slurm) on a real one-node SLURM cluster.

The `slurm`-marked tests start munged, slurmctld and slurmd on localhost from
a temporary directory (their own slurm.conf, munge key, socket, spool and
state; free ports), with no accounting database, so the profile runs with
``--slurm-status-command squeue`` (which the plugin uses when
``MinJobAge`` >= 3 x the first status check delay). Debian's ``slurm-wlm`` and
``munge`` are installed with apt when missing (root only). Every daemon is
started in the foreground by this module and stopped by its pid in the
fixture's teardown, also when a test fails.

Memory limits are enforced without cgroups by ``jobacct_gather/linux`` with
``OverMemoryKill`` (the job's processes are sampled every second), which is
how the bad-input test makes a job run out of memory.

The other tests here need no SLURM: every rule declares the resources the
executor turns into sbatch options, and the profile itself.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROFILE = REPO / "workflow" / "profiles" / "slurm"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_e2e import TINY_PARAMS  # noqa: E402  (the tiny configuration of the end-to-end tests)

DAEMONS = ("munged", "slurmctld", "slurmd")
#: sbatch options every rule must set, as Snakemake resources (`sbatch -t/--mem/--cpus-per-task`)
REQUIRED_RESOURCES = ("runtime", "mem_mb", "cpus_per_task")
#: one test run at a time on a machine: they share its CPUs and the node name
LOCK = Path("/tmp/taxonbench-slurm-test.lock")


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def _snakemake(workdir: Path, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(cmd, cwd=workdir, env=env or _env(), capture_output=True, text=True, timeout=timeout)


def _dry_run_jobs(workdir: Path, *args: str) -> list[dict]:
    """The jobs of a forced dry run, each as {"rule", "threads", "resources": {name: value}}."""
    proc = _snakemake(workdir, "-n", "-F", *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = []
    for line in proc.stdout.splitlines():
        if m := re.match(r"^(local)?rule (\w+):$", line):
            jobs.append({"rule": m.group(2), "resources": {}})
        elif jobs and (m := re.match(r"^\s+resources: (.*)$", line)):
            jobs[-1]["resources"] = dict(item.split("=", 1) for item in m.group(1).split(", "))
    return jobs


# ---------------------------------------------------------------------------------------------
# Without SLURM: the rules and the profile


def test_every_rule_declares_runtime_memory_and_cpus(tmp_path):
    params = json.loads(json.dumps(TINY_PARAMS))
    params["datasets"]["tiny"]["workers"] = 3
    params["train"].update(threads=2, num_workers=1, cache_decoded_mb=100)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    jobs = _dry_run_jobs(tmp_path, "--workflow-profile", str(PROFILE))
    rules = {job["rule"]: job["resources"] for job in jobs if job["rule"] != "all"}
    assert {"prepare", "samples_figure", "train", "logits", "fit_inference", "infer", "evaluate", "tables",
            "curves_figure"} <= set(rules)
    for rule, resources in rules.items():
        missing = [r for r in REQUIRED_RESOURCES if r not in resources]
        assert not missing, f"rule {rule} declares no {missing} (resources: {resources})"
        assert "slurm_partition" not in resources or resources["slurm_partition"] == "", rule
    # functions of the params, not fixed numbers
    assert rules["prepare"]["cpus_per_task"] == "3"
    assert rules["prepare"]["mem_mb"] == str(2000 + 3 * 1000)
    assert rules["train"]["cpus_per_task"] == "3"  # 2 torch threads + 1 DataLoader worker
    assert rules["train"]["mem_mb"] == str(4000 + 100 + 1500)
    assert rules["train"]["runtime"] == str(60 + 10 * params["train"]["epochs"])
    assert rules["logits"]["gpu"] == "0"  # CPU training: no GPU to dump its logits either

    # two data-parallel processes: twice the CPUs and memory; GPUs for training and its logits
    params["train"]["cpu_processes"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    rules = {job["rule"]: job["resources"] for job in _dry_run_jobs(tmp_path, "--workflow-profile", str(PROFILE))}
    assert rules["train"]["cpus_per_task"] == "6" and rules["train"]["mem_mb"] == str(2 * (4000 + 100 + 1500))
    params["train"]["gpus"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    rules = {job["rule"]: job["resources"] for job in _dry_run_jobs(tmp_path, "--workflow-profile", str(PROFILE))}
    assert rules["train"]["gpu"] == "2" and rules["train"]["cpus_per_task"] == "6" and rules["logits"]["gpu"] == "1"


def test_rules_name_no_partition_account_or_gpu_type():
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for word in ("slurm_partition", "slurm_account", "gpu_model", "gres", "slurm_extra"):
            assert not re.search(rf"\b{word}\s*=", text), f"{smk.name} sets {word}: site settings belong in the profile"


def test_slurm_profile_replaces_the_local_defaults(tmp_path):
    """With --workflow-profile the local profile's `cores: 2` and `gpu: 1` do not cap SLURM jobs."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert {"slurm_partition", "slurm_account"} <= set(profile["default-resources"])
    assert "gpu_model" in profile["set-resources"]["train"]
    assert not {"cores", "resources"} & set(profile), "cores/resources would cap what SLURM allocates"
    assert not (PROFILE / "profile.yaml").exists(), "Snakemake >= 9.19 would read profile.yaml instead"
    local = yaml.safe_load((REPO / "workflow" / "profiles" / "default" / "config.yaml").read_text())
    for key in ("rerun-incomplete", "printshellcmds", "show-failed-logs", "scheduler", "max-checksum-file-size",
                "consider-ancient"):
        if key in local:
            assert profile.get(key) == local[key], f"{key}: the SLURM profile differs from profiles/default"


# ---------------------------------------------------------------------------------------------
# A one-node SLURM cluster on localhost


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _install_slurm() -> None:
    """apt-get install slurm-wlm munge, without letting the packages start their services."""
    if os.geteuid() != 0:
        pytest.skip("SLURM is not installed and installing it (apt-get) needs root")
    if shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and apt-get is not available to install it")
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:  # Debian's way to keep postinst scripts from starting daemons we would not own
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = _env(DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "slurm-wlm", "munge"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:  # stale package lists: update once, then retry
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    finally:
        if own_policy:
            policy.unlink()


class Cluster:
    """munged + slurmctld + slurmd in the foreground, their files under ``root``; stopped by pid.

    slurm.conf has to be at the default path, /etc/slurm/slurm.conf: the plugin's job step drops
    every SLURM_* variable (SLURM_CONF included) before its inner ``srun``, which then finds no
    configuration anywhere else ("fetch_config: DNS SRV lookup failed"). A file already there is
    put back by :meth:`stop`.
    """

    SYSTEM_CONF = Path("/etc/slurm/slurm.conf")

    def __init__(self, root: Path):
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.SYSTEM_CONF
        self.socket = root / "munge" / "munge.socket"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = _env(SLURM_CONF=str(self.conf))
        self.saved_conf: bytes | None = None
        self.conf_written = False

    def write_config(self) -> None:
        munge = self.root / "munge"
        munge.mkdir(mode=0o700)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for d in ("spool", "state", "log"):
            (self.root / d).mkdir()
        cpus = os.cpu_count() or 1
        mem_mb = int(int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 1024 * 0.8)
        if os.geteuid() != 0:
            pytest.skip(f"a one-node SLURM cluster needs root (to write {self.conf} and run slurmd)")
        if self.conf.exists():
            self.saved_conf = self.conf.read_bytes()
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        self.conf_written = True
        self.conf.write_text(f"""\
ClusterName=taxonbench
SlurmctldHost={self.host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={self.socket}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPidFile={self.root}/slurmctld.pid
SlurmdPidFile={self.root}/slurmd.pid
SlurmdSpoolDir={self.root}/spool
StateSaveLocation={self.root}/state
SlurmctldLogFile={self.root}/log/slurmctld.log
SlurmdLogFile={self.root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=300
KillWait=5
MailProg=/bin/true
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")

    def _start(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            start_new_session=True)
        log.close()

    def start(self) -> None:
        munge = self.root / "munge"
        self._start("munged", [shutil.which("munged") or "/usr/sbin/munged", "--foreground", "--force",
                               f"--key-file={munge / 'munge.key'}", f"--socket={self.socket}",
                               f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
                               f"--seed-file={munge / 'munged.seed'}"])
        self._wait(lambda: self.socket.exists(), "munged's socket", 20)
        self._start("slurmctld", [shutil.which("slurmctld") or "/usr/sbin/slurmctld", "-D", "-c", "-f",
                                  str(self.conf)])
        self._wait(lambda: self._run("sinfo", "-h").returncode == 0, "slurmctld to answer sinfo", 30)
        self._start("slurmd", [shutil.which("slurmd") or "/usr/sbin/slurmd", "-D", "-f", str(self.conf),
                               "-N", self.host])
        self._wait(lambda: self._run("sinfo", "-h", "-N", "-o", "%T").stdout.strip() == "idle",
                   "the node to be idle", 60)

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=30)

    def _wait(self, ready, what: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise AssertionError(f"{', '.join(dead)} exited while waiting for {what}:\n{self.logs()}")
            if ready():
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out after {seconds} s waiting for {what}:\n{self.logs()}")

    def logs(self) -> str:
        out = []
        for path in sorted((self.root / "log").glob("*")) + [self.root / "munge" / "munged.log"]:
            if path.exists():
                out.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-2000:])
        return "\n".join(out)

    def jobs(self) -> list[tuple[str, str, str]]:
        """(job id, state, comment) of every job slurmctld still remembers (MinJobAge=300 s)."""
        proc = self._run("squeue", "--states=all", "-h", "-o", "%i|%T|%k")
        assert proc.returncode == 0, proc.stderr
        return [tuple(line.split("|", 2)) for line in proc.stdout.splitlines() if line]

    def stop(self) -> None:
        """scancel what is left, then SIGTERM each daemon this object started (SIGKILL after 15 s)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self._run("scancel", "--full", "--user", str(os.geteuid()))
            except (OSError, subprocess.SubprocessError):
                pass
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=15)
        if self.conf_written:
            if self.saved_conf is None:
                self.conf.unlink(missing_ok=True)
            else:
                self.conf.write_bytes(self.saved_conf)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not all(shutil.which(tool) for tool in ("sbatch", "squeue", "slurmctld", "slurmd", "munged")):
        _install_slurm()
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent run of this module waits for this one
        c = Cluster(tmp_path_factory.mktemp("slurm"))
        try:
            c.write_config()
            c.start()
            yield c
        finally:
            c.stop()
            assert all(p.poll() is not None for p in c.procs.values())


#: the tiny configuration of the end-to-end tests, without the fitted inference (two SLURM jobs, one
#: more level of the DAG): every SLURM job starts Snakemake twice (sbatch, then srun), ~10 s each
SLURM_PARAMS = {**TINY_PARAMS, "experiments": {**TINY_PARAMS["experiments"], "inference": ["bottom_up", "diffusion"]}}
#: its rules, each run as SLURM jobs (rule `all` runs nowhere: it has no command)
TINY_RULES = {"prepare", "samples_figure", "train", "logits", "infer", "evaluate", "tables", "curves_figure",
              "leaderboard", "results_page"}


def _slurm_args(cluster: Cluster, *extra_resources: str) -> list[str]:
    """The SLURM profile as a user runs it, plus what this one-node cluster needs: squeue as the status
    command (no accounting database), quick status checks, kept logs, and memory requests that fit the
    node (the rules' mem_mb are sized for paper-scale data; runtime and cpus_per_task stay the rules')."""
    memory = [f"{rule}:mem_mb=2000" for rule in sorted(TINY_RULES | {"fit_inference"})]
    return ["--workflow-profile", str(PROFILE), "--slurm-status-command", "squeue",
            "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs",
            "--latency-wait", "5", "--set-resources", *memory, *extra_resources]


def _results(root: Path) -> dict:
    """What a run produced: every metrics JSON and every table CSV."""
    out = {str(p.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.glob("results/metrics/**/*.json"))}
    out.update({str(p.relative_to(root)): p.read_text() for p in sorted(root.glob("results/tables/*.csv"))})
    return out


def _job_stats(output: str) -> dict[str, int]:
    """The "Job stats" table Snakemake prints before running: rule -> number of jobs."""
    block = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M) if m.group(1) != "total"}


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The tiny configuration run once locally and once through the SLURM profile."""
    local, remote = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("on_slurm")
    for d in (local, remote):
        (d / "params.yaml").write_text(yaml.safe_dump(SLURM_PARAMS))
    before = {job[0] for job in cluster.jobs()}
    proc = _snakemake(remote, *_slurm_args(cluster), env=cluster.env)
    jobs = [job for job in cluster.jobs() if job[0] not in before]
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}\n{cluster.logs()}"
    ran_locally = _snakemake(local, "--cores", "2")
    assert ran_locally.returncode == 0, ran_locally.stderr[-4000:]
    return {"local": local, "remote": remote, "proc": proc, "jobs": jobs}


@pytest.mark.e2e
@pytest.mark.slurm
def test_tiny_pipeline_on_slurm_equals_local_run(slurm_run, cluster):
    remote, proc = slurm_run["remote"], slurm_run["proc"]
    output = proc.stdout + proc.stderr
    stats = _job_stats(output)
    assert set(stats) == TINY_RULES | {"all"}

    # every job was a SLURM job that completed: one per job of the plan, named by its rule
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", output)
    assert len(submitted) == sum(n for rule, n in stats.items() if rule != "all")
    records = {job_id: (state, comment) for job_id, state, comment in slurm_run["jobs"]}
    for job_id, log in submitted:
        state, comment = records[job_id]
        assert state == "COMPLETED", (job_id, state, comment)
        assert Path(log).is_file() and Path(log).is_relative_to(remote / ".snakemake" / "slurm_logs")
    by_rule = {}
    for _, comment in records.values():
        rule = re.match(r"rule_(\w+?)(_wildcards_.*)?$", comment).group(1)
        by_rule[rule] = by_rule.get(rule, 0) + 1
    assert by_rule == {rule: n for rule, n in stats.items() if rule != "all"}
    assert "localrule" not in output.replace("localrule all", "")

    # the same results as the local run
    local_results = _results(slurm_run["local"])
    # metrics of 2 inference methods and the leaderboard's; 2 tables x (.csv, _vs_paper.csv)
    assert len(local_results) == 3 + 4
    assert _results(remote) == local_results

    again = _snakemake(remote, *_slurm_args(cluster), env=cluster.env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.e2e
@pytest.mark.slurm
def test_slurm_job_out_of_memory_is_reported_and_only_it_reruns(slurm_run, cluster, tmp_path):
    """A job over its memory limit fails as a SLURM job; Snakemake names its SLURM log; the next run
    runs only the failed job and what depends on it."""
    work = tmp_path / "work"
    shutil.copytree(slurm_run["remote"], work, symlinks=True)
    # from the trained model on: the two inference jobs and what follows them are still to run
    for done in ("results/scores", "results/metrics", "results/curves", "results/tables",
                 "results/figures/operating_curves_tiny.png"):
        shutil.rmtree(work / done) if (work / done).is_dir() else (work / done).unlink()
    # the diffusion inference asks for 10 MB: SLURM kills it
    starving = "infer:mem_mb=10 if wildcards.inference == 'diffusion' else 2000"
    before = {job[0] for job in cluster.jobs()}
    failed = _snakemake(work, *_slurm_args(cluster, starving), "--keep-going", env=cluster.env)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output[-3000:]
    # SLURM killed it (without cgroups the state is FAILED; OUT_OF_MEMORY needs task/cgroup)
    states = {comment: state for job_id, state, comment in cluster.jobs() if job_id not in before}
    assert states["rule_infer_wildcards_tiny_flat_softmax_diffusion_test"] == "FAILED", states
    assert states["rule_infer_wildcards_tiny_flat_softmax_bottom_up_test"] == "COMPLETED", states
    m = re.search(r"Error in rule infer:\n\s+message: SLURM-job '(\d+)' failed, SLURM status is: 'FAILED'", output)
    assert m, output[-3000:]
    # ... and names the job's SLURM log, which says why
    log = work / ".snakemake" / "slurm_logs" / "rule_infer" / "tiny_flat_softmax_diffusion_test" / f"{m.group(1)}.log"
    assert re.search(rf"log: logs/infer/tiny/flat_softmax/diffusion/test.log, {re.escape(str(log))} ", output)
    assert "Exceeded job memory limit" in log.read_text()
    assert not (work / "results/scores/tiny/flat_softmax/diffusion/test.parquet").exists()
    assert (work / "results/scores/tiny/flat_softmax/bottom_up/test.parquet").exists()

    rerun = _snakemake(work, *_slurm_args(cluster), env=cluster.env)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert _job_stats(rerun.stdout + rerun.stderr) == {"infer": 1, "evaluate": 1, "tables": 1, "curves_figure": 1,
                                                       "leaderboard": 1, "results_page": 1, "all": 1}
    assert _results(work) == _results(slurm_run["local"])
