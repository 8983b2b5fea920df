"""The ETHEC adapter on tiny fixtures in the published layout and record schema.

``ETHEC_dataset/splits/{train,val,test}.json``: ``{token: {"token", "image_path", "image_name",
"family", "subfamily", "genus", "specific_epithet", ...}}``; images at
``ETHEC_dataset/IMAGO_build_test_resized/<image_path>/<image_name>``.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taxonbench import download
from taxonbench.datasets import DATASETS, ethec, prepare_dataset
from taxonbench.errors import TaxonbenchError
from taxonbench.shards import read_manifest
from dataset_fixtures import split_table

# (family, subfamily, genus, specific epithet); staudingeri is an epithet of two genera (thesis §2.3.3)
SPECIES = [
    ("Pieridae", "Pierinae", "Aporia", "procris"),
    ("Hesperiidae", "Hesperiinae", "Ochlodes", "venata"),
    ("Riodinidae", "Nemeobiinae", "Hamearis", "lucina"),
    ("Pieridae", "Coliadinae", "Colias", "staudingeri"),
    ("Hesperiidae", "Pyrginae", "Pyrgus", "alveus"),
    ("Lycaenidae", "Polyommatinae", "Cupido", "staudingeri"),
    ("Pieridae", "Pierinae", "Aporia", "crataegi"),
]
LEAF_ORDER = sorted(SPECIES)  # hand-worked: leaves in path order
SMALL = [s for s in LEAF_ORDER if s[2:] in set(ethec.SMALL_SPECIES)]
PER_SPLIT = {"train": 3, "val": 1, "test": 2}
SIZE = 16


def colour(species) -> tuple[int, int, int]:
    k = SPECIES.index(species)
    return (30 * k + 10, 255 - 30 * k, (90 * k) % 256)


def record(token, folder, name, species) -> dict:
    family, subfamily, genus, epithet = species
    return {"token": token, "image_path": folder, "image_name": name, "family": family,
            "subfamily": subfamily, "genus": genus, "specific_epithet": epithet, "subspecific_epithet": "",
            "infraspecific_epithet": "", "author": "(Linnaeus, 1758)", "country": "Switzerland",
            "primary_division": "Zurich", "dec_lat": 47.4, "dec_long": 8.5, "barcode": "ETHZ-ENT0000001"}


def write_ethec(root: Path) -> dict[str, dict[str, tuple]]:
    """The published layout under ``root``; returns {split: {token: species}}."""
    base = root / "ETHEC_dataset"
    (base / "splits").mkdir(parents=True)
    truth: dict[str, dict[str, tuple]] = {}
    n = 0
    for split, per in PER_SPLIT.items():
        data, truth[split] = {}, {}
        for species in SPECIES:
            for _ in range(per):
                n += 1
                token = str(uuid.UUID(int=n * 7919))
                folder, name = f"2017_02_{20 + n % 3}R", f"ETHZ_ENT01_2017_02_26_{n:06d}.JPG"
                path = base / "IMAGO_build_test_resized" / folder / name
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (30, 24), colour(species)).save(path, format="JPEG", quality=95)
                data[token] = record(token, folder, name, species)
                truth[split][token] = species
        (base / "splits" / f"{split}.json").write_text(json.dumps(data, indent=4))
    return truth


def make(root: Path, **options):
    return DATASETS.get("ethec")({"root": str(root), "image_size": SIZE, **options}, name="ethec_fixture", seed=0)


@pytest.fixture
def fixture(tmp_path):
    root = tmp_path / "raw" / "ethec"
    return root, write_ethec(root)


# ---------------------------------------------------------------- taxonomy
def test_merged_taxonomy_is_path_keyed_with_four_ranks(fixture):
    root, _ = fixture
    tax = make(root).taxonomy()
    assert tax.rank_names == ["family", "subfamily", "genus", "species"] and tax.fixed_ranks
    assert [int((tax.depth == d).sum()) for d in range(1, 5)] == [4, 6, 6, 7]
    assert [str(tax.name[v]) for v in tax.leaf_nodes] == [s[3] for s in LEAF_ORDER]
    assert [tax.path_names(int(v), "/") for v in tax.leaf_nodes] == ["/".join(s) for s in LEAF_ORDER]
    # the two staudingeri are different leaves under Colias and Cupido
    stau = [int(v) for v in tax.leaf_nodes if tax.name[v] == "staudingeri"]
    assert sorted(str(tax.name[tax.parent[v]]) for v in stau) == ["Colias", "Cupido"]
    aporia = next(v for v in range(tax.n_nodes) if tax.name[v] == "Aporia")
    assert str(tax.name[tax.parent[aporia]]) == "Pierinae" and tax.n_children[aporia] == 2


def test_small_subset_keeps_the_table_2_1_labels_only(fixture, tmp_path):
    root, truth = fixture
    adapter = make(root, subset="small")
    tax = adapter.taxonomy()
    assert [str(tax.name[v]) for v in tax.leaf_nodes] == [s[3] for s in SMALL]
    assert [int((tax.depth == d).sum()) for d in range(1, 5)] == [3, 4, 4, 5]
    assert "Colias" not in set(tax.name.astype(str))
    manifest = prepare_dataset(adapter, tmp_path / "small", rows_per_shard=100)
    assert manifest["subset"] == "small"
    assert {s: manifest["splits"][s]["rows"] for s in PER_SPLIT} == {s: 5 * n for s, n in PER_SPLIT.items()}


def test_full_files_must_give_the_thesis_counts(tmp_path, monkeypatch):
    """561 leaves under 135 genera, 21 subfamilies, 6 families pass; one moved genus fails."""
    def write(break_it: bool) -> Path:
        root = tmp_path / ("broken" if break_it else "ok")
        (root / "ETHEC_dataset" / "IMAGO_build_test_resized").mkdir(parents=True)
        (root / "ETHEC_dataset" / "splits").mkdir()
        data = {}
        for leaf in range(561):
            g = leaf % 135
            sf = 21 if break_it and g == 134 else g % 21  # a 22nd subfamily
            species = (f"fam{sf % 6}", f"sub{sf}", f"gen{g}", f"ep{leaf}")
            token = f"t{leaf:04d}"
            data[token] = record(token, "d", f"{leaf}.JPG", species)
        for split in PER_SPLIT:
            (root / "ETHEC_dataset" / "splits" / f"{split}.json").write_text(json.dumps(data))
        return root

    monkeypatch.setattr(ethec, "FULL_MIN_RECORDS", 3 * 561)
    tax = make(write(False)).taxonomy()
    assert tax.n_nodes == 1 + 6 + 21 + 135 + 561
    with pytest.raises(TaxonbenchError, match=r"ETHEC Merged should have 6 / 21 / 135 / 561 labels per level "
                                              r".*found 6 / 22 / 135 / 561"):
        make(write(True)).taxonomy()


def test_full_files_must_give_the_table_2_1_names_for_small(fixture, monkeypatch):
    root, _ = fixture
    monkeypatch.setattr(ethec, "FULL_MIN_RECORDS", 10)  # the fixture lacks e.g. Papilionidae
    with pytest.raises(TaxonbenchError, match=r"ETHEC Small should have the family labels of thesis Table 2\.1"):
        make(root, subset="small").taxonomy()
    with pytest.raises(TaxonbenchError, match=r"should have 6 / 21 / 135 / 561 .*found 4 / 6 / 6 / 7"):
        make(root).taxonomy()


# ------------------------------------------------------------------ shards
def test_prepare_writes_the_published_splits(fixture, tmp_path):
    root, truth = fixture
    out = tmp_path / "shards"
    manifest = prepare_dataset(make(root), out, rows_per_shard=8)
    assert read_manifest(out) == manifest
    assert {s: manifest["splits"][s]["rows"] for s in PER_SPLIT} == {s: 7 * n for s, n in PER_SPLIT.items()}
    assert manifest["n_leaves"] == 7 and manifest["n_nodes"] == 1 + 4 + 6 + 6 + 7
    assert manifest["version"] == "v0.1" and manifest["split_counts"]["test"] == 14
    for split in PER_SPLIT:
        rows = split_table(out, split)
        assert rows["id"] == sorted(truth[split])  # token order
        for token, leaf, path, blob in zip(rows["id"], rows["leaf"], rows["source_path"], rows["image"]):
            species = truth[split][token]
            assert leaf == LEAF_ORDER.index(species)
            assert (root / "ETHEC_dataset" / "IMAGO_build_test_resized" / path).is_file()
            with Image.open(io.BytesIO(blob)) as img:
                assert img.format == "JPEG" and img.size == (SIZE, SIZE)
                mean = np.asarray(img, dtype=float).reshape(-1, 3).mean(0)
            assert np.abs(mean - colour(species)).max() < 12


# ------------------------------------------------------------------ errors
def test_missing_field_names_file_token_and_field(fixture):
    root, _ = fixture
    path = root / "ETHEC_dataset" / "splits" / "val.json"
    data = json.loads(path.read_text())
    token = sorted(data)[3]
    del data[token]["subfamily"]
    path.write_text(json.dumps(data))
    with pytest.raises(TaxonbenchError, match=rf"val\.json: record {token}: missing field 'subfamily'"):
        make(root).taxonomy()
    data[token]["subfamily"] = ""
    path.write_text(json.dumps(data))
    with pytest.raises(TaxonbenchError, match=rf"val\.json: record {token}: field 'subfamily' should be"):
        make(root).taxonomy()


def test_corrupt_image_names_file_and_token(fixture, tmp_path):
    root, _ = fixture
    data = json.loads((root / "ETHEC_dataset" / "splits" / "test.json").read_text())
    token = sorted(data)[2]
    rel = f"{data[token]['image_path']}/{data[token]['image_name']}"
    (root / "ETHEC_dataset" / "IMAGO_build_test_resized" / rel).write_bytes(b"\xff\xd8\xff\xe0 broken")
    with pytest.raises(TaxonbenchError) as info:
        prepare_dataset(make(root), tmp_path / "shards", rows_per_shard=100)
    msg = str(info.value)
    assert rel in msg and f"token {token}" in msg and "corrupt image" in msg
    assert not (tmp_path / "shards").exists()


def test_missing_files_say_what_to_place_where(tmp_path):
    with pytest.raises(TaxonbenchError) as info:
        make(tmp_path / "nowhere").taxonomy()
    msg = str(info.value)
    for part in ("ETHEC_dataset/splits/train.json", "IMAGO_build_test_resized/", "research-collection.ethz.ch"):
        assert part in msg, msg
    with pytest.raises(TaxonbenchError, match=r"cannot be downloaded automatically"):
        make(tmp_path / "nowhere", download=True).taxonomy()


@pytest.mark.parametrize("options,pattern", [
    ({"subset": "tiny"}, r"options\.subset: expected one of merged, small"),
    ({"version": "v1"}, r"options\.version: expected one of v0\.1, v0\.2"),
    ({"subsett": "small"}, r"options\.subsett: unknown key \(did you mean 'subset'\?\)"),
    ({"images_dir": "../elsewhere"}, r"options\.images_dir: expected a folder relative to root"),
    ({"download": 1}, r"options\.download: must be true or false"),
])
def test_options_are_validated(tmp_path, options, pattern):
    with pytest.raises(TaxonbenchError, match=pattern):
        make(tmp_path, **options)


# ---------------------------------------------------------------- download
def zip_dataset(src: Path, archive: Path, truncate: bool = False) -> str:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(src.rglob("*")):
            zf.write(path, path.relative_to(src.parent).as_posix())
    if truncate:
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    return hashlib.md5(archive.read_bytes()).hexdigest()


def test_v02_download_fetches_extracts_and_prepares(tmp_path, monkeypatch):
    upstream = tmp_path / "upstream"
    truth = write_ethec(upstream)
    archive = tmp_path / "server" / "ETHEC_dataset_v0.2.zip"
    archive.parent.mkdir()
    md5 = zip_dataset(upstream / "ETHEC_dataset", archive)
    root = tmp_path / "raw"
    # the real entry has no published checksum: refused unless allow_unverified
    with pytest.raises(TaxonbenchError, match=r"publish no checksum .*allow_unverified: true"):
        make(root, version="v0.2", download=True).taxonomy()
    key = "ethec/ETHEC_dataset_v0.2.zip"
    monkeypatch.setitem(download.SOURCES, key, download.Source(archive.as_uri(), md5, archive.name, "md5"))
    manifest = prepare_dataset(make(root, version="v0.2", download=True), tmp_path / "shards", rows_per_shard=50)
    assert manifest["splits"]["train"]["rows"] == len(truth["train"]) == 21
    assert sorted(p.name for p in root.iterdir()) == ["ETHEC_dataset", "ETHEC_dataset_v0.2.zip"]


def test_truncated_archive_is_named(tmp_path, monkeypatch):
    upstream = tmp_path / "upstream"
    write_ethec(upstream)
    archive = tmp_path / "ETHEC_dataset_v0.2.zip"
    md5 = zip_dataset(upstream / "ETHEC_dataset", archive, truncate=True)
    monkeypatch.setitem(download.SOURCES, "ethec/ETHEC_dataset_v0.2.zip",
                        download.Source(archive.as_uri(), md5, archive.name, "md5"))
    with pytest.raises(TaxonbenchError, match=r"ETHEC_dataset_v0\.2\.zip: corrupt or truncated archive"):
        make(tmp_path / "raw", version="v0.2", download=True).taxonomy()
