"""End to end: a model trained on one synthetic variant evaluated on the other; start-time checks of declarations."""

from __future__ import annotations

import json

import pytest
import yaml

from test_e2e import TINY_PARAMS, TINY_SYNTHETIC, _run, _snakemake

pytestmark = pytest.mark.e2e

CROSS = {
    **TINY_PARAMS,
    "datasets": {
        "tiny_a": {"source": "synthetic", "rows_per_shard": 20, "options": {"variant": "balanced", **TINY_SYNTHETIC}},
        "tiny_b": {"source": "synthetic", "rows_per_shard": 20,
                   "options": {"variant": "long_tailed", **TINY_SYNTHETIC, "long_tail_max": 12}},
    },
    "methods": {"flat_softmax": {}, "flat_from_a": {"method": "flat_softmax", "trained_on": "tiny_a"},
                "untrained": {"method": "flat_softmax", "train": {"epochs": 0}}},
    "experiments": {"datasets": ["tiny_a", "tiny_b"], "methods": ["flat_softmax"],
                    "extra_methods": {"tiny_b": ["flat_from_a", "untrained"]},
                    "inference": {"default": ["bottom_up"], "flat_softmax": ["bottom_up", "level_argmax"]}},
    "tables": {"hccf_table1": {"dataset": "tiny_b"}},
}


def test_train_on_one_variant_evaluate_on_the_other(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(CROSS))
    _snakemake(tmp_path)
    models = tmp_path / "results" / "models"
    assert (models / "tiny_a" / "flat_from_a" / "model.pt").exists()  # trained on A ...
    assert not (models / "tiny_b" / "flat_from_a").exists()  # ... and nowhere else
    side = json.loads((tmp_path / "results/logits/tiny_b/flat_from_a/test.json").read_text())
    assert side["dataset"] == "tiny_a" and side["split"] == "test"  # B's test images through A's model
    metrics = json.loads((tmp_path / "results/metrics/tiny_b/flat_from_a/bottom_up.json").read_text())
    assert 0 <= metrics["leaf_top1"] <= 1 and metrics["units"]["leaf_top1"] == "fraction"
    b_test = json.loads((tmp_path / "data/shards/tiny_b/manifest.json").read_text())["splits"]["test"]["rows"]
    assert metrics["n_samples"] == b_test
    # epochs 0: the initialised model is saved, with an empty training log
    log = (models / "tiny_b" / "untrained" / "train_log.csv").read_text().strip().splitlines()
    assert len(log) == 1
    # set predictions: one node per level, no operating curve
    sets = json.loads((tmp_path / "results/metrics/tiny_a/flat_softmax/level_argmax.json").read_text())
    depth = 7
    assert sets["labels_min"] == sets["labels_max"] == depth and sets["units"]["labels_mean"] == "real"
    assert not (tmp_path / "results/curves/tiny_a/flat_softmax/level_argmax.csv").exists()
    again = _snakemake(tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.parametrize("patch, message", [
    ({"methods": {"hxe": {"alpah": 0.1}}}, "methods.hxe.alpah: unknown key (did you mean 'alpha'?)"),
    ({"inference_options": {"diffusion": {"alpha": 1.5}}},
     "inference_options.diffusion.alpha: must be a finite number > 0 and < 1; got 1.5"),
])
def test_snakemake_dry_run_stops_on_a_declared_mistake(tmp_path, patch, message):
    bad = json.loads(json.dumps(TINY_PARAMS))
    bad["experiments"]["methods"] = ["flat_softmax", "hxe"]
    for key, value in patch.items():
        bad.setdefault(key, {}).update(value)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    proc = _snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


ZERO_SHOT_TREE = {**TINY_SYNTHETIC, "image_size": 32, "leaves": [6, 8],
                  "branching": {**TINY_SYNTHETIC["branching"], "species": [3, 3]}}
ZERO_SHOT = {
    **TINY_PARAMS,
    "datasets": {
        "tiny_seen": {"source": "synthetic", "rows_per_shard": 20,
                      "options": {**ZERO_SHOT_TREE, "part": "seen", "part_rank": "species", "unseen_fraction": 0.3}},
        "tiny_all": {"source": "synthetic", "rows_per_shard": 20, "options": ZERO_SHOT_TREE},
    },
    "methods": {"level_restricted": {"trained_on": "tiny_seen", "train": {"backbone": "open_clip:taxonbench-tiny-clip"}}},
    "experiments": {"datasets": ["tiny_all"], "methods": ["level_restricted"], "inference": ["native"]},
    "tables": {"level_restricted_inat21": {"dataset": "tiny_all"}},
}


def test_zero_shot_on_another_taxonomy_through_the_pipeline(tmp_path):
    """A level-restricted CLIP trained on part of the species is scored on the whole tree: built on the
    evaluated taxonomy (its prompts), the zero-shot metrics and table written; a target whose levels differ
    from the training ranks stops the logits step with a message naming the dataset."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(ZERO_SHOT))
    _snakemake(tmp_path)
    shards = tmp_path / "data" / "shards"
    seen = json.loads((shards / "tiny_seen" / "manifest.json").read_text())
    whole = json.loads((shards / "tiny_all" / "manifest.json").read_text())
    assert seen["n_leaves"] < whole["n_leaves"]  # another tree: the held-out species are new here
    side = json.loads((tmp_path / "results/logits/tiny_all/level_restricted/test.json").read_text())
    assert side["dataset"] == "tiny_seen" and side["dim"] == whole["n_nodes"] - 1
    metrics = json.loads((tmp_path / "results/metrics/tiny_all/level_restricted/native.json").read_text())
    assert all(0 <= metrics[f"level_acc_L{d}"] <= 1 for d in range(1, 8))
    assert metrics["units"]["consistency"] == "fraction"
    table = (tmp_path / "results/tables/level_restricted_inat21.csv").read_text().splitlines()
    assert table[0].startswith("Model,Kingdom,Phylum") and any(line.startswith("Level-restricted (ours),")
                                                                for line in table)
    # a tree of other ranks: level 2 is 'class' where the model learnt 'phylum'
    params = {**ZERO_SHOT, "datasets": {**ZERO_SHOT["datasets"], "tiny_other": {
        "source": "synthetic", "rows_per_shard": 20,
        "options": {**ZERO_SHOT_TREE, "ranks": ["kingdom", "class", "order", "family", "genus", "species"],
                    "branching": {k: v for k, v in ZERO_SHOT_TREE["branching"].items() if k != "phylum"}}}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    _run(["taxonbench", "prepare", "--dataset", "tiny_other", "--out", str(shards / "tiny_other")], tmp_path)
    proc = _run(["taxonbench", "logits", "--model", "results/models/tiny_seen/level_restricted/model.pt", "--shards",
                 str(shards / "tiny_other"), "--split", "test", "--out", "x.parquet"], tmp_path, check=False)
    assert proc.returncode != 0 and not (tmp_path / "x.parquet").exists()
    assert "zero-shot on dataset 'tiny_other': level 2 ('class') is not a level the model was trained on" \
        in proc.stderr
