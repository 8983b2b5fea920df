"""Figures: operating curves (:mod:`taxonbench.plots.curves`), ..."""
