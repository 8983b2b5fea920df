"""Specs of Dhall's thesis Tables 4.2-4.16 (CNN classifiers that inject the label hierarchy, Chapter 4).

Source: A. Dhall, "Learning Representations for Images with Hierarchical
Labels", ETH Zurich 2019, Tables 4.2-4.16, numbers transcribed in
``reference/dhall_thesis_table4_*.csv``. The thesis prints fractions with four
decimals (:data:`~taxonbench.tables.spec.FRACTION_4`); m- are micro-, M- macro-
averaged precision, recall and F1 of set predictions (metric family
``set_prf``), per level where a table has a ``Level`` column.

Every row maps the thesis's label to an experiment of the thesis configs
(``workflow/configs/{cifar10,fashion_mnist,ethec}_thesis.yaml``) and the
inference that decodes its set predictions:

* hierarchy-agnostic multi-label (``multilabel``): ``pcdb`` / ``ofadb`` thresholds tuned on val;
* per-level and marginalization: ``level_argmax``;
* masked per-level: ``masked_top_down``;
* hierarchical softmax (``cond_softmax``): ``level_argmax`` of its node probabilities
  (products of the conditionals), one label per level.

Experiment names: ``<method>[_<backbone>][_<variant>]``; the table's main
model (the thesis's ResNet-50; in the embedded default the tiny CNN standing
in for it) has no backbone suffix, the others ``alexnet``, ``vgg``, ``r18``,
``r101``, ``r152``; regimes ``head`` (last layer only), ``all`` (all weights), ``fl``
(first and last layer), ``cw`` / ``rs`` / ``sqrt`` (class weights, inverse-
frequency or inverse-√frequency re-sampling), ``gray`` (grayscale input),
``L<levels>`` (the level terms of the loss) and ``n<size>`` (training-set size).
"""

from __future__ import annotations

from taxonbench.tables.spec import FRACTION_4, Entry, TableSpec, register_table

PAPER = "dhall_thesis"

SET6 = (("set_micro_precision", "m-P"), ("set_micro_recall", "m-R"), ("set_micro_f1", "m-F1"),
        ("set_macro_precision", "M-P"), ("set_macro_recall", "M-R"), ("set_macro_f1", "M-F1"))
#: Tables 4.3-4.4
AGNOSTIC_COLUMNS = (("set_micro_precision", "m-Precision"), ("set_micro_recall", "m-Recall"),
                    ("set_micro_f1", "m-F1"), ("set_macro_f1", "M-F1"))
#: per-level tables: N_i, then the six scores of that level
LEVEL_COLUMNS = (("labels_L{level}", "Ni"),) + tuple((f"{key}_L{{level}}", label) for key, label in SET6)
#: Tables 4.10 / 4.13: overall and per-level micro-F1
LEVEL_F1_COLUMNS = (("set_micro_f1", "m-F1"),) + tuple((f"set_micro_f1_L{d}", f"m-F1 L{d}") for d in (1, 2, 3, 4))
ETHEC_LEVELS = ("family", "subfamily", "genus", "genus + specific epithet")
DECISION = (("Per-class decision boundary", "pcdb"), ("One-fits-all decision boundary", "ofadb"))
YES_NO = {True: "yes", False: "no"}


def _spec(number: str, caption: str, label_column, columns, rows, dataset: str, notes=()) -> TableSpec:
    return register_table(TableSpec(
        id=f"dhall_thesis_table4_{number}", paper=PAPER, source=f"Dhall thesis Table 4.{number}", caption=caption,
        reference_csv=f"dhall_thesis_table4_{number}.csv", label_column=label_column, columns=columns,
        rows=tuple(rows), paper_dataset=dataset, number_format=FRACTION_4, notes=notes))


def _breakdown(model: str, labels: tuple[str, ...], method: str, inference: str) -> tuple[Entry, ...]:
    """One row per ETHEC level (family .. species) of one model: the level-``d`` scores."""
    return tuple(Entry((model, *labels, name), method, inference, level=d)
                 for d, name in enumerate(ETHEC_LEVELS, start=1))


def _agnostic_rows(partial: str) -> list[Entry]:
    """Tables 4.3-4.4: backbone x (``partial``: last layer (``head``) or first and last (``fl``) | all weights)
    x decision boundary."""
    rows = []
    for arch, label in (("_alexnet", "Alexnet"), ("_vgg", "VGG"), ("_r18", "ResNet-18"), ("", "ResNet-50")):
        for regime, suffix in ((partial, ""), ("all", " (update all weights)")):
            for boundary, inference in DECISION:
                rows.append(Entry((label + suffix, boundary), f"multilabel{arch}_{regime}", inference))
    return rows


_spec("2", "Per-level classifier on hierarchical CIFAR-10 with 100, 1000 or all training samples",
      ("model", "training data"), SET6,
      [Entry(("ResNet-50 (update all weights)", text), method, "level_argmax")
       for text, method in (("100 samples", "per_level_n100"), ("1000 samples", "per_level_n1000"),
                            ("all samples", "per_level"))],
      "Hierarchical CIFAR-10")

_spec("3", "Hierarchy-agnostic classifier on hierarchical CIFAR-10: backbones, last layer or all weights, "
      "per-class or one-fits-all decision boundary", ("model", "decision boundary"), AGNOSTIC_COLUMNS,
      _agnostic_rows("head"), "Hierarchical CIFAR-10")

_spec("4", "Hierarchy-agnostic classifier on hierarchical Fashion-MNIST: backbones, first and last layer or "
      "all weights, per-class or one-fits-all decision boundary", ("model", "decision boundary"),
      AGNOSTIC_COLUMNS, _agnostic_rows("fl"), "Hierarchical Fashion-MNIST",
      notes=("The thesis fine-tunes the first and the last layer here (not the last only): the `_fl` "
             "experiments use train.finetune: first_last.",))

_spec("5", "Hierarchy-agnostic classifier on ETHEC Merged with class weights (cw) and re-sampling (rs): "
      "scores and labels predicted per image", ("model", "cw", "rs"),
      SET6 + (("labels_min", "min"), ("labels_max", "max"), ("labels_mean", "µ"), ("labels_std", "σ")),
      [Entry((f"ResNet-50 - {boundary}", YES_NO[cw], YES_NO[rs]),
             "multilabel" + ("_cw" if cw else "") + ("_rs" if rs else ""), inference)
       for boundary, inference in DECISION for cw, rs in ((False, False), (False, True), (True, False), (True, True))],
      "ETHEC Merged")

_spec("6", "Hierarchy-agnostic classifier (OFADB) on ETHEC Merged: per-level breakdown",
      ("model", "cw", "rs", "Level"), LEVEL_COLUMNS,
      _breakdown("ResNet-50 (OFADB) with resampler", ("no", "no"), "multilabel", "ofadb"), "ETHEC Merged",
      notes=("The thesis titles the model 'with resampler' but marks cw and rs 'no'; the row is the model "
             "without either (Table 4.5's 'no, no' OFADB row).",))

_spec("7", "Per-level classifier on ETHEC Merged with class weights (cw) and re-sampling (rs, sqrt: "
      "inverse square-root frequency)", ("model", "cw", "rs"), SET6,
      [Entry(("ResNet-50", cw, rs), method, "level_argmax")
       for cw, rs, method in (("yes", "no", "per_level_cw"), ("no", "no", "per_level"),
                              ("no", "yes", "per_level_rs"), ("yes", "yes", "per_level_cw_rs"),
                              ("no", "sqrt", "per_level_sqrt"))],
      "ETHEC Merged")

_spec("8", "Per-level classifier with re-sampling on ETHEC Merged: per-level breakdown",
      ("model", "cw", "rs", "Level"), LEVEL_COLUMNS,
      _breakdown("ResNet-50 with resampler", ("no", "yes"), "per_level_rs", "level_argmax"), "ETHEC Merged")


def _colour_rows(method: str, inference: str) -> list[Entry]:
    """Tables 4.9 / 4.11: grayscale ResNet-50, then colour ResNet-50 / 101 / 152 (all with re-sampling)."""
    return [Entry(("grayscale", "ResNet-50"), f"{method}_gray", inference)] + [
        Entry(("normal color", label), f"{method}{arch}", inference)
        for arch, label in (("", "ResNet-50"), ("_r101", "ResNet-101"), ("_r152", "ResNet-152"))]


def _level_term_rows(method: str, inference: str) -> list[Entry]:
    """Tables 4.10 / 4.13: which level terms enter the loss (L4; L3-4; L2-4; all)."""
    return [Entry(tuple(YES_NO[d in trained] for d in (1, 2, 3, 4)),
                  method + ("" if trained == (1, 2, 3, 4) else "_L" + "".join(map(str, trained))), inference)
            for trained in ((4,), (3, 4), (2, 3, 4), (1, 2, 3, 4))]


_spec("9", "Marginalization on ETHEC Merged: grayscale and colour images, ResNet-50/101/152 (re-sampled)",
      ("images", "model"), SET6, _colour_rows("marginalization", "level_argmax"), "ETHEC Merged")

_spec("10", "Marginalization on ETHEC Merged with and without each level's loss term",
      ("L1", "L2", "L3", "L4"), LEVEL_F1_COLUMNS, _level_term_rows("marginalization", "level_argmax"),
      "ETHEC Merged")

_spec("11", "Masked per-level classifier on ETHEC Merged: grayscale and colour images, ResNet-50/101/152",
      ("images", "model"), SET6, _colour_rows("masked_per_level", "masked_top_down"), "ETHEC Merged")

_spec("12", "Masked per-level classifier (ResNet-50) on ETHEC Merged: per-level breakdown",
      ("model", "Level"), LEVEL_COLUMNS,
      _breakdown("ResNet-50 Performance Breakdown", (), "masked_per_level", "masked_top_down"), "ETHEC Merged")

_spec("13", "Masked per-level classifier on ETHEC Merged with and without each level's loss term",
      ("L1", "L2", "L3", "L4"), LEVEL_F1_COLUMNS, _level_term_rows("masked_per_level", "masked_top_down"),
      "ETHEC Merged")

_spec("14", "Hierarchical softmax (cond_softmax) on ETHEC Merged: ResNet-50/101/152", "model", SET6,
      [Entry(label, f"hierarchical_softmax{arch}", "level_argmax")
       for arch, label in (("", "ResNet-50"), ("_r101", "ResNet-101"), ("_r152", "ResNet-152"))],
      "ETHEC Merged")

_spec("15", "Hierarchical softmax (ResNet-152) on ETHEC Merged: per-level breakdown", ("model", "Level"),
      LEVEL_COLUMNS,
      _breakdown("ResNet-152 with Hierarchical Softmax — Performance Breakdown", (), "hierarchical_softmax_r152",
                 "level_argmax"), "ETHEC Merged")

_spec("16", "The best model of each kind on ETHEC Merged", ("baseline", "model"), SET6,
      [Entry(("hierarchy-agnostic classifier", "ResNet-50"), "multilabel", "ofadb"),
       Entry(("Per-level classifier", "ResNet-50"), "per_level_rs", "level_argmax"),
       Entry(("Marginalization", "ResNet-50"), "marginalization", "level_argmax"),
       Entry(("Masked Per-level classifier", "ResNet-50"), "masked_per_level", "masked_top_down"),
       Entry(("Hierarchical softmax", "ResNet-152"), "hierarchical_softmax_r152", "level_argmax")],
      "ETHEC Merged")

THESIS_TABLE4_IDS = tuple(f"dhall_thesis_table4_{n}" for n in range(2, 17))

__all__ = ["THESIS_TABLE4_IDS"]
