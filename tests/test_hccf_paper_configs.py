"""HCCF Tables 1, 3, 5 and 6 against the paper's cross-table identities, and the experiment sets that fill them.

Each row reads the experiment whose numbers the paper prints (one experiment where two tables print one
run), every cell of the HCCF tables is run by the params that build them, and no experiment set trains one
model under two experiment names (a check over ``params.yaml`` and every config in ``workflow/configs/``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from taxonbench.methods import METHODS
from taxonbench.params import dataclass_from_dict, train_settings
from taxonbench.plan import experiment_matrix, image_methods, load_params, trained_on, validate
from taxonbench.tables import TABLES, build_table, load_reference, resolve_table


REPO = Path(__file__).resolve().parent.parent
CONFIGS = ["params.yaml"] + sorted(f"workflow/configs/{p.name}" for p in (REPO / "workflow" / "configs").glob("*.yaml"))
HCCF_CONFIGS = ["params.yaml", "workflow/configs/inat18_hccf.yaml", "workflow/configs/inat21_hccf.yaml"]
CE_TEXT_L1234567 = "ce_text_init_levels_L1234567"


def row(table: str, label: str):
    return next(r for r in TABLES.get(table).rows if r.label == label)


def printed(table: str, label: str) -> list[str]:
    """The paper's numbers of one row, in column order (Table 6 names one column differently)."""
    return list(load_reference(TABLES.get(table))[label].values())


# --------------------------------------------------------------------------- rows -> experiments


def test_table6_flat_softmax_rows_read_table3_ce_text_embedding_L1234567():
    flat = [r for r in TABLES.get("hccf_table6").rows if r.label.startswith("Flat softmax")]
    assert [r.label for r in flat] == [  # as the paper prints them
        "Flat softmax bottom-up", "Flat softmax diffusion", "Flat softmax differentiable diffusion"]
    assert {r.method for r in flat} == {row("hccf_table3", "CE loss + text embedding + L1234567").method} \
        == {CE_TEXT_L1234567}
    assert [r.inference for r in flat] == ["bottom_up", "diffusion", "differentiable_diffusion"]
    # why: the paper's "Flat softmax bottom-up" numbers are Table 3's row, not Table 1's Flat softmax
    assert printed("hccf_table6", "Flat softmax bottom-up") == printed("hccf_table3", "CE loss + text embedding + L1234567")
    assert printed("hccf_table6", "Flat softmax bottom-up") != printed("hccf_table1", "Flat softmax (Bertinetto et al., 2020)")
    assert any(CE_TEXT_L1234567 in n and "'Flat softmax' rows" in n for n in TABLES.get("hccf_table6").notes)


def test_table1_flat_softmax_and_table3_ce_baseline_are_one_experiment():
    flat = row("hccf_table1", "Flat softmax (Bertinetto et al., 2020)")
    ce = row("hccf_table3", "CE loss baseline (Bertinetto et al., 2020)")
    assert (ce.method, ce.inference) == (flat.method, flat.inference) == ("flat_softmax", "bottom_up")
    assert printed("hccf_table3", ce.label) == printed("hccf_table1", flat.label)  # the paper's one run
    assert any("'CE loss baseline' reads flat_softmax" in n for n in TABLES.get("hccf_table3").notes)


def test_table5_diffusion_and_table6_hccf_diffusion_are_one_experiment_and_the_notes_say_why(tmp_path):
    """The paper states no difference between the two (same model, no diffusion setting or dataset given),
    so they read one experiment; the notes say that its numbers differ between its own tables."""
    t5 = TABLES.get("hccf_table5")
    assert row("hccf_table5", "Diffusion (Ours)").resolve(t5.default_model) \
        == row("hccf_table6", "HCCF L1234567 diffusion").resolve(None) == ("hccf", "diffusion")
    # what the notes state about the paper's numbers
    assert printed("hccf_table5", "Diffusion (Ours)")[0] == "73.48"
    assert printed("hccf_table6", "HCCF L1234567 diffusion")[0] == "73.60"
    assert printed("hccf_table5", "Diffusion (Ours)") == printed("hccf_table1", "HCCF + diffusion")
    assert printed("hccf_table5", "Bottom-up (Valmadre, 2022)") == printed("hccf_table6", "HCCF L1234567 bottom-up")
    assert printed("hccf_table5", "Differentiable diffusion (Ours)") \
        == printed("hccf_table6", "HCCF L1234567 differentiable diffusion")
    for table in ("hccf_table5", "hccf_table6"):
        note = next(n for n in TABLES.get(table).notes if "'HCCF L1234567 diffusion'" in n)
        assert "one experiment" in note and "different numbers" in note and "states no difference" in note
        build_table(table, "d", tmp_path / "metrics", tmp_path / table)
        assert f"% Note: {note}" in (tmp_path / table / f"{table}.tex").read_text()


# --------------------------------------------------------------------------- the params fill every cell


@pytest.mark.parametrize("config", HCCF_CONFIGS)
def test_every_cell_of_the_hccf_tables_is_run(config):
    cfg = load_params(REPO / config)
    runs = set(experiment_matrix(cfg))  # the plan refuses an inference that does not apply
    tables = {t: s for t, s in cfg["tables"].items() if t.startswith("hccf_")}
    assert tables
    for table, settings in tables.items():
        job = resolve_table(table, settings)
        for r in job.spec.rows:
            for experiment in job.row_experiments(r):
                assert experiment in runs, (config, table, r.label, experiment)


def test_inat18_config_builds_table6_with_the_ce_text_embedding_model():
    cfg = load_params(REPO / "workflow/configs/inat18_hccf.yaml")
    assert "hccf_table6" in cfg["tables"] and "hccf_table3" in cfg["tables"]
    runs = set(experiment_matrix(cfg))
    for inference in ("bottom_up", "diffusion", "differentiable_diffusion"):
        assert ("inat18", CE_TEXT_L1234567, inference) in runs


# --------------------------------------------------------------------------- one model, one experiment

def trained_models(cfg: dict) -> dict[str, set[str]]:
    """Resolved training (dataset trained on, method, hyper-parameters, train settings, seed) -> the
    experiments of the set that train it."""
    out: dict[str, set[str]] = {}
    for dataset in cfg["experiments"]["datasets"]:
        for experiment in image_methods(cfg, dataset):
            settings = train_settings(cfg, trained_on(cfg, dataset, experiment), experiment)
            cls = METHODS.get(settings["method"])
            hparams = dataclass_from_dict(cls.Hparams, settings["hparams"], f"methods.{experiment}")
            key = {k: v for k, v in settings.items() if k != "experiment"}
            key["hparams"] = dataclasses.asdict(hparams)
            out.setdefault(json.dumps(key, sort_keys=True, default=str), set()).add(experiment)
    return out


@pytest.mark.parametrize("config", CONFIGS)
def test_no_two_experiments_train_the_same_model(config):
    cfg = load_params(REPO / config)
    assert [sorted(names) for names in trained_models(cfg).values() if len(names) > 1] == []


def test_the_check_finds_one_model_under_two_names():
    raw = yaml.safe_load((REPO / "workflow/configs/inat18_hccf.yaml").read_text())
    raw = copy.deepcopy(raw)
    raw["methods"].update(flat_again={"method": "flat_softmax"},
                          flat_other_lr={"method": "flat_softmax", "train": {"optimizer": {"lr": 0.5}}})
    raw["experiments"]["methods"] += ["flat_again", "flat_other_lr"]
    dups = [sorted(n) for n in trained_models(validate(raw)).values() if len(n) > 1]
    assert dups == [["flat_again", "flat_softmax"]]
