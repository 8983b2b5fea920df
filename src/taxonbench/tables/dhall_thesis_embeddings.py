"""Specs of Dhall's thesis Tables 6.1-6.4 (order-preserving embeddings of the label hierarchy, Chapter 6).

Source: A. Dhall, "Learning Representations for Images with Hierarchical
Labels", ETH Zurich 2019, Tables 6.1-6.4, numbers transcribed in
``reference/dhall_thesis_table6_*.csv``; fractions with four decimals.

Experiments (``label_embeddings`` in params, docs/embeddings.md), named
``<model>[_<task>]_d<d>``: ``oe`` order-embeddings, ``ec`` Euclidean cones,
``hc`` hyperbolic cones;

* Table 6.1, hidden test edges: label-only ``oe_d<d>`` / ``ec_d<d>``, metric
  ``test_edge_f1`` of ``label_graph.json`` (the test edges at the threshold of
  best validation F1);
* Table 6.2, graph reconstruction: label-only ``<model>_full_d<d>`` (the
  thesis trains these longer, at α = 0.1), ``full_tpr`` / ``full_tnr`` / ``full_f1``;
* Tables 6.3-6.4, joint image + label embeddings ``<model>_joint_d<d>``
  (``_random``: label embeddings not initialised from a label-only one, the
  thesis's ``d=100∗``): per-level classification by least violation
  (``level_argmax`` → ``set_micro_f1``, per level ``set_micro_f1_L<l>``),
  hit@k over the levels (``native`` → ``hit_at_<k>_levels``) and graph
  reconstruction of the label part (``label_graph.json``). Table 6.4's CNN
  rows are the experiments of Tables 4.6, 4.8, 4.10, 4.12 and 4.15.
"""

from __future__ import annotations

from taxonbench.tables.dhall_thesis import LEVEL_F1_COLUMNS
from taxonbench.tables.spec import FRACTION_4, Entry, TableSpec, register_table

LABEL_GRAPH = "label_graph"  # results/metrics/<dataset>/<experiment>/label_graph.json
MODELS = (("oe", "Order-embeddings", "OE"), ("ec", "Euclidean Cones", "EC"), ("hc", "Hyperbolic Cones", "HC"))
RECONSTRUCTION = (("full_tpr", "TPR"), ("full_tnr", "TNR"), ("full_f1", "full-F1"))


def _spec(number: str, caption: str, label_column, columns, rows, notes=()) -> TableSpec:
    return register_table(TableSpec(
        id=f"dhall_thesis_table6_{number}", paper="dhall_thesis", source=f"Dhall thesis Table 6.{number}",
        caption=caption, reference_csv=f"dhall_thesis_table6_{number}.csv", label_column=label_column,
        columns=columns, rows=tuple(rows), paper_dataset="ETHEC Merged", number_format=FRACTION_4, notes=notes))


_spec("1", "Label-only embeddings: micro-F1 on the hidden test edges (threshold of best validation F1) against "
      "the dimension d", "Model",
      [Entry(f"d={d}", inference=LABEL_GRAPH, metric="test_edge_f1", vars={"d": d}) for d in (2, 3, 5, 10, 100)],
      [Entry(label, f"{key}_d{{d}}") for key, label, _ in MODELS[:2]])

_spec("2", "Graph reconstruction from label-only embeddings: TPR, TNR and full-F1 over all positive and negative "
      "edges of the label hierarchy (threshold of best full-F1)", "Model",
      [Entry(f"d={d} {label}", inference=LABEL_GRAPH, metric=key, vars={"d": d})
       for d in (2, 100, 1000) for key, label in RECONSTRUCTION],
      [Entry(short, f"{key}_full_d{{d}}") for key, _, short in MODELS],
      notes=("Positives are the basic (parent-child) edges; negatives every ordered label pair outside the "
             "transitive closure.",))

_spec("3", "Joint image + label embeddings: test-image classification (least violation per level) and graph "
      "reconstruction of the labels", ("Model", "d"),
      [Entry("m-F1", inference="level_argmax", metric="set_micro_f1"),
       Entry("hit@3", inference="native", metric="hit_at_3_levels"),
       Entry("hit@5", inference="native", metric="hit_at_5_levels")]
      + [Entry(label, inference=LABEL_GRAPH, metric=key) for key, label in RECONSTRUCTION],
      [Entry((label, str(d)), f"{key}_joint_d{d}")
       for key, label, d in (("ec", "Euclidean Cones", 10), ("ec", "Euclidean Cones", 100),
                             ("ec", "Euclidean Cones", 1000), ("hc", "Hyperbolic Cones", 100),
                             ("hc", "Hyperbolic Cones", 1000))])

_CNN = "CNN-based methods"
_JOINT = "Order-preserving (joint) embedding models"
_spec("4", "Per-level micro-F1 of the CNN classifiers and the joint embedding models", ("category", "Model"),
      [Entry(label, inference=None, metric=key) for key, label in LEVEL_F1_COLUMNS],
      [Entry((_CNN, "Hierarchy-agnostic (baseline)"), "multilabel", "ofadb"),
       Entry((_CNN, "Per-level classifier"), "per_level_rs", "level_argmax"),
       Entry((_CNN, "Marginalization classifier"), "marginalization", "level_argmax"),
       Entry((_CNN, "Masked Per-level classifier"), "masked_per_level", "masked_top_down"),
       Entry((_CNN, "Hierarchical-softmax"), "hierarchical_softmax_r152", "level_argmax"),
       Entry((_JOINT, "Euclidean cones d=100"), "ec_joint_d100", "level_argmax"),
       Entry((_JOINT, "Hyperbolic cones d=100*"), "hc_joint_d100_random", "level_argmax"),
       Entry((_JOINT, "Hyperbolic cones d=100"), "hc_joint_d100", "level_argmax")],
      notes=("d=100*: label embeddings initialised at random instead of from the label-only embedding.",))

THESIS_TABLE6_IDS = tuple(f"dhall_thesis_table6_{n}" for n in range(1, 5))

__all__ = ["THESIS_TABLE6_IDS"]
