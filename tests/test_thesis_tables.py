"""Dhall's thesis Tables 4.2-4.16: specs against the copied numbers, and rendering from metrics the pipeline
computes (set predictions of a real model on a toy tree, evaluated by the set-based families)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from taxonbench.metrics import evaluate, unit_of, units_of
from taxonbench.tables import TABLES, build_tables
from taxonbench.tables.dhall_thesis import THESIS_TABLE4_IDS
from taxonbench.tables.spec import load_reference, reference_text
from taxonbench.taxonomy import Taxonomy


@pytest.mark.parametrize("table_id", THESIS_TABLE4_IDS)
def test_spec_matches_its_reference_csv(table_id):
    """The label and metric columns are the CSV's header and the rows are the thesis's, in its order."""
    spec = TABLES.get(table_id)
    rows = list(csv.reader(io.StringIO(reference_text(spec))))
    assert rows[0] == [*spec.label_columns, *spec.column_labels]
    assert [spec.reference_key(r) for r in spec.rows] == [tuple(r[:len(spec.label_columns)])
                                                          if len(spec.label_columns) > 1 else r[0] for r in rows[1:]]
    assert len(load_reference(spec)) == len(spec.rows)


def _four_level_tree() -> Taxonomy:
    # root -> 2 families -> 2 subfamilies each -> 1 genus each -> 2 species each: N_i = 2, 4, 4, 8
    parents = [-1, 0, 0, 1, 1, 2, 2] + [3, 4, 5, 6] + [7, 7, 8, 8, 9, 9, 10, 10]
    return Taxonomy.from_parents(parents)


def _write(root, dataset, method, inference, metrics, families):
    units = units_of(families)
    data = dict(metrics, units={k: unit_of(k, units) for k in metrics if unit_of(k, units)})
    path = root / dataset / method / f"{inference}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_a_breakdown_table_renders_the_levels_of_one_model(tmp_path):
    tax = _four_level_tree()
    rng = np.random.default_rng(0)
    leaf = rng.integers(0, tax.n_leaves, 40)
    node_set = np.zeros((40, tax.n_nodes), np.float32)
    paths = tax.ancestor_table[tax.leaf_nodes[leaf]]  # the true path ...
    for i, path in enumerate(paths):
        wrong = rng.random(5) < 0.3  # ... with some levels replaced by another node of that level
        for d in range(1, 5):
            node = path[d] if not wrong[d] else rng.choice(tax.nodes_at_depth(d))
            node_set[i, node] = 1
    metrics, _ = evaluate([(node_set, leaf)], tax, ["set_prf", "set_size"], kind="node_set")
    _write(tmp_path / "m", "ethec", "masked_per_level", "masked_top_down", metrics, ["set_prf", "set_size"])
    csv_path, tex_path, vs_path = build_tables({"dhall_thesis_table4_12": {"dataset": "ethec"}}, tmp_path / "m",
                                               tmp_path / "out")
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert [r["Level"] for r in rows] == ["family", "subfamily", "genus", "genus + specific epithet"]
    assert [r["Ni"] for r in rows] == ["2", "4", "4", "8"]
    for d, row in enumerate(rows, start=1):
        assert row["m-F1"] == f"{metrics[f'set_micro_f1_L{d}']:.4f}"
        assert row["M-P"] == f"{metrics[f'set_macro_precision_L{d}']:.4f}"
    assert "0.9828" in vs_path.read_text()  # the thesis's family m-P beside ours
    assert "genus + specific epithet" in tex_path.read_text()


def test_a_level_term_table_reads_overall_and_per_level_f1(tmp_path):
    for name, value in (("marginalization_L4", 0.1), ("marginalization_L34", 0.2),
                        ("marginalization_L234", 0.3), ("marginalization", 0.4)):
        metrics = {"set_micro_f1": value, **{f"set_micro_f1_L{d}": value + d / 100 for d in (1, 2, 3, 4)}}
        _write(tmp_path / "m", "ethec", name, "level_argmax", metrics, ["set_prf"])
    csv_path = build_tables({"dhall_thesis_table4_10": {"dataset": "ethec"}}, tmp_path / "m", tmp_path / "out")[0]
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert [(r["L1"], r["L2"], r["L3"], r["L4"]) for r in rows] == [
        ("no", "no", "no", "yes"), ("no", "no", "yes", "yes"), ("no", "yes", "yes", "yes"), ("yes", "yes", "yes", "yes")]
    assert [r["m-F1"] for r in rows] == ["0.1000", "0.2000", "0.3000", "0.4000"]
    assert rows[0]["m-F1 L3"] == "0.1300"
