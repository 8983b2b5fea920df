"""The default experiment set runs every method with every HCCF-paper inference its outputs allow."""

from taxonbench.inference import INFERENCE
from taxonbench.methods import METHODS
from taxonbench.params import dataclass_from_dict, train_settings
from taxonbench.plan import all_methods, load_params, method_inference
from taxonbench.tables import TABLES

#: the inference of the HCCF paper's tables and of the thesis's set predictions (the default restricts to these)
HCCF_INFERENCE = {"native", "bottom_up", "top_down", "advanced_top_down", "diffusion", "differentiable_diffusion"}
THESIS_INFERENCE = {"pcdb", "ofadb", "level_argmax", "masked_top_down"}
#: thesis rows of the larger ResNets, which only the ethec config trains (the default's one CNN stands in for ResNet-50)
PAPER_SCALE_ONLY = {"marginalization_r101", "marginalization_r152", "masked_per_level_r101", "masked_per_level_r152",
                    "hierarchical_softmax_r101", "hierarchical_softmax_r152"}


def registered(cfg: dict, experiment: str) -> str:
    return cfg["methods"].get(experiment, {}).get("method", experiment)


def applicable(cfg: dict, experiment: str) -> set[str]:
    kind = METHODS.get(registered(cfg, experiment)).output_kind
    return {i for i in INFERENCE.names() if INFERENCE.get(i).applies_to(kind)} & (HCCF_INFERENCE | THESIS_INFERENCE)


def test_every_registered_method_is_trained():
    cfg = load_params("params.yaml")
    assert {registered(cfg, m) for m in all_methods(cfg)} == set(METHODS.names())


def test_each_main_method_gets_exactly_its_applicable_inference():
    cfg = load_params("params.yaml")
    pairs = method_inference(cfg)
    for method in cfg["experiments"]["methods"]:
        assert set(pairs[method]) == applicable(cfg, method) & HCCF_INFERENCE, method


def test_ablation_variants_get_applicable_inference_covering_their_table_rows():
    cfg = load_params("params.yaml")
    pairs = method_inference(cfg)
    needed = {}
    for table, settings in cfg["tables"].items():
        spec = TABLES.get(table)
        for row in spec.rows:
            method, inference = row.resolve(settings.get("model") or spec.default_model)
            needed.setdefault(method, set()).add(inference)
    for method in all_methods(cfg):
        assert set(pairs[method]) <= applicable(cfg, method), method
        assert needed.get(method, set()) <= set(pairs[method]), method
    # every row of every built table has its experiment, but the thesis's larger backbones
    assert set(needed) - PAPER_SCALE_ONLY <= set(all_methods(cfg))
    assert PAPER_SCALE_ONLY <= set(needed)


def test_default_hyperparameters_are_valid():
    cfg = load_params("params.yaml")
    for experiment in all_methods(cfg):
        settings = train_settings(cfg, cfg["experiments"]["datasets"][0], experiment)
        cls = METHODS.get(settings["method"])
        dataclass_from_dict(cls.Hparams, settings["hparams"], where=f"methods.{experiment}")
