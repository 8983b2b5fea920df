"""Dhall's thesis figures: per-label F1 against training images (Figs. 4.1, 4.2, 4.4), the training curves
of the per-level classifier (Fig. 4.3), on the experiments of the thesis tables
(:mod:`taxonbench.tables.dhall_thesis`), and the label embeddings of Chapter 6
(:mod:`taxonbench.tables.dhall_thesis_embeddings`).

Source: A. Dhall, "Learning Representations for Images with Hierarchical Labels", ETH Zurich 2019:

* Fig. 4.1: the hierarchy-agnostic classifier (OFADB) on ETHEC Merged;
* Fig. 4.2: the per-level classifier with re-sampling (cw no, rs yes: Table 4.7's best);
* Fig. 4.3: (a) val micro-F1 of the per-level classifier's cw / rs combinations; (b) loss, (c) micro-F1,
  (d) macro-F1 on train, val and test per epoch of the per-level classifier with re-sampling;
* Fig. 4.4: the hierarchical softmax on ResNet-152 (re-sampled in the thesis);
* Fig. 6.1 / 6.2: the label hierarchy in 2-D, order-embeddings / Euclidean cones (the d = 2 rows of Table 6.1);
* Fig. 6.4: hyperbolic cones in 100-D (Table 6.2's row), projected;
* Fig. 6.5: a joint image + label embedding with Euclidean cones in 2-D (labels started from Fig. 6.2's).
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

register_figure(FigureSpec(
    id="dhall_thesis_fig6_1", paper=PAPER, source="Dhall thesis Fig. 6.1", kind="label_embedding",
    caption="label hierarchy, order-embeddings in 2-D", experiment="oe_d2"))

register_figure(FigureSpec(
    id="dhall_thesis_fig6_2", paper=PAPER, source="Dhall thesis Fig. 6.2", kind="label_embedding",
    caption="label hierarchy, Euclidean cones in 2-D", experiment="ec_d2"))

register_figure(FigureSpec(
    id="dhall_thesis_fig6_4", paper=PAPER, source="Dhall thesis Fig. 6.4", kind="label_embedding",
    caption="label hierarchy, hyperbolic cones in 100-D (projected)", experiment="hc_full_d100"))

register_figure(FigureSpec(
    id="dhall_thesis_fig6_5", paper=PAPER, source="Dhall thesis Fig. 6.5", kind="joint_embedding",
    caption="labels and images jointly embedded, Euclidean cones in 2-D", experiment="ec_joint_d2",
    features="marginalization"))

THESIS_FIGURE_IDS = ("dhall_thesis_fig4_1", "dhall_thesis_fig4_2", "dhall_thesis_fig4_3", "dhall_thesis_fig4_4",
                     "dhall_thesis_fig6_1", "dhall_thesis_fig6_2", "dhall_thesis_fig6_4", "dhall_thesis_fig6_5")

__all__ = ["THESIS_FIGURE_IDS"]
