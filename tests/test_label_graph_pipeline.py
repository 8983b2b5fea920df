"""The label-graph branch end to end on tiny trees (Dhall's thesis Chapters 5-6, docs/embeddings.md).

``taxonbench label-edges`` -> ``train-label-embedding`` (label-only, §5.5), encoder features
(``logits --features``) -> ``train-joint-embedding`` -> ``joint-logits`` (§5.6), and the checks of the
``label_embeddings`` params block at Snakemake start. Every step runs through the command line where the
workflow does (settings passed as the resolved JSON the rules pass), then its outputs are recomputed from the
files it wrote. Each training is a few epochs on a 14-label tree: the whole file takes a few seconds.
"""

from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from taxonbench.cli import main
from taxonbench.errors import TaxonbenchError
from taxonbench.label_graph.edge_metrics import best_threshold, edge_scores
from taxonbench.label_graph.edges import (
    NegativeSampler,
    read_edge_dataset,
    taxonomy_digest,
)
from taxonbench.label_graph.joint import level_micro_f1, load_joint, read_features
from taxonbench.label_graph.models import build_label_model
from taxonbench.label_graph.settings import (
    JOINT_KIND,
    check_label_embeddings,
    joint_settings,
    label_settings,
)
from taxonbench.label_graph.train import energies, load_points, reconstruction_scores
from taxonbench.matrix_io import iter_matrix, read_sidecar, write_matrix
from taxonbench.taxonomy import Taxonomy

REPO = Path(__file__).resolve().parents[1]
EDGES = {"val_fraction": 0.25, "test_fraction": 0.25, "negatives": 4, "sampling": "pick_per_level"}
SEED = 3


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tiny_taxonomy(rename: dict[int, str] | None = None) -> Taxonomy:
    """root -> 2 kingdoms -> 2 genera each -> 2 species each: 14 labels, 8 leaves, depth 3.

    Closure: 8 species x 2 label ancestors + 4 genera x 1 = 20 edges; basic: 12; non-basic: 8."""
    parent, name, rank, frontier = [-1], ["root"], ["root"], [0]
    for r in ("kingdom", "genus", "species"):
        nxt = []
        for p in frontier:
            for k in range(2):
                parent.append(p)
                name.append(f"{name[p]}.{k}" if p else f"K{k}")
                rank.append(r)
                nxt.append(len(parent) - 1)
        frontier = nxt
    for node, new in (rename or {}).items():
        name[node] = new
    return Taxonomy.from_parents(parent, name=name, rank=rank, fixed_ranks=True)


def closure_by_walking(tax: Taxonomy) -> set[tuple[int, int]]:
    """Every (label ancestor, descendant) pair, by following parent pointers (independent of ancestor_table)."""
    out = set()
    for v in range(1, tax.n_nodes):
        u = int(tax.parent[v])
        while u > 0:
            out.add((u, v))
            u = int(tax.parent[u])
    return out


def edges_json(seed: int = SEED, **edges) -> str:
    # what workflow/rules/common.smk edges_settings passes
    return json.dumps({"edges": {**EDGES, **edges}, "seed": seed}, sort_keys=True)


def label_cfg(**experiments) -> dict:
    return {"seed": 0, "label_embeddings": {"experiments": experiments}}


def read_log(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def write_features(path: Path, tax: Taxonomy, n: int, width: int, split: str, seed: int) -> None:
    """Encoder features (kind embeddings) as `logits --features` writes them: a cluster per leaf."""
    rng = np.random.default_rng(seed)
    leaf = np.arange(n) % tax.n_leaves
    x = 2.0 * np.eye(tax.n_leaves, width)[leaf] + rng.normal(0, 0.1, (n, width))
    ids = np.array([f"{split}-{i:03d}" for i in range(n)])
    write_matrix(path, "scores", iter([(ids, leaf, x)]),
                 {"kind": "embeddings", "dim": width, "split": split, "dataset": "tiny", "of": "encoder features"})


# ------------------------------------------------------------------ shared, built once


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """A taxonomy.parquet and its edge dataset, made by the command line."""
    root = tmp_path_factory.mktemp("label_graph")
    tax_path = root / "shards" / "tiny" / "taxonomy.parquet"
    tax_path.parent.mkdir(parents=True)
    tiny_taxonomy().write(tax_path)
    edges = root / "edges" / "tiny"
    assert main(["label-edges", "--taxonomy", str(tax_path), "--dataset", "tiny", "--out", str(edges),
                 "--settings", edges_json()]) == 0
    return {"root": root, "taxonomy": tax_path, "edges": edges, "tax": Taxonomy.read(tax_path)}


LABEL_ONLY = {  # label_embeddings.experiments: two with a grid of margins, one with a single margin
    "oe": {"model": "order_embeddings", "dim": 2, "epochs": 6, "batch_size": 5, "lr": 0.1, "negatives": 4,
           "alpha_grid": [0.1, 1.0]},
    "hc": {"model": "hyperbolic_cones", "dim": 2, "epochs": 6, "batch_size": 5, "lr": 0.01, "negatives": 4,
           "alpha_grid": [0.1, 1.0], "options": {"optimizer": "rsgd"}},
    "ec": {"model": "euclidean_cones", "dim": 3, "epochs": 4, "batch_size": 5, "lr": 0.1, "negatives": 4,
           "alpha": 0.5},
}


@pytest.fixture(scope="module")
def trained(graph):
    """Label-only embeddings trained by `taxonbench train-label-embedding`, settings resolved as the rule does."""
    cfg = label_cfg(**LABEL_ONLY)
    out = {}
    for name in LABEL_ONLY:
        directory = graph["root"] / "label_embeddings" / "tiny" / name
        metrics = graph["root"] / "metrics" / "tiny" / name / "label_graph.json"
        settings = json.dumps(label_settings(cfg, name), sort_keys=True)
        assert main(["train-label-embedding", "--taxonomy", str(graph["taxonomy"]), "--edges", str(graph["edges"]),
                     "--out", str(directory), "--metrics", str(metrics), "--settings", settings]) == 0
        out[name] = {"dir": directory, "embedding": directory / "embedding.pt", "metrics": metrics,
                     "settings": label_settings(cfg, name)}
    return out


@pytest.fixture(scope="module")
def features(graph):
    root = graph["root"] / "features" / "tiny" / "cnn"
    root.mkdir(parents=True)
    paths = {}
    for split, n, seed in (("train", 40, 1), ("val", 16, 2), ("test", 16, 3)):
        paths[split] = root / f"{split}.parquet"
        write_features(paths[split], graph["tax"], n, 10, split, seed)
    return paths


# ------------------------------------------------------------------ 1. label-edges


def test_label_edges_writes_a_consistent_edge_dataset(graph):
    tax, d = graph["tax"], graph["edges"]
    manifest = json.loads((d / "manifest.json").read_text())
    table = pq.read_table(d / "edges.parquet").to_pydict()
    parent, child = np.array(table["parent"]), np.array(table["child"])
    split, label, order = np.array(table["split"]), np.array(table["label"]), np.array(table["order"])
    closure = closure_by_walking(tax)
    basic = {(int(tax.parent[v]), v) for v in range(1, tax.n_nodes) if tax.parent[v] > 0}
    assert (len(closure), len(basic)) == (20, 12)

    assert manifest["dataset"] == "tiny" and manifest["n_labels"] == tax.n_nodes - 1 == 14
    assert manifest["closure"] == len(closure) and manifest["non_basic"] == len(closure - basic) == 8
    assert manifest["seed"] == SEED and manifest["options"] == EDGES
    assert manifest["taxonomy"] == taxonomy_digest(tax)
    for s, counts in manifest["splits"].items():
        assert counts == {"positive": int(((split == s) & (label == 1)).sum()),
                          "negative": int(((split == s) & (label == 0)).sum())}, s
    assert sum(c["positive"] + c["negative"] for c in manifest["splits"].values()) == len(parent)

    # the positives are exactly the transitive closure, each once: basic edges, then val / test / pool
    pos = [(int(u), int(v)) for u, v in zip(parent[label == 1], child[label == 1])]
    assert len(pos) == len(set(pos)) and set(pos) == closure
    by_split = {s: {(int(u), int(v)) for u, v in zip(parent[(split == s) & (label == 1)],
                                                        child[(split == s) & (label == 1)])}
                for s in ("basic", "pool", "val", "test")}
    assert by_split["basic"] == basic
    assert len(by_split["val"]) == len(by_split["test"]) == round(0.25 * 8) == 2
    assert by_split["val"] | by_split["test"] | by_split["pool"] == closure - basic
    assert (label[np.isin(split, ["basic", "pool"])] == 1).all()
    # the training pool is ranked 0..n-1 (nested training sets), everything else -1
    assert sorted(order[split == "pool"]) == list(range(len(by_split["pool"])))
    assert (order[split != "pool"] == -1).all()

    # val / test negatives: negatives // 2 corrupted parents (x', y) + as many children (x, y') per positive,
    # none in the closure, none a self-loop, each keeping one side of a positive of its split
    for s in ("val", "test"):
        neg = [(int(u), int(v)) for u, v in zip(parent[(split == s) & (label == 0)],
                                                child[(split == s) & (label == 0)])]
        assert len(neg) == EDGES["negatives"] * len(by_split[s])
        assert not set(neg) & closure and all(u != v and u > 0 and v > 0 for u, v in neg)
        kept_child = sum(any(v == y for _, y in by_split[s]) for _, v in neg[:len(neg) // 2])
        kept_parent = sum(any(u == x for x, _ in by_split[s]) for u, _ in neg[len(neg) // 2:])
        assert kept_child == kept_parent == len(neg) // 2

    data = read_edge_dataset(d, tax)
    sizes = {f: len(data.train(f)[0]) for f in (0.0, 0.25, 0.5, 1.0)}
    assert sizes == {0.0: 12, 0.25: 14, 0.5: 16, 1.0: 12 + len(by_split["pool"])}  # capped at the pool
    small = set(zip(*data.train(0.25)))
    assert small <= set(zip(*data.train(0.5))) and set(zip(*data.train(0.0))) == basic


def test_label_edges_is_fixed_by_its_seed(graph, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    assert main(["label-edges", "--taxonomy", str(graph["taxonomy"]), "--dataset", "tiny", "--out", str(again),
                 "--settings", edges_json()]) == 0
    assert main(["label-edges", "--taxonomy", str(graph["taxonomy"]), "--dataset", "tiny", "--out", str(other),
                 "--settings", edges_json(seed=SEED + 1)]) == 0
    first = pq.read_table(graph["edges"] / "edges.parquet")
    assert pq.read_table(again / "edges.parquet").equals(first)
    assert not pq.read_table(other / "edges.parquet").equals(first)


def test_label_edges_on_a_cyclic_taxonomy_names_the_nodes(capsys, tmp_path):
    # 3 -> 4 -> 3 never reaches the root, nor does 5 below them
    path = tmp_path / "taxonomy.parquet"
    pq.write_table(pa.table({
        "node": pa.array(range(6), pa.int32()), "parent": pa.array([-1, 0, 1, 4, 3, 3], pa.int32()),
        "depth": pa.array([0, 1, 2, 3, 3, 4], pa.int8()), "rank": ["root", "a", "b", "c", "c", "d"],
        "name": ["root", "A", "B", "C", "D", "E"], "leaf": pa.array([None, None, 0, None, None, 1], pa.int32())}),
        path)
    code, out, err = run(capsys, "label-edges", "--taxonomy", path, "--dataset", "x", "--out", tmp_path / "edges",
                         "--settings", edges_json())
    assert code == 2 and out == ""
    assert err.startswith("taxonbench: error: ") and "cycle: nodes 3, 4, 5 never reach the root" in err
    assert str(path) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "edges").exists()


@pytest.mark.parametrize("settings, message", [
    (edges_json(negatives=5), r"label_embeddings\.edges\.negatives: 5 is odd"),
    (edges_json(val_fracton=0.1), (r"label_embeddings\.edges\.val_fracton: unknown key \(did you mean "
                                   r"'val_fraction'\?\)")),
    (edges_json(val_fraction=0.01), r"8 non-basic edges give no val or test edge at val_fraction 0\.01"),
    (edges_json(sampling="per_level"), (r"label_embeddings\.edges\.sampling: must be one of pick_per_level, "
                                        r"uniform; got 'per_level'")),
    ("{edges: 1}", r"--settings: not valid JSON"),
])
def test_label_edges_rejects_bad_settings(capsys, graph, tmp_path, settings, message):
    code, _, err = run(capsys, "label-edges", "--taxonomy", graph["taxonomy"], "--dataset", "tiny",
                       "--out", tmp_path / "e", "--settings", settings)
    assert code == 2 and re.search(message, err), err
    assert not (tmp_path / "e" / "manifest.json").exists()


def test_negative_sampler_draws_pick_per_level_and_only_negatives(graph):
    tax = graph["tax"]
    closure = np.array(sorted(closure_by_walking(tax)))
    rng = np.random.default_rng(0)
    rows = closure[rng.integers(0, len(closure), 2000)]
    shares = {}
    for sampling in ("pick_per_level", "uniform"):
        new_parent, new_child = NegativeSampler(tax, sampling).corrupt(rows[:, 0], rows[:, 1], 4, rng)
        for x, y in ((new_parent, np.repeat(rows[:, 1:], 4, 1)), (np.repeat(rows[:, :1], 4, 1), new_child)):
            assert (x != y).all() and (x > 0).all() and (y > 0).all()
            assert not tax.is_ancestor(x, y).any()  # no (x, y) of the closure
        drawn = np.concatenate([new_parent.ravel(), new_child.ravel()])
        shares[sampling] = np.bincount(tax.depth[drawn], minlength=4)[1:] / drawn.size
    # pick-per-level: every level drawn about as often (not mostly the leaf level that holds 8 of 14 labels)
    assert shares["pick_per_level"].min() > 0.15 and shares["pick_per_level"][-1] < 0.5
    assert shares["uniform"][-1] > 0.5
    # images (joint model): an image is-a its leaf, so a corrupted parent is never the leaf nor an ancestor
    leaves = tax.leaf_nodes[rng.integers(0, tax.n_leaves, 500)]
    anc = tax.ancestor_table[leaves][:, 1:]
    parents = anc[np.arange(500), rng.integers(0, tax.max_depth, 500)]
    new_parent, _ = NegativeSampler(tax).corrupt(parents, leaves, 4, rng, children_inclusive=True)
    assert not tax.is_ancestor(new_parent, np.repeat(leaves[:, None], 4, 1)).any()


# ------------------------------------------------------------------ 2. train-label-embedding


@pytest.mark.parametrize("name", ["oe", "hc", "ec"])
def test_train_label_embedding_keeps_the_best_alpha_and_epoch(graph, trained, name):
    """The margin, then the epoch, of best validation F1 (the first of equal F1), as train_log.csv shows."""
    tax, t = graph["tax"], trained[name]
    assert {p.name for p in t["dir"].iterdir()} >= {"embedding.pt", "train_log.csv"}
    metrics = json.loads(t["metrics"].read_text())
    assert {"test_edge_f1", "full_f1", "val_edge_f1", "alpha", "best_epoch"} <= set(metrics)
    assert metrics["units"]["best_epoch"] == "count" and metrics["units"]["alpha"] == "real"
    assert metrics["n_test_positive"] == 2 and metrics["n_test_negative"] == 8

    log = read_log(t["dir"] / "train_log.csv")
    epochs, grid = LABEL_ONLY[name]["epochs"], LABEL_ONLY[name].get("alpha_grid") or [LABEL_ONLY[name]["alpha"]]
    assert [(r["alpha"], r["epoch"]) for r in log] == [(a, e) for a in grid for e in range(1, epochs + 1)]
    best_per_alpha = {a: max(r["val_f1"] for r in log if r["alpha"] == a) for a in grid}
    chosen = max(best_per_alpha, key=best_per_alpha.get)  # the first of equal F1, in grid order
    assert metrics["alpha"] == chosen
    rows = [r for r in log if r["alpha"] == chosen]
    assert metrics["best_epoch"] == next(r["epoch"] for r in rows if r["val_f1"] == best_per_alpha[chosen])
    assert metrics["val_edge_f1"] == pytest.approx(best_per_alpha[chosen])

    # the saved embedding is the chosen one: its metrics are recomputed from embedding.pt
    state = torch.load(t["embedding"], weights_only=True)
    assert state["model"] == LABEL_ONLY[name]["model"] and state["dim"] == LABEL_ONLY[name]["dim"]
    assert state["taxonomy"] == taxonomy_digest(tax)
    assert (state["alpha"], state["epoch"]) == (metrics["alpha"], metrics["best_epoch"])
    model = build_label_model(state["model"], state["options"], "test")
    points = load_points(t["embedding"], tax, model, "test")
    assert points.shape == (tax.n_nodes, LABEL_ONLY[name]["dim"])
    if model.on_ball:
        assert (points[1:].norm(dim=1) < 1).all()
    data = read_edge_dataset(graph["edges"], tax)
    val_u, val_v, val_pos = data.labelled("val")
    threshold, val_f1 = best_threshold(energies(model, points, val_u, val_v), val_pos)
    assert val_f1 == pytest.approx(metrics["val_edge_f1"])
    test_u, test_v, test_pos = data.labelled("test")
    test = edge_scores(energies(model, points, test_u, test_v), test_pos, threshold)
    assert test.f1 == pytest.approx(metrics["test_edge_f1"], nan_ok=True)
    assert test.threshold == pytest.approx(metrics["test_edge_threshold"])
    assert reconstruction_scores(model, tax, points)["full_f1"] == pytest.approx(metrics["full_f1"])


def test_train_label_embedding_refuses_edges_of_another_taxonomy(capsys, graph, tmp_path):
    other = tmp_path / "taxonomy.parquet"
    tiny_taxonomy(rename={5: "renamed"}).write(other)
    settings = json.dumps(label_settings(label_cfg(**LABEL_ONLY), "ec"))
    code, _, err = run(capsys, "train-label-embedding", "--taxonomy", other, "--edges", graph["edges"],
                       "--out", tmp_path / "out", "--metrics", tmp_path / "m.json", "--settings", settings)
    assert code == 2 and "made from another taxonomy" in err and "rerun `taxonbench label-edges`" in err
    assert not (tmp_path / "m.json").exists()


def test_a_label_graph_without_hidden_edges_stops_with_a_clear_error(capsys, toy_shards, tmp_path):
    taxonomy = toy_shards / "taxonomy.parquet"  # root -> 2 kingdoms -> 2 species each
    code, _, _ = run(capsys, "label-edges", "--taxonomy", taxonomy, "--dataset", "toy", "--out", tmp_path / "e",
                     "--settings", edges_json())
    assert code == 0  # the edge dataset itself is fine (a joint model needs no hidden edges)
    settings = json.dumps(label_settings(label_cfg(**LABEL_ONLY), "ec"))
    code, _, err = run(capsys, "train-label-embedding", "--taxonomy", taxonomy, "--edges", tmp_path / "e",
                       "--out", tmp_path / "out", "--metrics", tmp_path / "m.json", "--settings", settings)
    assert code == 2 and "no val edge" in err and "0 non-basic edges" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "embedding.pt").exists() and not (tmp_path / "m.json").exists()


# ------------------------------------------------------------------ 3. load_points


def test_load_points_stops_on_a_point_outside_the_ball(graph, trained, tmp_path):
    tax = graph["tax"]
    state = torch.load(trained["hc"]["embedding"], weights_only=True)
    model = build_label_model("hyperbolic_cones", state["options"], "test")
    for point, norm in (([0.9, 1.2], "1.5"), ([0.0, 1.0], "1")):  # outside; on the boundary
        moved = copy.deepcopy(state)
        moved["points"][5] = torch.tensor(point, dtype=moved["points"].dtype)
        path = tmp_path / f"moved_{norm}.pt"
        torch.save(moved, path)
        with pytest.raises(TaxonbenchError, match=re.escape(f"{path}: the embedding of node 5 ({tax.name[5]!r}) lies "
                                                            f"outside the Poincaré ball (norm {norm} >= 1)")):
            load_points(path, tax, model, "test")
    # the root's row is not trained and not checked; a point inside is fine
    state["points"][0] = torch.tensor([3.0, 0.0], dtype=state["points"].dtype)
    torch.save(state, tmp_path / "root.pt")
    load_points(tmp_path / "root.pt", tax, model, "test")


def test_load_points_stops_on_a_mismatch(graph, trained, tmp_path):
    tax = graph["tax"]
    oe = build_label_model("order_embeddings", {}, "x")
    where = "label_embeddings.joint.j.init"
    with pytest.raises(TaxonbenchError, match=rf"{where}: .*embedding\.pt is a hyperbolic_cones embedding, not "
                                              r"order_embeddings"):
        load_points(trained["hc"]["embedding"], tax, oe, where)
    with pytest.raises(TaxonbenchError, match=r"embeds another taxonomy than"):
        load_points(trained["oe"]["embedding"], tiny_taxonomy(rename={3: "other"}), oe, where)
    state = torch.load(trained["oe"]["embedding"], weights_only=True)
    state["points"][7, 1] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(TaxonbenchError, match=re.escape(f"node 7 ({tax.name[7]!r}) is not finite")):
        load_points(tmp_path / "nan.pt", tax, oe, where)
    torch.save({"W": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(TaxonbenchError, match=r"not a label embedding \(no 'points'\)"):
        load_points(tmp_path / "other.pt", tax, oe, where)
    with pytest.raises(TaxonbenchError, match=r"label embedding not found"):
        load_points(tmp_path / "missing.pt", tax, oe, where)


# ------------------------------------------------------------------ 4. the joint model


JOINT = {
    "ec_joint": {"model": "euclidean_cones", "dim": 3, "epochs": 3, "batch_size": 16, "lr": 0.01, "negatives": 4,
                 "image_lr": 0.01, "features": "cnn", "init": "ec"},
    "ec_joint_random": {"model": "euclidean_cones", "dim": 3, "epochs": 3, "batch_size": 16, "lr": 0.01,
                        "negatives": 4, "image_lr": 0.01, "features": "cnn", "init": None},
    "hc_joint": {"model": "hyperbolic_cones", "dim": 2, "epochs": 2, "batch_size": 16, "lr": 0.01, "negatives": 4,
                 "image_lr": 0.01, "features": "cnn", "init": "hc", "options": {"optimizer": "adam"}},
}


def joint_cfg(**changes) -> dict:
    blocks = copy.deepcopy(JOINT)
    for name, change in changes.items():
        blocks[name].update(change)
    return {"seed": 0, "label_embeddings": {"experiments": copy.deepcopy(LABEL_ONLY), "joint": blocks}}


def train_joint_cli(capsys, graph, trained, features, name, out, cfg=None, init="auto", train=None):
    settings = joint_settings(cfg or joint_cfg(), name)
    argv = ["train-joint-embedding", "--taxonomy", graph["taxonomy"], "--train", train or features["train"],
            "--val", features["val"], "--out", out, "--metrics", out / "label_graph.json",
            "--settings", json.dumps(settings, sort_keys=True)]
    if init == "auto" and settings["init"] is not None:
        init = trained[settings["init"]]["embedding"]
    if init not in ("auto", None):
        argv += ["--init", init]
    return run(capsys, *argv)


@pytest.mark.parametrize("name", ["ec_joint", "ec_joint_random", "hc_joint"])
def test_train_joint_embedding_keeps_its_best_epoch(capsys, graph, trained, features, tmp_path, name):
    tax = graph["tax"]
    code, out, err = train_joint_cli(capsys, graph, trained, features, name, tmp_path)
    assert code == 0, err
    assert f"{name}: val micro-F1" in out
    metrics = json.loads((tmp_path / "label_graph.json").read_text())
    assert {"val_micro_f1", "best_epoch", "full_f1", "full_tpr", "full_tnr"} <= set(metrics)
    log = read_log(tmp_path / "train_log.csv")
    assert [r["epoch"] for r in log] == list(range(1, JOINT[name]["epochs"] + 1))
    best = max(r["val_micro_f1"] for r in log)
    assert metrics["val_micro_f1"] == pytest.approx(best)
    assert metrics["best_epoch"] == next(r["epoch"] for r in log if r["val_micro_f1"] == best)

    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert state["model"] == JOINT[name]["model"] and state["experiment"] == name
    assert state["epoch"] == metrics["best_epoch"] and state["W"].shape == (JOINT[name]["dim"], 10)
    # model.pt is the state of the best epoch: its validation micro-F1 and full-F1 come back from it
    net = load_joint(tmp_path / "model.pt", tax)
    _, val_leaf, val_x = read_features(features["val"])
    e = net.energies(torch.as_tensor(val_x)).numpy()
    assert e.shape == (16, tax.n_nodes)
    assert level_micro_f1(e, val_leaf, tax) == pytest.approx(metrics["val_micro_f1"])
    labels = net.label_points().detach()
    assert reconstruction_scores(net.model, tax, labels)["full_f1"] == pytest.approx(metrics["full_f1"])
    if net.model.on_ball:
        _, _, train_x = read_features(features["train"])
        assert (net.image_points(torch.as_tensor(train_x)).norm(dim=1) < 1).all()
        assert (labels[1:].norm(dim=1) < 1).all()


@pytest.mark.parametrize("name", ["ec_joint", "hc_joint"])
def test_joint_labels_start_from_the_label_only_embedding(capsys, graph, trained, features, tmp_path, name):
    """At a vanishing learning rate the trained labels are their start: the init embedding, or the model's
    random init of the seed (``init: null``)."""
    tax = graph["tax"]
    frozen = {"lr": 1e-12, "image_lr": 1e-12, "epochs": 1}
    random_name = name + "_null"
    cfg = joint_cfg(**{name: frozen})
    cfg["label_embeddings"]["joint"][random_name] = {**cfg["label_embeddings"]["joint"][name], "init": None}
    init_model = build_label_model(JOINT[name]["model"], JOINT[name].get("options"), "test")
    init_points = load_points(trained[JOINT[name]["init"]]["embedding"], tax, init_model, "test")
    for experiment, out in ((name, tmp_path / "init"), (random_name, tmp_path / "random")):
        code, _, err = train_joint_cli(capsys, graph, trained, features, experiment, out, cfg=cfg)
        assert code == 0, err
    with_init = load_joint(tmp_path / "init" / "model.pt", tax).label_points().detach()
    at_random = load_joint(tmp_path / "random" / "model.pt", tax).label_points().detach()
    assert torch.allclose(with_init[1:], init_points[1:], atol=1e-6)
    start = init_model.points(init_model.init(tax.n_nodes, JOINT[name]["dim"], torch.Generator().manual_seed(0)))
    assert torch.allclose(at_random[1:], start[1:], atol=1e-6)
    assert not torch.allclose(at_random[1:], init_points[1:], atol=1e-3)


def test_joint_logits_are_minus_the_energies(capsys, graph, trained, features, tmp_path):
    tax = graph["tax"]
    code, _, err = train_joint_cli(capsys, graph, trained, features, "ec_joint", tmp_path)
    assert code == 0, err
    out = tmp_path / "logits" / "test.parquet"
    code, stdout, err = run(capsys, "joint-logits", "--model", tmp_path / "model.pt", "--taxonomy", graph["taxonomy"],
                            "--features", features["test"], "--out", out)
    assert code == 0, err
    assert "wrote 16 rows" in stdout
    side = read_sidecar(out)
    assert side["kind"] == JOINT_KIND == "level_softmax_logits" and side["dim"] == tax.n_nodes - 1
    assert (side["split"], side["dataset"], side["method"], side["n_samples"]) == (
        "test", "tiny", "joint:euclidean_cones", 16)
    ids, leaf, theta = (np.concatenate(p) for p in zip(*iter_matrix(out, "scores")))
    f_ids, f_leaf, f_x = read_features(features["test"])
    assert list(ids) == list(f_ids) and (leaf == f_leaf).all() and theta.shape == (16, tax.n_nodes - 1)

    e = load_joint(tmp_path / "model.pt", tax).energies(torch.as_tensor(f_x)).numpy()
    np.testing.assert_allclose(theta, -e[:, 1:], rtol=1e-6, atol=1e-6)  # column j is node j + 1
    for d in range(1, tax.max_depth + 1):
        nodes = tax.nodes_at_depth(d)
        assert (nodes[theta[:, nodes - 1].argmax(1)] == nodes[e[:, nodes].astype(theta.dtype).argmin(1)]).all()
    # ... so the per-level decisions of the logits are Eq. 5.1's
    assert level_micro_f1(np.c_[np.zeros(16), -theta], leaf, tax) == level_micro_f1(e.astype(theta.dtype), leaf, tax)

    # the downstream steps accept the file like any experiment's logits
    scores = tmp_path / "scores.parquet"
    code, _, err = run(capsys, "infer", "--inference", "native", "--logits", out, "--shards", graph["taxonomy"].parent,
                       "--out", scores)
    assert code == 0, err
    assert read_sidecar(scores)["n_samples"] == 16


def test_level_micro_f1_by_hand():
    # root -> A (a leaf at depth 1), B -> b1, b2: nodes 0 root, 1 A, 2 B, 3 b1, 4 b2; leaves A, b1, b2
    tax = Taxonomy.from_parents([-1, 0, 0, 2, 2], name=["root", "A", "B", "b1", "b2"])
    leaf = np.array([0, 1, 2, 2])  # images of A, b1, b2, b2
    energy = np.array([
        # root  A    B    b1   b2        level 1      level 2
        [-9.0, 0.1, 0.5, 0.0, 9.0],   # A  right   (not counted: A has no depth-2 ancestor)
        [-9.0, 0.7, 0.2, 0.4, 0.3],   # B  right   b2 wrong
        [-9.0, 0.0, 0.3, 0.9, 0.1],   # A  wrong   b2 right
        [-9.0, 0.2, 0.2, 0.5, 0.5],   # ties: A wrong (the first), b1 wrong (the first)
    ])
    assert level_micro_f1(energy, leaf, tax) == pytest.approx(3 / 7)
    assert level_micro_f1(energy[:1], leaf[:1], tax) == 1.0
    assert level_micro_f1(energy[[1, 2]], leaf[[1, 2]], tax) == pytest.approx(2 / 4)


def test_train_joint_embedding_rejects_wrong_inputs(capsys, graph, trained, features, tmp_path):
    # logits instead of encoder features
    logits = tmp_path / "logits.parquet"
    write_matrix(logits, "scores", iter([(np.array(["a", "b"]), np.array([0, 1]), np.zeros((2, 8)))]),
                 {"kind": "leaf_logits", "dim": 8})
    code, _, err = train_joint_cli(capsys, graph, trained, features, "ec_joint_random", tmp_path / "a", train=logits)
    assert code == 2 and "holds 'leaf_logits' outputs" in err and "logits --features" in err
    # init set, but no embedding given
    code, _, err = train_joint_cli(capsys, graph, trained, features, "ec_joint", tmp_path / "b", init=None)
    assert code == 2 and "label_embeddings.joint.ec_joint.init: 'ec' needs its embedding (--init)" in err
    # an embedding of another model
    code, _, err = train_joint_cli(capsys, graph, trained, features, "ec_joint", tmp_path / "c",
                                   init=trained["oe"]["embedding"])
    assert code == 2 and "label_embeddings.joint.ec_joint: " in err
    assert "is a order_embeddings embedding, not euclidean_cones" in err
    # a hyperbolic start outside the ball
    state = torch.load(trained["hc"]["embedding"], weights_only=True)
    state["points"][9] *= 2 / state["points"][9].norm()
    torch.save(state, tmp_path / "outside.pt")
    code, _, err = train_joint_cli(capsys, graph, trained, features, "hc_joint", tmp_path / "d",
                                   init=tmp_path / "outside.pt")
    assert code == 2 and f"node 9 ('{graph['tax'].name[9]}') lies outside the Poincaré ball" in err
    for d in "abcd":
        assert not (tmp_path / d / "model.pt").exists() and not (tmp_path / d / "label_graph.json").exists()


def test_train_joint_refuses_an_init_of_another_dimension(graph, trained, features, tmp_path):
    from taxonbench.label_graph.joint import train_joint

    settings = joint_settings(joint_cfg(ec_joint={"dim": 2}), "ec_joint")  # the embedding of 'ec' has d = 3
    with pytest.raises(TaxonbenchError, match=r"label_embeddings\.joint\.ec_joint"):
        train_joint(settings, graph["taxonomy"], features, tmp_path, tmp_path / "m.json",
                    trained["ec"]["embedding"])


def test_joint_logits_refuses_features_of_another_width(capsys, graph, trained, features, tmp_path):
    assert train_joint_cli(capsys, graph, trained, features, "ec_joint_random", tmp_path)[0] == 0
    write_features(tmp_path / "narrow.parquet", graph["tax"], 4, 6, "test", 0)
    code, _, err = run(capsys, "joint-logits", "--model", tmp_path / "model.pt", "--taxonomy", graph["taxonomy"],
                       "--features", tmp_path / "narrow.parquet", "--out", tmp_path / "l.parquet")
    assert code == 2 and "6" in err and "10" in err


def test_features_of_a_trained_model_feed_the_joint_model(capsys, toy_shards, tmp_path):
    """`taxonbench logits --features` on a tiny trained CNN -> train-joint-embedding -> joint-logits."""
    from test_training import toy_settings

    from taxonbench import training

    settings = toy_settings(epochs=1)
    settings["method"] = settings["experiment"] = "marginalization"
    settings["hparams"] = {}
    model = training.train(settings, toy_shards, tmp_path / "cnn", progress=False)
    tax = Taxonomy.read(toy_shards / "taxonomy.parquet")
    feats = {}
    for split, rows in (("train", 32), ("val", 8), ("test", 12)):
        feats[split] = tmp_path / "features" / f"{split}.parquet"
        code, _, err = run(capsys, "logits", "--features", "--model", model, "--shards", toy_shards, "--split", split,
                           "--out", feats[split], "--device", "cpu")
        assert code == 0, err
        side = read_sidecar(feats[split])
        assert side["kind"] == "embeddings" and side["split"] == split and side["n_samples"] == rows
        ids, leaf, x = read_features(feats[split])
        assert x.shape == (rows, side["dim"]) and np.isfinite(x).all() and x.std() > 0
    plain = tmp_path / "logits.parquet"
    assert run(capsys, "logits", "--model", model, "--shards", toy_shards, "--split", "test", "--out", plain,
               "--device", "cpu")[0] == 0
    assert read_sidecar(plain)["kind"] != "embeddings"
    p_ids, p_leaf, p_x = (np.concatenate(p) for p in zip(*iter_matrix(plain, "scores")))
    assert list(p_ids) == list(ids) and (p_leaf == leaf).all() and p_x.shape[1] != x.shape[1]

    cfg = {"seed": 0, "label_embeddings": {"joint": {"j": {"model": "euclidean_cones", "dim": 4, "epochs": 2,
                                                           "batch_size": 8, "negatives": 4,
                                                           "features": "marginalization"}}}}
    code, _, err = run(capsys, "train-joint-embedding", "--taxonomy", toy_shards / "taxonomy.parquet",
                       "--train", feats["train"], "--val", feats["val"], "--out", tmp_path / "j",
                       "--metrics", tmp_path / "j" / "label_graph.json",
                       "--settings", json.dumps(joint_settings(cfg, "j")))
    assert code == 0, err
    assert json.loads((tmp_path / "j" / "label_graph.json").read_text())["n_full_positive"] == 4
    code, _, err = run(capsys, "joint-logits", "--model", tmp_path / "j" / "model.pt",
                       "--taxonomy", toy_shards / "taxonomy.parquet", "--features", feats["test"],
                       "--out", tmp_path / "j" / "test.parquet")
    assert code == 0, err
    side = read_sidecar(tmp_path / "j" / "test.parquet")
    assert (side["kind"], side["dim"], side["dataset"], side["n_samples"]) == (JOINT_KIND, tax.n_nodes - 1, "toy", 12)


# ------------------------------------------------------------------ 5. params checks at Snakemake start


@pytest.fixture(scope="module")
def params():
    from taxonbench.plan import load_params

    return load_params(str(REPO / "params.yaml"))


def _set(path: str, value):
    """A change to ``cfg['label_embeddings']`` at a dotted path; ``value`` DELETE removes the key."""
    def change(cfg):
        *parents, last = path.split(".")
        node = cfg["label_embeddings"]
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    change.__name__ = f"{path}=" + ("<deleted>" if value is DELETE else repr(value))
    return change


DELETE = object()


@pytest.mark.parametrize("change, message", [
    (_set("joint.ec_joint_d10.features", "ec_d10"),
     (r"^label_embeddings\.joint\.ec_joint_d10\.features: 'ec_d10' is not an image experiment run on "
      r"'synthetic_thesis'")),
    (_set("joint.ec_joint_d10.features", "flat_softmax"),  # an image experiment, but of other datasets
     (r"^label_embeddings\.joint\.ec_joint_d10\.features: 'flat_softmax' is not an image experiment run on "
      r"'synthetic_thesis'")),
    (_set("joint.ec_joint_d10.features", "marginalizaton"), r"\.features: .*\(did you mean 'marginalization'\?\)"),
    (_set("joint.ec_joint_d10.features", DELETE), r"^label_embeddings\.joint\.ec_joint_d10\.features: required"),
    (_set("joint.ec_joint_d10.init", "ec_d11"),
     (r"^label_embeddings\.joint\.ec_joint_d10\.init: 'ec_d11' is not a label-only experiment .*"
      r"\(did you mean 'ec_d10'\?\)")),
    (_set("joint.ec_joint_d10.init", "ec_joint_d100"),
     r"^label_embeddings\.joint\.ec_joint_d10\.init: 'ec_joint_d100' is not a label-only experiment"),
    (_set("joint.ec_joint_d10.init", "ec_d5"),
     (r"^label_embeddings\.joint\.ec_joint_d10\.init: 'ec_d5' is a euclidean_cones embedding with d=5; "
      r"'ec_joint_d10' needs euclidean_cones with d=10")),
    (_set("joint.ec_joint_d10.init", "oe_d10"),
     r"^label_embeddings\.joint\.ec_joint_d10\.init: 'oe_d10' is a order_embeddings embedding with d=10"),
    (_set("experiments.oe_d2.epoch", 3),
     r"^label_embeddings\.experiments\.oe_d2\.epoch: unknown key \(did you mean 'epochs'\?\)"),
    (_set("joint.hc_joint_d100.image_rl", 0.1),
     r"^label_embeddings\.joint\.hc_joint_d100\.image_rl: unknown key \(did you mean 'image_lr'\?\)"),
    (_set("experiments.hc_full_d2.options.optimiser", "adam"),
     r"^label_embeddings\.experiments\.hc_full_d2\.options\.optimiser: unknown key \(did you mean 'optimizer'\?\)"),
    (_set("experiments.oe_d2.options", {"K": 0.1}),
     r"^label_embeddings\.experiments\.oe_d2\.options\.K: unknown key"),
    (_set("experiments.oe_d2.model", "order_embedding"),
     (r"^label_embeddings\.experiments\.oe_d2\.model: unknown label-embedding model 'order_embedding' "
      r"\(did you mean 'order_embeddings'\?\)")),
    (_set("edges.val_fracton", 0.1), (r"^label_embeddings\.edges\.val_fracton: unknown key \(did you mean "
                                      r"'val_fraction'\?\)")),
    (_set("experiments.oe_d2.dim", 1), r"^label_embeddings\.experiments\.oe_d2\.dim: must be an integer >= 2; got 1"),
    (_set("joint.ec_joint_d10.dim", 1), r"^label_embeddings\.joint\.ec_joint_d10\.dim: must be an integer >= 2"),
    (_set("experiments.oe_d2.alpha", 0), r"^label_embeddings\.experiments\.oe_d2\.alpha: must be a finite number > 0"),
    (_set("experiments.oe_d2.alpha", -1.0), r"^label_embeddings\.experiments\.oe_d2\.alpha: must be"),
    (_set("joint.ec_joint_d10.alpha", 0.0), r"^label_embeddings\.joint\.ec_joint_d10\.alpha: must be"),
    (_set("experiments.oe_d2.alpha_grid", [0.1, 0.0]), r"^label_embeddings\.experiments\.oe_d2\.alpha_grid: must be"),
    (_set("datasets", ["synthetic_thesys"]),
     (r"^label_embeddings\.datasets\[0\]: 'synthetic_thesys' is not defined under 'datasets' "
      r"\(did you mean 'synthetic_thesis'\?\)")),
    (_set("joint.oe_d2", {"model": "order_embeddings", "features": "marginalization"}),
     r"^label_embeddings: \['oe_d2'\] named both under experiments and joint"),
    pytest.param(_set("experiments.oe_d2.negatives", 5), r"^label_embeddings\.experiments\.oe_d2\.negatives: .*odd",
                 id="label-only-odd-negatives"),
    pytest.param(_set("joint.ec_joint_d10.negatives", 5), r"^label_embeddings\.joint\.ec_joint_d10\.negatives: .*odd",
                 id="joint-odd-negatives"),
    pytest.param(_set("edges.negatives", 5), r"^label_embeddings\.edges\.negatives: 5 is odd",
                 id="edges-odd-negatives"),
], ids=lambda v: getattr(v, "__name__", "msg"))
def test_label_embeddings_block_is_checked_at_start(params, change, message):
    from taxonbench.plan import image_methods

    check_label_embeddings(params, image_methods)  # the shipped block passes
    cfg = copy.deepcopy(params)
    change(cfg)
    with pytest.raises(TaxonbenchError, match=message):
        check_label_embeddings(cfg, image_methods)


def test_check_declared_runs_the_label_embeddings_checks(params):
    from taxonbench.plan import check_declared

    cfg = copy.deepcopy(params)
    cfg["label_embeddings"]["joint"]["ec_joint_d10"]["init"] = "ec_d5"
    with pytest.raises(TaxonbenchError, match=r"label_embeddings\.joint\.ec_joint_d10\.init: 'ec_d5'"):
        check_declared(cfg)


def test_a_joint_experiment_may_not_share_its_name_with_a_method_block(params):
    from taxonbench.plan import image_methods

    cfg = copy.deepcopy(params)
    cfg.setdefault("methods", {})["ec_joint_d10"] = {"method": "flat_softmax"}
    with pytest.raises(TaxonbenchError, match=r"^label_embeddings\.joint\.ec_joint_d10: 'ec_joint_d10' is also a "
                                              r"block under 'methods'"):
        check_label_embeddings(cfg, image_methods)


def test_resolved_settings_fill_the_defaults_and_name_the_block():
    cfg = {"seed": 7, "label_embeddings": {"experiments": {"oe": {"model": "order_embeddings"}},
                                           "joint": {"j": {"model": "euclidean_cones", "features": "cnn"}}}}
    s = label_settings(cfg, "oe")
    assert s["experiment"] == "oe" and s["seed"] == 7 and s["dim"] == 2 and s["alpha_grid"] is None
    assert s["non_basic_fraction"] == 0.5 and s["negatives"] == 10 and s["options"] == {}
    j = joint_settings(cfg, "j")
    assert j["init"] is None and j["image_lr"] == 0.001 and j["features"] == "cnn"
    with pytest.raises(TaxonbenchError, match=r"label_embeddings\.experiments: no experiment 'o' .*"):
        label_settings(cfg, "o")
    with pytest.raises(TaxonbenchError, match=r"label_embeddings\.joint: no experiment 'k'"):
        joint_settings(cfg, "k")
