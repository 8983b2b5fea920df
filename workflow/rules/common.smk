# Helpers for the rules: params validation, wildcard constraints and input
# functions. No rules here. The logic (validation, settings resolution) lives
# in the taxonbench package; this file only wires it to Snakemake.
import json
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from taxonbench.errors import TaxonbenchError
from taxonbench.params import dataset_settings, train_settings, validate_params

try:
    PARAMS = validate_params(config, source="params (snakemake config)")
except TaxonbenchError as exc:
    raise WorkflowError(str(exc)) from None

EXPERIMENTS = PARAMS["experiments"]
DATASETS = EXPERIMENTS["datasets"]
METHODS = EXPERIMENTS["methods"]
INFERENCE = EXPERIMENTS["inference"]
EVAL_SPLIT = EXPERIMENTS["eval_split"]


def _alternatives(names):
    return "|".join(re.escape(n) for n in names)


wildcard_constraints:
    dataset=_alternatives(PARAMS["datasets"]),
    method=_alternatives(METHODS),
    inference=_alternatives(INFERENCE),
    split=r"[A-Za-z0-9_]+",
    table=r"[a-z0-9_]+",


def shards_dir(wildcards):
    return f"data/shards/{wildcards.dataset}"


def model_dir(wildcards):
    return f"results/models/{wildcards.dataset}/{wildcards.method}"


def prepare_settings(wildcards):
    return json.dumps(dataset_settings(PARAMS, wildcards.dataset), sort_keys=True)


def method_settings(wildcards):
    return json.dumps(train_settings(PARAMS, wildcards.dataset, wildcards.method), sort_keys=True)


def tables_settings(wildcards):
    return json.dumps(PARAMS["tables"], sort_keys=True)


def eval_batch_size(wildcards):
    return PARAMS["train"]["eval_batch_size"]


def metrics_files():
    return expand(
        "results/metrics/{dataset}/{method}/{inference}.json",
        dataset=DATASETS,
        method=METHODS,
        inference=INFERENCE,
    )


def dataset_curves(wildcards):
    return expand(
        "results/curves/{dataset}/{method}/{inference}.csv",
        dataset=wildcards.dataset,
        method=METHODS,
        inference=INFERENCE,
    )


def table_outputs():
    return expand(
        "results/tables/{table}{suffix}",
        table=list(PARAMS["tables"]),
        suffix=[".csv", ".tex", "_vs_paper.csv"],
    )


def logits_files():
    return expand(
        "results/logits/{dataset}/{method}/{split}.parquet",
        dataset=DATASETS,
        method=METHODS,
        split=EXPERIMENTS["logit_splits"],
    )


def get_final_outputs():
    return (
        logits_files()
        + metrics_files()
        + table_outputs()
        + expand("results/figures/operating_curves_{dataset}.png", dataset=DATASETS)
        + expand("results/figures/{dataset}_samples.png", dataset=DATASETS)
    )
