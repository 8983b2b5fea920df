"""End to end: Snakemake and DVC run the whole pipeline on a tiny configuration.

Each test works in a temporary directory with the repository's workflow, so
nothing in the checkout is touched.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY_SYNTHETIC = {
    "branching": {"kingdom": [2, 2], "phylum": [1, 1], "class": [1, 1], "order": [1, 1],
                  "family": [1, 2], "genus": [1, 1], "species": [2, 2]},
    "leaves": [4, 8],
    "train_per_leaf": 8,
    "val_per_leaf": 3,
    "test_per_leaf": 4,
    "image_size": 16,
}
TINY_PARAMS = {
    "seed": 0,
    "device": "cpu",
    "datasets": {
        "tiny": {"source": "synthetic", "rows_per_shard": 20, "options": {"variant": "balanced", **TINY_SYNTHETIC}},
    },
    "train": {"epochs": 1, "batch_size": 16, "num_workers": 0},
    "methods": {"flat_softmax": {}},
    "inference_options": {"differentiable_diffusion": {"epochs": 2}},
    "experiments": {"datasets": ["tiny"], "methods": ["flat_softmax"],
                    "inference": ["bottom_up", "diffusion", "differentiable_diffusion"]},
    "tables": {"hccf_table1": {"dataset": "tiny"}, "hccf_table2": {"dataset": "tiny"}},
}


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
                 "--cores", "2", *args], cwd=workdir, check=check)


def _assert_tables_finite(root: Path) -> None:
    for table in ("hccf_table1", "hccf_table2"):
        with open(root / "results" / "tables" / f"{table}.csv") as fh:
            rows = list(csv.DictReader(fh))
        assert [r["Model"] for r in rows] == ["Flat softmax (Bertinetto et al., 2020)"]
        numbers = [float(v) for k, v in rows[0].items() if k != "Model"]
        assert len(numbers) == 7 and all(math.isfinite(x) and 0 <= x <= 100 for x in numbers)
        tex = (root / "results" / "tables" / f"{table}.tex").read_text()
        assert "\\toprule" in tex and "\\bottomrule" in tex and "Not run:" in tex
        assert (root / "results" / "tables" / f"{table}_vs_paper.csv").exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny configuration run once from scratch by Snakemake."""
    root = tmp_path_factory.mktemp("tiny_run")
    (root / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
    _snakemake(root)
    return root


def test_snakemake_tiny_pipeline(tiny_run):
    tmp_path = tiny_run
    metrics = json.loads((tmp_path / "results/metrics/tiny/flat_softmax/bottom_up.json").read_text())
    for key in ("ap", "ac", "r_at_90c", "r_at_95c", "majority_f1", "leaf_f1", "leaf_top1"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["n_samples"] > 0
    _assert_tables_finite(tmp_path)
    for figure in ("operating_curves_tiny.png", "tiny_samples.png"):
        assert (tmp_path / "results" / "figures" / figure).read_bytes()[:4] == b"\x89PNG"
    for split in ("train", "val", "test"):  # train: differentiable diffusion is fitted on it
        assert (tmp_path / f"results/logits/tiny/flat_softmax/{split}.json").exists()
    assert (tmp_path / "results/models/tiny/flat_softmax/differentiable_diffusion.state").exists()
    for inference in ("diffusion", "differentiable_diffusion"):
        assert (tmp_path / f"results/metrics/tiny/flat_softmax/{inference}.json").exists()
    board = (tmp_path / "results/leaderboard/tiny.md").read_text()
    assert board.count("| flat_softmax | flat_softmax |") == 3  # bottom_up, diffusion, differentiable_diffusion
    assert (tmp_path / "results/leaderboard/tiny.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "results/metrics/leaderboard.json").read_text())["tiny"]["flat_softmax"].keys() == {
        "bottom_up", "diffusion", "differentiable_diffusion"}
    page = (tmp_path / "docs/results.md").read_text()
    assert "### Leaderboard: tiny" in page and "### HCCF paper Table 1" in page

    again = _snakemake(tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_two_runs_from_scratch_give_byte_identical_results(tiny_run, tmp_path):
    """Same params, same machine: every metrics JSON, curve, table and the results page byte for byte."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
    _snakemake(tmp_path)
    compared = ["docs/results.md"]
    for folder in ("results/metrics", "results/curves", "results/tables", "results/leaderboard"):
        compared += sorted(str(p.relative_to(tiny_run)) for p in (tiny_run / folder).rglob("*")
                           if p.is_file() and p.suffix != ".png")
    assert len(compared) > 10 and any(p.endswith("bottom_up.json") for p in compared)
    differ = [p for p in compared if (tmp_path / p).read_bytes() != (tiny_run / p).read_bytes()]
    assert not differ, differ


def test_snakemake_rejects_params_typo(tmp_path):
    bad = json.loads(json.dumps(TINY_PARAMS))
    bad["train"]["epochz"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    proc = _snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    assert "train.epochz: unknown key (did you mean 'epochs'?)" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_snakemake_lint():
    proc = _run([str(BIN / "snakemake"), "--lint"], cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dvc_repro_runs_the_same_pipeline(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for item in ("Snakefile", "dvc.yaml", ".dvcignore", "profiles", "environment.yml"):
        src = REPO / item
        if src.is_symlink():
            (project / item).symlink_to(os.readlink(src))
        else:
            shutil.copy(src, project / item)
    shutil.copytree(REPO / "workflow", project / "workflow", symlinks=True)
    shutil.copytree(REPO / "src" / "taxonbench", project / "src" / "taxonbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (project / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
    _run(["git", "init", "-q"], cwd=project)
    _run([str(BIN / "dvc"), "init", "-q"], cwd=project)

    _run([str(BIN / "dvc"), "repro"], cwd=project)
    assert (project / "dvc.lock").exists()
    _assert_tables_finite(project)

    second = _run([str(BIN / "dvc"), "repro"], cwd=project)
    assert "didn't change" in second.stdout or "up to date" in second.stdout

    shown = json.loads(_run([str(BIN / "dvc"), "metrics", "show", "--json"], cwd=project).stdout)
    flat = json.dumps(shown)
    assert "results/metrics/tiny/flat_softmax/bottom_up.json" in flat and '"leaf_top1"' in flat

    _run([str(BIN / "dvc"), "plots", "show", "-o", "plots_html"], cwd=project)
    html = (project / "plots_html" / "index.html").read_text()
    assert "info_recall" in html


TINY_HCCF_PARAMS = {
    **TINY_PARAMS,
    "train": {"epochs": 1, "batch_size": 16, "num_workers": 0, "backbone": "open_clip:taxonbench-tiny-clip",
              "optimizer": {"name": "adamw", "lr": 0.001}},
    "methods": {"hccf": {}, "hccf_L67": {"method": "hccf", "levels": [6, 7]}, "ce_text_init": {}},
    "experiments": {"datasets": ["tiny"], "methods": ["hccf"], "extra_methods": {"tiny": ["hccf_L67", "ce_text_init"]},
                    "inference": {"default": ["bottom_up"], "hccf": ["bottom_up", "diffusion"]}},
    "tables": {"hccf_table3": {"dataset": "tiny"}, "hccf_table4": {"dataset": "tiny"}},
}


def test_snakemake_tiny_hccf_family(tmp_path):
    """HCCF and its ablations through the whole pipeline: open_clip tiny CLIP, variants by `method:`."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(TINY_HCCF_PARAMS))
    _snakemake(tmp_path)
    sidecar = json.loads((tmp_path / "results/logits/tiny/hccf_L67/test.json").read_text())
    assert sidecar["kind"] == "level_softmax_logits" and sidecar["method"] == "hccf"
    assert not (tmp_path / "results/logits/tiny/hccf_L67/train.parquet").exists()  # no fitted inference asked
    for method, inference in (("hccf", "diffusion"), ("hccf_L67", "bottom_up"), ("ce_text_init", "bottom_up")):
        metrics = json.loads((tmp_path / f"results/metrics/tiny/{method}/{inference}.json").read_text())
        assert 0.0 <= metrics["leaf_top1"] <= 1.0
    with open(tmp_path / "results/tables/hccf_table4.csv") as fh:
        rows = {r["Model"] for r in csv.DictReader(fh)}
    assert rows == {"HCCF L67", "HCCF L1234567"}
    with open(tmp_path / "results/tables/hccf_table3.csv") as fh:
        rows = [r["Models"] for r in csv.DictReader(fh)]
    assert rows == ["CE loss + text embedding", "CL + text encoder + L1234567 (HCCF)"]


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "workflow" / "configs").glob("*.yaml")))
def test_paper_scale_configs_pass_a_dry_run(tmp_path, config):
    proc = _snakemake(tmp_path, "-n", "--configfile", str(REPO / "workflow" / "configs" / config),
                      "--replace-workflow-config")
    out = proc.stdout + proc.stderr
    declared = yaml.safe_load((REPO / "workflow" / "configs" / config).read_text())
    assert "rule prepare:" in out and "rule train:" in out
    assert ("rule tables:" in out) == bool(declared.get("tables"))
    assert "synthetic" not in out  # the embedded default is replaced, not merged


def test_download_rule_runs_only_for_real_datasets_that_ask_for_it(tmp_path):
    config = yaml.safe_load((REPO / "workflow" / "configs" / "inat21_hccf.yaml").read_text())
    dataset = next(iter(config["datasets"]))
    config["datasets"][dataset]["options"]["download"] = True
    (tmp_path / "download.yaml").write_text(yaml.safe_dump(config))
    proc = _snakemake(tmp_path, "-n", "--configfile", "download.yaml", "--replace-workflow-config")
    out = proc.stdout + proc.stderr
    assert "rule download:" in out and f"data/raw/.downloaded/{dataset}.json" in out
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")  # the embedded default: never a download
    proc = _snakemake(tmp_path, "-n")
    out = proc.stdout + proc.stderr
    assert "rule prepare:" in out and "rule download:" not in out and ".downloaded" not in out
