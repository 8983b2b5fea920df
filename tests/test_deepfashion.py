"""The DeepFashion In-Shop adapter on a tiny fixture in the benchmark's layout.

``Eval/list_eval_partition.txt`` (count, header ``image_name item_id evaluation_status``, rows
``img/WOMEN/Blouses_Shirts/id_00000001/02_1_front.jpg id_00000001 train``), images under ``img/``
(or ``img.zip``), ``Anno/list_item_inshop.txt`` (count, header ``item_id``, ids).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taxonbench.datasets import DATASETS, prepare_dataset
from taxonbench.datasets.deepfashion import pick_unseen
from taxonbench.errors import TaxonbenchError
from dataset_fixtures import split_table

# (gender, category folder, item id, variations, train or test item); id_00000001 is listed under two
# categories (a "repeating product"), Denim under both genders
ITEMS = [
    ("WOMEN", "Blouses_Shirts", "id_00000001", ["01", "02"], "train"),
    ("WOMEN", "Blouses_Shirts", "id_00000002", ["01"], "test"),
    ("WOMEN", "Denim", "id_00000003", ["01"], "train"),
    ("MEN", "Denim", "id_00000004", ["01", "03"], "test"),
    ("MEN", "Shirts_Polos", "id_00000005", ["02"], "train"),
    ("MEN", "Shirts_Polos", "id_00000006", ["01"], "test"),
    ("WOMEN", "Dresses", "id_00000007", ["01"], "train"),
    ("WOMEN", "Dresses", "id_00000008", ["04"], "test"),
    ("WOMEN", "Dresses", "id_00000001", ["05"], "train"),
]
# hand-worked leaves (category, product, variation) in path order
LEAVES = [("Blouses_Shirts", "id_00000001", "01"), ("Blouses_Shirts", "id_00000001", "02"),
          ("Blouses_Shirts", "id_00000002", "01"), ("Denim", "id_00000003", "01"), ("Denim", "id_00000004", "01"),
          ("Denim", "id_00000004", "03"), ("Dresses", "id_00000001", "05"), ("Dresses", "id_00000007", "01"),
          ("Dresses", "id_00000008", "04"), ("Shirts_Polos", "id_00000005", "02"),
          ("Shirts_Polos", "id_00000006", "01")]
SIZE = 16


def colour(leaf: int) -> tuple[int, int, int]:
    return (20 * leaf + 10, 240 - 20 * leaf, (70 * leaf) % 256)


def write_inshop(root: Path, items=ITEMS) -> list[tuple[str, str, str]]:
    """The benchmark layout under ``root``; returns the partition rows."""
    rows = []
    for gender, cat, item, variations, kind in items:
        for v in variations:
            leaf = LEAVES.index((cat, item, v))
            for pose, view in (("1", "front"), ("2", "side")):
                name = f"img/{gender}/{cat}/{item}/{v}_{pose}_{view}.jpg"
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (20, 20), colour(leaf)).save(root / name, format="JPEG", quality=95)
                status = "train" if kind == "train" else ("query" if pose == "1" else "gallery")
                rows.append((name, item, status))
    (root / "Eval").mkdir(parents=True, exist_ok=True)
    lines = [str(len(rows)), "image_name item_id evaluation_status"] + [f"{n} {i} {s}" for n, i, s in rows]
    (root / "Eval" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    ids = sorted({i for _, _, i, _, _ in items})
    (root / "Anno").mkdir(exist_ok=True)
    (root / "Anno" / "list_item_inshop.txt").write_text("\n".join([str(len(ids)), "item_id", *ids]) + "\n")
    return rows


def make(root: Path, seed: int = 0, **options):
    return DATASETS.get("deepfashion_inshop")({"root": str(root), "image_size": SIZE, **options},
                                              name="inshop_fixture", seed=seed)


@pytest.fixture
def inshop(tmp_path):
    root = tmp_path / "raw" / "inshop"
    return root, write_inshop(root)


# ---------------------------------------------------------------- taxonomy
def test_taxonomy_category_product_variation(inshop):
    root, _ = inshop
    tax = make(root).taxonomy()
    assert tax.rank_names == ["category", "product", "variation"]
    assert [int((tax.depth == d).sum()) for d in (1, 2, 3)] == [4, 9, 11]
    assert [tax.path_names(int(v), "/") for v in tax.leaf_nodes] == ["/".join(p) for p in LEAVES]
    # id_00000001 under two categories: two product nodes
    assert sum(str(tax.name[v]) == "id_00000001" for v in range(tax.n_nodes)) == 2


@pytest.mark.parametrize("options,counts,leaves", [
    ({"leaf_level": "product"}, [4, 9], 9),
    ({"leaf_level": "category"}, [4], 4),
    ({"merge_genders": False}, [5, 9, 11], 11),  # MEN_Denim and WOMEN_Denim
    ({"drop_repeating_products": True}, [4, 7, 8], 8),
])
def test_options_shape_the_tree(inshop, options, counts, leaves):
    root, _ = inshop
    tax = make(root, **options).taxonomy()
    assert [int((tax.depth == d).sum()) for d in range(1, len(counts) + 1)] == counts
    assert tax.n_leaves == leaves and tax.max_depth == len(counts)


# ------------------------------------------------------------------ shards
def test_prepare_writes_official_and_seen_unseen_splits(inshop, tmp_path):
    root, partition = inshop
    out = tmp_path / "shards"
    adapter = make(root, unseen_categories=["Denim", "Dresses"])
    manifest = prepare_dataset(adapter, out, rows_per_shard=4)
    counts = {s: manifest["splits"][s]["rows"] for s in manifest["splits"]}
    assert counts == {"train": 12, "val": 5, "test": 5, "query": 5, "gallery": 5,
                      "seen_train": 6, "seen_query": 2, "seen_gallery": 2,
                      "unseen_train": 6, "unseen_query": 3, "unseen_gallery": 3}
    assert manifest["unseen_categories"] == ["Denim", "Dresses"]
    assert manifest["seen_categories"] == ["Blouses_Shirts", "Shirts_Polos"]
    status = {n: s for n, _, s in partition}
    tables = {s: split_table(out, s) for s in counts}
    assert tables["val"]["id"] == tables["gallery"]["id"] and tables["test"]["id"] == tables["query"]["id"]
    for split, table in tables.items():
        official = split.rsplit("_", 1)[-1]
        official = {"val": "gallery", "test": "query"}.get(official, official)
        for rid, leaf, product, variation, gender, path, blob in zip(*(table[k] for k in (
                "id", "leaf", "product", "variation", "gender", "source_path", "image"))):
            assert status[path] == official and rid == path[4:-4]
            g, cat, item, file = path.split("/")[1:]
            assert (gender, product, variation) == (g, item, file.split("_")[0])
            assert LEAVES[leaf] == (cat, item, variation)
            if split.startswith(("seen_", "unseen_")):
                assert (cat in ("Denim", "Dresses")) == split.startswith("unseen_")
            with Image.open(io.BytesIO(blob)) as img:
                assert img.size == (SIZE, SIZE)
                assert np.abs(np.asarray(img, float).reshape(-1, 3).mean(0) - colour(leaf)).max() < 12


def test_seen_part_restricts_taxonomy_and_splits(inshop, tmp_path):
    root, _ = inshop
    adapter = make(root, part="seen", unseen_categories=["Denim", "Dresses"], splits=["train", "test"])
    tax = adapter.taxonomy()
    assert [str(tax.name[v]) for v in tax.nodes_at_depth(1)] == ["Blouses_Shirts", "Shirts_Polos"]
    assert tax.n_leaves == 5
    manifest = prepare_dataset(adapter, tmp_path / "seen", rows_per_shard=100)
    assert {s: v["rows"] for s, v in manifest["splits"].items()} == {"train": 6, "test": 2}


def test_unseen_categories_are_a_seeded_draw():
    cats = [f"c{i:02d}" for i in range(17)]
    picks = {seed: pick_unseen(cats, 0.5, seed, b"deepfashion-unseen") for seed in range(6)}
    assert all(len(p) == 8 and set(p) <= set(cats) and p == sorted(p) for p in picks.values())
    assert picks[0] == pick_unseen(list(reversed(cats)), 0.5, 0, b"deepfashion-unseen")  # order-free
    assert len({tuple(p) for p in picks.values()}) > 1


def test_default_unseen_split_partitions_the_categories(inshop):
    root, _ = inshop
    a = make(root, seed=3)
    unseen = a.info()["unseen_categories"]
    assert len(unseen) == 2 and set(unseen) | set(a.info()["seen_categories"]) == {c for c, _, _ in LEAVES}
    assert make(root, seed=3).info()["unseen_categories"] == unseen


# ------------------------------------------------------------------ errors
def test_missing_field_names_file_and_line(inshop):
    root, _ = inshop
    path = root / "Eval" / "list_eval_partition.txt"
    lines = path.read_text().splitlines()
    lines[6] = " ".join(lines[6].split()[:2])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TaxonbenchError, match=r"list_eval_partition\.txt: line 7: missing field "
                                              r"'evaluation_status'"):
        make(root).taxonomy()


@pytest.mark.parametrize("edit,pattern", [
    (lambda ls: ls[:-3], r"line 1 announces 22 images, the file lists 19 \(truncated\?\)"),
    (lambda ls: [ls[0], "image_name evaluation_status"] + ls[2:], r"line 2: expected the header"),
    (lambda ls: ls[:4] + [ls[4].replace(" train", " training")] + ls[5:], r"line 5: evaluation_status 'training'"),
    (lambda ls: ls[:3] + [ls[3].replace("id_00000001 ", "id_00000009 ")] + ls[4:],
     r"line 4: item_id 'id_00000009' differs from the image's folder"),
    (lambda ls: ls[:3] + [ls[3].replace("img/WOMEN/", "images/WOMEN/")] + ls[4:], r"line 4: image_name"),
])
def test_malformed_partition_rows_are_named(inshop, edit, pattern):
    root, _ = inshop
    path = root / "Eval" / "list_eval_partition.txt"
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    with pytest.raises(TaxonbenchError, match=pattern):
        make(root).taxonomy()


def test_item_list_is_checked(inshop):
    root, _ = inshop
    path = root / "Anno" / "list_item_inshop.txt"
    path.write_text("7\nitem_id\n" + "\n".join(f"id_0000000{i}" for i in range(2, 9)) + "\n")
    with pytest.raises(TaxonbenchError, match=r"list_item_inshop\.txt: item id_00000001 of the partition"):
        make(root).taxonomy()


def test_corrupt_image_names_file_and_line(inshop, tmp_path):
    root, partition = inshop
    name = partition[4][0]
    (root / name).write_bytes(b"\xff\xd8\xff\xe0 broken")
    with pytest.raises(TaxonbenchError) as info:
        prepare_dataset(make(root), tmp_path / "shards", rows_per_shard=100)
    assert name in str(info.value) and "line 7" in str(info.value) and "corrupt image" in str(info.value)


def test_no_download_says_where_to_get_the_files(tmp_path):
    with pytest.raises(TaxonbenchError) as info:
        make(tmp_path / "nowhere", download=True).taxonomy()
    assert "cannot be downloaded automatically" in str(info.value) and "InShopRetrieval" in str(info.value)
    with pytest.raises(TaxonbenchError, match=r"Eval/list_eval_partition\.txt, img/ under .*Google Drive"):
        make(tmp_path / "nowhere").taxonomy()


def test_img_zip_is_extracted_and_a_truncated_one_is_named(tmp_path):
    src = tmp_path / "src"
    write_inshop(src)
    root = tmp_path / "raw"
    (root / "Eval").mkdir(parents=True)
    (root / "Eval" / "list_eval_partition.txt").write_bytes((src / "Eval" / "list_eval_partition.txt").read_bytes())
    with zipfile.ZipFile(root / "img.zip", "w") as zf:
        for path in sorted((src / "img").rglob("*")):
            zf.write(path, path.relative_to(src).as_posix())
    good = (root / "img.zip").read_bytes()
    (root / "img.zip").write_bytes(good[: len(good) // 2])
    with pytest.raises(TaxonbenchError, match=r"img\.zip: corrupt or truncated archive"):
        make(root).taxonomy()
    assert not (root / "img").exists()
    (root / "img.zip").write_bytes(good)
    assert make(root).taxonomy().n_leaves == 11 and (root / "img" / "WOMEN").is_dir()


@pytest.mark.parametrize("options,pattern", [
    ({"leaf_level": "image"}, r"options\.leaf_level: expected one of category, product, variation"),
    ({"part": "both"}, r"options\.part: expected one of all, seen, unseen"),
    ({"unseen_fraction": 1.5}, r"options\.unseen_fraction: expected a number in \[0, 1\)"),
    ({"unseen_categories": "Denim"}, r"options\.unseen_categories: must be a list or null"),
    ({"splits": ["train", "seen_train"], "part": "seen"}, r"options\.splits: 'seen_train' is not a split"),
    ({"unseen_fracton": 0.3}, r"options\.unseen_fracton: unknown key \(did you mean 'unseen_fraction'\?\)"),
])
def test_options_are_validated(tmp_path, options, pattern):
    with pytest.raises(TaxonbenchError, match=pattern):
        make(tmp_path, **options)


def test_unknown_unseen_category_is_named(inshop):
    root, _ = inshop
    with pytest.raises(TaxonbenchError, match=r"unseen_categories: Skirts not among the categories"):
        make(root, unseen_categories=["Skirts"]).taxonomy()
