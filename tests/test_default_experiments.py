"""The default experiment set runs every method with every HCCF-paper inference its outputs allow."""

from taxonbench.inference import INFERENCE
from taxonbench.methods import METHODS
from taxonbench.params import dataclass_from_dict, train_settings
from taxonbench.label_graph.settings import joint_settings, label_experiments, label_settings
from taxonbench.plan import all_methods, dataset_methods, is_joint, load_params, method_inference, output_kind
from taxonbench.registries import LABEL_MODELS
from taxonbench.tables import resolve_table
from taxonbench.tables.dhall_thesis_embeddings import LABEL_GRAPH

#: the inference of the HCCF paper's tables and of the thesis's set predictions (the default restricts to these)
HCCF_INFERENCE = {"native", "bottom_up", "top_down", "advanced_top_down", "diffusion", "differentiable_diffusion"}
THESIS_INFERENCE = {"pcdb", "ofadb", "level_argmax", "masked_top_down"}
HIMULCON_INFERENCE = {"embedding", "linear_probe"}  # encoders: retrieval / clustering, and the linear probe
def registered(cfg: dict, experiment: str) -> str:
    return cfg["methods"].get(experiment, {}).get("method", experiment)


def applicable(cfg: dict, experiment: str) -> set[str]:
    kind = output_kind(cfg, experiment)
    return {i for i in INFERENCE.names() if INFERENCE.get(i).applies_to(kind)} & (HCCF_INFERENCE | THESIS_INFERENCE | HIMULCON_INFERENCE)


def test_every_registered_method_is_trained():
    cfg = load_params("params.yaml")
    assert {registered(cfg, m) for m in all_methods(cfg) if not is_joint(cfg, m)} == set(METHODS.names())


def test_every_label_model_is_trained_alone_and_jointly():
    cfg = load_params("params.yaml")
    alone = {label_settings(cfg, e)["model"] for e in label_experiments(cfg)}
    joint = {joint_settings(cfg, e)["model"] for e in all_methods(cfg) if is_joint(cfg, e)}
    assert alone == set(LABEL_MODELS.names())
    assert joint == {"euclidean_cones", "hyperbolic_cones"}  # the thesis's joint models (Table 6.3)


def test_each_main_method_gets_exactly_its_applicable_inference():
    cfg = load_params("params.yaml")
    pairs = method_inference(cfg)
    for method in cfg["experiments"]["methods"]:
        assert set(pairs[method]) == applicable(cfg, method) & HCCF_INFERENCE, method


def _table_cells(cfg):
    """(table, dataset, experiment, inference) of every cell of every table of the default."""
    for table, settings in cfg["tables"].items():
        job = resolve_table(table, settings)
        for row in job.spec.rows:
            for dataset, method, inference in job.row_experiments(row):
                yield table, dataset, method, inference


def test_ablation_variants_get_applicable_inference_covering_their_table_rows():
    cfg = load_params("params.yaml")
    pairs = method_inference(cfg)
    needed = {}
    for _, _, method, inference in _table_cells(cfg):
        if inference != LABEL_GRAPH:  # written by the label-graph rules, not an inference
            needed.setdefault(method, set()).add(inference)
    for method in all_methods(cfg):
        assert set(pairs[method]) <= applicable(cfg, method), method
        assert needed.get(method, set()) <= set(pairs[method]), method


def _uncovered_cells(cfg) -> set[tuple[str, str]]:
    """(table, experiment) of the cells whose experiment the params do not run on the cell's dataset."""
    joint = [m for m in all_methods(cfg) if is_joint(cfg, m)]
    missing = set()
    for table, dataset, method, inference in _table_cells(cfg):
        if inference == LABEL_GRAPH:
            runs = method in label_experiments(cfg) + joint and dataset in cfg["label_embeddings"]["datasets"]
        else:
            runs = method in dataset_methods(cfg, dataset)
        if not runs:
            missing.add((table, method))
    return missing


def test_every_cell_of_every_table_is_an_experiment_of_its_dataset():
    """Rows whose experiment is not in the default (the thesis's d=100/1000 embeddings) are the exception
    named here: the paper config runs them (next test)."""
    cfg = load_params("params.yaml")
    paper_config_only = {f"{m}_d{d}" for m in ("oe", "ec") for d in (100,)} | {
        f"{m}_full_d1000" for m in ("oe", "ec", "hc")} | {"ec_joint_d1000", "hc_joint_d1000"}
    assert {method for _, method in _uncovered_cells(cfg)} <= paper_config_only


def test_the_ethec_config_runs_every_row_of_the_thesis_tables():
    from taxonbench.figures.dhall_thesis import THESIS_FIGURE_IDS
    from taxonbench.tables.dhall_thesis import THESIS_TABLE4_IDS
    from taxonbench.tables.dhall_thesis_embeddings import THESIS_TABLE6_IDS

    cfg = load_params("workflow/configs/ethec_thesis.yaml")
    assert set(THESIS_TABLE6_IDS) <= set(cfg["tables"]) and set(THESIS_FIGURE_IDS) <= set(cfg["figures"])
    assert set(THESIS_TABLE4_IDS) - {"dhall_thesis_table4_2", "dhall_thesis_table4_3", "dhall_thesis_table4_4"} \
        <= set(cfg["tables"])  # 4.2-4.4 are CIFAR-10 / Fashion-MNIST tables (their own configs)
    assert _uncovered_cells(cfg) == set()
    # the thesis's hyper-parameters (Table 6.1-6.3 captions, §6.2.1)
    assert label_settings(cfg, "oe_d2")["epochs"] == 200 and label_settings(cfg, "ec_d2")["alpha"] == 0.01
    assert label_settings(cfg, "hc_full_d1000")["epochs"] == 5000
    assert joint_settings(cfg, "hc_joint_d100")["lr"] == 1e-4 and joint_settings(cfg, "ec_joint_d100")["lr"] == 1e-2


def test_the_default_builds_every_thesis_table_and_figure():
    from taxonbench.figures.dhall_thesis import THESIS_FIGURE_IDS
    from taxonbench.tables.dhall_thesis import THESIS_TABLE4_IDS
    from taxonbench.tables.dhall_thesis_embeddings import THESIS_TABLE6_IDS

    cfg = load_params("params.yaml")
    assert set(THESIS_TABLE4_IDS) | set(THESIS_TABLE6_IDS) <= set(cfg["tables"])
    assert set(THESIS_FIGURE_IDS) <= set(cfg["figures"])


def test_default_hyperparameters_are_valid():
    cfg = load_params("params.yaml")
    for experiment in [m for m in all_methods(cfg) if not is_joint(cfg, m)]:
        settings = train_settings(cfg, cfg["experiments"]["datasets"][0], experiment)
        cls = METHODS.get(settings["method"])
        dataclass_from_dict(cls.Hparams, settings["hparams"], where=f"methods.{experiment}")


def test_the_default_and_the_treeoflife_config_fill_every_level_restricted_table():
    from taxonbench.tables.level_restricted import LEVEL_RESTRICTED_TABLE_IDS

    for path in ("params.yaml", "workflow/configs/treeoflife10m.yaml"):
        cfg = load_params(path)
        assert set(LEVEL_RESTRICTED_TABLE_IDS) <= set(cfg["tables"]), path
        assert not {t for t, _ in _uncovered_cells(cfg) if t in LEVEL_RESTRICTED_TABLE_IDS}, path
        # every model is trained once, on the TreeOfLife stand-in, and only scored on the evaluation sets
        trained = {cfg["methods"][m].get("trained_on") for t in LEVEL_RESTRICTED_TABLE_IDS
                   for _, _, m, _ in _table_cells({**cfg, "tables": {t: cfg["tables"][t]}})}
        assert trained == {"synthetic_treeoflife" if path == "params.yaml" else "treeoflife10m"}, path
    for path in ("workflow/configs/rare_species.yaml", "workflow/configs/crypticbio.yaml"):
        cfg = load_params(path)
        assert _uncovered_cells(cfg) == set(), path
        assert {cfg["methods"][m]["trained_on"] for m in all_methods(cfg)} == {"treeoflife10m"}, path
