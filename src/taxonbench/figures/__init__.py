"""Paper figures drawn from a run's results: specs (data, :mod:`taxonbench.figures.base`) registered by one
module per paper (:mod:`taxonbench.figures.dhall_thesis`), drawn by :mod:`taxonbench.plots`.

A figure spec names its kind (what is drawn, :data:`~taxonbench.figures.base.KINDS`), the experiment(s) and
inference it shows; params ``figures: {<id>: {dataset: D}}`` says which dataset stands in for the paper's.
The operating-curve figures are not specs: one is drawn per dataset (:mod:`taxonbench.plots.curves`).
"""

from taxonbench.figures.base import KINDS, FigureSpec, build_figure, check_figures, figure_inputs, register_figure

__all__ = ["KINDS", "FigureSpec", "build_figure", "check_figures", "figure_inputs", "register_figure"]
