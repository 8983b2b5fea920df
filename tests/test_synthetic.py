"""The synthetic taxonomy dataset: determinism, tree shape, split sizes, images, options, shards."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from taxonbench.datasets import DATASETS, prepare_dataset
from taxonbench.datasets.synthetic import SyntheticTaxonomy, zipf_counts
from taxonbench.errors import TaxonbenchError
from taxonbench.shards import MANIFEST, TAXONOMY, ShardDataset, read_manifest
from taxonbench.taxonomy import RANKS_7, Taxonomy

SMALL = {
    "branching": {"kingdom": [2, 2], "phylum": [1, 2], "class": [1, 1], "order": [1, 2],
                  "family": [1, 1], "genus": [1, 2], "species": [2, 3]},
    "leaves": [4, 40],
    "image_size": 16,
    "train_per_leaf": 3,
    "val_per_leaf": 1,
    "test_per_leaf": 2,
    "long_tail_max": 20,
    "long_tail_min": 2,
}


def make(seed: int = 0, name: str = "syn", **overrides) -> SyntheticTaxonomy:
    return DATASETS.get("synthetic")({**SMALL, **overrides}, name=name, seed=seed)


def all_rows(adapter: SyntheticTaxonomy, split: str) -> dict[str, list]:
    out: dict[str, list] = {"id": [], "image": [], "leaf": []}
    for batch in adapter.rows(split):
        for key in out:
            out[key].extend(batch[key])
    return out


def test_registered():
    assert DATASETS.get("synthetic") is SyntheticTaxonomy


def test_same_seed_same_bytes_other_seed_differs():
    a, b = make(seed=3), make(seed=3)
    for split in a.splits():
        assert all_rows(a, split) == all_rows(b, split)
    ta, tb = a.taxonomy(), b.taxonomy()
    assert list(ta.name) == list(tb.name) and np.array_equal(ta.parent, tb.parent)
    assert all_rows(make(seed=4), "val")["image"] != all_rows(a, "val")["image"]


def test_tree_has_seven_fixed_ranks_and_unique_names():
    tax = make().taxonomy()
    assert tax.fixed_ranks and tax.max_depth == 7
    assert tax.rank_names == list(RANKS_7)
    assert set(tax.depth[tax.leaf_nodes]) == {7}
    lo, hi = SMALL["leaves"]
    assert lo <= tax.n_leaves <= hi
    for d, rank in enumerate(RANKS_7, start=1):
        nodes = tax.nodes_at_depth(d)
        assert set(tax.rank[nodes]) == {rank}
        names = [str(n) for n in tax.name[nodes]]
        assert len(set(names)) == len(names), f"duplicate {rank} names"
        assert all(n.isalpha() for n in names)
        if rank == "species":
            assert all(n.islower() for n in names)
        else:
            assert all(n[0].isupper() and n[1:].islower() for n in names)
        kmin, kmax = SMALL["branching"][rank]
        n_children = tax.n_children[tax.nodes_at_depth(d - 1)]
        assert n_children.min() >= kmin and n_children.max() <= kmax


def test_default_options_give_100_to_200_leaves():
    for seed in range(3):
        tax = DATASETS.get("synthetic")({}, name="default", seed=seed).taxonomy()
        assert 100 <= tax.n_leaves <= 200
        assert tax.is_trivial.any()  # single-child taxa, as in real taxonomies


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), mins=st.lists(st.integers(1, 2), min_size=7, max_size=7),
       extra=st.lists(st.integers(0, 1), min_size=7, max_size=7))
def test_random_branching_respects_bounds(seed, mins, extra):
    branching = {r: [m, m + e] for r, m, e in zip(RANKS_7, mins, extra)}
    lo = int(np.prod(mins))
    hi = int(np.prod([m + e for m, e in zip(mins, extra)]))
    tax = make(seed=seed, branching=branching, leaves=[lo, hi]).taxonomy()
    assert lo <= tax.n_leaves <= hi
    assert set(tax.depth[tax.leaf_nodes]) == {7}


def test_balanced_split_sizes():
    adapter = make()
    n = adapter.taxonomy().n_leaves
    for split, per_leaf in (("train", 3), ("val", 1), ("test", 2)):
        leaves = np.array(all_rows(adapter, split)["leaf"])
        assert np.array_equal(np.bincount(leaves, minlength=n), np.full(n, per_leaf))
    info = adapter.info()
    assert info["image_size"] == 16 and info["variant"] == "balanced"
    assert info["split_counts"] == {"train": 3 * n, "val": n, "test": 2 * n}


def test_long_tailed_train_is_zipf_with_floor_and_eval_splits_are_shared():
    exponent = 1.2
    lt = make(variant="long_tailed", zipf_exponent=exponent)
    n = lt.taxonomy().n_leaves
    counts = np.bincount(np.array(all_rows(lt, "train")["leaf"]), minlength=n)
    ranked = np.sort(counts)[::-1]
    expected = np.maximum(2, np.rint(20 * np.arange(1, n + 1, dtype=float) ** -exponent))
    assert np.array_equal(ranked, expected)
    assert ranked[0] == 20 and ranked[-1] == 2 and np.all(np.diff(ranked) <= 0)
    assert lt.info()["split_counts"]["train"] == int(expected.sum())
    balanced = make()
    for split in ("val", "test"):
        assert all_rows(lt, split) == all_rows(balanced, split)


def test_zipf_counts():
    assert zipf_counts(np.array([4, 0, 1, 2, 3]), 100, 30, 1.0).tolist() == [30, 100, 50, 33, 30]


def test_images_are_pngs_of_the_configured_size_and_ids_are_unique():
    for size in (16, 24):
        rows = all_rows(make(image_size=size), "test")
        for data in rows["image"][:5]:
            with Image.open(io.BytesIO(data)) as img:
                assert img.format == "PNG" and img.mode == "RGB" and img.size == (size, size)
        assert rows["id"][0] == "syn-test-000000"
        assert len(set(rows["id"])) == len(rows["id"])


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"varaint": "balanced"}, "datasets.mysyn.options.varaint"),
        ({"image_size": "big"}, "datasets.mysyn.options.image_size"),
        ({"variant": "skewed"}, "datasets.mysyn.options.variant"),
        ({"branching": {"kingdon": [1, 2]}}, "datasets.mysyn.options.branching.kingdon"),
        ({"branching": {"genus": [3, 2]}}, "datasets.mysyn.options.branching.genus"),
        ({"leaves": [5000, 6000]}, "datasets.mysyn.options.leaves"),
        ({"scale_range": [0.0, 1.0]}, "datasets.mysyn.options.scale_range"),
        ({"code_decay": 1.5}, "datasets.mysyn.options.code_decay"),
        ({"train_per_leaf": 0}, "datasets.mysyn.options.train_per_leaf"),
    ],
)
def test_bad_options_name_their_key(options, key):
    with pytest.raises(TaxonbenchError, match=key.replace(".", r"\.")):
        DATASETS.get("synthetic")(options, name="mysyn", seed=0)


def test_unknown_split_is_an_error():
    with pytest.raises(TaxonbenchError, match="no split 'query'"):
        next(make().rows("query"))


def test_prepare_writes_shards_that_read_back(tmp_path):
    adapter = make()
    out = tmp_path / "shards" / "syn"
    manifest = prepare_dataset(adapter, out, rows_per_shard=20)
    assert (out / MANIFEST).exists() and (out / TAXONOMY).exists()
    assert read_manifest(out) == manifest
    tax = Taxonomy.read(out / TAXONOMY)
    assert tax.fixed_ranks and list(tax.name) == list(adapter.taxonomy().name)
    n_train = manifest["split_counts"]["train"]
    assert manifest["splits"]["train"]["rows"] == n_train
    assert len(manifest["splits"]["train"]["files"]) == -(-n_train // 20)
    data = ShardDataset(out, "train")
    assert len(data) == n_train
    img, leaf = data[len(data) - 1]
    assert img.size == (16, 16) and 0 <= leaf < tax.n_leaves
    assert np.array_equal(data.leaves, all_rows(adapter, "train")["leaf"])


def test_appearance_follows_the_tree():
    """Images of sibling leaves are closer (mean L1 pixel distance) than those of other kingdoms."""
    adapter = make(image_size=24, test_per_leaf=6)
    tax = adapter.taxonomy()
    rows = all_rows(adapter, "test")
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(b)), dtype=np.float32) for b in rows["image"]])
    pixels = pixels.reshape(len(pixels), -1)
    nodes = tax.leaf_nodes[np.array(rows["leaf"])]
    parent = tax.parent[nodes]
    kingdom = tax.ancestor_table[nodes, 1]
    dist = np.abs(pixels[:, None, :] - pixels[None, :, :]).mean(-1)
    siblings = (parent[:, None] == parent[None, :]) & (nodes[:, None] != nodes[None, :])
    far = kingdom[:, None] != kingdom[None, :]
    assert siblings.any() and far.any()
    assert dist[siblings].mean() < 0.7 * dist[far].mean()


def test_plot_samples_writes_a_png(tmp_path):
    from taxonbench.plots.samples import plot_samples, select_leaves

    out = tmp_path / "syn"
    prepare_dataset(make(), out, rows_per_shard=50)
    tax = Taxonomy.read(out / TAXONOMY)
    chosen = select_leaves(tax, 6)
    assert len(chosen) == 6 and len(set(tax.ancestor_table[tax.leaf_nodes[chosen], 1])) == 2
    path = plot_samples(out, tmp_path / "fig" / "samples.png", n_taxa=6, per_taxon=3)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 100


def test_a_subsequence_of_the_ranks_gives_a_shallower_tree():
    """The thesis's stand-ins: 4 levels like ETHEC (order .. species), 2 like hierarchical CIFAR-10."""
    four = SyntheticTaxonomy({"ranks": ["order", "family", "genus", "species"], "leaves": [20, 80]},
                             name="x", seed=0).taxonomy()
    assert four.max_depth == 4 and four.rank_names == ["order", "family", "genus", "species"]
    assert (four.depth[four.leaf_nodes] == 4).all()
    two = SyntheticTaxonomy({"ranks": ["genus", "species"], "branching": {"genus": [2, 3], "species": [2, 3]},
                             "leaves": [4, 9]}, name="x", seed=0).taxonomy()
    assert two.max_depth == 2 and 4 <= two.n_leaves <= 9
    with pytest.raises(TaxonbenchError, match=r"datasets.x.options.ranks: expected a non-empty subsequence"):
        SyntheticTaxonomy({"ranks": ["species", "genus"]}, name="x", seed=0)
    with pytest.raises(TaxonbenchError, match=r"datasets.x.options.branching.kingdom: unknown rank; valid ranks: "
                                              r"genus, species"):
        SyntheticTaxonomy({"ranks": ["genus", "species"], "branching": {"kingdom": [1, 2]}}, name="x", seed=0)


def test_held_out_species_split_the_leaves_and_keep_their_ancestors():
    held = {"part_rank": "species", "unseen_fraction": 0.2}
    whole = SyntheticTaxonomy({}, name="whole", seed=3)
    seen = SyntheticTaxonomy({"part": "seen", **held}, name="seen", seed=3)
    unseen = SyntheticTaxonomy({"part": "unseen", **held}, name="unseen", seed=3)
    full, a, b = whole.taxonomy(), seen.taxonomy(), unseen.taxonomy()

    def paths(tax, nodes):
        return {tax.path_names(int(v)) for v in nodes}

    assert not paths(a, a.leaf_nodes) & paths(b, b.leaf_nodes)  # no species in common
    assert paths(a, a.leaf_nodes) | paths(b, b.leaf_nodes) == paths(full, full.leaf_nodes)
    assert b.n_leaves == int(np.floor(0.2 * full.n_leaves + 1e-9))
    assert a.rank_names == b.rank_names == list(RANKS_7)  # every level kept: the ancestors come along
    assert paths(b, range(1, b.n_nodes)) <= paths(full, range(1, full.n_nodes))  # the whole tree's names
    # a part keeps the whole tree's appearance: the same leaf renders with the same code
    index = {full.path_names(int(v)): i for i, v in enumerate(full.leaf_nodes)}
    for j, v in enumerate(b.leaf_nodes):
        np.testing.assert_array_equal(unseen.codes[v], whole.codes[full.leaf_nodes[index[b.path_names(int(v))]]])


def test_part_rank_must_be_one_of_the_ranks():
    with pytest.raises(TaxonbenchError, match=r"datasets\.d\.options\.part_rank: expected one of the ranks"):
        SyntheticTaxonomy({"part": "seen", "part_rank": "subspecies"}, name="d", seed=0)
