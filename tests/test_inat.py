"""The iNaturalist adapter on tiny fixtures written in the upstream layout and JSON schema.

iNat2021 (https://github.com/visipedia/inat_comp/tree/master/2021): ``train_mini.json`` /
``val.json`` at the root, images at ``train_mini/<NNNNN_Kingdom_..._epithet>/<uuid>.jpg``.
iNat2018: ``train2018.json`` / ``val2018.json`` with obfuscated categories, the real ones in
``categories.json``, images at ``train_val2018/<super category>/<category id>/<hash>.jpg``.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taxonbench import download
from taxonbench.datasets import DATASETS, prepare_dataset
from taxonbench.datasets.images import resize_center_crop
from taxonbench.datasets.inat import INAT21_RANK_COUNTS
from taxonbench.errors import TaxonbenchError
from taxonbench.shards import read_manifest
from taxonbench.taxonomy import RANKS_7, Taxonomy
from dataset_fixtures import split_table

# (id, kingdom, phylum, class, order, family, genus, epithet), deliberately not in id order;
# the genus Morus is both a bird (Sulidae) and a plant (Moraceae).
CATS = [
    (5, "Animalia", "Chordata", "Aves", "Suliformes", "Sulidae", "Morus", "bassanus"),
    (0, "Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Corvus", "corax"),
    (3, "Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Moraceae", "Morus", "alba"),
    (1, "Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Corvus", "corone"),
    (4, "Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Rosaceae", "Rosa", "canina"),
    (2, "Animalia", "Arthropoda", "Insecta", "Coleoptera", "Cleridae", "Trichodes", "apiarius"),
]
EPITHETS_BY_ID = [c[7] for c in sorted(CATS)]  # leaf i = the i-th category by id
COLOURS = {0: (20, 20, 20), 1: (200, 30, 30), 2: (30, 200, 30), 3: (30, 30, 200), 4: (220, 220, 40),
           5: (40, 220, 220)}
N_TRAIN, N_VAL = 3, 4  # images per category
SIZE = 16


def write_jpeg(path: Path, colour, size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG", quality=95)


def coco(images, annotations, categories, year=2021) -> dict:
    return {"info": {"year": year, "version": "1.0", "description": "fixture", "contributor": "tests",
                     "url": "", "date_created": "2021-01-01 00:00:00"},
            "images": images, "annotations": annotations, "categories": categories,
            "licenses": [{"id": 1, "name": "CC BY 4.0", "url": ""}]}


def category_2021(c) -> dict:
    cid, k, p, cl, o, f, g, e = c
    return {"id": cid, "name": f"{g} {e}", "common_name": "", "supercategory": cl,
            "kingdom": k, "phylum": p, "class": cl, "order": o, "family": f, "genus": g,
            "specific_epithet": e, "image_dir_name": f"{cid:05d}_{k}_{p}_{cl}_{o}_{f}_{g}_{e}"}


def write_inat2021(root: Path, train: str = "train_mini") -> dict[str, dict[int, int]]:
    """Write ``<train>.json``, ``val.json`` and their images; return {split file: {image id: category}}."""
    categories = [category_2021(c) for c in CATS]
    truth: dict[str, dict[int, int]] = {}
    next_id = 1
    for split, per_cat in ((train, N_TRAIN), ("val", N_VAL)):
        images, annotations, truth[split] = [], [], {}
        for cat in categories:
            for _ in range(per_cat):
                image_id, next_id = next_id, next_id + 1
                file_name = f"{split}/{cat['image_dir_name']}/{uuid.UUID(int=image_id)}.jpg"
                write_jpeg(root / file_name, COLOURS[cat["id"]])
                images.append({"id": image_id, "width": 40, "height": 30, "file_name": file_name, "license": 1,
                               "rights_holder": "someone", "date": "2020-06-01 10:00:00", "latitude": 1.0,
                               "longitude": 2.0, "location_uncertainty": 10})
                annotations.append({"id": image_id, "image_id": image_id, "category_id": cat["id"]})
                truth[split][image_id] = cat["id"]
        (root / f"{split}.json").write_text(json.dumps(coco(images, annotations, categories)))
    return truth


def make(root: Path, seed: int = 0, **options):
    return DATASETS.get("inat")({"root": str(root), "image_size": SIZE, **options}, name="inat_fixture", seed=seed)


@pytest.fixture
def inat21(tmp_path):
    root = tmp_path / "raw" / "inat2021"
    truth = write_inat2021(root)
    return root, truth


# ---------------------------------------------------------------- taxonomy
def test_taxonomy_ranks_parents_and_names(inat21):
    root, _ = inat21
    tax = make(root).taxonomy()
    assert tax.fixed_ranks and tax.rank_names == list(RANKS_7)
    counts = [int((tax.depth == d).sum()) for d in range(1, 8)]
    assert counts == [2, 3, 3, 4, 5, 5, 6]
    assert tax.n_nodes == 1 + sum(counts) and tax.n_leaves == 6
    paths = {tax.path_names(int(v), "/") for v in tax.leaf_nodes}
    assert paths == {"/".join(c[1:]) for c in CATS}
    # two genera named Morus: different nodes, parents Sulidae and Moraceae
    morus = [v for v in range(tax.n_nodes) if tax.name[v] == "Morus"]
    assert len(morus) == 2 and {tax.name[tax.parent[v]] for v in morus} == {"Sulidae", "Moraceae"}
    assert {tax.path_names(tax.parent[tax.parent[v]], " ") for v in morus} == {
        "Animalia Chordata Aves Suliformes", "Plantae Tracheophyta Magnoliopsida Rosales"}
    for v in range(1, tax.n_nodes):
        assert tax.rank[v] == RANKS_7[tax.depth[v] - 1]


def test_leaf_index_is_category_id_order(inat21):
    root, _ = inat21
    tax = make(root).taxonomy()
    assert [str(tax.name[v]) for v in tax.leaf_nodes] == EPITHETS_BY_ID
    assert str(tax.name[tax.parent[tax.leaf_nodes[0]]]) == "Corvus"


# ----------------------------------------------------------------- shards
def test_prepare_writes_splits_rows_and_labels(inat21, tmp_path):
    root, truth = inat21
    out = tmp_path / "shards"
    manifest = prepare_dataset(make(root), out, rows_per_shard=10)
    assert read_manifest(out) == manifest
    assert {s: manifest["splits"][s]["rows"] for s in ("train", "val", "test")} == {
        "train": 6 * N_TRAIN, "val": 6 * N_VAL // 2, "test": 6 * N_VAL // 2}
    assert manifest["version"] == "2021_mini" and manifest["image_size"] == SIZE
    assert manifest["n_leaves"] == 6 and manifest["n_nodes"] == 29
    assert Taxonomy.read(out / "taxonomy.parquet").n_nodes == 29

    rows = {s: split_table(out, s) for s in ("train", "val", "test")}
    leaf_of = {cid: i for i, cid in enumerate(sorted(c[0] for c in CATS))}
    assert rows["train"]["id"] == [f"train_mini-{i}" for i in sorted(truth["train_mini"])]
    for split, file in (("train", "train_mini"), ("val", "val"), ("test", "val")):
        for rid, leaf, path in zip(rows[split]["id"], rows[split]["leaf"], rows[split]["source_path"]):
            image_id = int(rid.rsplit("-", 1)[1])
            assert rid.startswith(f"{file}-") and leaf == leaf_of[truth[file][image_id]]
            assert path.startswith(f"{file}/") and (root / path).is_file()
    # val and test: disjoint halves of val.json, two images of each species in each
    val_ids, test_ids = set(rows["val"]["id"]), set(rows["test"]["id"])
    assert not val_ids & test_ids and val_ids | test_ids == {f"val-{i}" for i in truth["val"]}
    assert np.bincount(rows["val"]["leaf"]).tolist() == [N_VAL // 2] * 6
    assert np.bincount(rows["test"]["leaf"]).tolist() == [N_VAL // 2] * 6


def test_val_test_split_is_seeded(inat21):
    root, _ = inat21
    test_ids = lambda seed: [r.image_id for r in make(root, seed=seed).records("test")]  # noqa: E731
    assert test_ids(0) == test_ids(0)
    assert any(test_ids(0) != test_ids(s) for s in (1, 2, 3))


def test_odd_val_counts_split_into_near_halves(tmp_path):
    from taxonbench.datasets.inat import Record, split_val_test

    records = [Record(i, i, f"val/{i}.jpg", i % 2) for i in range(1, 12)]  # 6 and 5 per category
    val, test = split_val_test(records, seed=7)
    for cid, n in ((0, 5), (1, 6)):
        n_test = sum(r.category_id == cid for r in test)
        assert n_test in (n // 2, n - n // 2)
        assert n_test + sum(r.category_id == cid for r in val) == n
    assert sorted(r.image_id for r in val + test) == list(range(1, 12))


def test_images_are_resized_center_cropped_jpegs(inat21, tmp_path):
    root, _ = inat21
    out = tmp_path / "shards"
    prepare_dataset(make(root), out, rows_per_shard=100)
    rows = split_table(out, "train")
    for blob, leaf in zip(rows["image"], rows["leaf"]):
        assert blob[:3] == b"\xff\xd8\xff"  # JPEG
        with Image.open(io.BytesIO(blob)) as img:
            assert img.format == "JPEG" and img.size == (SIZE, SIZE) and img.mode == "RGB"
            mean = np.asarray(img, dtype=float).reshape(-1, 3).mean(0)
        cid = sorted(c[0] for c in CATS)[leaf]
        assert np.abs(mean - COLOURS[cid]).max() < 12


@pytest.mark.parametrize("size", [(40, 30), (30, 40)])
def test_resize_center_crop_keeps_the_centre(size):
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[...] = (0, 0, 255)  # blue border
    arr[h // 2 - 5:h // 2 + 5, w // 2 - 5:w // 2 + 5] = (255, 0, 0)  # red centre
    out = np.asarray(resize_center_crop(Image.fromarray(arr), 16))
    assert out.shape == (16, 16, 3)
    assert out[8, 8, 0] > 200 and out[8, 8, 2] < 60  # centre still red
    assert out[0, 0, 2] > 200 and out[0, 0, 0] < 60  # corner still blue
    # short side 30 -> 16: the long side 40 -> 21, of which the middle 16 are kept
    assert np.asarray(resize_center_crop(Image.fromarray(arr), 30)).shape == (30, 30, 3)


# ----------------------------------------------------------------- errors
def test_missing_rank_field_names_file_category_and_field(inat21):
    root, _ = inat21
    data = json.loads((root / "train_mini.json").read_text())
    del next(c for c in data["categories"] if c["id"] == 3)["family"]
    (root / "train_mini.json").write_text(json.dumps(data))
    with pytest.raises(TaxonbenchError, match=r"train_mini\.json: category 3: missing field 'family'"):
        make(root).taxonomy()


def test_corrupt_image_names_file_and_annotation(inat21, tmp_path):
    root, _ = inat21
    data = json.loads((root / "val.json").read_text())
    image = data["images"][5]
    (root / image["file_name"]).write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    ann = next(a for a in data["annotations"] if a["image_id"] == image["id"])
    with pytest.raises(TaxonbenchError) as info:
        prepare_dataset(make(root), tmp_path / "shards", rows_per_shard=100)
    msg = str(info.value)
    assert image["file_name"] in msg and f"annotation id {ann['id']}" in msg and "corrupt image" in msg
    assert not (tmp_path / "shards").exists()  # nothing half-prepared


def test_missing_image_names_file_and_annotation(inat21, tmp_path):
    root, _ = inat21
    data = json.loads((root / "train_mini.json").read_text())
    (root / data["images"][0]["file_name"]).unlink()
    with pytest.raises(TaxonbenchError, match=r"\(annotation id 1\): image not found"):
        prepare_dataset(make(root), tmp_path / "shards", rows_per_shard=100)


def test_missing_root_says_what_to_place_where(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(TaxonbenchError) as info:
        make(root).taxonomy()
    msg = str(info.value)
    for expected in (str(root), "does not exist", "train_mini.json", "val.json", "train_mini/", "val/",
                     "train_mini.tar.gz", "download: true"):
        assert expected in msg, msg


def test_missing_annotation_file_is_named(inat21):
    root, _ = inat21
    (root / "val.json").unlink()
    with pytest.raises(TaxonbenchError, match=r"val\.json not found; expected the iNaturalist 2021_mini"):
        make(root).taxonomy()


def test_annotation_with_unknown_category_is_named(inat21):
    root, _ = inat21
    data = json.loads((root / "val.json").read_text())
    data["annotations"][0]["category_id"] = 99
    (root / "val.json").write_text(json.dumps(data))
    with pytest.raises(TaxonbenchError, match=r"val\.json: annotation \d+: category_id 99 is not among"):
        make(root).taxonomy()


@pytest.mark.parametrize("options,pattern", [
    ({"version": "2019"}, r"options\.version: expected one of 2017, 2018, 2021, 2021_mini"),
    ({"image_sise": 32}, r"options\.image_sise: unknown key \(did you mean 'image_size'\?\)"),
    ({"download": "yes"}, r"options\.download: must be true or false"),
    ({"image_size": 4}, r"options\.image_size: expected at least 8"),
])
def test_options_are_validated(tmp_path, options, pattern):
    with pytest.raises(TaxonbenchError, match=pattern):
        make(tmp_path, **options)


# ------------------------------------------------------------------ 2018
def test_inat2018_uses_categories_json_and_the_shared_image_folder(tmp_path):
    root = tmp_path / "inat2018"
    real, obfuscated = [], []
    for cid, k, p, cl, o, f, g, e in CATS:
        name = f"{g} {e}" if cid != 2 else "Clerus apiarius"  # a binomial not starting with its genus
        real.append({"id": cid, "name": name, "supercategory": cl, "kingdom": k, "phylum": p, "class": cl,
                     "order": o, "family": f, "genus": g})
        obfuscated.append({"id": cid, "name": str(cid), "supercategory": cl, "kingdom": f"k{cid}",
                           "phylum": "x", "class": "x", "order": "x", "family": "x", "genus": "x"})
    next_id = 0
    for split, per_cat in (("train2018", 2), ("val2018", 3)):
        images, annotations = [], []
        for c in real:
            for _ in range(per_cat):
                digest = hashlib.md5(bytes([next_id])).hexdigest()
                file_name = f"train_val2018/{c['supercategory']}/{c['id']}/{digest}.jpg"
                write_jpeg(root / file_name, COLOURS[c["id"]], size=(30, 40))
                images.append({"id": next_id, "width": 30, "height": 40, "file_name": file_name, "license": 1,
                               "rights_holder": "someone"})
                annotations.append({"id": next_id, "image_id": next_id, "category_id": c["id"]})
                next_id += 1
        (root / f"{split}.json").write_text(json.dumps(coco(images, annotations, obfuscated, year=2018)))
    (root / "categories.json").write_text(json.dumps(real))

    adapter = make(root, version="2018")
    tax = adapter.taxonomy()
    names = [str(tax.name[v]) for v in tax.leaf_nodes]
    assert names == [e if cid != 2 else "Clerus apiarius" for cid, e in enumerate(EPITHETS_BY_ID)]
    assert [str(tax.name[v]) for v in tax.nodes_at_depth(1)] == ["Animalia", "Plantae"]
    manifest = prepare_dataset(adapter, tmp_path / "shards", rows_per_shard=100)
    counts = {s: manifest["splits"][s]["rows"] for s in ("train", "val", "test")}
    assert counts["train"] == 12 and counts["val"] + counts["test"] == 18
    assert split_table(tmp_path / "shards", "train")["id"][0] == "train2018-0"

    (root / "categories.json").unlink()
    with pytest.raises(TaxonbenchError, match=r"categories\.json not found"):
        make(root, version="2018").taxonomy()
    with pytest.raises(TaxonbenchError, match=r"publish no checksum for .*categories\.json\.tar\.gz"):
        make(root, version="2018", download=True).taxonomy()


# ------------------------------------------------------------------ 2017
def write_inat2017(root: Path, n_val: int = 10) -> None:
    """``train2017.json`` / ``val2017.json`` (categories: id, name, supercategory) and their images
    under ``train_val_images/<supercategory>/<name>/``, ``n_val`` validation images per species."""
    cats = [{"id": cid, "name": f"{g} {e}", "supercategory": cl} for cid, k, p, cl, o, f, g, e in CATS]
    next_id = 0
    for split, per_cat in (("train2017", 2), ("val2017", n_val)):
        images, annotations = [], []
        for c in cats:
            for _ in range(per_cat):
                file_name = f"train_val_images/{c['supercategory']}/{c['name']}/{next_id:06d}.jpg"
                write_jpeg(root / file_name, COLOURS[c["id"]])
                images.append({"id": next_id, "width": 40, "height": 30, "file_name": file_name, "license": 1,
                               "rights_holder": "someone"})
                annotations.append({"id": next_id, "image_id": next_id, "category_id": c["id"]})
                next_id += 1
        (root / f"{split}.json").write_text(json.dumps(coco(images, annotations, cats, year=2017)))


def test_inat2017_two_levels_and_a_fifth_of_val_as_query(tmp_path):
    from taxonbench.datasets.inat import RANKS_2017

    root = tmp_path / "inat2017"
    write_inat2017(root)
    adapter = make(root, version="2017")
    tax = adapter.taxonomy()
    assert tax.rank_names == list(RANKS_2017) and tax.n_leaves == 6
    assert [str(tax.name[v]) for v in tax.nodes_at_depth(1)] == ["Aves", "Insecta", "Magnoliopsida"]
    # the species keep their binomial (no genus rank); leaf i = the i-th category id
    assert [str(tax.name[v]) for v in tax.leaf_nodes] == [
        f"{c[6]} {c[7]}" for c in sorted(CATS)]
    manifest = prepare_dataset(adapter, tmp_path / "shards", rows_per_shard=100)
    counts = {s: manifest["splits"][s]["rows"] for s in ("train", "val", "test")}
    assert counts == {"train": 12, "val": 48, "test": 12}  # query = 2 of each species' 10 val images
    test = split_table(tmp_path / "shards", "test")
    assert np.bincount(test["leaf"]).tolist() == [2] * 6
    assert all(rid.startswith("val2017-") for rid in test["id"])
    assert not set(test["id"]) & set(split_table(tmp_path / "shards", "val")["id"])


def test_fractional_test_share_is_drawn_per_species():
    from taxonbench.datasets.inat import Record, split_val_test

    records = [Record(i, i, f"val/{i}.jpg", i % 40) for i in range(40 * 7)]  # 7 images in each of 40 species
    val, test = split_val_test(records, seed=3, test_fraction=0.2)  # 1.4 per species: 1 or 2
    per_species = np.bincount([r.category_id for r in test], minlength=40)
    assert set(per_species.tolist()) == {1, 2}
    assert len(val) + len(test) == 280
    assert split_val_test(records, seed=3, test_fraction=0.2) == (val, test)


# ----------------------------------------------------- iNat21 rank counts
def inat21_categories() -> list[dict]:
    """10,000 categories whose tree has exactly the iNat2021 counts per rank."""
    parents: list[list[int]] = []
    for d, n in enumerate(INAT21_RANK_COUNTS):
        parents.append([0] * n if d == 0 else [j % INAT21_RANK_COUNTS[d - 1] for j in range(n)])
    cats = []
    for leaf in range(INAT21_RANK_COUNTS[-1]):
        chain, j = [], leaf
        for d in range(len(RANKS_7) - 1, -1, -1):
            chain.append(f"{RANKS_7[d]}{j}")
            j = parents[d][j]
        chain.reverse()
        cats.append(category_2021((leaf, *chain[:-1], chain[-1])))
    return cats


@pytest.mark.parametrize("break_it", [False, True])
def test_full_inat21_rank_counts_are_checked(tmp_path, break_it):
    root = tmp_path / "inat2021"
    cats = inat21_categories()
    if break_it:
        cats[17]["genus"] = "Unheardof"
    for name in ("train", "val"):
        (root / name).mkdir(parents=True)
        (root / f"{name}.json").write_text(json.dumps(coco([], [], cats)))
    adapter = make(root, version="2021")
    if break_it:
        with pytest.raises(TaxonbenchError, match=r"train\.json: the iNat2021 tree should have "
                                                  r"3 / 13 / 51 / 273 / 1103 / 4900 / 10000 nodes per rank.*"
                                                  r"found 3 / 13 / 51 / 273 / 1103 / 4901 / 10000"):
            adapter.taxonomy()
    else:
        tax = adapter.taxonomy()
        assert tax.n_nodes == 16344 and tax.n_leaves == 10000


# --------------------------------------------------------------- download
def test_download_fetches_verifies_and_extracts_the_upstream_archives(tmp_path, monkeypatch):
    upstream = tmp_path / "upstream"
    truth = write_inat2021(upstream)
    server = tmp_path / "server"
    server.mkdir()
    for key, member in (("inat2021/train_mini.json.tar.gz", "train_mini.json"),
                        ("inat2021/val.json.tar.gz", "val.json"),
                        ("inat2021/train_mini.tar.gz", "train_mini"),
                        ("inat2021/val.tar.gz", "val")):
        archive = server / key.split("/")[1]
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(upstream / member, arcname=member)
        md5 = hashlib.md5(archive.read_bytes()).hexdigest()
        monkeypatch.setitem(download.SOURCES, key, download.Source(archive.as_uri(), md5, archive.name, "md5"))

    root = tmp_path / "raw" / "inat2021"
    manifest = prepare_dataset(make(root, download=True), tmp_path / "shards", rows_per_shard=100)
    assert manifest["splits"]["train"]["rows"] == len(truth["train_mini"])
    assert sorted(p.name for p in root.iterdir()) == [
        "train_mini", "train_mini.json", "train_mini.json.tar.gz", "train_mini.tar.gz", "val", "val.json",
        "val.json.tar.gz", "val.tar.gz"]
    # a second run finds everything in place and downloads nothing
    for key in ("inat2021/train_mini.tar.gz", "inat2021/val.tar.gz"):
        monkeypatch.setitem(download.SOURCES, key, download.Source("file:///nonexistent", "0" * 32,
                                                                   key.split("/")[1], "md5"))
    assert make(root, download=True).taxonomy().n_leaves == 6
