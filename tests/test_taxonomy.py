"""Taxonomy: structure, derived quantities (hand-worked), I/O and validation."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import Taxonomy

#        0
#      /   \
#     1     2
#    / \     \
#   3   4     5
#             |
#             6
PARENTS = [-1, 0, 0, 1, 1, 2, 5]


@pytest.fixture
def tree():
    return Taxonomy.from_parents(PARENTS, name=list("rabcdef"), rank=["root", "k", "k", "p", "p", "p", "c"])


def test_hand_worked_structure(tree):
    assert tree.depth.tolist() == [0, 1, 1, 2, 2, 2, 3]
    assert tree.leaf_nodes.tolist() == [3, 4, 6]
    assert tree.n_leaves_under.tolist() == [3, 2, 1, 1, 1, 1, 1]
    np.testing.assert_allclose(tree.info, np.log2(3 / np.array([3, 2, 1, 1, 1, 1, 1])))
    assert tree.is_trivial.tolist() == [False, False, True, False, False, True, False]
    assert tree.lca([3, 3, 6, 4], [4, 6, 6, 1]).tolist() == [1, 0, 6, 1]
    assert tree.is_ancestor([0, 1, 2, 6], [6, 3, 3, 6]).tolist() == [True, True, False, True]
    assert [c.tolist() for c in tree.children] == [[1, 2], [3, 4], [5], [], [], [6], []]
    assert tree.path_names(6) == "b e f"


def test_sparse_matrices(tree):
    m = tree.leaf_ancestor_matrix.toarray()
    assert m.shape == (3, 7)
    assert m[2].tolist() == [1, 0, 1, 0, 0, 1, 1]
    # bottom-up sums: p(v) = sum of leaf probabilities under v
    p_leaf = np.array([[0.2, 0.3, 0.5]])
    assert (p_leaf @ m).tolist()[0] == pytest.approx([1, 0.5, 0.5, 0.2, 0.3, 0.5, 0.5])
    d = tree.descendant_matrix.toarray()
    assert d[2].tolist() == [0, 0, 1, 0, 0, 1, 1]


def test_roundtrip(tree, tmp_path):
    path = tmp_path / "taxonomy.parquet"
    tree.write(path)
    back = Taxonomy.read(path)
    assert back.parent.tolist() == PARENTS
    assert back.name.tolist() == list("rabcdef")
    table = pq.read_table(path)
    assert table.schema.field("node").type == pa.int32()
    assert table.schema.field("depth").type == pa.int8()
    assert table.column("leaf").to_pylist() == [None, None, None, 0, 1, None, 2]


@pytest.mark.parametrize(
    "parents, match",
    [
        ([-1, -1, 0], r"exactly one root.*2 roots \(nodes 0, 1\)"),
        ([0, 0, 1], r"no root"),
        ([-1, 2, 1], r"cycle: nodes 1, 2"),
        ([-1, 0, 9], r"unknown parent for nodes 2 \(parents 9"),
        ([-1, 1, 0], r"cycle: nodes 1 are their own parent"),
    ],
)
def test_validation_names_the_nodes(parents, match):
    with pytest.raises(TaxonbenchError, match=match):
        Taxonomy.from_parents(parents)


def test_duplicate_ids_and_fixed_ranks():
    with pytest.raises(TaxonbenchError, match="duplicate node ids: 1"):
        Taxonomy.from_parents([-1, 0, 0], node=[0, 1, 1])
    with pytest.raises(TaxonbenchError, match="fixed ranks.*nodes 3"):
        Taxonomy.from_parents([-1, 0, 0, 1], fixed_ranks=True)
    Taxonomy.from_parents([-1, 0, 0, 1], fixed_ranks=False)  # allowed without fixed ranks


def test_read_errors(tmp_path, tree):
    with pytest.raises(TaxonbenchError, match="not found"):
        Taxonomy.read(tmp_path / "nope.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(TaxonbenchError, match="bad.parquet: not a readable Parquet"):
        Taxonomy.read(bad)
    # a malformed file: two roots, the message names the file and the nodes
    path = tmp_path / "two_roots.parquet"
    tree.write(path)
    table = pq.read_table(path)
    parent = table.column("parent").to_pylist()
    parent[1] = -1
    pq.write_table(table.set_column(1, "parent", pa.array(parent, pa.int32())), path)
    with pytest.raises(TaxonbenchError, match=r"two_roots.parquet: .*2 roots \(nodes 0, 1\)"):
        Taxonomy.read(path)


@st.composite
def random_trees(draw):
    n = draw(st.integers(2, 40))
    parents = [-1] + [draw(st.integers(0, i - 1)) for i in range(1, n)]
    return parents


@settings(max_examples=60, deadline=None)
@given(random_trees())
def test_lca_matches_naive_walk(parents):
    tree = Taxonomy.from_parents(parents)
    n = len(parents)

    def path(v):
        out = [v]
        while parents[out[-1]] != -1:
            out.append(parents[out[-1]])
        return out[::-1]

    a = np.repeat(np.arange(n), n)
    b = np.tile(np.arange(n), n)
    expected = []
    for u, v in zip(a, b):
        pu, pv = path(u), path(v)
        common = [x for x, y in zip(pu, pv) if x == y]
        expected.append(common[-1])
    assert tree.lca(a, b).tolist() == expected
    assert tree.n_leaves_under.sum() == sum(len(path(int(v))) for v in tree.leaf_nodes)
