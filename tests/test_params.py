"""Params validation: defaults are filled, and a typo names its key."""

import pytest
import yaml

from taxonbench.errors import TaxonbenchError
from taxonbench.params import load_params, train_settings, validate_params

MINIMAL = {
    "datasets": {"d": {"source": "synthetic"}},
    "experiments": {"datasets": ["d"], "methods": ["flat_softmax"], "inference": ["bottom_up"]},
}


def test_defaults_filled():
    cfg = validate_params(MINIMAL)
    assert cfg["seed"] == 0
    assert cfg["train"]["optimizer"]["lr"] == 0.05
    assert cfg["datasets"]["d"]["rows_per_shard"] == 4096
    assert cfg["experiments"]["eval_split"] == "test"


def test_repo_params_file_is_valid():
    cfg = load_params("params.yaml")
    assert cfg["experiments"]["datasets"]


@pytest.mark.parametrize(
    "patch, match",
    [
        ({"train": {"epochz": 3}}, r"train\.epochz: unknown key \(did you mean 'epochs'\?\)"),
        ({"sead": 1}, r"sead: unknown key \(did you mean 'seed'\?\)"),
        ({"train": {"epochs": "ten"}}, r"train\.epochs: 'ten' is not of type 'integer'"),
        ({"train": {"optimizer": {"lr": -1}}}, r"train\.optimizer\.lr: -1 is less than or equal"),
        ({"device": "tpu"}, r"device: 'tpu' is not one of"),
    ],
)
def test_typos_name_the_key(patch, match):
    cfg = {**MINIMAL, **patch}
    with pytest.raises(TaxonbenchError, match=match):
        validate_params(cfg)


def test_undefined_dataset_reference():
    cfg = {**MINIMAL, "experiments": {**MINIMAL["experiments"], "datasets": ["e"]}}
    with pytest.raises(TaxonbenchError, match=r"experiments\.datasets\[0\]: 'e' is not defined"):
        validate_params(cfg)


def test_load_params_merges_and_reports_file(tmp_path):
    base = tmp_path / "a.yaml"
    base.write_text(yaml.safe_dump(MINIMAL))
    over = tmp_path / "b.yaml"
    over.write_text(yaml.safe_dump({"train": {"epochs": 3}, "methods": {"flat_softmax": {"train": {"epochs": 5}}}}))
    cfg = load_params(base, over)
    assert cfg["train"]["epochs"] == 3
    assert train_settings(cfg, "d", "flat_softmax")["train"]["epochs"] == 5
    with pytest.raises(TaxonbenchError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed")
    with pytest.raises(TaxonbenchError, match="broken.yaml: not valid YAML"):
        load_params(broken)


def test_variants_and_extra_methods_expand_the_matrix():
    from taxonbench.plan import all_methods, dataset_methods, experiment_matrix, method_inference, validate

    cfg = validate({
        "datasets": {"a": {"source": "synthetic"}, "b": {"source": "synthetic"}},
        "methods": {"hccf_L67": {"method": "hccf", "levels": [6, 7], "train": {"epochs": 2}}},
        "experiments": {"datasets": ["a", "b"], "methods": ["flat_softmax"], "extra_methods": {"b": ["hccf_L67"]},
                        "inference": {"default": ["native"], "hccf_L67": ["native", "bottom_up"]}},
    })
    settings = train_settings(cfg, "b", "hccf_L67")
    assert (settings["method"], settings["experiment"]) == ("hccf", "hccf_L67")
    assert settings["hparams"] == {"levels": [6, 7]} and settings["train"]["epochs"] == 2
    assert all_methods(cfg) == ["flat_softmax", "hccf_L67"]
    assert dataset_methods(cfg, "a") == ["flat_softmax"]
    assert method_inference(cfg)["hccf_L67"] == ["native", "bottom_up"]
    assert experiment_matrix(cfg) == [("a", "flat_softmax", "native"), ("b", "flat_softmax", "native"),
                                      ("b", "hccf_L67", "native"), ("b", "hccf_L67", "bottom_up")]


def test_extra_methods_of_an_unknown_dataset_are_refused():
    cfg = {**MINIMAL, "experiments": {**MINIMAL["experiments"], "extra_methods": {"e": ["hccf"]}}}
    with pytest.raises(TaxonbenchError, match=r"experiments.extra_methods.e: not among experiments.datasets \(d\)"):
        validate_params(cfg)
