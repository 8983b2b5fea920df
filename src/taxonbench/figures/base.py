"""Figure specs: what a paper figure shows, which results it reads, and the check of its params block.

Two kinds (:data:`KINDS`):

* ``label_f1``: per-label F1 on the eval split against the number of training
  images of the label, one panel per level (Dhall's thesis Figs. 4.1, 4.2, 4.4);
  reads the set predictions ``results/scores/D/<experiment>/<inference>/<eval split>.parquet``
  and the dataset's shards (train-split labels, taxonomy). Drawn by
  :func:`taxonbench.plots.label_f1.draw_label_f1`.
* ``training_curves``: per-epoch loss, micro- and macro-F1 of the curve splits
  (``train.curve_splits``, :mod:`taxonbench.training_curves`) of one experiment,
  and the val micro-F1 of several compared (thesis Fig. 4.3); reads
  ``results/models/D/<experiment>/train_log.csv``. Drawn by
  :func:`taxonbench.plots.training_curves.draw_training_curves`.

* ``label_embedding``: the points of a label-only embedding in 2-D, tree edges
  and entailment regions drawn (thesis Figs. 6.1, 6.2, 6.4); reads
  ``results/label_embeddings/D/<experiment>/embedding.pt`` and the dataset's taxonomy.
* ``joint_embedding``: the labels of a joint image + label embedding with its
  images of the eval split (Fig. 6.5); reads ``results/models/D/<experiment>/model.pt``
  and the encoder features it embeds, ``results/features/D/<features>/<eval split>.parquet``.
  Both drawn by :mod:`taxonbench.plots.embeddings`.
* ``retrieval_curve``: top-k retrieval accuracy against k (metrics ``retrieval_top_<k>``) of several
  experiments under one inference (HiMulCon paper Figs. 3-4); reads
  ``results/metrics/D/<experiment>/<inference>.json``. Drawn by
  :func:`taxonbench.plots.retrieval.draw_retrieval_curves`.

* ``text_embedding``: the prompt embeddings of every taxon (all levels) of CLIP models trained on the
  figure's dataset, in 2-D by t-SNE, one panel per model, coloured by level (level-restricted paper
  Fig. 2); reads ``results/models/D/<experiment>/model.pt`` and the dataset's taxonomy. Drawn by
  :func:`taxonbench.plots.text_embeddings.draw_text_embeddings`.

A kind is a :class:`FigureKind` in :data:`FIGURE_KINDS`: the files it reads, the check of its params
block, and how it is drawn. Each figure writes ``results/figures/<id>.png`` and ``<id>.csv`` (the numbers
drawn). This module is torch- and matplotlib-free: the Snakefile and the start-up checks import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from taxonbench.errors import TaxonbenchError
from taxonbench.params import train_settings, trained_on
from taxonbench.registries import FIGURES

@dataclass(frozen=True)
class FigureSpec:
    """One paper figure. ``experiment`` is the model shown (``label_f1``: its set predictions under
    ``inference``; ``training_curves``: panels b-d); ``compare`` the ``(experiment, legend label)`` pairs of
    the val micro-F1 panel (a) of ``training_curves``."""

    id: str
    paper: str
    source: str  # e.g. "Dhall thesis Fig. 4.1"
    caption: str
    kind: str
    experiment: str
    inference: str | None = None
    compare: tuple[tuple[str, str], ...] = ()
    features: str | None = None  # joint_embedding: the image experiment whose encoder features it embeds

    def __post_init__(self) -> None:
        if self.kind not in FIGURE_KINDS:
            raise ValueError(f"figure {self.id!r}: kind {self.kind!r} is not one of {KINDS}")
        with_inference = tuple(k for k, kind in FIGURE_KINDS.items() if kind.with_inference)
        if (self.kind in with_inference) != (self.inference is not None):
            raise ValueError(f"figure {self.id!r}: an inference goes with kinds {with_inference}, and only with them")
        if (self.kind == "joint_embedding") != (self.features is not None):
            raise ValueError(f"figure {self.id!r}: features go with kind joint_embedding, and only with it")

    @property
    def experiments(self) -> list[str]:
        """Every experiment the figure reads."""
        return list(dict.fromkeys([self.experiment, *(e for e, _ in self.compare)]))


def register_figure(spec: FigureSpec) -> FigureSpec:
    return FIGURES.add(spec.id, spec)


def figure_inputs(spec: FigureSpec | str, dataset: str, eval_split: str, results: str | os.PathLike = "results",
                  shards: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """The files a figure reads, by role (paths under ``results`` and the dataset's shards directory)."""
    spec = FIGURES.get(spec) if isinstance(spec, str) else spec
    shards = Path(shards) if shards is not None else Path("data/shards") / dataset
    return FIGURE_KINDS[spec.kind].inputs(spec, dataset, eval_split, Path(results), shards)


def check_figures(cfg: Mapping, pairs: Mapping[str, list[str]], dataset_methods) -> None:
    """Every ``figures.<id>`` block: a registered figure whose kind's check passes (the experiments it
    shows run, or are trained, on the block's dataset; the inference and per-epoch scores it draws exist)."""
    for figure_id, block in cfg.get("figures", {}).items():
        where = f"figures.{figure_id}"
        if figure_id not in FIGURES:
            raise TaxonbenchError(f"{where}: unknown figure; registered: {', '.join(FIGURES.names())}")
        spec = FIGURES.get(figure_id)
        FIGURE_KINDS[spec.kind].check(cfg, spec, block["dataset"], where, pairs, dataset_methods)


def build_figure(spec: FigureSpec | str, dataset: str, eval_split: str, out: str | os.PathLike,
                 results: str | os.PathLike = "results", shards: str | os.PathLike | None = None) -> list[Path]:
    """Draw one figure into ``out`` (PNG) and ``out`` with suffix ``.csv``; the paths written."""
    spec = FIGURES.get(spec) if isinstance(spec, str) else spec
    inputs = figure_inputs(spec, dataset, eval_split, results, shards)
    title = f"{spec.caption} ({dataset}; after {spec.source})"
    return FIGURE_KINDS[spec.kind].draw(spec, inputs, out, title)


# ---------------------------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class FigureKind:
    """What one kind of figure reads (``inputs(spec, dataset, eval_split, results, shards)`` → role → paths),
    the check of a params block naming it (``check(cfg, spec, dataset, where, pairs, dataset_methods)``,
    raising :class:`TaxonbenchError`), and its drawing (``draw(spec, inputs, out, title)`` → paths written;
    plotting imported there)."""

    inputs: Callable[..., dict[str, list[str]]]
    check: Callable[..., None]
    draw: Callable[..., list[Path]]
    with_inference: bool = False  # the figure shows one inference's outputs (``FigureSpec.inference``)


def _check_runs(cfg: Mapping, spec: FigureSpec, dataset: str, where: str, pairs: Mapping[str, list[str]],
                dataset_methods) -> None:
    """The figure's experiments run on ``dataset`` (per-epoch scores logged where it draws them), and the
    shown ones under its inference."""
    if dataset not in cfg["experiments"]["datasets"]:
        raise TaxonbenchError(f"{where}.dataset: {dataset!r} is not among experiments.datasets "
                              f"({', '.join(cfg['experiments']['datasets'])})")
    run = dataset_methods(cfg, dataset)
    for experiment in spec.experiments:
        if experiment not in run:
            raise TaxonbenchError(f"{where}: the figure shows experiment {experiment!r}, which does not run on "
                                  f"{dataset!r}")
        if spec.kind == "training_curves" and not train_settings(cfg, dataset, experiment)["train"].get("curve_splits"):
            raise TaxonbenchError(f"{where}: experiment {experiment!r} logs no per-epoch scores; set "
                                  f"methods.{experiment}.train.curve_splits (e.g. [train, val, test])")
    shown = spec.experiments if spec.kind == "retrieval_curve" else [spec.experiment]
    for experiment in shown if spec.inference is not None else ():
        if spec.inference not in pairs.get(experiment, []):
            raise TaxonbenchError(f"{where}: inference {spec.inference!r} is not run on {experiment!r} "
                                  f"(experiments.inference gives {pairs.get(experiment, [])})")


def _check_embedding_figure(cfg: Mapping, spec: FigureSpec, dataset: str, where: str, pairs, dataset_methods) -> None:
    """A label-embedding figure: its dataset embeds labels, its experiment runs there, and a joint figure's images come from the features that experiment embeds."""
    from taxonbench.label_graph.settings import (joint_experiments, joint_settings, label_datasets,
                                                 label_experiments, label_settings)

    if dataset not in label_datasets(cfg):
        raise TaxonbenchError(f"{where}: {dataset!r} is not a label-embedding dataset (label_embeddings.datasets: "
                              f"{label_datasets(cfg)})")
    joint = spec.kind == "joint_embedding"
    available = joint_experiments(cfg) if joint else label_experiments(cfg)
    if spec.experiment not in available:
        block = "label_embeddings.joint" if joint else "label_embeddings.experiments"
        raise TaxonbenchError(f"{where}: the figure shows experiment {spec.experiment!r}, which is not under {block}")
    settings = (joint_settings if joint else label_settings)(cfg, spec.experiment)
    if joint and settings["features"] != spec.features:
        raise TaxonbenchError(f"{where}: the figure draws the images of {spec.features!r}; "
                              f"{spec.experiment!r} embeds those of {settings['features']!r}")


def _check_trained_here(cfg: Mapping, spec: FigureSpec, dataset: str, where: str, pairs, dataset_methods) -> None:
    """A figure of trained models: each experiment's model is trained on ``dataset`` — it runs there, or it
    is ``trained_on: <dataset>`` and runs on some dataset of the matrix."""
    for experiment in spec.experiments:
        if not any(experiment in dataset_methods(cfg, d) and trained_on(cfg, d, experiment) == dataset
                   for d in cfg["experiments"]["datasets"]):
            raise TaxonbenchError(f"{where}: the figure draws the model of experiment {experiment!r} trained on "
                                  f"{dataset!r}, which no dataset of the matrix trains (the model is trained where "
                                  f"the experiment runs, or on its methods.{experiment}.trained_on)")


def _scores_of(spec: FigureSpec, dataset: str, eval_split: str, results: Path, shards: Path) -> dict[str, list[str]]:
    return {"scores": [str(results / "scores" / dataset / spec.experiment / str(spec.inference)
                           / f"{eval_split}.parquet")],
            "shards": [str(shards / "manifest.json")]}


def _label_embedding_of(spec: FigureSpec, dataset: str, eval_split: str, results: Path, shards: Path):
    return {"embedding": [str(results / "label_embeddings" / dataset / spec.experiment / "embedding.pt")],
            "taxonomy": [str(shards / "taxonomy.parquet")]}


def _joint_embedding_of(spec: FigureSpec, dataset: str, eval_split: str, results: Path, shards: Path):
    return {"model": [str(results / "models" / dataset / spec.experiment / "model.pt")],
            "features": [str(results / "features" / dataset / str(spec.features) / f"{eval_split}.parquet")],
            "taxonomy": [str(shards / "taxonomy.parquet")]}


def _metrics_of(spec: FigureSpec, dataset: str, eval_split: str, results: Path, shards: Path):
    return {"metrics": [str(results / "metrics" / dataset / e / f"{spec.inference}.json") for e in spec.experiments]}


def _logs_of(spec: FigureSpec, dataset: str, eval_split: str, results: Path, shards: Path):
    return {"logs": [str(results / "models" / dataset / e / "train_log.csv") for e in spec.experiments]}


def _models_of(spec: FigureSpec, dataset: str, eval_split: str, results: Path, shards: Path):
    return {"models": [str(results / "models" / dataset / e / "model.pt") for e in spec.experiments],
            "taxonomy": [str(shards / "taxonomy.parquet")]}


def _draw_label_f1(spec, inputs, out, title):
    from taxonbench.plots.label_f1 import draw_label_f1

    return draw_label_f1(inputs["scores"][0], Path(inputs["shards"][0]).parent, out, title)


def _draw_label_embedding(spec, inputs, out, title):
    from taxonbench.plots.embeddings import draw_label_embedding

    return draw_label_embedding(inputs["embedding"][0], inputs["taxonomy"][0], out, title)


def _draw_joint_embedding(spec, inputs, out, title):
    from taxonbench.plots.embeddings import draw_joint_embedding

    return draw_joint_embedding(inputs["model"][0], inputs["features"][0], inputs["taxonomy"][0], out, title)


def _draw_retrieval_curve(spec, inputs, out, title):
    from taxonbench.plots.retrieval import draw_retrieval_curves

    labels = dict(spec.compare)
    return draw_retrieval_curves({labels.get(e, e): m for e, m in zip(spec.experiments, inputs["metrics"])},
                                 out, title)


def _draw_training_curves(spec, inputs, out, title):
    from taxonbench.plots.training_curves import draw_training_curves

    labels = dict(spec.compare)
    runs = {e: (labels.get(e, e), log) for e, log in zip(spec.experiments, inputs["logs"])}
    return draw_training_curves(runs, spec.experiment, out, title)


def _draw_text_embedding(spec, inputs, out, title):
    from taxonbench.plots.text_embeddings import draw_text_embeddings

    labels = dict(spec.compare)
    return draw_text_embeddings({labels.get(e, e): m for e, m in zip(spec.experiments, inputs["models"])},
                                inputs["taxonomy"][0], out, title)


#: every figure kind by name (module docstring)
FIGURE_KINDS: dict[str, FigureKind] = {
    "label_f1": FigureKind(_scores_of, _check_runs, _draw_label_f1, with_inference=True),
    "training_curves": FigureKind(_logs_of, _check_runs, _draw_training_curves),
    "label_embedding": FigureKind(_label_embedding_of, _check_embedding_figure, _draw_label_embedding),
    "joint_embedding": FigureKind(_joint_embedding_of, _check_embedding_figure, _draw_joint_embedding),
    "retrieval_curve": FigureKind(_metrics_of, _check_runs, _draw_retrieval_curve, with_inference=True),
    "text_embedding": FigureKind(_models_of, _check_trained_here, _draw_text_embedding),
}
KINDS = tuple(FIGURE_KINDS)


__all__ = ["FIGURE_KINDS", "KINDS", "FigureKind", "FigureSpec", "build_figure", "check_figures", "figure_inputs",
           "register_figure"]
