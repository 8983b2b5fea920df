"""The ``taxonbench`` command: one subcommand per stage of the pipeline (docs/design.md §1).

Snakemake rules and DVC call these; each reads explicit input paths and writes
explicit output paths. Settings come either from params files (``--params``)
or, as the Snakemake rules pass them, as resolved JSON (``--settings``).
A user mistake prints one line ``taxonbench: error: ...`` and exits with 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from taxonbench import __version__
from taxonbench.errors import TaxonbenchError


def _add_settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", nargs="+", default=None, metavar="YAML",
                   help="params file(s), later ones override earlier ones (default: params.yaml)")
    p.add_argument("--settings", default=None, metavar="JSON",
                   help="resolved settings as JSON (what the Snakemake rules pass)")


def _resolve(args, resolver, *names):
    from taxonbench.params import parse_settings
    from taxonbench.plan import load_params

    if args.settings is not None:
        return parse_settings(args.settings)
    missing = [f"--{n}" for n, v in zip(("dataset", "method"), names) if v is None]
    if missing:
        raise TaxonbenchError(f"{args.command}: {' and '.join(missing)} required with --params")
    cfg = load_params(*(args.params or ["params.yaml"]))
    return resolver(cfg, *names)


def _adapter(args):
    from taxonbench.datasets import DATASETS
    from taxonbench.params import dataset_settings

    s = _resolve(args, dataset_settings, args.dataset)
    return s, DATASETS.get(s["source"])(s.get("options", {}), name=s["name"], seed=s["seed"])


def cmd_prepare(args) -> None:
    from taxonbench.datasets import prepare_dataset

    s, adapter = _adapter(args)
    workers = args.workers if args.workers is not None else s.get("workers", 1)
    manifest = prepare_dataset(adapter, args.out, s.get("rows_per_shard", 4096), workers=workers,
                               on_corrupt_image=s.get("on_corrupt_image", "stop"))
    counts = ", ".join(f"{k}: {v['rows']}" for k, v in manifest["splits"].items())
    print(f"prepared {s['name']} into {args.out}: {manifest['n_leaves']} leaves, {manifest['n_nodes']} nodes; {counts}")


def cmd_download(args) -> None:
    from taxonbench.io import write_json_atomic

    s, adapter = _adapter(args)
    fetched = adapter.download()
    print(f"{s['name']}: fetched {len(fetched)} file(s); the upstream files are in place")
    if args.done:
        write_json_atomic(args.done, {"dataset": s["name"], "source": s["source"],
                                      "fetched": [str(p) for p in fetched]})


def cmd_samples_figure(args) -> None:
    from taxonbench.plots.samples import plot_samples

    plot_samples(args.shards, args.out)


def cmd_train(args) -> None:
    from taxonbench.params import train_settings
    from taxonbench.training import train

    s = _resolve(args, train_settings, args.dataset, args.method)
    path = train(s, args.shards, args.out, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 wrote the model
        print(f"wrote {path}")


def cmd_logits(args) -> None:
    import torch

    from taxonbench.logits import dump_logits

    torch.set_num_threads(args.threads)
    n = dump_logits(args.model, args.shards, args.split, args.out, device=args.device,
                    batch_size=args.batch_size, num_workers=args.workers, features=args.features,
                    unseen_of=getattr(args, "unseen_of", None))
    print(f"wrote {n} rows to {args.out}")


def cmd_infer(args) -> None:
    from taxonbench.inference import INFERENCE, run_inference
    from taxonbench.params import parse_settings
    from taxonbench.shards import TAXONOMY
    from taxonbench.taxonomy import Taxonomy

    cls = INFERENCE.get(args.inference)
    options = parse_settings(args.options, "--options") if args.options else {}
    if cls.fitted:
        if not args.state:
            raise TaxonbenchError(f"inference {args.inference!r} is fitted: pass --state (made by `taxonbench fit-inference`)")
        options = {**options, "state": args.state}
    n = run_inference(cls(Taxonomy.read(Path(args.shards) / TAXONOMY), options), args.logits, args.out)
    print(f"wrote {n} rows to {args.out}")


def cmd_fit_inference(args) -> None:
    # the thread count reaches torch through its environment variable, so that fits without torch
    # (thresholds) do not pay its import (~1.3 s a job); set before anything imports torch
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    from taxonbench.inference import INFERENCE
    from taxonbench.params import parse_settings
    from taxonbench.shards import TAXONOMY
    from taxonbench.taxonomy import Taxonomy

    cls = INFERENCE.get(args.inference)
    options = parse_settings(args.options, "--options") if args.options else {}
    path = cls.fit(Taxonomy.read(Path(args.shards) / TAXONOMY), args.logits, args.out, options, seed=args.seed)
    print(f"wrote {path}")


def cmd_evaluate(args) -> None:
    from taxonbench.evaluation import evaluate_scores
    from taxonbench.shards import TAXONOMY
    from taxonbench.taxonomy import Taxonomy

    m = evaluate_scores(args.scores, Taxonomy.read(Path(args.shards) / TAXONOMY), args.out, args.curve,
                        tune_path=args.tune_scores, gallery_path=args.gallery_scores)
    print(" ".join(f"{k}={v:.4f}" for k, v in m.items() if isinstance(v, float)))


def cmd_tables(args) -> None:
    from taxonbench.tables import build_tables

    def tables_block(cfg):
        return cfg["tables"]

    tables = _resolve(args, tables_block)
    for path in build_tables(tables, args.metrics_root, args.out):
        print(f"wrote {path}")


def cmd_curves_figure(args) -> None:
    from taxonbench.params import parse_settings
    from taxonbench.plots.curves import plot_dataset_curves

    tables = parse_settings(args.tables, "--tables") if args.tables is not None else None
    plot_dataset_curves(args.curves, args.out, title=args.title, tables=tables, dataset=args.dataset)


def cmd_leaderboard(args) -> None:
    from taxonbench.leaderboard import write_leaderboards
    from taxonbench.leaderboard.entries import entries_from_metrics
    from taxonbench.params import parse_settings

    entries = entries_from_metrics(args.metrics, parse_settings(args.experiments, "--experiments"))
    written = write_leaderboards(entries, args.out, args.json)
    print(f"wrote the leaderboards of {len(entries)} dataset(s) ({len(args.metrics)} rows): "
          f"{args.out}/<dataset>.{{csv,md,html,png}} and {args.json}")
    for path in written:
        print(f"  {path}")


def cmd_results_page(args) -> None:
    from taxonbench.params import parse_settings
    from taxonbench.results_page import write_results_page

    for path in write_results_page(parse_settings(args.tables, "--tables"), args.tables_dir, args.leaderboards,
                                   args.out, args.figure, args.figure_out):
        print(f"wrote {path}")


def cmd_verify(args) -> None:
    from taxonbench.recovery import damaged_shards, rebuild_command
    from taxonbench.shards import MANIFEST, read_manifest

    directory = Path(args.shards)
    manifest = read_manifest(directory)
    if "files" not in manifest:
        raise TaxonbenchError(f"{directory / MANIFEST} records no file sizes or hashes (prepared by an older "
                              "taxonbench): prepare it again to record them: "
                              f"`{rebuild_command(directory / MANIFEST)}`")
    problems = damaged_shards(directory, manifest, hashes=True)
    if problems:
        raise TaxonbenchError(f"{directory}: {len(problems)} damaged file(s):\n  " + "\n  ".join(problems)
                              + f"\nprepare the dataset again: `{rebuild_command(directory / MANIFEST)}` (a plain "
                              "`snakemake` also does it when a file is missing or of another size)")
    print(f"{directory}: all {len(manifest['files'])} files match their size and SHA-256 in {MANIFEST}")


def cmd_figure(args) -> None:
    from taxonbench.figures import build_figure

    for path in build_figure(args.figure, args.dataset, args.eval_split, args.out, args.results, args.shards):
        print(f"wrote {path}")


def _label_settings(args, resolver):
    from taxonbench.params import parse_settings
    from taxonbench.plan import load_params

    if args.settings is not None:
        return parse_settings(args.settings)
    if args.experiment is None:
        raise TaxonbenchError(f"{args.command}: --experiment required with --params")
    return resolver(load_params(*(args.params or ["params.yaml"])), args.experiment)


def cmd_label_edges(args) -> None:
    from taxonbench.label_graph.edges import edge_options, write_edge_dataset
    from taxonbench.params import parse_settings
    from taxonbench.plan import load_params
    from taxonbench.taxonomy import Taxonomy

    if args.settings is not None:
        s = parse_settings(args.settings)
    else:
        cfg = load_params(*(args.params or ["params.yaml"]))
        s = {"edges": cfg["label_embeddings"]["edges"], "seed": cfg["seed"]}
    manifest = write_edge_dataset(Taxonomy.read(args.taxonomy), edge_options(s["edges"]), int(s["seed"]), args.out,
                                  args.dataset)
    counts = ", ".join(f"{k}: {v['positive']}+/{v['negative']}-" for k, v in manifest["splits"].items())
    print(f"wrote the label graph of {args.dataset} to {args.out}: {manifest['n_labels']} labels, "
          f"{manifest['closure']} closure edges; {counts}")


def cmd_train_label_embedding(args) -> None:
    import torch

    from taxonbench.label_graph.settings import label_settings
    from taxonbench.label_graph.train import train_label_embedding

    torch.set_num_threads(args.threads)
    s = _label_settings(args, label_settings)
    m = train_label_embedding(s, args.taxonomy, args.edges, args.out, args.metrics)
    print(f"{s['experiment']}: test edge F1 {m['test_edge_f1']:.4f}, full-F1 {m['full_f1']:.4f} (epoch "
          f"{m['best_epoch']}, alpha {m['alpha']:g}); wrote {args.out} and {args.metrics}")


def cmd_train_joint_embedding(args) -> None:
    import torch

    from taxonbench.label_graph.joint import train_joint
    from taxonbench.label_graph.settings import joint_settings

    torch.set_num_threads(args.threads)
    s = _label_settings(args, joint_settings)
    m = train_joint(s, args.taxonomy, {"train": args.train, "val": args.val}, args.out, args.metrics, args.init)
    print(f"{s['experiment']}: val micro-F1 {m['val_micro_f1']:.4f} (epoch {m['best_epoch']}), full-F1 "
          f"{m['full_f1']:.4f}; wrote {args.out} and {args.metrics}")


def cmd_joint_logits(args) -> None:
    from taxonbench.label_graph.joint import joint_logits

    n = joint_logits(args.model, args.taxonomy, args.features, args.out)
    print(f"wrote {n} rows to {args.out}")


def cmd_list(args) -> None:
    from taxonbench.registries import ALL

    for title, reg in ALL.items():
        print(f"{title}: {', '.join(reg.names())}")
    if args.declarations:
        from taxonbench.declarations import family_declarations, inference_declarations, method_declarations

        print("\nmethods (score kind; hyper-parameters):")
        for name, d in method_declarations().items():
            hp = "; ".join(f"{f.name}: {f.describe()} = {f.default!r}" for f in d.hparams) or "none"
            print(f"  {name} ({d.kind}; views {d.views}): {hp}")
        print("\ninference (accepted kinds -> output; options):")
        for name, d in inference_declarations().items():
            opts = "; ".join(f"{f.name}: {f.describe()} = {f.default!r}" for f in d.options) or "none"
            fit = f", fitted on {d.fit_split}" if d.fitted else ""
            print(f"  {name} ({', '.join(sorted(d.accepts))} -> {d.produces}{fit}): {opts}")
        print("\nmetric families (reads; split roles):")
        for name, d in family_declarations().items():
            print(f"  {name} ({d.reads}; {', '.join(d.splits)})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taxonbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"taxonbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STEP")

    p = sub.add_parser("prepare", help="generate or convert a dataset into Parquet shards")
    p.add_argument("--dataset", required=True, help="a dataset name defined in params")
    p.add_argument("--out", required=True, help="output directory, e.g. data/shards/<dataset>")
    _add_settings_args(p)
    p.add_argument("--workers", type=int, default=None,
                   help="image worker processes (default: the dataset's workers setting)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("download", help="fetch, verify and unpack a real dataset's upstream files")
    p.add_argument("--dataset", required=True, help="a dataset name defined in params")
    p.add_argument("--done", default=None, help="a JSON marker written when everything is in place")
    _add_settings_args(p)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("samples-figure", help="a grid of sample images grouped by taxon")
    p.add_argument("--shards", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_samples_figure)

    p = sub.add_parser("train", help="train one method on one dataset",
                       description="Train one method on one dataset. Started by torchrun (torchrun --standalone "
                                   "--nproc-per-node N -m taxonbench.cli train ...), the N processes train one model "
                                   "data-parallel, with the results of one process (docs/distributed.md).")
    p.add_argument("--dataset", help="dataset name (with --params)")
    p.add_argument("--method", help="method name (with --params)")
    p.add_argument("--shards", required=True)
    p.add_argument("--out", required=True, help="model directory, e.g. results/models/<dataset>/<method>")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_settings_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("logits", help="dump a trained model's outputs for one split")
    p.add_argument("--model", required=True)
    p.add_argument("--shards", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="CPU threads")
    p.add_argument("--features", action="store_true",
                   help="the encoder's output (before the head), kind embeddings: the joint embeddings' input")
    p.add_argument("--unseen-of", default=None,
                   help="shards of a seen dataset this one must share no category with (datasets.<name>.unseen_of)")
    p.set_defaults(func=cmd_logits)

    p = sub.add_parser("infer", help="turn dumped logits into node scores")
    p.add_argument("--inference", required=True)
    p.add_argument("--logits", required=True)
    p.add_argument("--shards", required=True, help="dataset directory holding taxonomy.parquet")
    p.add_argument("--out", required=True)
    p.add_argument("--options", default=None, metavar="JSON", help="inference options as JSON")
    p.add_argument("--state", default=None, help="fitted state of a fitted inference (fit-inference output)")
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("fit-inference", help="fit a fitted inference method on the train split's logits")
    p.add_argument("--inference", required=True)
    p.add_argument("--logits", required=True, help="train-split logits, results/logits/<D>/<M>/train.parquet")
    p.add_argument("--shards", required=True, help="dataset directory holding taxonomy.parquet")
    p.add_argument("--out", required=True, help="state file, e.g. results/models/<D>/<M>/<inference>.state")
    p.add_argument("--options", default=None, metavar="JSON", help="inference options as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="CPU threads")
    p.set_defaults(func=cmd_fit_inference)

    p = sub.add_parser("evaluate", help="compute every metric of node scores")
    p.add_argument("--scores", required=True)
    p.add_argument("--shards", required=True, help="dataset directory holding taxonomy.parquet")
    p.add_argument("--out", required=True, help="metrics JSON")
    p.add_argument("--curve", default=None, help="operating-curve CSV")
    p.add_argument("--tune-scores", default=None, help="scores of the tune split, for families that tune on it")
    p.add_argument("--gallery-scores", default=None,
                   help="scores of the gallery split, for retrieval families (default: within --scores)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("tables", help="regenerate the paper tables as CSV + LaTeX + vs-paper")
    p.add_argument("--metrics-root", default="results/metrics")
    p.add_argument("--out", default="results/tables")
    _add_settings_args(p)
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("curves-figure", help="plot operating curves (correct vs info recall), a panel per table")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="Operating curves")
    p.add_argument("--tables", default=None, metavar="JSON",
                   help="the params tables: block as JSON: one panel per table built on the dataset")
    p.add_argument("--dataset", default=None, help="the dataset of the curves (default: from their paths)")
    p.add_argument("curves", nargs="+", help="curve CSVs results/curves/<dataset>/<method>/<inference>.csv")
    p.set_defaults(func=cmd_curves_figure)

    p = sub.add_parser("leaderboard", help="one board per dataset: every experiment, columns by metric family")
    p.add_argument("--experiments", required=True, metavar="JSON",
                   help="dataset -> experiment -> method, backbone, trained_on (what the Snakemake rule passes)")
    p.add_argument("--out", default="results/leaderboard", help="directory of <dataset>.{csv,md,html,png}")
    p.add_argument("--json", default="results/metrics/leaderboard.json",
                   help="every board's metrics as one JSON file (for dvc metrics diff)")
    p.add_argument("metrics", nargs="+", help="metrics files results/metrics/<dataset>/<experiment>/<inference>.json")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("results-page", help="docs/results.md: the run's leaderboards and paper tables")
    p.add_argument("--tables", required=True, metavar="JSON", help="the params tables: block as JSON")
    p.add_argument("--tables-dir", default="results/tables")
    p.add_argument("--out", default="docs/results.md")
    p.add_argument("--figure", default=None, help="a leaderboard figure to copy beside the page")
    p.add_argument("--figure-out", default="docs/img/leaderboard.png")
    p.add_argument("leaderboards", nargs="*", help="the leaderboards' Markdown files, in page order")
    p.set_defaults(func=cmd_results_page)

    p = sub.add_parser("verify", help="check a prepared dataset's files against the sizes and SHA-256 in its manifest")
    p.add_argument("shards", help="a prepared dataset directory, e.g. data/shards/synthetic_balanced")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("figure", help="draw one registered paper figure (`taxonbench list`: figures) from a run")
    p.add_argument("--figure", required=True, help="the figure id, e.g. dhall_thesis_fig4_2")
    p.add_argument("--dataset", required=True, help="the dataset whose results the figure shows")
    p.add_argument("--eval-split", default="test", help="the split whose scores per-label figures read")
    p.add_argument("--results", default="results", help="the results root (scores/, models/)")
    p.add_argument("--shards", default=None, help="the dataset's shards (default data/shards/<dataset>)")
    p.add_argument("--out", required=True, help="the PNG to write; the numbers go beside it as .csv")
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("label-edges", help="the label-graph edge dataset of a taxonomy (thesis §5.5)")
    p.add_argument("--taxonomy", required=True, help="taxonomy.parquet of a prepared dataset")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, help="directory for edges.parquet + manifest.json")
    _add_settings_args(p)
    p.set_defaults(func=cmd_label_edges)

    for name, helptext, func in (
            ("train-label-embedding", "train a label-only embedding (order-embeddings, cones) on an edge dataset",
             cmd_train_label_embedding),
            ("train-joint-embedding", "train a joint image + label embedding on encoder features (thesis §5.6)",
             cmd_train_joint_embedding)):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--taxonomy", required=True)
        if func is cmd_train_label_embedding:
            p.add_argument("--edges", required=True, help="the edge dataset directory (taxonbench label-edges)")
        else:
            p.add_argument("--train", required=True, help="encoder features of the train split (logits --features)")
            p.add_argument("--val", required=True, help="encoder features of the val split")
            p.add_argument("--init", default=None, help="a label-only embedding.pt to start the labels from")
        p.add_argument("--out", required=True, help="directory for the model and train_log.csv")
        p.add_argument("--metrics", required=True, help="the metrics JSON to write")
        p.add_argument("--experiment", default=None, help="the experiment's name (with --params)")
        p.add_argument("--threads", type=int, default=1)
        _add_settings_args(p)
        p.set_defaults(func=func)

    p = sub.add_parser("joint-logits", help="per-level scores (-violation energy) of a joint embedding")
    p.add_argument("--model", required=True)
    p.add_argument("--taxonomy", required=True)
    p.add_argument("--features", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_joint_logits)

    p = sub.add_parser("list", help="list registered datasets, backbones, methods, inference and tables")
    p.add_argument("--declarations", action="store_true",
                   help="also each method's score kind and hyper-parameters, each inference's kinds and options")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except TaxonbenchError as exc:
        print(f"taxonbench: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
