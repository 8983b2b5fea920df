"""HiMulCon paper Figs. 3-4: top-k retrieval accuracy against k, full datasets and unseen categories.

Queries: the evaluation split; gallery: ``experiments.gallery_split`` (docs/metrics.md §3). Fig. 3
compares the encoders trained on the full dataset, Fig. 4 those trained on the seen categories
(``<method>_seen``) retrieving among the unseen ones. FashionNet, a row of the paper's Fig. 3, is a
separate architecture (Liu et al. 2016) that taxonbench does not build.
"""

from __future__ import annotations

from taxonbench.figures.base import FigureSpec, register_figure

PAPER = "himulcon"
CURVES = (("simclr", "SimCLR"), ("ce", "Cross Entropy"), ("supcon", "SupCon"), ("guided", "Guided"),
          ("triplet", "Triplet"), ("himulcon", "HiMulCon"), ("hicone", "HiConE"), ("himulcone", "HiMulConE"))

register_figure(FigureSpec(
    id="himulcon_fig3", paper=PAPER, source="HiMulCon paper Fig. 3", kind="retrieval_curve",
    caption="top-k retrieval, full dataset", experiment="himulcone", inference="embedding", compare=CURVES))

register_figure(FigureSpec(
    id="himulcon_fig4", paper=PAPER, source="HiMulCon paper Fig. 4", kind="retrieval_curve",
    caption="top-k retrieval, unseen categories", experiment="himulcone_seen", inference="embedding",
    compare=tuple((f"{e}_seen", label) for e, label in CURVES)))
