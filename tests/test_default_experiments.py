"""The default experiment set runs every method with every HCCF-paper inference its outputs allow."""

from taxonbench.inference import INFERENCE
from taxonbench.methods import METHODS
from taxonbench.params import dataclass_from_dict, train_settings
from taxonbench.plan import all_methods, load_params, method_inference
from taxonbench.tables import TABLES

#: the inference of the HCCF paper's tables (the default restricts to these; set predictions come with the thesis)
HCCF_INFERENCE = {"native", "bottom_up", "top_down", "advanced_top_down", "diffusion", "differentiable_diffusion"}


def registered(cfg: dict, experiment: str) -> str:
    return cfg["methods"].get(experiment, {}).get("method", experiment)


def applicable(cfg: dict, experiment: str) -> set[str]:
    kind = METHODS.get(registered(cfg, experiment)).output_kind
    return {i for i in INFERENCE.names() if INFERENCE.get(i).applies_to(kind)} & HCCF_INFERENCE


def test_every_registered_method_is_trained():
    cfg = load_params("params.yaml")
    assert {registered(cfg, m) for m in all_methods(cfg)} == set(METHODS.names())


def test_each_main_method_gets_exactly_its_applicable_inference():
    cfg = load_params("params.yaml")
    pairs = method_inference(cfg)
    for method in cfg["experiments"]["methods"]:
        assert set(pairs[method]) == applicable(cfg, method), method


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
    assert set(needed) <= set(all_methods(cfg))  # every row of every built table has its experiment


def test_default_hyperparameters_are_valid():
    cfg = load_params("params.yaml")
    for experiment in all_methods(cfg):
        settings = train_settings(cfg, cfg["experiments"]["datasets"][0], experiment)
        cls = METHODS.get(settings["method"])
        dataclass_from_dict(cls.Hparams, settings["hparams"], where=f"methods.{experiment}")
