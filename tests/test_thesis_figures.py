"""The thesis figures (Dhall Figs. 4.1-4.4): per-epoch split scores against scikit-learn on the dumped logits,
per-label F1 against scikit-learn, the drawings, and the checks of the ``figures`` block and curve splits."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, precision_recall_fscore_support

from test_training import toy_settings

from taxonbench import training
from taxonbench.errors import TaxonbenchError
from taxonbench.figures import FigureSpec, check_figures, figure_inputs
from taxonbench.logits import dump_logits
from taxonbench.matrix_io import iter_matrix, write_matrix
from taxonbench.plots.label_f1 import draw_label_f1, label_f1_rows
from taxonbench.plots.training_curves import draw_training_curves, read_log
from taxonbench.registries import FIGURES
from taxonbench.score_kinds import node_scores
from taxonbench.shards import TAXONOMY, read_split_column
from taxonbench.taxonomy import Taxonomy
from taxonbench.training_curves import check_curves


def _indicators(leaf_or_nodes, tax, predicted):
    """Label-indicator rows over the non-root nodes: the path of each leaf, or the predicted node sets."""
    if predicted:
        return (leaf_or_nodes[:, 1:] > 0.5).astype(int)
    return (tax.leaf_ancestor_matrix[leaf_or_nodes].toarray()[:, 1:] > 0).astype(int)


def _level_argmax_by_loop(p, tax):
    out = np.zeros_like(p)
    for i in range(len(p)):
        for d in range(1, tax.max_depth + 1):
            nodes = [v for v in range(tax.n_nodes) if tax.depth[v] == d]
            out[i, max(nodes, key=lambda v: (p[i, v], -v))] = 1.0
    return out


@pytest.mark.parametrize("name", ["per_level", "flat_softmax"])
def test_curve_splits_log_what_the_dumped_model_scores(toy_shards, tmp_path, name):
    settings = toy_settings(epochs=2, curve_splits=["train", "val", "test"])
    settings["method"] = settings["experiment"] = name
    model_path = training.train(settings, toy_shards, tmp_path / "m", progress=False)
    rows = list(csv.DictReader((tmp_path / "m" / "train_log.csv").open()))
    assert list(rows[0]) == training.LOG_COLUMNS[:-1] + [f"{s}_{m}" for s in ("train", "val", "test")
                                                        for m in ("eval_loss", "micro_f1", "macro_f1")] + ["seconds"]
    tax = Taxonomy.read(toy_shards / TAXONOMY)
    for split in ("val", "test"):
        out = tmp_path / f"{split}.parquet"
        dump_logits(model_path, toy_shards, split, out, device="cpu")
        _, leaf, logits = next(iter_matrix(out, "scores", 10_000))
        sidecar = json.loads(out.with_suffix(".json").read_text())
        sets = _level_argmax_by_loop(node_scores(logits.astype(np.float64), tax, sidecar), tax)
        truth, pred = _indicators(leaf, tax, False), _indicators(sets, tax, True)
        last = rows[-1]
        assert float(last[f"{split}_micro_f1"]) == pytest.approx(f1_score(truth, pred, average="micro"), abs=1e-9)
        assert float(last[f"{split}_macro_f1"]) == pytest.approx(
            f1_score(truth, pred, average="macro", zero_division=0), abs=1e-9)
        model, _, _ = training.load_model(model_path, tax, torch.device("cpu"))
        loss = float(model.loss(torch.tensor(logits), torch.tensor(leaf)))  # one batch: the whole split
        assert float(last[f"{split}_eval_loss"]) == pytest.approx(loss, rel=1e-4)


def test_curve_splits_leave_the_weights_alone(toy_shards, tmp_path):
    plain = training.train(toy_settings(epochs=2), toy_shards, tmp_path / "a", progress=False)
    curved = training.train(toy_settings(epochs=2, curve_splits=["val", "test"]), toy_shards, tmp_path / "b",
                            progress=False)
    a, b = (torch.load(p, weights_only=True)["state_dict"] for p in (plain, curved))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # val top-1 taken from the curve pass equals the separate pass it replaces
    assert read_log(tmp_path / "a" / "train_log.csv")["val_top1"] == read_log(tmp_path / "b" / "train_log.csv")["val_top1"]


def test_a_curve_split_the_shards_lack_is_named(toy_shards, tmp_path):
    settings = toy_settings(epochs=1, curve_splits=["val"])
    (toy_shards / "manifest.json").write_text(json.dumps(
        {**json.loads((toy_shards / "manifest.json").read_text()),
         "splits": {k: v for k, v in json.loads((toy_shards / "manifest.json").read_text())["splits"].items()
                    if k != "val"}}))
    with pytest.raises(TaxonbenchError, match=r"train.curve_splits names \['val'\], which the shards do not have"):
        training.train(settings, toy_shards, tmp_path / "m", progress=False)


def test_a_method_that_trains_on_other_outputs_has_no_curve():
    class TwoViews:
        name, scores_leaves = "contrastive", False
        training_forward = None

    with pytest.raises(TaxonbenchError, match="method 'contrastive' trains on outputs other than its scores"):
        check_curves(TwoViews(), ["val"], ["train", "val"], "train d/e")
    check_curves(TwoViews(), [], ["train"], "train d/e")  # no curve asked: nothing to check


def test_per_label_f1_is_scikit_learns(toy_shards, tmp_path):
    tax = Taxonomy.read(toy_shards / TAXONOMY)
    rng = np.random.default_rng(3)
    leaf = rng.integers(0, tax.n_leaves, 40)
    sets = (rng.random((40, tax.n_nodes)) < 0.4).astype(np.float32)
    sets[:, 0] = 0
    path = tmp_path / "test.parquet"
    write_matrix(path, "node_set", [(np.array([f"r{i}" for i in range(40)]), leaf, sets)], {"kind": "node_set"})
    rows = label_f1_rows(path, toy_shards)
    p, r, f1, support = precision_recall_fscore_support(_indicators(leaf, tax, False), _indicators(sets, tax, True),
                                                        average=None, zero_division=0)
    assert [row["node"] for row in rows] == list(range(1, tax.n_nodes))
    np.testing.assert_allclose([row["f1"] for row in rows], f1, atol=1e-12)
    np.testing.assert_allclose([row["precision"] for row in rows], p, atol=1e-12)
    assert [row["n_eval"] for row in rows] == support.tolist()
    train_leaf = read_split_column(toy_shards, "train", "leaf")
    for row in rows:  # training images of a label: the train rows whose leaf lies under it, by a plain loop
        under = [k for k in range(tax.n_leaves) if row["node"] in tax.ancestor_table[tax.leaf_nodes[k]]]
        assert row["n_train"] == sum(int(x in under) for x in train_leaf)
        assert row["level"] == tax.depth[row["node"]]
    written = draw_label_f1(path, toy_shards, tmp_path / "fig" / "f.png", "title")
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = list(csv.DictReader(written[1].open()))
    assert len(table) == tax.n_nodes - 1 and float(table[0]["f1"]) == pytest.approx(f1[0], abs=1e-6)


def test_per_label_f1_needs_set_predictions(toy_shards, tmp_path):
    path = tmp_path / "test.parquet"
    write_matrix(path, "node_prob", [(np.array(["a"]), np.array([0]), np.ones((1, 7)))], {"kind": "node_prob"})
    with pytest.raises(TaxonbenchError, match=r"needs set predictions \(kind node_set\), not 'node_prob'"):
        label_f1_rows(path, toy_shards)


def test_training_curves_draw_the_logged_numbers(toy_shards, tmp_path):
    runs = {}
    for name, extra in (("a", {"curve_splits": ["val", "test"]}), ("b", {"curve_splits": ["val"], "epochs": 3})):
        settings = toy_settings(**{"epochs": 2, **extra})
        training.train(settings, toy_shards, tmp_path / name, progress=False)
        runs[name] = (f"run {name}", tmp_path / name / "train_log.csv")
    png, table = draw_training_curves(runs, "a", tmp_path / "curves.png", "title")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn = list(csv.DictReader(table.open()))
    log_b = read_log(runs["b"][1])
    assert [float(r["value"]) for r in drawn if r["experiment"] == "b"] == pytest.approx(log_b["val_micro_f1"], abs=1e-6)
    assert {r["measure"] for r in drawn if r["experiment"] == "a"} == {
        "val_micro_f1", "train_loss", "val_eval_loss", "test_eval_loss", "val_micro_f1", "test_micro_f1", "val_macro_f1",
        "test_macro_f1"}
    with pytest.raises(TaxonbenchError, match=r"no column 'val_micro_f1'"):
        training.train(toy_settings(epochs=1), toy_shards, tmp_path / "c", progress=False)
        draw_training_curves({**runs, "c": ("c", tmp_path / "c" / "train_log.csv")}, "a", tmp_path / "x.png", "t")
    assert not (tmp_path / "x.png").exists()


def _figure_cfg(default=(), **train):
    return {"seed": 0, "device": "cpu", "train": {"curve_splits": list(default)}, "experiments": {"datasets": ["d"]},
            "methods": {"per_level_rs": {"train": train}},
            "figures": {"dhall_thesis_fig4_3": {"dataset": "d"}}}


def test_figure_blocks_are_checked_at_start():
    specs = FIGURES.get("dhall_thesis_fig4_3")
    runs_all = lambda cfg, d: specs.experiments  # noqa: E731
    with pytest.raises(TaxonbenchError, match=r"figures.dhall_thesis_fig4_3: experiment 'per_level' logs no "
                                              r"per-epoch scores; set methods.per_level.train.curve_splits"):
        check_figures(_figure_cfg(curve_splits=["val"]), {}, runs_all)
    with pytest.raises(TaxonbenchError, match=r"shows experiment 'per_level_cw', which does not run on 'd'"):
        check_figures(_figure_cfg(["val"]), {}, lambda cfg, d: ["per_level_rs", "per_level"])
    with pytest.raises(TaxonbenchError, match=r"figures.nope: unknown figure; registered: dhall_thesis_fig4_1"):
        check_figures({"figures": {"nope": {"dataset": "d"}}}, {}, runs_all)
    label = {"figures": {"dhall_thesis_fig4_2": {"dataset": "d"}}, "train": {}, "experiments": {"datasets": ["d"]}}
    with pytest.raises(TaxonbenchError, match=r"inference 'level_argmax' is not run on 'per_level_rs'"):
        check_figures(label, {"per_level_rs": ["native"]}, lambda cfg, d: ["per_level_rs"])
    check_figures(label, {"per_level_rs": ["level_argmax"]}, lambda cfg, d: ["per_level_rs"])


def test_figure_inputs_name_the_files_the_rule_reads():
    assert figure_inputs("dhall_thesis_fig4_2", "d", "test") == {
        "scores": ["results/scores/d/per_level_rs/level_argmax/test.parquet"], "shards": ["data/shards/d/manifest.json"]}
    assert figure_inputs("dhall_thesis_fig4_3", "d", "test")["logs"][0] == "results/models/d/per_level_rs/train_log.csv"
    with pytest.raises(ValueError, match="an inference goes with kinds .*label_f1"):
        FigureSpec(id="x", paper="p", source="s", caption="c", kind="training_curves", experiment="e", inference="i")
