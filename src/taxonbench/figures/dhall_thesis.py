"""Dhall's thesis (Chapter 4) figures: per-label F1 against training images (Figs. 4.1, 4.2, 4.4) and the
training curves of the per-level classifier (Fig. 4.3), on the experiments of the thesis tables
(:mod:`taxonbench.tables.dhall_thesis`).

Source: A. Dhall, "Learning Representations for Images with Hierarchical Labels", ETH Zurich 2019:

* Fig. 4.1: the hierarchy-agnostic classifier (OFADB) on ETHEC Merged;
* Fig. 4.2: the per-level classifier with re-sampling (cw no, rs yes: Table 4.7's best);
* Fig. 4.3: (a) val micro-F1 of the per-level classifier's cw / rs combinations; (b) loss, (c) micro-F1,
  (d) macro-F1 on train, val and test per epoch of the per-level classifier with re-sampling;
* Fig. 4.4: the hierarchical softmax on ResNet-152 (re-sampled in the thesis).
"""

from __future__ import annotations

from taxonbench.figures.base import FigureSpec, register_figure

PAPER = "dhall_thesis"

register_figure(FigureSpec(
    id="dhall_thesis_fig4_1", paper=PAPER, source="Dhall thesis Fig. 4.1", kind="label_f1",
    caption="per-label F1 against training images, hierarchy-agnostic classifier (OFADB)",
    experiment="multilabel", inference="ofadb"))

register_figure(FigureSpec(
    id="dhall_thesis_fig4_2", paper=PAPER, source="Dhall thesis Fig. 4.2", kind="label_f1",
    caption="per-label F1 against training images, per-level classifier with re-sampling",
    experiment="per_level_rs", inference="level_argmax"))

register_figure(FigureSpec(
    id="dhall_thesis_fig4_3", paper=PAPER, source="Dhall thesis Fig. 4.3", kind="training_curves",
    caption="per-level classifier: class weights (cw) and re-sampling (rs) per epoch",
    experiment="per_level_rs",
    compare=(("per_level", "cw no, rs no"), ("per_level_cw", "cw yes, rs no"), ("per_level_rs", "cw no, rs yes"),
             ("per_level_cw_rs", "cw yes, rs yes"), ("per_level_sqrt", "cw no, rs sqrt"))))

register_figure(FigureSpec(
    id="dhall_thesis_fig4_4", paper=PAPER, source="Dhall thesis Fig. 4.4", kind="label_f1",
    caption="per-label F1 against training images, hierarchical softmax on ResNet-152",
    experiment="hierarchical_softmax_r152", inference="level_argmax"))

THESIS_FIGURE_IDS = ("dhall_thesis_fig4_1", "dhall_thesis_fig4_2", "dhall_thesis_fig4_3", "dhall_thesis_fig4_4")

__all__ = ["THESIS_FIGURE_IDS"]
