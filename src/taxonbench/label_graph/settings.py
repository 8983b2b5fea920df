"""The params of the label-graph branch (``label_embeddings``), declared and checked without torch.

``label_embeddings.experiments.<name>``: a label-only embedding (thesis §5.5,
:mod:`taxonbench.label_graph.train`); ``label_embeddings.joint.<name>``: a
joint image + label embedding (§5.6, :mod:`taxonbench.label_graph.joint`),
which becomes an experiment of the matrix like any trained method (its
logits are per-level scores, :data:`JOINT_KIND`). Both run on every dataset
of ``label_embeddings.datasets``. ``model`` names a registered label model
(:data:`taxonbench.registries.LABEL_MODELS`) and ``options`` its own options.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from taxonbench.declare import build_options, check_block, param
from taxonbench.errors import TaxonbenchError

#: the score kind of a joint model's logits: ``θ_v = −E(f_l(v), f_i(image))`` for every label, classified per level
JOINT_KIND = "level_softmax_logits"


@dataclass(frozen=True, kw_only=True)
class TrainingOptions:
    """What label-only and joint trainings share."""

    model: str = param(doc="a registered label-embedding model (`taxonbench list`)")
    dim: int = param(2, ge=2, doc="embedding dimension d")
    alpha: float = param(1.0, gt=0.0, doc="margin of the negative edges (Eq. 2.3)")
    epochs: int = param(200, ge=1)
    batch_size: int = param(10, ge=1, doc="positive edges per step (each with its negatives)")
    lr: float = param(0.1, gt=0.0, doc="learning rate (of the label embeddings)")
    negatives: int = param(10, ge=2, doc="negatives per positive: half (x', y), half (x, y')")
    sampling: str = param("pick_per_level", choices=("pick_per_level", "uniform"))
    options: dict = param({}, doc="the model's own options (taxonbench list --declarations)")

    def __post_init__(self) -> None:
        if self.negatives % 2:
            raise TaxonbenchError(f"negatives: {self.negatives} is odd; half corrupt the parent, half the child")


@dataclass(frozen=True, kw_only=True)
class LabelOnlyOptions(TrainingOptions):
    non_basic_fraction: float = param(0.5, ge=0.0, le=1.0,
                                      doc="share of the non-basic edges in train (thesis: 0, 0.1, 0.25, 0.5)")
    alpha_grid: list[float] | None = param(None, gt=0.0,
                                           doc="margins to try; the one of best validation F1 is kept (α tuned)")


@dataclass(frozen=True, kw_only=True)
class JointOptions(TrainingOptions):
    features: str = param(doc="the image experiment on the same dataset whose frozen encoder features are embedded")
    init: str | None = param(None, doc="a label-only experiment (same model and d) to start the labels from; "
                                       "null: random")
    image_lr: float = param(0.001, gt=0.0, doc="learning rate of the linear map W")


def _hint(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; available: {', '.join(valid) or 'none'}"


def block(cfg: dict) -> dict:
    return cfg.get("label_embeddings") or {}


def label_datasets(cfg: dict) -> list[str]:
    return list(block(cfg).get("datasets", []))


def label_experiments(cfg: dict) -> list[str]:
    return list(block(cfg).get("experiments", {}))


def joint_experiments(cfg: dict, dataset: str | None = None) -> list[str]:
    """The joint experiments (of ``dataset``: all of them when it is a label-embedding dataset, else none)."""
    if dataset is not None and dataset not in label_datasets(cfg):
        return []
    return list(block(cfg).get("joint", {}))


def label_settings(cfg: dict, experiment: str) -> dict:
    """The resolved settings of a label-only experiment: its block with the defaults filled, plus seed."""
    opts = _options(cfg, "experiments", experiment, LabelOnlyOptions)
    return {"experiment": experiment, "seed": cfg.get("seed", 0), **opts.__dict__}


def joint_settings(cfg: dict, experiment: str) -> dict:
    opts = _options(cfg, "joint", experiment, JointOptions)
    return {"experiment": experiment, "seed": cfg.get("seed", 0), **opts.__dict__}


def _options(cfg, key, experiment, cls):
    blocks = block(cfg).get(key, {})
    if experiment not in blocks:
        raise TaxonbenchError(f"label_embeddings.{key}: no experiment {experiment!r}{_hint(experiment, list(blocks))}")
    return build_options(cls, blocks[experiment], where=f"label_embeddings.{key}.{experiment}")


def check_label_embeddings(cfg: dict, image_methods) -> None:
    """The whole block against the declarations (Snakemake start): models, their options, datasets, and for
    joint experiments the image experiment giving features and the label-only experiment they start from.
    ``image_methods(cfg, dataset)``: the image experiments run on a dataset."""
    from taxonbench.declarations import label_model_declarations
    from taxonbench.label_graph.edges import edge_options

    b = block(cfg)
    if not b:
        return
    models = label_model_declarations()
    for k, dataset in enumerate(label_datasets(cfg)):
        if dataset not in cfg["datasets"]:
            raise TaxonbenchError(f"label_embeddings.datasets[{k}]: {dataset!r} is not defined under 'datasets'"
                                  f"{_hint(dataset, list(cfg['datasets']))}")
    edge_options(b.get("edges"))
    label_only = b.get("experiments", {})
    for key, cls in (("experiments", LabelOnlyOptions), ("joint", JointOptions)):
        for name, spec in b.get(key, {}).items():
            where = f"label_embeddings.{key}.{name}"
            opts = build_options(cls, spec, where=where)
            if opts.model not in models:
                raise TaxonbenchError(f"{where}.model: unknown label-embedding model {opts.model!r}"
                                      f"{_hint(opts.model, sorted(models))}")
            check_block(models[opts.model].options, opts.options, f"{where}.options")
            if key == "joint":
                _check_joint(cfg, name, opts, label_only, image_methods, where)
    clash = sorted(set(label_only) & set(b.get("joint", {})))
    if clash:
        raise TaxonbenchError(f"label_embeddings: {clash} named both under experiments and joint")


def _check_joint(cfg, name, opts: JointOptions, label_only: dict, image_methods, where: str) -> None:
    for dataset in label_datasets(cfg):
        methods = image_methods(cfg, dataset)
        if opts.features not in methods:
            raise TaxonbenchError(f"{where}.features: {opts.features!r} is not an image experiment run on "
                                  f"{dataset!r}{_hint(opts.features, methods)}")
    if name in cfg.get("methods", {}):
        raise TaxonbenchError(f"{where}: {name!r} is also a block under 'methods'; an experiment has one name")
    if opts.init is None:
        return
    if opts.init not in label_only:
        raise TaxonbenchError(f"{where}.init: {opts.init!r} is not a label-only experiment "
                              f"(label_embeddings.experiments){_hint(opts.init, list(label_only))}")
    source = build_options(LabelOnlyOptions, label_only[opts.init], where=f"label_embeddings.experiments.{opts.init}")
    if (source.model, source.dim) != (opts.model, opts.dim):
        raise TaxonbenchError(f"{where}.init: {opts.init!r} is a {source.model} embedding with d={source.dim}; "
                              f"{name!r} needs {opts.model} with d={opts.dim}")


__all__ = ["JOINT_KIND", "JointOptions", "LabelOnlyOptions", "check_label_embeddings", "joint_experiments",
           "joint_settings", "label_datasets", "label_experiments", "label_settings"]
