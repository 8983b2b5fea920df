"""The Rare Species adapter on a tiny fixture in the Hugging Face repository layout.

Upstream (https://huggingface.co/datasets/imageomics/rare-species): ``metadata.csv`` at the top
(ImageFolder metadata: ``file_name`` plus the catalog columns ``rarespecies_id, eol_content_id,
eol_page_id, kingdom, ..., species, sciName, common``) and the images at
``dataset/<kingdom-...-species>/<eol_content_id>_<eol_page_id>_eol_full-size-copy.jpg``.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taxonbench import download
from taxonbench.datasets import DATASETS, prepare_dataset
from taxonbench.errors import TaxonbenchError

from taxonbench.taxonomy import RANKS_7
from dataset_fixtures import split_table, write_csv as fixture_csv

SIZE = 16
COLUMNS = ["rarespecies_id", "eol_content_id", "eol_page_id", "kingdom", "phylum", "class", "order", "family",
           "genus", "species", "sciName", "common", "file_name"]
SPECIES = [  # (kingdom ... genus, species column as upstream, common, images, colour)
    (("Animalia", "Mollusca", "Bivalvia", "Unionida", "Unionidae", "Cyclonaias"), "tuberculata",
     "purple wartyback", 6, (200, 30, 30)),
    (("Animalia", "Chordata", "Reptilia", "Testudines", "Geoemydidae", "Pangshura"), "Pangshura sylhetensis",
     "Assam Roofed Turtle", 5, (30, 200, 30)),
    (("Animalia", "Chordata", "Amphibia", "Caudata", "Cryptobranchidae", "Andrias"), "japonicus",
     "Japanese Giant Salamander", 4, (30, 30, 200)),
    (("Animalia", "Chordata", "Aves", "Passeriformes", "Turdidae", "Myadestes"), "obscurus", "'Oma'o", 4,
     (220, 220, 40)),
]
EPITHETS = {"Cyclonaias": "tuberculata", "Pangshura": "sylhetensis", "Andrias": "japonicus", "Myadestes": "obscurus"}


def write_rare_species(root: Path) -> list[dict]:
    rows, n = [], 0
    for ranks, species, common, count, colour in SPECIES:
        folder = "-".join((*ranks, EPITHETS[ranks[-1]]))
        for k in range(count):
            n += 1
            content, page = 1000 + n, 40000 + len(rows) // 10
            file_name = f"dataset/{folder}/{content}_{page}_eol_full-size-copy.jpg"
            (root / file_name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (30, 24), colour).save(root / file_name, format="JPEG", quality=95)
            rows.append(dict(zip(COLUMNS, [str(uuid.UUID(int=n)), str(content), str(page), *ranks, species,
                                           f"{ranks[-1]} {EPITHETS[ranks[-1]]}", common, file_name])))
    write_csv(root / "metadata.csv", rows)
    return rows


def write_csv(path: Path, rows: list[dict], columns=COLUMNS) -> None:
    fixture_csv(path, rows, columns)


def make(root: Path, seed: int = 0, **options):
    return DATASETS.get("rare_species")({"root": str(root), "image_size": SIZE, **options},
                                         name="rare_fixture", seed=seed)


@pytest.fixture
def rare(tmp_path):
    root = tmp_path / "raw" / "rare_species"
    return root, write_rare_species(root)


def test_taxonomy_from_rank_columns_with_epithets(rare):
    root, _ = rare
    tax = make(root).taxonomy()
    assert tax.rank_names == list(RANKS_7) and tax.n_leaves == 4
    assert [int((tax.depth == d).sum()) for d in range(1, 8)] == [1, 2, 4, 4, 4, 4, 4]
    # leaves in sorted path order; "Pangshura sylhetensis" is cut to its epithet
    assert [tax.path_names(int(v), "/") for v in tax.leaf_nodes] == sorted(
        "/".join((*r, EPITHETS[r[-1]])) for r, *_ in SPECIES)


def test_prepare_k_shot_splits(rare, tmp_path):
    root, rows = rare
    out = tmp_path / "shards"
    manifest = prepare_dataset(make(root, shots=2, val_shots=1), out, rows_per_shard=5)
    counts = {s: manifest["splits"][s]["rows"] for s in ("train", "val", "test")}
    assert counts == {"train": 8, "val": 4, "test": len(rows) - 12}
    assert manifest["split_counts"] == counts
    by_id = {r["rarespecies_id"]: r for r in rows}
    tax = make(root).taxonomy()
    ids = []
    for split in ("train", "val", "test"):
        table = split_table(out, split)
        ids += table["id"]
        per_leaf = np.bincount(table["leaf"], minlength=4).tolist()
        if split != "test":
            assert per_leaf == [2 if split == "train" else 1] * 4
        for rid, leaf, src, common, blob in zip(table["id"], table["leaf"], table["source_path"],
                                                  table["common_name"], table["image"]):
            row = by_id[rid]
            assert src == row["file_name"] and common == row["common"]
            assert str(tax.name[tax.leaf_nodes[leaf]]) == EPITHETS[row["genus"]]
            with Image.open(io.BytesIO(blob)) as img:
                assert img.size == (SIZE, SIZE) and img.format == "JPEG"
    assert sorted(ids) == sorted(by_id)


def test_zero_shot_is_test_only_and_split_is_seeded(rare, tmp_path):
    root, rows = rare
    adapter = make(root, shots=0)
    assert adapter.splits() == ["test"]
    manifest = prepare_dataset(adapter, tmp_path / "shards", rows_per_shard=100)
    assert list(manifest["splits"]) == ["test"] and manifest["splits"]["test"]["rows"] == len(rows)
    train = lambda seed: [r for r in make(root, seed=seed, shots=3)._split_rows["train"]]  # noqa: E731
    assert train(0) == train(0) and any(train(0) != train(s) for s in (1, 2, 3))


def test_missing_column_and_empty_field_are_named(rare):
    root, rows = rare
    write_csv(root / "metadata.csv", [{k: v for k, v in r.items() if k != "family"} for r in rows],
              [c for c in COLUMNS if c != "family"])
    with pytest.raises(TaxonbenchError, match=r"metadata\.csv: missing column 'family'"):
        make(root).taxonomy()
    rows[3]["order"] = ""
    write_csv(root / "metadata.csv", rows)
    with pytest.raises(TaxonbenchError, match=r"metadata\.csv: line 5: missing field 'order'"):
        make(root).taxonomy()


def test_too_few_images_for_the_shots_names_the_species(rare):
    root, _ = rare
    with pytest.raises(TaxonbenchError, match=r"species Andrias japonicus has 4 image\(s\); shots \+ val_shots \+ 1"):
        make(root, shots=4)._split_rows  # noqa: B018


def test_corrupt_and_missing_images_are_named(rare, tmp_path):
    root, rows = rare
    (root / rows[2]["file_name"]).write_bytes(b"\xff\xd8\xff\xe0 broken")
    with pytest.raises(TaxonbenchError, match=rf"{rows[2]['file_name']} \(metadata\.csv line 4\): corrupt image"):
        prepare_dataset(make(root, shots=0), tmp_path / "shards", rows_per_shard=100)
    (root / rows[2]["file_name"]).unlink()
    with pytest.raises(TaxonbenchError, match=r"\(metadata\.csv line 4\): image not found"):
        prepare_dataset(make(root, shots=0), tmp_path / "shards", rows_per_shard=100)


def test_missing_image_folder_says_how_to_fetch_it(rare):
    root, _ = rare
    (root / "dataset").rename(root / "elsewhere")
    with pytest.raises(TaxonbenchError, match=r"dataset: image folder not found .*huggingface-cli download "
                                              r"imageomics/rare-species"):
        make(root).taxonomy()


def test_download_fetches_metadata_csv(rare, tmp_path, monkeypatch):
    upstream, _ = rare
    served = tmp_path / "server" / "metadata.csv"
    served.parent.mkdir()
    served.write_bytes((upstream / "metadata.csv").read_bytes())
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    monkeypatch.setitem(download.SOURCES, "rare_species/metadata.csv",
                        download.Source(served.as_uri(), digest, "metadata.csv"))
    (upstream / "metadata.csv").unlink()
    manifest = prepare_dataset(make(upstream, download=True, shots=1), tmp_path / "shards", rows_per_shard=100)
    assert manifest["splits"]["train"]["rows"] == 4
    assert (upstream / "metadata.csv").read_bytes() == served.read_bytes()
    # the real entry has no checksum: refused unless allow_unverified
    monkeypatch.setitem(download.SOURCES, "rare_species/metadata.csv",
                        download.Source(served.as_uri(), None, "metadata.csv"))
    (upstream / "metadata.csv").unlink()
    with pytest.raises(TaxonbenchError, match=r"publish no checksum .*allow_unverified"):
        make(upstream, download=True).taxonomy()
    assert make(upstream, download=True, allow_unverified=True).taxonomy().n_leaves == 4


@pytest.mark.parametrize("options,pattern", [
    ({"shot": 1}, r"options\.shot: unknown key \(did you mean 'shots'\?\)"),
    ({"shots": -1}, r"options\.shots: expected a non-negative integer"),
    ({"shots": 0, "val_shots": 1}, r"options\.val_shots: needs shots > 0"),
    ({"shots": "5"}, r"options\.shots: must be an integer"),
])
def test_options_are_validated(tmp_path, options, pattern):
    with pytest.raises(TaxonbenchError, match=pattern):
        make(tmp_path, **options)
