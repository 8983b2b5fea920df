"""DVC around the Snakemake pipeline: a local-directory remote round trip and experiments.

A git repository in a temporary directory holds the workflow, the package
source and a tiny configuration (test_e2e's, with fewer jobs); it is run once with
`dvc repro`, committed and pushed to a local-directory remote (module
fixture). Each test then works in a fresh `git clone` + `dvc pull`, which is
what a collaborator or a cluster account starts from: no DVC cache, no
Snakemake records other than those pulled, every restored file with a new
mtime (the remedy is described in docs/dvc.md).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_e2e import TINY_PARAMS

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPIED = ("Snakefile", "dvc.yaml", ".dvcignore", ".gitignore", "profiles", "environment.yml")
MODEL = "results/models/tiny/flat_softmax/model.pt"
METRICS = "results/metrics/tiny/flat_softmax/bottom_up.json"
LEADERBOARD = "results/metrics/leaderboard.json"
NOTHING = "Nothing to be done"
# test_e2e's tiny set with fewer jobs: one plain and one fitted inference (a map under
# results/models made from results/logits), and no tables (dvc.yaml copes with their absence)
PARAMS = {**TINY_PARAMS, "tables": {},
          "experiments": {**TINY_PARAMS["experiments"], "inference": ["bottom_up", "differentiable_diffusion"]}}


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    for role in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{role}_NAME"] = "taxonbench tests"
        env[f"GIT_{role}_EMAIL"] = "tests@taxonbench.invalid"
    return env


def _run(cmd: list[str], cwd: Path, check: bool = True) -> str:
    """Run a command; return stdout + stderr (Snakemake prints its verdict on stderr)."""
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}:\n{out[-5000:]}")
    return out


def _dvc(cwd: Path, *args: str, check: bool = True) -> str:
    return _run([str(BIN / "dvc"), *args], cwd, check)


def _git(cwd: Path, *args: str) -> str:
    return _run(["git", *args], cwd)


def _snakemake(cwd: Path, *args: str) -> str:
    """The user's plain `snakemake` in the project (its own Snakefile and default profile)."""
    return _run([str(BIN / "snakemake"), *args], cwd)


def _identity(repo: Path) -> None:
    _git(repo, "config", "user.name", "taxonbench tests")
    _git(repo, "config", "user.email", "tests@taxonbench.invalid")


@pytest.fixture(scope="module")
def pushed(tmp_path_factory) -> tuple[Path, Path]:
    """(project, remote): the tiny pipeline run by `dvc repro`, committed, pushed to a directory remote."""
    root = tmp_path_factory.mktemp("dvc")
    project, remote = root / "project", root / "remote"
    project.mkdir()
    for item in COPIED:
        src = REPO / item
        if src.is_symlink():
            (project / item).symlink_to(os.readlink(src))
        else:
            shutil.copy(src, project / item)
    shutil.copytree(REPO / "workflow", project / "workflow", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "src" / "taxonbench", project / "src" / "taxonbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (project / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    _git(project, "init", "-q")
    _identity(project)
    _dvc(project, "init", "-q")
    _dvc(project, "repro")
    _dvc(project, "remote", "add", "-d", "storage", str(remote))
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "tiny run")
    _dvc(project, "push")
    return project, remote


def _clone_and_pull(pushed: tuple[Path, Path], name: str) -> Path:
    project, _ = pushed
    clone = project.parent / name
    _git(project.parent, "clone", "-q", str(project), str(clone))
    _identity(clone)
    assert not (clone / "results" / "models").exists() and not (clone / ".dvc" / "cache").exists()
    _dvc(clone, "pull")
    return clone


def _touch_tree(path: Path, mtime: float) -> None:
    for f in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(f, (mtime, mtime))


def test_git_holds_the_metrics_and_the_remote_the_rest(pushed):
    project, remote = pushed
    tracked = _git(project, "ls-files").split()
    assert METRICS in tracked and LEADERBOARD in tracked and "dvc.lock" in tracked and ".dvc/config" in tracked
    assert not [f for f in tracked if f.startswith(("data/", "results/models", "results/logits", ".snakemake"))]
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    outs = {o["path"] for o in lock["stages"]["pipeline"]["outs"]}
    assert {"data/shards", "results/models", "results/logits", "results/leaderboard", ".snakemake/metadata"} <= outs
    assert (project / "results" / "tables").is_dir()  # empty: this set asks for no table
    assert sum(1 for f in remote.rglob("*") if f.is_file()) > 20  # the cached files, content-addressed


def test_pull_into_a_fresh_clone_leaves_snakemake_nothing_to_do(pushed):
    project, _ = pushed
    clone = _clone_and_pull(pushed, "clone")
    for rel in (MODEL, "data/shards/tiny/manifest.json", "results/logits/tiny/flat_softmax/test.parquet",
                "results/models/tiny/flat_softmax/differentiable_diffusion.state",
                "results/curves/tiny/flat_softmax/bottom_up.csv", "results/figures/operating_curves_tiny.png"):
        assert (clone / rel).read_bytes() == (project / rel).read_bytes(), rel
    assert any((clone / ".snakemake" / "metadata").iterdir())

    # The worst order a pull can leave: the earliest inputs newest, so every job has an input newer
    # than its outputs (a pull writes files in no particular order, all with fresh mtimes).
    now = time.time()
    for pulled in ("data", "results", ".snakemake/metadata"):
        _touch_tree(clone / pulled, now - 1000)
    _touch_tree(clone / "data" / "shards", now - 10)
    _touch_tree(clone / MODEL, now - 10)

    assert NOTHING in _snakemake(clone, "-n")

    # Both halves of the remedy are load-bearing. Without input checksums for these files (the
    # 1 MB default is smaller than real model weights and logits) the mtimes win ...
    unchecked = _snakemake(clone, "-n", "--max-checksum-file-size", "0")
    assert "rule train:" in unchecked and "rule logits:" in unchecked and "Updated input files" in unchecked
    # ... and without the pulled job records there is nothing to compare the checksums with.
    records = clone / ".snakemake" / "metadata"
    records.rename(clone / "metadata.aside")
    try:
        assert "rule train:" in _snakemake(clone, "-n")
    finally:
        shutil.rmtree(records, ignore_errors=True)  # Snakemake makes an empty one at start
        (clone / "metadata.aside").rename(records)

    assert NOTHING in _snakemake(clone)
    assert (clone / MODEL).read_bytes() == (project / MODEL).read_bytes()
    assert "up to date" in _dvc(clone, "status")


def test_exp_run_with_a_param_override_is_a_new_experiment_and_metrics_diff_shows_it(pushed):
    clone = _clone_and_pull(pushed, "experiment")
    ran = _dvc(clone, "exp", "run", "-S", "params.yaml:train.epochs=2")
    assert "Ran experiment" in ran, ran

    assert yaml.safe_load((clone / "params.yaml").read_text())["train"]["epochs"] == 2
    with open(clone / "results/models/tiny/flat_softmax/train_log.csv") as fh:
        epochs = list(csv.DictReader(fh))
    assert len(epochs) == 2, epochs  # retrained: the pulled job records let Snakemake see the change

    shown = json.loads(_dvc(clone, "exp", "show", "--json"))
    experiments = [exp for commit in shown for exp in (commit.get("experiments") or [])]
    assert len(experiments) == 1, json.dumps(shown)[:3000]
    assert '"epochs": 2' in json.dumps(experiments)

    diff = json.loads(_dvc(clone, "metrics", "diff", "--json"))
    # HEAD's values come from git (committed metrics), the workspace's from the experiment
    changed = {k for k, v in diff[METRICS].items() if v["old"] is not None and v["new"] != v["old"]}
    assert changed & {"ap", "ac", "leaf_top1", "leaf_f1"}, diff
    # the leaderboard's numbers, dataset.experiment.inference.metric, change with them
    board = {k for k, v in diff[LEADERBOARD].items() if v["old"] is not None and v["new"] != v["old"]}
    assert board & {f"tiny.flat_softmax.bottom_up.{m}" for m in changed}, diff[LEADERBOARD]
