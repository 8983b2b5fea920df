"""The default experiment set runs every method with every HCCF-paper inference its outputs allow."""

from taxonbench.inference import INFERENCE
from taxonbench.methods import METHODS
from taxonbench.params import dataclass_from_dict, train_settings
from taxonbench.plan import all_methods, dataset_methods, load_params, method_inference
from taxonbench.tables import TABLES

#: the inference of the HCCF paper's tables and of the thesis's set predictions (the default restricts to these)
HCCF_INFERENCE = {"native", "bottom_up", "top_down", "advanced_top_down", "diffusion", "differentiable_diffusion"}
THESIS_INFERENCE = {"pcdb", "ofadb", "level_argmax", "masked_top_down"}
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
    # every row of every built table runs on the table's dataset
    for table, settings in cfg["tables"].items():
        if "dataset" in settings:
            run = dataset_methods(cfg, settings["dataset"])
            missing = [r.resolve(settings.get("model") or TABLES.get(table).default_model)[0]
                       for r in TABLES.get(table).rows]
            assert set(missing) <= set(run), (table, set(missing) - set(run))


def test_the_default_builds_every_thesis_table_and_figure():
    from taxonbench.figures.dhall_thesis import THESIS_FIGURE_IDS
    from taxonbench.tables.dhall_thesis import THESIS_TABLE4_IDS

    cfg = load_params("params.yaml")
    assert set(THESIS_TABLE4_IDS) <= set(cfg["tables"])
    assert set(THESIS_FIGURE_IDS) <= set(cfg["figures"])


def test_default_hyperparameters_are_valid():
    cfg = load_params("params.yaml")
    for experiment in all_methods(cfg):
        settings = train_settings(cfg, cfg["experiments"]["datasets"][0], experiment)
        cls = METHODS.get(settings["method"])
        dataclass_from_dict(cls.Hparams, settings["hparams"], where=f"methods.{experiment}")
