"""A run killed hard (SIGKILL to Snakemake's whole process group) during prepare, train, logits or tables,
and a shard truncated after a complete run: the next plain `snakemake` completes on its own, with every
metrics file, curve, table and leaderboard byte-identical to an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from test_e2e import BIN, REPO, TINY_PARAMS, _env, _snakemake, tiny_run  # noqa: F401  (the fixture)

pytestmark = pytest.mark.e2e

COMPARED = ("results/metrics", "results/curves", "results/tables", "results/leaderboard")


def _results(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for folder in COMPARED for p in sorted((root / folder).rglob("*"))
            if p.is_file() and p.suffix != ".png"}


def _start(workdir: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
                             "--cores", "2"], cwd=workdir, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _job_running(workdir: Path, argv_part: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if argv_part in cmd and "--directory" not in cmd and os.path.realpath(entry / "cwd") == str(workdir):
                return True
    return False


@pytest.mark.parametrize("step", ["prepare", "train", "logits", "tables"])
def test_killed_run_is_recovered_by_a_plain_rerun(tiny_run, tmp_path, step):  # noqa: F811
    work = tmp_path.resolve()
    (work / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
    proc = _start(work)
    deadline = time.time() + 300
    while not _job_running(work, f"taxonbench {step} ") and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before a {step} job was seen"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (work / ".snakemake" / "locks").exists()  # the killed run left its lock

    rerun = _snakemake(work)  # no --unlock, nothing by hand
    assert "removed the lock a killed run left" in rerun.stdout + rerun.stderr
    assert _results(work) == _results(tiny_run)
    assert "Nothing to be done" in (lambda p: p.stdout + p.stderr)(_snakemake(work))


def test_truncated_shard_is_prepared_again_by_a_plain_rerun(tiny_run, tmp_path):  # noqa: F811
    work = tmp_path.resolve()
    (work / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
    _snakemake(work)
    shard = work / "data/shards/tiny/test-00000.parquet"
    shard.write_bytes(shard.read_bytes()[:500])

    dry = _snakemake(work, "-n")
    assert "data/shards/tiny/test-00000.parquet: 500 bytes" in dry.stderr and "a real run prepares it again" in dry.stderr
    rerun = _snakemake(work)
    assert "dataset 'tiny' is damaged" in rerun.stderr and "preparing it again" in rerun.stderr
    assert shard.stat().st_size > 500
    assert _results(work) == _results(tiny_run)
    again = _snakemake(work)
    assert "Nothing to be done" in again.stdout + again.stderr
