"""The leaderboard's rows, derived from the experiment plan: one per (experiment, inference) of a dataset.

Torch-free: the Snakefile calls :func:`experiment_info` at start and hands it to the leaderboard step
as JSON with the metrics files as inputs; the step rebuilds the rows with :func:`entries_from_metrics`
(no params file needed, and the command line stays short: no per-row JSON).
"""

from __future__ import annotations

from pathlib import Path

from taxonbench import plan
from taxonbench.errors import TaxonbenchError
from taxonbench.label_graph import settings as label_graph
from taxonbench.params import train_settings

#: "inference" and score kind of a label-graph row (metrics: results/metrics/<dataset>/<experiment>/label_graph.json)
LABEL_GRAPH = "label_graph"


def _backbone(cfg: dict, dataset: str, experiment: str) -> str:
    if plan.is_joint(cfg, experiment):
        s = label_graph.joint_settings(cfg, experiment)
        image = train_settings(cfg, dataset, s["features"])["train"]["backbone"]
        return f"{image} + {s['model']} d={s['dim']}"
    return train_settings(cfg, plan.trained_on(cfg, dataset, experiment), experiment)["train"]["backbone"]


def experiment_info(cfg: dict) -> dict[str, dict[str, dict]]:
    """Dataset -> experiment -> ``method`` (the registered method, or a label-graph model), ``backbone`` and
    ``trained_on`` (the dataset its model comes from), for every experiment of the run, label-graph ones included."""
    out: dict[str, dict[str, dict]] = {}
    for dataset in cfg["experiments"]["datasets"]:
        for experiment in plan.dataset_methods(cfg, dataset):
            method = (label_graph.joint_settings(cfg, experiment)["model"] if plan.is_joint(cfg, experiment)
                      else plan.registered_method(cfg, experiment))
            out.setdefault(dataset, {})[experiment] = {
                "method": method, "backbone": _backbone(cfg, dataset, experiment),
                "trained_on": plan.trained_on(cfg, dataset, experiment)}
    for dataset in label_graph.label_datasets(cfg):
        for experiment in label_graph.label_experiments(cfg):
            s = label_graph.label_settings(cfg, experiment)
            out.setdefault(dataset, {})[experiment] = {"method": s["model"], "backbone": f"labels only, d={s['dim']}",
                                                       "trained_on": dataset}
        for experiment in label_graph.joint_experiments(cfg):
            s = label_graph.joint_settings(cfg, experiment)
            out.setdefault(dataset, {})[experiment] = {"method": s["model"], "trained_on": dataset,
                                                       "backbone": _backbone(cfg, dataset, experiment)}
    return out


def entries_from_metrics(paths: list[str], info: dict[str, dict[str, dict]]) -> dict[str, list[dict]]:
    """Dataset -> its rows, in the order of ``paths`` (metrics files ``.../<dataset>/<experiment>/<inference>.json``):
    ``experiment``, ``method``, ``inference``, ``kind`` (what the inference produces), ``backbone``, ``trained_on``,
    ``metrics`` (the path); ``info``: :func:`experiment_info`."""
    out: dict[str, list[dict]] = {}
    for path in paths:
        parts = Path(path).parts
        if len(parts) < 3 or Path(path).suffix != ".json":
            raise TaxonbenchError(f"leaderboard: {path} is not a metrics file <dataset>/<experiment>/<inference>.json")
        dataset, experiment, inference = parts[-3], parts[-2], Path(path).stem
        try:
            about = info[dataset][experiment]
        except KeyError:
            raise TaxonbenchError(f"leaderboard: {path}: experiment {experiment!r} of dataset {dataset!r} is not "
                                  "in the run's experiments") from None
        kind = LABEL_GRAPH if inference == LABEL_GRAPH else plan.produces(inference)
        out.setdefault(dataset, []).append({"experiment": experiment, "inference": inference, "kind": kind,
                                            "metrics": str(path), **about})
    return out


def leaderboard_entries(cfg: dict, root: str = "results/metrics") -> dict[str, list[dict]]:
    """Every row of every dataset's board: the run's metrics files (plan order, label-graph rows last) with
    :func:`experiment_info`."""
    pairs = plan.method_inference(cfg)
    paths = [f"{root}/{d}/{m}/{i}.json" for d in cfg["experiments"]["datasets"]
             for m in plan.dataset_methods(cfg, d) for i in pairs[m]]
    paths += [f"{root}/{d}/{e}/{LABEL_GRAPH}.json" for d in label_graph.label_datasets(cfg)
              for e in label_graph.label_experiments(cfg) + label_graph.joint_experiments(cfg)]
    return entries_from_metrics(paths, experiment_info(cfg))


__all__ = ["LABEL_GRAPH", "entries_from_metrics", "experiment_info", "leaderboard_entries"]
