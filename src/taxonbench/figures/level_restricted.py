"""The level-restricted paper's Fig. 2: t-SNE of the taxa's text embeddings, the pooled cross-level
baseline beside the level-restricted model (both Euclidean, trained on the TreeOfLife stand-in), and the
CLIP before fine-tuning. The page cuts the caption after "Our method"; what is compared is the paper's
claim that restricting comparisons to one level keeps the levels' texts apart (the panel titles give the
levels' silhouette, :mod:`taxonbench.plots.text_embeddings`).
"""

from __future__ import annotations

from taxonbench.figures.base import FigureSpec, register_figure

register_figure(FigureSpec(
    id="level_restricted_fig2", paper="level_restricted", source="level-restricted paper Fig. 2",
    kind="text_embedding", caption="t-SNE of the taxa's text embeddings, coloured by level",
    experiment="clip_zero_shot",
    compare=(("clip_zero_shot", "CLIP, no fine-tuning"), ("level_restricted_pooled", "pooled levels (baseline)"),
             ("level_restricted", "level-restricted (ours)"))))
