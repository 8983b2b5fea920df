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
