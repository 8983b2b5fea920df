"""Representation metrics of embeddings (HiMulCon paper Tables 1-4): retrieval top-k and MAP@R, K-means NMI.

Kept out of :mod:`taxonbench.metrics`, whose modules the metric registry imports at Snakemake start
(these import torch and scikit-learn).
"""
