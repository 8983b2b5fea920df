"""The default experiment set runs every method with every inference its outputs allow."""

from taxonbench.inference import INFERENCE
from taxonbench.methods import METHODS
from taxonbench.params import dataclass_from_dict, load_params, method_inference


def test_every_registered_method_is_trained():
    cfg = load_params("params.yaml")
    assert set(cfg["experiments"]["methods"]) == set(METHODS.names())


def test_each_method_gets_exactly_its_applicable_inference():
    cfg = load_params("params.yaml")
    pairs = method_inference(cfg)
    for method, names in pairs.items():
        kind = METHODS.get(method).output_kind
        applicable = {i for i in INFERENCE.names() if INFERENCE.get(i).applies_to(kind)}
        assert set(names) == applicable, f"{method} ({kind})"


def test_default_hyperparameters_are_valid():
    cfg = load_params("params.yaml")
    for method in cfg["experiments"]["methods"]:
        cls = METHODS.get(method)
        dataclass_from_dict(cls.Hparams, cfg["methods"].get(method, {}), where=f"methods.{method}")
