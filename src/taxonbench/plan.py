"""The experiment plan: params checked against the declarations, and every job the run needs.

:func:`check_declared` runs at Snakemake start (and in ``dvc repro``, which runs
Snakemake), after the schema check of :func:`taxonbench.params.validate_params`:
an unknown method, a typo or an out-of-range value in ``methods.<experiment>``
or in ``inference_options.<inference>``, an inference asked of a method whose
outputs it cannot use — each stops the run before any job, naming the key.

The matrix is derived from the declarations (:mod:`taxonbench.declarations`):

* **inference per experiment** (:func:`method_inference`): every registered
  inference that accepts the experiment's score kind, unless
  ``experiments.inference`` restricts it — a list (each experiment runs those
  of the list that apply to it), or a mapping with ``default`` (a list, or
  ``applicable``) and per-experiment lists (exactly those, each must apply);
* **metric families per inference**: those that read the kind the inference
  produces; their split roles (``eval`` → ``experiments.eval_split``, ``tune``
  → ``experiments.tune_split``, ``gallery`` → ``experiments.gallery_split``)
  decide which splits are scored;
* **logits splits per experiment** (:func:`logit_splits`): ``experiments.logit_splits``,
  the splits its inference is scored on, and the ``fit_split`` of every fitted
  inference;
* **joint label embeddings** (:mod:`taxonbench.label_graph.settings`): every
  ``label_embeddings.joint`` experiment is an experiment of each
  ``label_embeddings.datasets`` dataset, after its image experiments; its logits
  (kind ``level_softmax_logits``) come from the label-graph rules, not from ``train``;
* **cross-dataset evaluation**: ``methods.<experiment>.trained_on: A`` makes the
  experiment's model the one trained on dataset ``A``
  (``results/models/A/<experiment>/model.pt``), whichever datasets it is
  evaluated on (those listing it in ``experiments.methods`` or
  ``extra_methods``). With ``train.epochs: 0`` the model is the initialised (e.g.
  pretrained) one.

Torch-free: the Snakefile imports it at every start.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from taxonbench.declarations import (
    family_declarations,
    inference_declarations,
    method_declarations,
    sampler_declarations,
)
from taxonbench.declare import check_block
from taxonbench.errors import TaxonbenchError
from taxonbench.figures.base import check_figures
from taxonbench.label_graph.settings import JOINT_KIND, check_label_embeddings, joint_experiments
from taxonbench.params import check_train_override, deep_merge, trained_on
from taxonbench.params import load_params as _load_schema_checked
from taxonbench.params import validate_params as _validate_schema

#: keys of a ``methods.<experiment>`` block that are not hyper-parameters of the method
EXPERIMENT_KEYS = ("method", "train", "trained_on")
APPLICABLE = "applicable"


def _hint(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; available: {', '.join(valid)}"


# ------------------------------------------------------------------ experiments
def all_methods(cfg: dict) -> list[str]:
    """Every experiment of the set, once each: ``experiments.methods`` (where run), then each dataset's
    ``dataset_methods`` and ``extra_methods``."""
    out: list[str] = []
    for dataset in cfg["experiments"]["datasets"]:
        out += [m for m in dataset_methods(cfg, dataset) if m not in out]
    return out


def dataset_methods(cfg: dict, dataset: str) -> list[str]:
    """The experiments run on one dataset: :func:`image_methods`, then its joint label embeddings."""
    return image_methods(cfg, dataset) + joint_experiments(cfg, dataset)


def image_methods(cfg: dict, dataset: str) -> list[str]:
    """The trained image experiments of one dataset: its ``dataset_methods`` list if it has one (instead of
    ``experiments.methods``), plus its ``extra_methods``."""
    ex = cfg["experiments"]
    base = list(ex.get("dataset_methods", {}).get(dataset, ex["methods"]))
    extra = ex.get("extra_methods", {}).get(dataset, [])
    return base + [m for m in extra if m not in base]


def is_joint(cfg: dict, experiment: str) -> bool:
    """Whether an experiment is a joint label embedding (``label_embeddings.joint``), not a trained method."""
    return experiment in joint_experiments(cfg)


def registered_method(cfg: dict, experiment: str) -> str:
    """The registered method an experiment runs (its ``method:`` key, else its own name)."""
    return cfg.get("methods", {}).get(experiment, {}).get("method", experiment)


def unseen_of(cfg: dict, dataset: str) -> str | None:
    """The dataset whose categories ``dataset`` must not share (``datasets.<name>.unseen_of``), if any."""
    return cfg["datasets"][dataset].get("unseen_of")


def output_kind(cfg: dict, experiment: str) -> str:
    if is_joint(cfg, experiment):
        return JOINT_KIND
    return method_declarations()[registered_method(cfg, experiment)].kind


# ------------------------------------------------------------------ inference
def method_inference(cfg: dict) -> dict[str, list[str]]:
    """For every experiment of the set, the inference methods run on its outputs (see the module docstring)."""
    spec = cfg["experiments"].get("inference")
    declared = inference_declarations()
    experiments = all_methods(cfg)
    kinds = {e: output_kind(cfg, e) for e in experiments}
    applicable = {e: [i for i, d in sorted(declared.items()) if kinds[e] in d.accepts] for e in experiments}

    def known(names: list[str], where: str) -> list[str]:
        for k, name in enumerate(names):
            if name not in declared:
                raise TaxonbenchError(f"{where}[{k}]: unknown inference {name!r}{_hint(name, sorted(declared))}")
        return names

    if spec is None or spec == APPLICABLE:
        return applicable
    if isinstance(spec, list):
        known(spec, "experiments.inference")
        for name in spec:
            if not any(name in applicable[e] for e in experiments):
                raise TaxonbenchError(f"experiments.inference: {name!r} applies to no experiment of the set "
                                      f"(it needs one of the kinds {', '.join(sorted(declared[name].accepts))})")
        return {e: [i for i in spec if i in applicable[e]] for e in experiments}
    for key in spec:
        if key != "default" and key not in experiments:
            hint = (" (the key `all` is now `default`, and an experiment's own list replaces it)" if key == "all"
                    else _hint(key, experiments))
            raise TaxonbenchError(f"experiments.inference.{key}: not among the experiment set's methods{hint}")
    default = spec.get("default", APPLICABLE)
    if default != APPLICABLE:
        known(default, "experiments.inference.default")
    out = {}
    for e in experiments:
        if e in spec:
            for k, name in enumerate(known(spec[e], f"experiments.inference.{e}")):
                if name not in applicable[e]:
                    raise TaxonbenchError(
                        f"experiments.inference.{e}[{k}]: inference {name!r} cannot use the outputs of {e!r} "
                        f"(kind {kinds[e]!r}); applicable: {', '.join(applicable[e])}")
            out[e] = list(spec[e])
        elif default == APPLICABLE:
            out[e] = applicable[e]
        else:
            out[e] = [i for i in default if i in applicable[e]]
    return out


def experiment_matrix(cfg: dict) -> list[tuple[str, str, str]]:
    """All (dataset, experiment, inference) triples the experiment set asks for."""
    pairs = method_inference(cfg)
    return [(d, m, i) for d in cfg["experiments"]["datasets"] for m in dataset_methods(cfg, d) for i in pairs[m]]


EXTRA_ROLES = ("tune", "gallery")
"""The split roles besides ``eval`` that metric families read (``taxonbench evaluate --<role>-scores``)."""


def fitted_inference() -> dict[str, str]:
    """Every fitted inference and the split it is fitted on."""
    return {name: d.fit_split for name, d in inference_declarations().items() if d.fitted}


def produces(inference: str) -> str:
    return inference_declarations()[inference].produces


def scored_splits(cfg: dict, inference: str) -> dict[str, str]:
    """Split role -> split for the metric families that read what ``inference`` produces.

    ``gallery`` is left out when ``experiments.gallery_split`` is null: retrieval then ranks each query
    among the other queries of the eval split."""
    ex = cfg["experiments"]
    roles = {"eval": ex["eval_split"], "tune": ex["tune_split"], "gallery": ex.get("gallery_split")}
    kind = produces(inference)
    needed = {role for d in family_declarations().values() if d.reads == kind for role in d.splits}
    if not needed:
        raise TaxonbenchError(f"inference {inference!r} produces {kind!r} scores, which no metric family reads")
    return {role: roles[role] for role in (*EXTRA_ROLES, "eval") if role in needed and roles[role] is not None}


def logit_splits(cfg: dict, experiment: str, pairs: dict[str, list[str]] | None = None) -> list[str]:
    """The splits whose logits an experiment dumps (``experiments.logit_splits`` first); ``pairs``:
    :func:`method_inference` when the caller has it."""
    out = list(cfg["experiments"]["logit_splits"])
    fitted = fitted_inference()
    for inference in (pairs or method_inference(cfg))[experiment]:
        needed = list(scored_splits(cfg, inference).values()) + ([fitted[inference]] if inference in fitted else [])
        out += [s for s in needed if s not in out]
    return out


# ------------------------------------------------------------------ checks
def check_declared(cfg: dict) -> None:
    """Every ``methods`` block and ``inference_options`` block against the declarations; the matrix derivable."""
    methods = method_declarations()
    blocks = cfg.get("methods", {})
    for k, experiment in enumerate(cfg["experiments"]["methods"]):
        if experiment not in blocks and experiment not in methods:
            raise TaxonbenchError(f"experiments.methods[{k}]: {experiment!r} is neither a registered method nor a "
                                  f"block under 'methods' naming one{_hint(experiment, sorted(methods))}")
    for key in ("extra_methods", "dataset_methods"):
        for dataset, names in cfg["experiments"].get(key, {}).items():
            for k, experiment in enumerate(names):
                if experiment not in blocks and experiment not in methods:
                    raise TaxonbenchError(f"experiments.{key}.{dataset}[{k}]: {experiment!r} is neither a registered "
                                          f"method nor a block under 'methods'{_hint(experiment, sorted(methods))}")
    for experiment, block in blocks.items():
        where = f"methods.{experiment}"
        registered = block.get("method", experiment)
        if registered not in methods:
            key = f"{where}.method" if "method" in block else where
            raise TaxonbenchError(f"{key}: unknown method {registered!r}{_hint(registered, sorted(methods))}")
        source = block.get("trained_on")
        if source is not None and source not in cfg["datasets"]:
            raise TaxonbenchError(f"{where}.trained_on: {source!r} is not defined under 'datasets'"
                                  f"{_hint(str(source), list(cfg['datasets']))}")
        check_block(methods[registered].hparams, {k: v for k, v in block.items() if k not in EXPERIMENT_KEYS}, where)
        if "train" in block:
            check_train_override(block["train"], f"{where}.train")
            _check_sampler(deep_merge(cfg["train"], block["train"]).get("sampler", {}), f"{where}.train.sampler")
    _check_sampler(cfg["train"].get("sampler", {}), "train.sampler")
    for name, block in cfg["datasets"].items():
        seen = block.get("unseen_of")
        if seen is not None and (seen not in cfg["datasets"] or seen == name):
            raise TaxonbenchError(f"datasets.{name}.unseen_of: {seen!r} is not another dataset under 'datasets'"
                                  f"{_hint(str(seen), [d for d in cfg['datasets'] if d != name])}")
    declared = inference_declarations()
    for name, options in cfg.get("inference_options", {}).items():
        if name not in declared:
            raise TaxonbenchError(f"inference_options.{name}: unknown inference{_hint(name, sorted(declared))}")
        check_block(declared[name].options, {k: v for k, v in options.items() if k != "state"},
                    f"inference_options.{name}")
    pairs = method_inference(cfg)
    for experiment, names in pairs.items():
        for name in names:
            scored_splits(cfg, name)
    check_figures(cfg, pairs, dataset_methods)
    check_label_embeddings(cfg, image_methods)


def _check_sampler(block: dict, where: str) -> None:
    """``train.sampler``: a registered sampler and its declared options."""
    declared = sampler_declarations()
    name = block.get("name", "shuffle")
    if name not in declared:
        raise TaxonbenchError(f"{where}.name: unknown sampler {name!r}{_hint(str(name), sorted(declared))}")
    check_block(declared[name].options, {k: v for k, v in block.items() if k != "name"}, where)


def validate(cfg: Mapping[str, Any], source: str = "params") -> dict:
    """:func:`taxonbench.params.validate_params` (the schema) and :func:`check_declared`; the filled config."""
    out = _validate_schema(cfg, source)
    try:
        check_declared(out)
    except TaxonbenchError as exc:
        raise TaxonbenchError(f"{source}: {exc}") from None
    return out


def load_params(*paths: str) -> dict:
    """Read params files (later ones override earlier ones), check the schema and the declarations."""
    cfg = _load_schema_checked(*paths)
    try:
        check_declared(cfg)
    except TaxonbenchError as exc:
        raise TaxonbenchError(f"{' + '.join(map(str, paths or ('params.yaml',)))}: {exc}") from None
    return cfg


__all__ = ["all_methods", "check_declared", "dataset_methods", "experiment_matrix", "fitted_inference",
           "image_methods", "is_joint", "load_params", "logit_splits", "method_inference", "output_kind",
           "produces", "registered_method", "scored_splits", "trained_on", "unseen_of", "validate"]
