"""Every registry of taxonbench, in one module that imports no component.

Components import their registry from here and register with
``@REGISTRY.register(name)`` (:mod:`taxonbench.registry`); a registry imports
its home package the first time a name is looked up. Importing this module is
cheap and torch-free; looking up a method or a backbone imports torch, the
other registries stay torch-free (a test checks it).
"""

from __future__ import annotations

from typing import Any

from taxonbench.registry import Registry

#: dataset adapters (the ``source`` of a params dataset)
DATASETS: Registry[Any] = Registry("dataset source", "taxonbench.datasets")
#: backbone factories (``train.backbone``; ``family:model`` for families such as open_clip)
BACKBONES: Registry[Any] = Registry("backbone", "taxonbench.models")
#: training methods (the ``methods`` of params, through ``method:`` for variants)
METHODS: Registry[Any] = Registry("method", "taxonbench.methods")
#: what a step's scores are (logits sidecars and inference outputs)
SCORE_KINDS: Registry[Any] = Registry("score kind", "taxonbench.score_kinds")
#: inference methods (``experiments.inference``)
INFERENCE: Registry[Any] = Registry("inference", "taxonbench.inference")
#: metric families (the evaluate step)
METRIC_FAMILIES: Registry[Any] = Registry("metric family", "taxonbench.metrics")
#: batch samplers (``train.sampler``)
SAMPLERS: Registry[Any] = Registry("sampler", "taxonbench.samplers")
#: order-preserving embedding models of the label graph (``label_embeddings``; imports torch)
LABEL_MODELS: Registry[Any] = Registry("label-embedding model", "taxonbench.label_graph.models")
#: paper tables (``tables``)
TABLES: Registry[Any] = Registry("table", "taxonbench.tables")
#: paper figures other than the operating curves (``figures``)
FIGURES: Registry[Any] = Registry("figure", "taxonbench.figures")

ALL: dict[str, Registry[Any]] = {
    "dataset sources": DATASETS, "backbones": BACKBONES, "methods": METHODS, "score kinds": SCORE_KINDS,
    "inference": INFERENCE, "metric families": METRIC_FAMILIES, "samplers": SAMPLERS,
    "label-embedding models": LABEL_MODELS, "tables": TABLES, "figures": FIGURES,
}
