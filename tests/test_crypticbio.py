"""The CrypticBio adapter on a tiny fixture in the layout of the Hugging Face repository.

Upstream (https://huggingface.co/datasets/gmanolache/CrypticBio): benchmark subsets as
``CrypticBio-Benchmark/CrypticBio-<subset>.csv`` (one row per image: ``scientificName``,
``kingdom`` ... ``genus``, ``url``, ``crypticGroup``, date, location; column names as read by
public code, see the module docstring) and the full set as ``CrypticBio/part_*.parquet``.
Image URLs are ``file://`` URLs into the test's own folder.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from taxonbench import download
from taxonbench.datasets import DATASETS, prepare_dataset
from taxonbench.datasets.crypticbio import cryptic_group, image_name
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import RANKS_7
from dataset_fixtures import split_table, write_csv as fixture_csv

SIZE = 16
COLUMNS = ["scientificName", "kingdom", "phylum", "class", "order", "family", "genus", "url", "date",
           "decimalLatitude", "decimalLongitude", "crypticGroup"]
SPECIES = [  # (scientificName, kingdom ... genus, cryptic group, images, colour)
    ("Bombus terrestris", ("Animalia", "Arthropoda", "Insecta", "Hymenoptera", "Apidae", "Bombus"),
     "['Bombus lucorum', 'Bombus terrestris']", 5, (200, 30, 30)),
    ("Bombus lucorum", ("Animalia", "Arthropoda", "Insecta", "Hymenoptera", "Apidae", "Bombus"),
     "['Bombus terrestris', 'Bombus lucorum']", 5, (30, 200, 30)),
    ("Podarcis muralis", ("Animalia", "Chordata", "Reptilia", "", "Lacertidae", "Podarcis"),
     "['Podarcis siculus', 'Podarcis muralis']", 4, (30, 30, 200)),
    ("Amanita muscaria", ("Fungi", "Basidiomycota", "Agaricomycetes", "Agaricales", "Amanitaceae", "Amanita"),
     "['Amanita muscaria', 'Amanita pantherina']", 4, (220, 220, 40)),
]
N = sum(s[3] for s in SPECIES)


def write_crypticbio(base: Path, subset: str = "Common") -> tuple[Path, list[dict]]:
    """Images under base/web (served by file:// URLs) and the subset CSV under base/hub."""
    rows = []
    for sci, ranks, group, count, colour in SPECIES:
        for k in range(count):
            web = base / "web" / f"{len(rows):03d}" / ("large.jpeg" if k % 2 else "medium.jpg")
            web.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (30, 24), colour).save(web, format="JPEG", quality=95)
            rows.append(dict(zip(COLUMNS, [sci, *ranks, web.as_uri(), "2024-05-01", "51.4", "5.4", group])))
    csv_path = base / "hub" / "CrypticBio-Benchmark" / f"CrypticBio-{subset}.csv"
    write_csv(csv_path, rows)
    return csv_path, rows


def write_csv(path: Path, rows: list[dict], columns=COLUMNS) -> None:
    fixture_csv(path, rows, columns)


def place(root: Path, csv_path: Path, rows: list[dict]) -> None:
    """The local layout after a download: the CSV and the images fetched by URL."""
    target = root / "CrypticBio-Benchmark" / csv_path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(csv_path.read_bytes())
    for row in rows:
        dst = root / "images" / image_name(row["url"])
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(Path(row["url"][len("file://"):]).read_bytes())


def make(root: Path, seed: int = 0, **options):
    return DATASETS.get("crypticbio")({"root": str(root), "image_size": SIZE, "shots": 2, **options},
                                       name="cryptic_fixture", seed=seed)


@pytest.fixture
def cb(tmp_path):
    csv_path, rows = write_crypticbio(tmp_path)
    root = tmp_path / "raw" / "crypticbio"
    place(root, csv_path, rows)
    return root, rows


def test_helpers():
    assert image_name("https://x.org/photos/1/medium.JPG?x=1").endswith(".jpg")
    assert image_name("https://x.org/photos/1/original").endswith(".jpg")
    assert image_name("https://x.org/a.png") != image_name("https://x.org/b.png")
    for cell in ("['B a', 'A b']", '["A b", "B a"]', "B a, A b", ["B a", "A b"]):
        assert cryptic_group(cell) == "A b|B a"
    assert cryptic_group(None) == "" and cryptic_group("") == ""


def test_taxonomy_fills_missing_order_and_uses_epithets(cb):
    root, _ = cb
    adapter = make(root)
    tax = adapter.taxonomy()
    assert tax.rank_names == list(RANKS_7) and tax.n_leaves == 4
    assert [tax.path_names(int(v), "/") for v in tax.leaf_nodes] == [
        "Animalia/Arthropoda/Insecta/Hymenoptera/Apidae/Bombus/lucorum",
        "Animalia/Arthropoda/Insecta/Hymenoptera/Apidae/Bombus/terrestris",
        "Animalia/Chordata/Reptilia/unknown order/Lacertidae/Podarcis/muralis",
        "Fungi/Basidiomycota/Agaricomycetes/Agaricales/Amanitaceae/Amanita/muscaria",
    ]
    assert adapter.info()["incomplete"] == 4 and adapter.info()["incomplete_dropped"] == 0
    dropped = make(root, incomplete="drop")
    assert dropped.taxonomy().n_leaves == 3 and dropped.info()["incomplete_dropped"] == 4


def test_prepare_k_shot_splits_keep_url_and_group(cb, tmp_path):
    root, rows = cb
    out = tmp_path / "shards"
    manifest = prepare_dataset(make(root, val_shots=1), out, rows_per_shard=6)
    counts = {s: manifest["splits"][s]["rows"] for s in ("train", "val", "test")}
    assert counts == {"train": 8, "val": 4, "test": N - 12}
    by_url = {r["url"]: r for r in rows}
    tax = make(root).taxonomy()
    seen = []
    for split in ("train", "val", "test"):
        table = split_table(out, split)
        if split == "train":
            assert np.bincount(table["leaf"]).tolist() == [2, 2, 2, 2]
        for rid, leaf, url, group, blob in zip(table["id"], table["leaf"], table["source_path"],
                                                table["cryptic_group"], table["image"]):
            row = by_url[url]
            assert rid == image_name(url).split(".")[0]
            assert str(tax.name[tax.leaf_nodes[leaf]]) == row["scientificName"].split()[1]
            assert group == cryptic_group(row["crypticGroup"]) and "|" in group
            with Image.open(io.BytesIO(blob)) as img:
                assert img.size == (SIZE, SIZE)
                mean = np.asarray(img, dtype=float).reshape(-1, 3).mean(0)
            colour = next(s[4] for s in SPECIES if s[0] == row["scientificName"])
            assert np.abs(mean - colour).max() < 12
        seen += table["id"]
    assert len(set(seen)) == N


def test_parquet_part_of_the_full_set(cb, tmp_path):
    root, rows = cb
    table = {c: [r[c] for r in rows] for c in COLUMNS if c != "crypticGroup"}
    table["crypticGroup"] = [cryptic_group(r["crypticGroup"]).split("|") for r in rows]
    (root / "CrypticBio").mkdir()
    pq.write_table(pa.table(table), root / "CrypticBio" / "part_0.parquet")
    adapter = make(root, metadata="CrypticBio/part_0.parquet", shots=0)
    manifest = prepare_dataset(adapter, tmp_path / "shards", rows_per_shard=100)
    assert manifest["splits"]["test"]["rows"] == N and manifest["metadata"] == "CrypticBio/part_0.parquet"
    assert set(split_table(tmp_path / "shards", "test")["cryptic_group"]) == {
        "Bombus lucorum|Bombus terrestris", "Podarcis muralis|Podarcis siculus", "Amanita muscaria|Amanita pantherina"}


def test_download_fetches_csv_and_images_by_url(tmp_path, monkeypatch):
    csv_path, rows = write_crypticbio(tmp_path)
    digest = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    monkeypatch.setitem(download.SOURCES, "crypticbio/CrypticBio-Common.csv",
                        download.Source(csv_path.as_uri(), digest, csv_path.name))
    root = tmp_path / "raw" / "crypticbio"
    with pytest.raises(TaxonbenchError, match=r"no checksum; set allow_unverified: true to fetch 18 image"):
        make(root, download=True).taxonomy()
    manifest = prepare_dataset(make(root, download=True, allow_unverified=True), tmp_path / "shards",
                               rows_per_shard=100)
    assert sum(manifest["splits"][s]["rows"] for s in ("train", "test")) == N
    assert len(list((root / "images").iterdir())) == N
    assert (root / "CrypticBio-Benchmark" / "CrypticBio-Common.csv").read_bytes() == csv_path.read_bytes()
    # a dead link: stop names it; skip leaves the row out and counts it
    Path(rows[0]["url"][len("file://"):]).unlink()
    (root / "images" / image_name(rows[0]["url"])).unlink()
    with pytest.raises(TaxonbenchError, match=r"download failed"):
        make(root, download=True, allow_unverified=True).taxonomy()
    adapter = make(root, download=True, allow_unverified=True, missing_images="skip")
    assert adapter.info()["missing_images"] == 1
    assert sum(len(v) for v in adapter._split_rows.values()) == N - 1


def test_missing_image_without_download_says_how(cb):
    root, rows = cb
    (root / "images" / image_name(rows[3]["url"])).unlink()
    with pytest.raises(TaxonbenchError, match=r"image of CrypticBio-Common\.csv line 5 .* not found \(1 of 18 "
                                              r"missing\); set .*download: true"):
        make(root).taxonomy()
    assert make(root, missing_images="skip").info()["missing_images"] == 1


def test_missing_column_field_and_corrupt_image_are_named(cb, tmp_path):
    root, rows = cb
    csv_file = root / "CrypticBio-Benchmark" / "CrypticBio-Common.csv"
    (root / "images" / image_name(rows[6]["url"])).write_bytes(b"\xff\xd8\xff\xe0 broken")
    with pytest.raises(TaxonbenchError, match=r"CrypticBio-Common\.csv line 8\): corrupt image"):
        prepare_dataset(make(root, shots=0), tmp_path / "shards", rows_per_shard=100)
    rows[2]["scientificName"] = ""
    write_csv(csv_file, rows)
    with pytest.raises(TaxonbenchError, match=r"CrypticBio-Common\.csv: line 4: missing field 'scientificName'"):
        make(root).taxonomy()
    write_csv(csv_file, [{k: v for k, v in r.items() if k != "url"} for r in rows], [c for c in COLUMNS if c != "url"])
    with pytest.raises(TaxonbenchError, match=r"CrypticBio-Common\.csv: missing column 'url'"):
        make(root).taxonomy()
    csv_file.unlink()
    with pytest.raises(TaxonbenchError, match=r"CrypticBio-Common\.csv not found.*download: true to fetch "
                                              r"CrypticBio-Common\.csv"):
        make(root).taxonomy()


@pytest.mark.parametrize("options,pattern", [
    ({"subset": "Rare"}, r"options\.subset: expected one of Common, CommonUnseen, Endangered, Invasive"),
    ({"subsett": "Common"}, r"options\.subsett: unknown key \(did you mean 'subset'\?\)"),
    ({"incomplete": "keep"}, r"options\.incomplete: expected one of drop, fill"),
    ({"missing_images": "ignore"}, r"options\.missing_images: expected one of stop, skip"),
    ({"metadata": "x.json"}, r"options\.metadata: expected a \.csv or \.parquet file"),
    ({"shots": -2}, r"options\.shots: expected a non-negative integer"),
])
def test_options_are_validated(tmp_path, options, pattern):
    with pytest.raises(TaxonbenchError, match=pattern):
        make(tmp_path, **options)
