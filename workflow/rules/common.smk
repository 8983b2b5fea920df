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
from taxonbench.params import dataset_settings, inference_options, train_settings
from taxonbench import plan
from taxonbench.figures import figure_inputs as figure_files
from taxonbench.label_graph import settings as label_graph
from taxonbench.leaderboard.entries import experiment_info

try:  # the schema and every declaration (method hyper-parameters, inference options), before any job
    PARAMS = plan.validate(config, source="params (snakemake config)")
    PAIRS = plan.method_inference(PARAMS)  # experiment -> inference methods run on its outputs
    INFERENCE = sorted({i for names in PAIRS.values() for i in names})
    FITTED = plan.fitted_inference()  # fitted inference -> the split it is fitted on
    METHODS = plan.all_methods(PARAMS)  # experiments.methods + every dataset's extra_methods
    LOGIT_SPLITS = {m: plan.logit_splits(PARAMS, m, PAIRS) for m in METHODS}
    SCORED = {i: plan.scored_splits(PARAMS, i) for i in INFERENCE}  # inference -> {role: split}
except TaxonbenchError as exc:
    raise WorkflowError(str(exc)) from None

if workflow.is_main_process:  # not in a job's own Snakemake (SLURM), which would see the main run as gone
    from taxonbench.recovery import recover_at_start

    for _line in recover_at_start(".", list(PARAMS["datasets"]), sys.argv):  # every dataset prepared here
        print(_line, file=sys.stderr)

EXPERIMENTS = PARAMS["experiments"]
DATASETS = EXPERIMENTS["datasets"]
# the label-graph branch (Dhall's thesis Chapters 5-6): label-only embeddings, and joint image + label
# embeddings, which are experiments of the matrix whose model and logits come from workflow/rules/label_graph.smk
LABEL_DATASETS = label_graph.label_datasets(PARAMS)
LABEL_EXPERIMENTS = label_graph.label_experiments(PARAMS)
JOINT = label_graph.joint_experiments(PARAMS)
IMAGE_METHODS = [m for m in METHODS if m not in JOINT]
CURVED = [i for i in INFERENCE if plan.produces(i) == "node_prob"]  # evaluated with an operating curve


def _alternatives(names):
    return "|".join(re.escape(n) for n in names)


wildcard_constraints:
    dataset=_alternatives(PARAMS["datasets"]),
    method=_alternatives(METHODS),
    inference=_alternatives(INFERENCE),
    split=r"[A-Za-z0-9_]+",
    table=r"[a-z0-9_]+",


def _pattern_of(names):
    return _alternatives(names) if names else "(?!)"  # "(?!)" matches nothing


FITTED_PATTERN = _pattern_of(sorted(FITTED))
IMAGE_PATTERN = _pattern_of(IMAGE_METHODS)
JOINT_PATTERN = _pattern_of(JOINT)
LABEL_PATTERN = _pattern_of(LABEL_EXPERIMENTS)
LABEL_DATASET_PATTERN = _pattern_of(LABEL_DATASETS)
CURVED_PATTERN = _pattern_of(CURVED)
UNCURVED_PATTERN = _pattern_of([i for i in INFERENCE if i not in CURVED])


def shards_dir(wildcards):
    return f"data/shards/{wildcards.dataset}"


def model_dir(wildcards):
    return f"results/models/{wildcards.dataset}/{wildcards.method}"


def model_file(wildcards):
    """The model an experiment's logits on a dataset come from: trained on `trained_on` (cross-dataset) or there."""
    return f"results/models/{plan.trained_on(PARAMS, wildcards.dataset, wildcards.method)}/{wildcards.method}/model.pt"


def unseen_of_input(wildcards):
    seen = plan.unseen_of(PARAMS, wildcards.dataset)
    return {"seen_taxonomy": f"data/shards/{seen}/taxonomy.parquet"} if seen else {}


def unseen_of_argument(wildcards, input):
    return f"--unseen-of {Path(input.seen_taxonomy).parent}" if "seen_taxonomy" in input.keys() else ""


def downloads(dataset):
    """True for a real dataset whose options ask for its upstream files to be fetched (`download: true`);
    never for the synthetic default, whose adapter has no such option."""
    return PARAMS["datasets"][dataset].get("options", {}).get("download") is True


def prepare_inputs(wildcards):
    return [f"data/raw/.downloaded/{wildcards.dataset}.json"] if downloads(wildcards.dataset) else []


def prepare_workers(wildcards):
    return PARAMS["datasets"][wildcards.dataset].get("workers", 1)


def prepare_settings(wildcards):
    return json.dumps(dataset_settings(PARAMS, wildcards.dataset), sort_keys=True)


def method_settings(wildcards):
    return json.dumps(train_settings(PARAMS, wildcards.dataset, wildcards.method), sort_keys=True)


def tables_settings(wildcards):
    return json.dumps(PARAMS["tables"], sort_keys=True)


FIGURES = PARAMS["figures"]  # figure id -> {dataset}
FIGURE_PATTERN = _pattern_of(list(FIGURES))


def figure_inputs(wildcards):
    block = FIGURES[wildcards.figure]
    return figure_files(wildcards.figure, block["dataset"], EXPERIMENTS["eval_split"])


def figure_dataset(wildcards):
    return FIGURES[wildcards.figure]["dataset"]


def eval_batch_size(wildcards):
    return PARAMS["train"]["eval_batch_size"]


def train_threads(wildcards):
    return PARAMS["train"]["threads"]


def _train_of(wildcards):
    """The experiment's resolved `train` block (a method's `train:` overrides the global one)."""
    return train_settings(PARAMS, wildcards.dataset, wildcards.method)["train"]


def train_processes(wildcards):
    """Data-parallel processes of one training: one per GPU asked for (train.gpus), else
    train.cpu_processes (gloo); a method's `train:` block may override both (docs/distributed.md)."""
    train = _train_of(wildcards)
    return train["gpus"] if train["gpus"] >= 1 else train["cpu_processes"]


def train_gpus(wildcards):
    """The train rule's gpu resource (SLURM --gpus=N): train.gpus of the experiment."""
    return _train_of(wildcards)["gpus"]


def train_launcher(wildcards):
    """`taxonbench` for one process; torchrun with one process per GPU (or CPU process) otherwise."""
    n = train_processes(wildcards)
    return "taxonbench" if n == 1 else f"torchrun --standalone --nproc-per-node {n} -m taxonbench.cli"


def inference_options_json(wildcards):
    return json.dumps(inference_options(PARAMS, wildcards.inference), sort_keys=True)


def infer_inputs(wildcards):
    inputs = {
        "logits": f"results/logits/{wildcards.dataset}/{wildcards.method}/{wildcards.split}.parquet",
        "taxonomy": f"data/shards/{wildcards.dataset}/taxonomy.parquet",
    }
    if wildcards.inference in FITTED:
        inputs["state"] = fitted_state(wildcards)
    return inputs


def fit_logits(wildcards):
    """The logits a fitted inference learns from: its declared fit split (train for differentiable diffusion)."""
    return f"results/logits/{wildcards.dataset}/{wildcards.method}/{FITTED[wildcards.inference]}.parquet"


def evaluate_inputs(wildcards):
    """The scores of every split role the metric families of this inference's output read (eval; tune; gallery)."""
    base = f"results/scores/{wildcards.dataset}/{wildcards.method}/{wildcards.inference}"
    inputs = {"taxonomy": f"data/shards/{wildcards.dataset}/taxonomy.parquet"}
    for role, split in SCORED[wildcards.inference].items():
        inputs[role] = f"{base}/{split}.parquet"
    return inputs


def role_arguments(wildcards, input):
    """``--tune-scores`` / ``--gallery-scores`` for the split roles (besides eval) the families read."""
    return " ".join(f"--{role}-scores {input[role]}" for role in plan.EXTRA_ROLES if role in input.keys())


def fitted_state(wildcards):
    return f"results/models/{wildcards.dataset}/{wildcards.method}/{wildcards.inference}.state"


def state_argument(wildcards, input):
    return f"--state {input.state}" if "state" in input.keys() else ""


def _per_pair(pattern, datasets):
    return [
        pattern.format(dataset=d, method=m, inference=i)
        for d in datasets
        for m in plan.dataset_methods(PARAMS, d)
        for i in PAIRS[m]
    ]


def metrics_files():
    return _per_pair("results/metrics/{dataset}/{method}/{inference}.json", DATASETS)


def dataset_curves(wildcards):
    return [c for c in _per_pair("results/curves/{dataset}/{method}/{inference}.csv", [wildcards.dataset])
            if Path(c).stem in CURVED]


#: the datasets with at least one operating curve (a dataset of set predictions only has no figure)
CURVED_DATASETS = [d for d in DATASETS if any(i in CURVED for m in plan.dataset_methods(PARAMS, d) for i in PAIRS[m])]


def table_outputs():
    return expand(
        "results/tables/{table}{suffix}",
        table=list(PARAMS["tables"]),
        suffix=[".csv", ".tex", "_vs_paper.csv"],
    )


EXPERIMENT_INFO = experiment_info(PARAMS)  # dataset -> experiment -> method, backbone, trained_on
LEADERBOARD_DATASETS = list(EXPERIMENT_INFO)


def leaderboard_experiments(wildcards):
    return json.dumps(EXPERIMENT_INFO, sort_keys=True)


def leaderboard_outputs():
    return expand("results/leaderboard/{dataset}.{ext}", dataset=LEADERBOARD_DATASETS, ext=["csv", "md", "html", "png"])


def logits_files():
    return [
        f"results/logits/{d}/{m}/{split}.parquet"
        for d in DATASETS
        for m in plan.dataset_methods(PARAMS, d)
        for split in LOGIT_SPLITS[m]
    ]


def edges_settings(wildcards):
    return json.dumps({"edges": PARAMS["label_embeddings"]["edges"], "seed": PARAMS["seed"]}, sort_keys=True)


def label_experiment_settings(wildcards):
    return json.dumps(label_graph.label_settings(PARAMS, wildcards.experiment), sort_keys=True)


def joint_settings(wildcards):
    return json.dumps(label_graph.joint_settings(PARAMS, wildcards.method), sort_keys=True)


def joint_inputs(wildcards):
    """The taxonomy, the train / val encoder features of the joint experiment's `features` experiment and, with
    `init`, the label-only embedding it starts from."""
    s = label_graph.joint_settings(PARAMS, wildcards.method)
    base = f"results/features/{wildcards.dataset}/{s['features']}"
    inputs = {"taxonomy": f"data/shards/{wildcards.dataset}/taxonomy.parquet",
              "train": f"{base}/train.parquet", "val": f"{base}/val.parquet"}
    if s["init"] is not None:
        inputs["init"] = f"results/label_embeddings/{wildcards.dataset}/{s['init']}/embedding.pt"
    return inputs


def init_argument(wildcards, input):
    return f"--init {input.init}" if "init" in input.keys() else ""


def joint_features(wildcards):
    s = label_graph.joint_settings(PARAMS, wildcards.method)
    return f"results/features/{wildcards.dataset}/{s['features']}/{wildcards.split}.parquet"


def label_metrics_files():
    """The label-graph metrics (results/metrics/<dataset>/<experiment>/label_graph.json) of every label-only and
    joint experiment."""
    return [f"results/metrics/{d}/{e}/label_graph.json" for d in LABEL_DATASETS for e in LABEL_EXPERIMENTS + JOINT]


#: every dataset a job reads: the evaluated ones, those models are trained on, the seen side of an unseen one
PREPARED_DATASETS = list(dict.fromkeys(
    DATASETS + [plan.trained_on(PARAMS, d, m) for d in DATASETS for m in plan.dataset_methods(PARAMS, d)]
    + [s for s in (plan.unseen_of(PARAMS, d) for d in DATASETS) if s] + LABEL_DATASETS))


def get_final_outputs():
    # the manifests are targets too: one set aside at start (a damaged dataset, taxonbench.recovery) is then
    # missing, so the dataset is prepared again, and everything downstream reruns on its newer manifest
    return (
        expand("data/shards/{dataset}/manifest.json", dataset=PREPARED_DATASETS)
        + logits_files()
        + metrics_files()
        + label_metrics_files()
        + table_outputs()
        + leaderboard_outputs()
        + ["docs/results.md", "docs/img/leaderboard.png"]
        + expand("results/figures/operating_curves_{dataset}.png", dataset=CURVED_DATASETS)
        + expand("results/figures/{dataset}_samples.png", dataset=DATASETS)
        + expand("results/figures/{figure}.png", figure=list(FIGURES))
    )


# Cluster resources. Every rule declares runtime (minutes), mem_mb and cpus_per_task, which
# the SLURM executor turns into `sbatch -t/--mem/--cpus-per-task` (workflow/profiles/slurm,
# docs/cluster.md); partition, account and GPU type come from the profile, never from here.
# Sized for paper-scale data (iNat, ImageNet, TreeOfLife-10M prepare and training) and small
# for the synthetic default, which the pipeline generates itself in seconds.
MINUTES_PER_DAY = 24 * 60


def _generated(dataset):
    """True for the synthetic datasets: thousands of tiny images, so every job is short and small."""
    return PARAMS["datasets"][dataset]["source"] == "synthetic"


def prepare_runtime(wildcards):
    # measured ~150 images/s per worker: iNat21 (2.8 M) takes ~45 min with 8 workers,
    # TreeOfLife-10M hours (docs/datasets.md, "Using the real datasets")
    return 60 if _generated(wildcards.dataset) else MINUTES_PER_DAY


def prepare_mem_mb(wildcards):
    # each worker decodes and resizes one shard of images at a time; the parent writes Parquet
    return 2000 + 1000 * prepare_workers(wildcards)


def train_cpus(wildcards):
    """torch threads plus DataLoader workers, for each torchrun process."""
    train = _train_of(wildcards)
    return (train["threads"] + train["num_workers"]) * train_processes(wildcards)


def train_mem_mb(wildcards):
    """Per process: 4 GB for the model, optimiser and CUDA context, the decoded in-memory split
    (cache_decoded_mb) and 1.5 GB per DataLoader worker."""
    train = _train_of(wildcards)
    return (4000 + train["cache_decoded_mb"] + 1500 * train["num_workers"]) * train_processes(wildcards)


def train_runtime(wildcards):
    """A day for real data: the common partition time limit. Longer trainings (ImageNet or
    TreeOfLife-10M on one GPU) continue from their last epoch checkpoint when the job is run
    again (`--retries`, or the next run: rerun-incomplete)."""
    if _generated(wildcards.dataset):
        return 60 + 10 * _train_of(wildcards)["epochs"]
    return MINUTES_PER_DAY


def logits_gpu(wildcards):
    """One GPU to dump a model's outputs when its training asked for GPUs; none on CPU."""
    return 1 if _train_of(wildcards)["gpus"] > 0 else 0


def logits_runtime(wildcards):
    # the train split of TreeOfLife-10M (fitted inference) is millions of images
    return 60 if _generated(wildcards.dataset) else 8 * 60


def job_threads(wildcards, threads):
    """cpus_per_task = the threads the job runs with (the `threads` directive), so SLURM gives it a CPU each."""
    return threads
