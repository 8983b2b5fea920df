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

Each figure writes ``results/figures/<id>.png`` and ``<id>.csv`` (the numbers drawn).
This module is torch- and matplotlib-free: the Snakefile and the start-up checks import it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from taxonbench.errors import TaxonbenchError
from taxonbench.params import train_settings
from taxonbench.registries import FIGURES

KINDS = ("label_f1", "training_curves", "label_embedding", "joint_embedding", "retrieval_curve")
#: kinds that show one inference's outputs (``FigureSpec.inference`` required)
WITH_INFERENCE = ("label_f1", "retrieval_curve")


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
        if self.kind not in KINDS:
            raise ValueError(f"figure {self.id!r}: kind {self.kind!r} is not one of {KINDS}")
        if (self.kind in WITH_INFERENCE) != (self.inference is not None):
            raise ValueError(f"figure {self.id!r}: an inference goes with kinds {WITH_INFERENCE}, and only with them")
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
    results = Path(results)
    shards = Path(shards) if shards is not None else Path("data/shards") / dataset
    if spec.kind == "label_f1":
        return {"scores": [str(results / "scores" / dataset / spec.experiment / str(spec.inference)
                               / f"{eval_split}.parquet")],
                "shards": [str(shards / "manifest.json")]}
    if spec.kind == "label_embedding":
        return {"embedding": [str(results / "label_embeddings" / dataset / spec.experiment / "embedding.pt")],
                "taxonomy": [str(shards / "taxonomy.parquet")]}
    if spec.kind == "joint_embedding":
        return {"model": [str(results / "models" / dataset / spec.experiment / "model.pt")],
                "features": [str(results / "features" / dataset / str(spec.features) / f"{eval_split}.parquet")],
                "taxonomy": [str(shards / "taxonomy.parquet")]}
    if spec.kind == "retrieval_curve":
        return {"metrics": [str(results / "metrics" / dataset / e / f"{spec.inference}.json") for e in spec.experiments]}
    return {"logs": [str(results / "models" / dataset / e / "train_log.csv") for e in spec.experiments]}


def check_figures(cfg: Mapping, pairs: Mapping[str, list[str]], dataset_methods) -> None:
    """Every ``figures.<id>`` block: a registered figure, a dataset of the matrix running the figure's
    experiments (and inference), and per-epoch scores where the figure draws them."""
    for figure_id, block in cfg.get("figures", {}).items():
        where = f"figures.{figure_id}"
        if figure_id not in FIGURES:
            raise TaxonbenchError(f"{where}: unknown figure; registered: {', '.join(FIGURES.names())}")
        spec, dataset = FIGURES.get(figure_id), block["dataset"]
        if spec.kind in ("label_embedding", "joint_embedding"):
            _check_embedding_figure(cfg, spec, dataset, where)
            continue
        run = dataset_methods(cfg, dataset)
        for experiment in spec.experiments:
            if experiment not in run:
                raise TaxonbenchError(f"{where}: the figure shows experiment {experiment!r}, which does not run on "
                                      f"{dataset!r}")
            if spec.kind == "training_curves":
                if not train_settings(cfg, dataset, experiment)["train"].get("curve_splits"):
                    raise TaxonbenchError(f"{where}: experiment {experiment!r} logs no per-epoch scores; set "
                                          f"methods.{experiment}.train.curve_splits (e.g. [train, val, test])")
        shown = spec.experiments if spec.kind == "retrieval_curve" else [spec.experiment]
        for experiment in shown if spec.inference is not None else ():
            if spec.inference not in pairs.get(experiment, []):
                raise TaxonbenchError(f"{where}: inference {spec.inference!r} is not run on {experiment!r} "
                                      f"(experiments.inference gives {pairs.get(experiment, [])})")


def _check_embedding_figure(cfg: Mapping, spec: FigureSpec, dataset: str, where: str) -> None:
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


def build_figure(spec: FigureSpec | str, dataset: str, eval_split: str, out: str | os.PathLike,
                 results: str | os.PathLike = "results", shards: str | os.PathLike | None = None) -> list[Path]:
    """Draw one figure into ``out`` (PNG) and ``out`` with suffix ``.csv``; the paths written."""
    spec = FIGURES.get(spec) if isinstance(spec, str) else spec
    inputs = figure_inputs(spec, dataset, eval_split, results, shards)
    title = f"{spec.caption} ({dataset}; after {spec.source})"
    if spec.kind == "label_f1":
        from taxonbench.plots.label_f1 import draw_label_f1

        return draw_label_f1(inputs["scores"][0], Path(inputs["shards"][0]).parent, out, title)
    if spec.kind == "label_embedding":
        from taxonbench.plots.embeddings import draw_label_embedding

        return draw_label_embedding(inputs["embedding"][0], inputs["taxonomy"][0], out, title)
    if spec.kind == "joint_embedding":
        from taxonbench.plots.embeddings import draw_joint_embedding

        return draw_joint_embedding(inputs["model"][0], inputs["features"][0], inputs["taxonomy"][0], out, title)
    labels = dict(spec.compare)
    if spec.kind == "retrieval_curve":
        from taxonbench.plots.retrieval import draw_retrieval_curves

        return draw_retrieval_curves({labels.get(e, e): m for e, m in zip(spec.experiments, inputs["metrics"])},
                                     out, title)
    from taxonbench.plots.training_curves import draw_training_curves

    runs = {e: (labels.get(e, e), log) for e, log in zip(spec.experiments, inputs["logs"])}
    return draw_training_curves(runs, spec.experiment, out, title)


__all__ = ["KINDS", "FigureSpec", "build_figure", "check_figures", "figure_inputs", "register_figure"]
