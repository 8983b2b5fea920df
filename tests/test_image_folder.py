"""The image_folder adapter: taxon paths from folders, on a tree written by the test."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
from PIL import Image

from taxonbench.datasets import DATASETS, prepare_dataset
from taxonbench.errors import TaxonbenchError


def write_jpeg(path, colour, size=(30, 20)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG")


def make(root, **options):
    return DATASETS.get("image_folder")({"root": str(root), "image_size": 16, **options}, name="mine", seed=0)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "mine"
    for split, n in (("train", 2), ("test", 1)):
        for path, colour in ((("Aves", "Corvus", "corax"), (0, 0, 0)), (("Aves", "Corvus", "cornix"), (90, 90, 90)),
                             (("Aves", "Pica", "pica"), (200, 200, 200)), (("Mammalia", "Vulpes", "vulpes"), (255, 90, 0))):
            for i in range(n):
                write_jpeg(root / split / "/".join(path) / f"{i}.JPG", colour)
    (root / "train" / "Aves" / "README.txt").write_text("not an image")
    write_jpeg(root / "train" / "Aves" / "Pica" / "sp" / "0.png", (1, 2, 3))  # a fifth leaf, train only
    return root


def test_folders_give_the_tree_and_the_rows(tree, tmp_path):
    adapter = make(tree, ranks=["class", "genus", "species"])
    tax = adapter.taxonomy()
    assert [tax.path_names(int(v), "/") for v in tax.leaf_nodes] == [
        "Aves/Corvus/corax", "Aves/Corvus/cornix", "Aves/Pica/pica", "Aves/Pica/sp", "Mammalia/Vulpes/vulpes"]
    assert list(tax.rank[tax.leaf_nodes]) == ["species"] * 5 and tax.n_nodes == 1 + 2 + 3 + 5
    assert adapter.splits() == ["train", "test"]
    manifest = prepare_dataset(adapter, tmp_path / "shards", rows_per_shard=100, workers=1)
    assert manifest["splits"]["train"]["rows"] == 9 and manifest["splits"]["test"]["rows"] == 4
    table = pq.read_table(tmp_path / "shards" / manifest["splits"]["test"]["files"][0]).to_pylist()
    assert [r["id"] for r in table] == ["test/Aves/Corvus/corax/0.JPG", "test/Aves/Corvus/cornix/0.JPG",
                                        "test/Aves/Pica/pica/0.JPG", "test/Mammalia/Vulpes/vulpes/0.JPG"]
    assert [r["leaf"] for r in table] == [0, 1, 2, 4]
    img = Image.open(io.BytesIO(table[3]["image"]))
    assert img.size == (16, 16) and abs(img.getpixel((8, 8))[0] - 255) < 8
    assert json.loads((tmp_path / "shards" / "manifest.json").read_text())["split_counts"] == {"train": 9, "test": 4}


def test_default_rank_names_and_ragged_depths(tmp_path):
    write_jpeg(tmp_path / "r" / "train" / "a" / "b" / "0.jpg", (0, 0, 0))
    write_jpeg(tmp_path / "r" / "train" / "c" / "0.jpg", (0, 0, 0))
    tax = make(tmp_path / "r").taxonomy()
    assert sorted(set(tax.rank[1:])) == ["level1", "level2"] and not tax.fixed_ranks


@pytest.mark.parametrize("case,pattern", [
    ("leaf_with_children", r"Aves / Pica is a leaf and also has children"),
    ("image_at_split_root", r"an image directly under the split folder has no taxon"),
    ("short_ranks", r"options\.ranks: 1 names for folders 3 deep"),
    ("no_split", r"options\.root: .*/val not found"),
    ("splits_string", r"options\.splits: must be a list or null"),
])
def test_bad_folders_are_named(tree, case, pattern):
    options = {}
    if case == "leaf_with_children":
        write_jpeg(tree / "test" / "Aves" / "Pica" / "x.jpg", (0, 0, 0))
    elif case == "image_at_split_root":
        write_jpeg(tree / "test" / "x.jpg", (0, 0, 0))
    elif case == "short_ranks":
        options["ranks"] = ["class"]
    elif case == "no_split":
        options["splits"] = ["train", "val"]
    elif case == "splits_string":
        options["splits"] = "train"
    with pytest.raises(TaxonbenchError, match=pattern):
        make(tree, **options).taxonomy()


def test_not_downloadable(tree):
    with pytest.raises(TaxonbenchError, match=r"cannot be downloaded automatically: folders you make"):
        make(tree).download()
