"""The experiment plan: params checked against the declarations, the matrix derived from score kinds."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from taxonbench import declarations, plan
from taxonbench.declare import FieldSpec, build_options, check_block, fields_of, param
from taxonbench.errors import TaxonbenchError
from taxonbench.inference import INFERENCE
from taxonbench.methods import METHODS

BASE = {
    "datasets": {"a": {"source": "synthetic"}, "b": {"source": "synthetic", "options": {"variant": "long_tailed"}}},
    "methods": {"flat_softmax": {}, "hxe": {"alpha": 0.2}, "cond_softmax": {}},
    "experiments": {"datasets": ["a"], "methods": ["flat_softmax", "hxe", "cond_softmax"]},
}


def cfg_with(**changes):
    cfg = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = cfg
        *parents, last = path.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


# ------------------------------------------------------------------ declarations
def test_method_declarations_match_the_classes_and_survive_the_index(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXONBENCH_CACHE", str(tmp_path))
    declarations._MEMO.clear()
    first = declarations.method_declarations()
    assert list(tmp_path.glob("declarations-*.json"))  # the index was written
    declarations._MEMO.clear()
    second = declarations.method_declarations()  # read back from the index
    assert first == second
    assert set(first) == set(METHODS.names())
    for name, d in first.items():
        cls = METHODS.get(name)
        assert cls.name == name and d.kind == cls.output_kind and d.hparams == fields_of(cls.Hparams)


def test_a_corrupt_index_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXONBENCH_CACHE", str(tmp_path))
    declarations._MEMO.clear()
    declarations.method_declarations()
    index = next(tmp_path.glob("declarations-*.json"))
    index.write_text("{not json")
    declarations._MEMO.clear()
    assert declarations.method_declarations()["hxe"].kind == "leaf_logits"
    assert json.loads(index.read_text())["methods"]["hxe"]["kind"] == "leaf_logits"


def test_field_specs_from_annotations_and_param():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Options:
        rate: float = param(0.5, gt=0, lt=1)
        mode: str = param("a", choices=("a", "b"))
        sizes: list[int] | None = param(None, ge=1)
        flag: bool = True

    rate, mode, sizes, flag = fields_of(Options)
    assert (rate.type, rate.gt, rate.lt, rate.default) == ("float", 0, 1, 0.5)
    assert (mode.type, mode.choices) == ("str", ("a", "b"))
    assert (sizes.type, sizes.item, sizes.nullable, sizes.ge) == ("list", "int", True, 1)
    assert (flag.type, flag.nullable) == ("bool", False)
    assert FieldSpec.from_json(json.loads(json.dumps(rate.to_json()))) == rate
    assert build_options(Options, {"rate": 0.25}, "x") == Options(rate=0.25)
    for data, message in [({"rat": 0.1}, r"x.rat: unknown key \(did you mean 'rate'\?\)"),
                          ({"rate": 1.0}, r"x.rate: must be a finite number > 0 and < 1; got 1.0"),
                          ({"rate": float("nan")}, r"x.rate: must be"),
                          ({"rate": True}, r"x.rate: must be"),
                          ({"mode": "c"}, r"x.mode: must be one of a, b; got 'c'"),
                          ({"sizes": [2, 0]}, r"x.sizes: must be a list of integers >= 1"),
                          ({"sizes": [2, "3"]}, r"x.sizes\[1\]: must be integers"),
                          ({"flag": None}, r"x.flag: must be true or false; got null")]:
        with pytest.raises(TaxonbenchError, match=message):
            check_block(fields_of(Options), data, "x")


# ------------------------------------------------------------------ checks at start
@pytest.mark.parametrize("changes, message", [
    ({"methods__hxe__alpah": 0.1}, r"methods.hxe.alpah: unknown key \(did you mean 'alpha'\?\)"),
    ({"methods__hxe__alpha": -1.0}, r"methods.hxe.alpha: must be a finite number >= 0; got -1.0"),
    ({"methods__hxe__weighting": "hieght"}, r"methods.hxe.weighting: must be one of depth, height; got 'hieght' "
                                           r"\(did you mean 'height'\?\)"),
    ({"methods__v__method": "flat_sofmax"}, r"methods.v.method: unknown method 'flat_sofmax' \(did you mean "),
    ({"inference_options__diffusion__alpha": 1.5}, r"inference_options.diffusion.alpha: must be a finite number > 0 "
                                                   r"and < 1; got 1.5"),
    ({"inference_options__difusion": {}}, r"inference_options.difusion: unknown inference \(did you mean 'diffusion'"),
    ({"inference_options__differentiable_diffusion__epochs": -2}, r"differentiable_diffusion.epochs: must be"),
    ({"experiments__methods": ["flat_softmax", "hxe_x"]}, r"experiments.methods\[1\]: 'hxe_x' is neither"),
    ({"methods__x": {"method": "hxe", "trained_on": "c"}}, r"methods.x.trained_on: 'c' is not defined"),
    ({"experiments__inference": {"cond_softmax": ["bottom_up"]}},
     r"experiments.inference.cond_softmax\[0\]: inference 'bottom_up' cannot use the outputs of 'cond_softmax' "
     r"\(kind 'sibling_softmax_logits'\)"),
    ({"experiments__inference": {"all": ["native"]}}, r"experiments.inference.all: .*now `default`"),
    ({"experiments__inference": ["nativ"]}, r"experiments.inference\[0\]: unknown inference 'nativ'"),
    ({"train__sampler": {"name": "class_balancd"}}, r"train.sampler.name: unknown sampler 'class_balancd' "
                                                    r"\(did you mean 'class_balanced'\?\)"),
    ({"train__sampler": {"name": "class_balanced", "per_clas": 4}}, r"train.sampler.per_clas: unknown key"),
    ({"train__sampler": {"name": "class_balanced", "per_class": 0}}, r"train.sampler.per_class: must be"),
    ({"train__finetune": "partial"}, r"train.finetune: 'partial' is not one of"),
    ({"methods__hxe__train": {"epochz": 3}}, r"methods.hxe.train.epochz: unknown key \(did you mean 'epochs'\?\)"),
    ({"methods__hxe__train": {"sampler": {"name": "hierarchicl"}}}, r"methods.hxe.train.sampler.name: unknown"),
])
def test_declared_mistakes_stop_validation_naming_the_key(changes, message):
    with pytest.raises(TaxonbenchError, match=message):
        plan.validate(cfg_with(**changes))


# ------------------------------------------------------------------ the derived matrix
def applicable(kind):
    return [i for i in INFERENCE.names() if INFERENCE.get(i).applies_to(kind)]


def test_without_a_restriction_every_applicable_inference_runs():
    pairs = plan.method_inference(plan.validate(BASE))
    assert pairs["flat_softmax"] == applicable("leaf_logits")
    assert pairs["cond_softmax"] == applicable("sibling_softmax_logits")
    assert "bottom_up" not in pairs["cond_softmax"] and "top_down" in pairs["cond_softmax"]
    assert "level_argmax" in pairs["hxe"] and "embedding" not in pairs["hxe"]


def test_a_list_is_filtered_by_kind_and_a_mapping_names_exact_lists():
    cfg = plan.validate(cfg_with(experiments__inference=["native", "bottom_up"]))
    assert plan.method_inference(cfg) == {"flat_softmax": ["native", "bottom_up"], "hxe": ["native", "bottom_up"],
                                          "cond_softmax": ["native"]}
    cfg = plan.validate(cfg_with(experiments__inference={"default": ["diffusion"], "hxe": ["top_down"]}))
    assert plan.method_inference(cfg) == {"flat_softmax": ["diffusion"], "hxe": ["top_down"],
                                          "cond_softmax": ["diffusion"]}


def test_splits_follow_the_metric_families_and_fitted_inference():
    cfg = plan.validate(cfg_with(experiments__inference={"default": ["native", "level_argmax"],
                                                         "hxe": ["differentiable_diffusion"]}))
    assert plan.scored_splits(cfg, "native") == {"eval": "test"}
    assert plan.produces("level_argmax") == "node_set"
    assert plan.logit_splits(cfg, "flat_softmax") == ["val", "test"]  # the schema's default logit_splits
    assert plan.logit_splits(cfg, "hxe") == ["val", "test", "train"]  # + the fit split of differentiable diffusion


def test_a_dataset_may_run_its_own_methods_instead_of_the_common_ones():
    cfg = plan.validate(cfg_with(experiments__datasets=["a", "b"], experiments__dataset_methods={"b": ["hxe"]},
                                 experiments__extra_methods={"b": ["cond_softmax"]}, experiments__inference=["native"]))
    assert plan.dataset_methods(cfg, "a") == ["flat_softmax", "hxe", "cond_softmax"]
    assert plan.dataset_methods(cfg, "b") == ["hxe", "cond_softmax"]
    assert {(d, m) for d, m, _ in plan.experiment_matrix(cfg)} == {
        ("a", "flat_softmax"), ("a", "hxe"), ("a", "cond_softmax"), ("b", "hxe"), ("b", "cond_softmax")}
    with pytest.raises(TaxonbenchError, match=r"experiments.dataset_methods.c: not among experiments.datasets"):
        plan.validate(cfg_with(experiments__dataset_methods={"c": ["hxe"]}))
    with pytest.raises(TaxonbenchError, match=r"experiments.dataset_methods.a\[0\]: 'hx' is neither"):
        plan.validate(cfg_with(experiments__dataset_methods={"a": ["hx"]}))


def test_cross_dataset_experiments_name_the_training_dataset():
    cfg = plan.validate(cfg_with(methods__flat_on_a={"method": "flat_softmax", "trained_on": "a"},
                                 experiments__datasets=["a", "b"],
                                 experiments__extra_methods={"b": ["flat_on_a"]}))
    assert plan.trained_on(cfg, "b", "flat_on_a") == "a"
    assert plan.trained_on(cfg, "b", "flat_softmax") == "b"
    from taxonbench.params import train_settings

    settings = train_settings(cfg, "a", "flat_on_a")
    assert settings["method"] == "flat_softmax" and settings["hparams"] == {}


#        0
#      /   \
#     1     2
#    / \     \
#   3   4     5
TAX_PARENTS = [-1, 0, 0, 1, 1, 2]


def test_level_argmax_predicts_one_node_per_level_and_set_size_counts_them():
    from taxonbench.metrics import evaluate
    from taxonbench.taxonomy import Taxonomy

    tax = Taxonomy.from_parents(TAX_PARENTS)
    leaf_logits = np.log(np.array([[0.5, 0.1, 0.4],    # leaves 3, 4, 5: p(1) = 0.6, p(2) = 0.4; argmax leaf 3
                                   [0.3, 0.3, 0.4]]))  # p(1) = 0.6 but the best leaf is 5 (not under 1)
    inference = INFERENCE.get("level_argmax")(tax)
    inference.check({"kind": "leaf_logits", "method": "m"}, "test")
    sets = inference(leaf_logits)
    want = np.zeros((2, 6), np.float32)
    want[0, [1, 3]] = 1  # depth 1: node 1; depth 2: node 3
    want[1, [1, 5]] = 1  # depth 1: node 1; depth 2: node 5 (levels are independent)
    np.testing.assert_array_equal(sets, want)
    metrics, curve = evaluate([(sets, np.array([0, 2]))], tax, ["set_size"], kind="node_set")
    assert metrics == {"n_samples": 2, "labels_min": 2.0, "labels_max": 2.0, "labels_mean": 2.0, "labels_std": 0.0}
    assert curve == {}


def test_set_size_statistics_against_numpy():
    from taxonbench.metrics import evaluate
    from taxonbench.taxonomy import Taxonomy

    tax = Taxonomy.from_parents(TAX_PARENTS)
    rng = np.random.default_rng(3)
    sets = (rng.random((50, 6)) < 0.4).astype(np.float32)
    counts = sets[:, 1:].astype(np.float64).sum(axis=1)
    metrics, _ = evaluate([(sets[:20], np.zeros(20, int)), (sets[20:], np.zeros(30, int))], tax, kind="node_set")
    assert metrics["labels_min"] == counts.min() and metrics["labels_max"] == counts.max()
    assert metrics["labels_mean"] == pytest.approx(counts.mean(), abs=1e-12)
    assert metrics["labels_std"] == pytest.approx(counts.std(), abs=1e-12)


class ThresholdTuned:
    """A toy family that tunes on the tune split: the threshold on p(root's first child) of the best accuracy."""

    reads = "node_prob"
    splits = ("tune", "eval")
    units = {"tuned_threshold": "real", "tuned_accuracy": "fraction"}

    def __init__(self, taxonomy):
        self.tune_rows, self.rows = [], []

    def update_tune(self, p, g):
        self.tune_rows.append((p[:, 1].copy(), g < 2))

    def update(self, p, g):
        self.rows.append((p[:, 1].copy(), g < 2))

    def result(self):
        score, truth = map(np.concatenate, zip(*self.tune_rows))
        best = max(np.unique(score), key=lambda t: ((score >= t) == truth).mean())
        score, truth = map(np.concatenate, zip(*self.rows))
        return {"tuned_threshold": float(best), "tuned_accuracy": float(((score >= best) == truth).mean())}, {}


def test_a_family_tunes_on_one_split_and_scores_another(monkeypatch, tmp_path):
    from taxonbench.evaluation import evaluate_scores
    from taxonbench.matrix_io import write_matrix
    from taxonbench.registries import METRIC_FAMILIES
    from taxonbench.taxonomy import Taxonomy

    monkeypatch.setitem(METRIC_FAMILIES._items, "toy_tuned", ThresholdTuned)
    tax = Taxonomy.from_parents(TAX_PARENTS)

    def scores(p1, leaf, name):
        p = np.zeros((len(p1), 6), np.float32)
        p[:, 0], p[:, 1], p[:, 2] = 1, p1, 1 - np.asarray(p1)
        write_matrix(tmp_path / name, "node_prob", [(np.arange(len(p1)), np.asarray(leaf), p)], {"kind": "node_prob"})
        return tmp_path / name

    tune = scores([0.9, 0.7, 0.35, 0.2], [0, 1, 2, 2], "val.parquet")  # best threshold 0.7 (0.35 is class 2)
    test = scores([0.8, 0.6, 0.72, 0.1], [0, 1, 2, 2], "test.parquet")
    with pytest.raises(TaxonbenchError, match="'toy_tuned' tunes on a validation split"):
        evaluate_scores(test, tax, tmp_path / "m.json")
    evaluate_scores(test, tax, tmp_path / "m.json", tune_path=tune)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["tuned_threshold"] == pytest.approx(0.7)
    assert metrics["tuned_accuracy"] == 0.5  # 0.8 right, 0.6 wrong, 0.72 wrong, 0.1 right
    assert metrics["units"]["tuned_threshold"] == "real" and metrics["units"]["ap"] == "fraction"
    assert metrics["units"]["n_mistakes"] == "count" and metrics["units"]["n_samples"] == "count"


def test_the_snakefile_start_imports_no_torch(tmp_path):
    """With the declarations index in place, validating params and deriving the matrix imports no torch."""
    import subprocess
    import sys

    env = {**__import__("os").environ, "TAXONBENCH_CACHE": str(tmp_path)}
    warm = "from taxonbench.declarations import method_declarations; method_declarations()"
    subprocess.run([sys.executable, "-c", warm], env=env, check=True)
    code = ("import sys, yaml; from taxonbench import plan; "
            "cfg = plan.validate(yaml.safe_load(open('params.yaml'))); plan.experiment_matrix(cfg); "
            "[plan.logit_splits(cfg, m) for m in plan.all_methods(cfg)]; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_logits_of_another_dataset_need_the_same_tree(tmp_path):
    from taxonbench.logits import training_taxonomy
    from taxonbench.shards import TAXONOMY
    from taxonbench.taxonomy import Taxonomy

    same = Taxonomy.from_parents(TAX_PARENTS)
    other = Taxonomy.from_parents([-1, 0, 0, 1, 2, 2])
    for name, tax in (("a", same), ("b", same), ("c", other)):
        (tmp_path / name).mkdir()
        tax.write(tmp_path / name / TAXONOMY)
    meta = {"dataset": "a"}
    assert training_taxonomy(meta, "leaf_logits", tmp_path / "a", other, "m.pt") is other  # its own dataset
    built = training_taxonomy(meta, "leaf_logits", tmp_path / "b", same, "m.pt")  # the same tree: fine
    assert np.array_equal(built.parent, same.parent)
    # embeddings transfer anywhere; the model is built on the training tree, not the evaluated one
    built = training_taxonomy(meta, "embeddings", tmp_path / "c", other, "m.pt")
    assert np.array_equal(built.parent, same.parent)
    with pytest.raises(TaxonbenchError, match="trained on dataset 'a', whose taxonomy differs from 'c'"):
        training_taxonomy(meta, "leaf_logits", tmp_path / "c", other, "m.pt")
    with pytest.raises(TaxonbenchError, match="taxonomy .* is missing"):
        training_taxonomy({"dataset": "z"}, "leaf_logits", tmp_path / "b", same, "m.pt")
