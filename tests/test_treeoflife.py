"""The TreeOfLife-10M adapter on tiny webdataset shards written in the upstream layout.

Upstream (https://huggingface.co/datasets/imageomics/TreeOfLife-10M, *Dataset Contents*;
``make_txt`` in scripts/evobio10m/make_wds.py of github.com/Imageomics/bioclip):
``train/shard-NNNNNN.tar`` whose members ``<treeoflife_id>.<suffix>`` are the image ``.jpg``
and ten captions; ``taxonTag.txt`` reads ``a photo of kingdom K phylum P ... species s.``
listing only the ranks that are known.
"""

from __future__ import annotations

import io
import tarfile
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taxonbench.datasets import DATASETS, prepare_dataset
from taxonbench.datasets.treeoflife import parse_tagged
from taxonbench.errors import TaxonbenchError
from taxonbench.shards import read_manifest
from taxonbench.taxonomy import RANKS_7
from dataset_fixtures import split_table

SIZE = 16
FULL = {  # species path -> (images, colour)
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"): (4, (20, 20, 20)),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Corvus", "corax"): (5, (200, 30, 30)),
    ("Animalia", "Chordata", "Aves", "Suliformes", "Sulidae", "Morus", "bassanus"): (3, (30, 200, 30)),
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Moraceae", "Morus", "alba"): (4, (30, 30, 200)),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Paridae", "Parus", "major major"): (2, (220, 220, 40)),
}
INCOMPLETE = [  # (kingdom ... species, None = missing)
    ("Animalia", "Chordata", "Reptilia", None, "Lacertidae", "Podarcis", "muralis"),
    ("Animalia", "Arthropoda", "Insecta", None, "Carabidae", "Carabus", "auratus"),
    ("Animalia", "Arthropoda", "Insecta", "Coleoptera", "Carabidae", None, None),
]
CAPTIONS = ("com.txt", "common_name.txt", "sci.txt", "sci_com.txt", "scientific_name.txt", "taxon.txt",
            "taxonTag.txt", "taxonTag_com.txt", "taxon_com.txt", "taxonomic_name.txt")


def jpeg(colour, size=(24, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def captions(names, common: str) -> dict[str, str]:
    """The ten caption members of one sample, as make_txt writes them."""
    tagged = " ".join(f"{rank} {n}" for rank, n in zip(RANKS_7, names) if n)
    taxonomic = " ".join(n for n in names if n)
    scientific = " ".join(n for n in names[5:] if n)
    common = common or scientific or taxonomic
    return {"scientific_name.txt": scientific, "taxonomic_name.txt": taxonomic, "common_name.txt": common,
            "sci.txt": f"a photo of {scientific}.", "com.txt": f"a photo of {common}.",
            "taxon.txt": f"a photo of {taxonomic}.", "taxonTag.txt": f"a photo of {tagged}.",
            "sci_com.txt": f"a photo of {scientific} with common name {common}.",
            "taxon_com.txt": f"a photo of {taxonomic} with common name {common}.",
            "taxonTag_com.txt": f"a photo of {tagged} with common name {common}."}


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shard(path: Path, samples, skip: tuple[str, str] | None = None) -> None:
    """samples: [(key, names, jpeg bytes)]; skip=(key, suffix) leaves one member out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for key, names, image in samples:
            members = {"jpg": image, **{k: v.encode() for k, v in captions(names, f"common {key[:4]}").items()}}
            for suffix in sorted(members):  # webdataset writers emit a sample's members together
                if skip != (key, suffix):
                    add(tar, f"{key}.{suffix}", members[suffix])


def write_tol(root: Path) -> dict[str, tuple]:
    """Two shards under root/train; returns {key: names} for every sample written."""
    samples, n = [], 0
    for path, (count, colour) in FULL.items():
        for _ in range(count):
            samples.append((str(uuid.UUID(int=n + 1)), path, jpeg(colour)))
            n += 1
    for names in INCOMPLETE:
        samples.append((str(uuid.UUID(int=n + 1)), names, jpeg((128, 128, 128))))
        n += 1
    order = np.random.default_rng(5).permutation(len(samples))
    samples = [samples[i] for i in order]
    write_shard(root / "train" / "shard-000000.tar", samples[:10])
    write_shard(root / "train" / "shard-000001.tar", samples[10:])
    write_shard(root / "val" / "shard-000000.tar", [(str(uuid.UUID(int=999)), list(FULL)[0], jpeg((1, 2, 3)))])
    return {key: names for key, names, _ in samples}


def make(root: Path, seed: int = 0, **options):
    return DATASETS.get("treeoflife10m")({"root": str(root), "image_size": SIZE, **options},
                                          name="tol_fixture", seed=seed)


@pytest.fixture
def tol(tmp_path):
    root = tmp_path / "raw" / "treeoflife10m"
    return root, write_tol(root)


# ------------------------------------------------------------- captions
def test_parse_tagged_reads_ranks_multiword_names_and_gaps():
    assert parse_tagged("a photo of kingdom Animalia phylum Chordata class Aves order Passeriformes family "
                        "Corvidae genus Pica species hudsonia.") == [
        "Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"]
    assert parse_tagged("a photo of kingdom Animalia class Reptilia family Lacertidae species sp. nov.") == [
        "Animalia", None, "Reptilia", None, "Lacertidae", None, "sp. nov"]
    # a name word equal to an earlier rank word is part of the name
    assert parse_tagged("a photo of genus Parus species major class.")[5:] == ["Parus", "major class"]
    for bad in ("a photo of Animalia Chordata.", "kingdom Animalia.", "a photo of kingdom Animalia",
                "a photo of .", "a photo of kingdom Animalia phylum."):
        with pytest.raises(ValueError):
            parse_tagged(bad)


# ------------------------------------------------------------- taxonomy
def test_taxonomy_drop_rule_keeps_only_complete_samples(tol):
    root, _ = tol
    adapter = make(root)
    tax = adapter.taxonomy()
    assert tax.rank_names == list(RANKS_7) and tax.n_leaves == len(FULL)
    assert [tax.path_names(int(v), "/") for v in tax.leaf_nodes] == ["/".join(p) for p in sorted(FULL)]
    assert [int((tax.depth == d).sum()) for d in range(1, 8)] == [2, 2, 2, 3, 4, 5, 5]
    morus = [v for v in range(tax.n_nodes) if tax.name[v] == "Morus"]
    assert {tax.name[tax.parent[v]] for v in morus} == {"Sulidae", "Moraceae"}
    info = adapter.info()
    assert info["samples_read"] == sum(c for c, _ in FULL.values()) + len(INCOMPLETE)
    assert info["incomplete"] == info["incomplete_dropped"] == len(INCOMPLETE)
    assert info["shards"] == ["train/shard-000000.tar", "train/shard-000001.tar"]


def test_taxonomy_fill_rule_gives_placeholders_per_parent(tol):
    root, _ = tol
    adapter = make(root, incomplete="fill")
    tax = adapter.taxonomy()
    leaves = {tax.path_names(int(v), "/") for v in tax.leaf_nodes}
    assert "Animalia/Chordata/Reptilia/unknown order/Lacertidae/Podarcis/muralis" in leaves
    assert "Animalia/Arthropoda/Insecta/Coleoptera/Carabidae/unknown genus/unknown species" in leaves
    assert tax.n_leaves == len(FULL) + 3
    unknown_orders = [v for v in range(tax.n_nodes) if tax.name[v] == "unknown order"]
    assert sorted(str(tax.name[tax.parent[v]]) for v in unknown_orders) == ["Insecta", "Reptilia"]
    assert adapter.info()["incomplete_dropped"] == 0 and adapter.info()["incomplete"] == 3


# ---------------------------------------------------------------- shards
def test_prepare_writes_stratified_splits_with_upstream_keys(tol, tmp_path):
    root, truth = tol
    out = tmp_path / "shards"
    manifest = prepare_dataset(make(root, val_fraction=0.25, test_fraction=0.25), out, rows_per_shard=7)
    assert read_manifest(out) == manifest
    counts = {s: manifest["splits"][s]["rows"] for s in ("train", "val", "test")}
    assert sum(counts.values()) == sum(c for c, _ in FULL.values())
    assert counts["val"] > 0 and counts["test"] > 0
    leaf_paths = sorted(FULL)
    seen = []
    for split in ("train", "val", "test"):
        rows = split_table(out, split)
        for rid, leaf, src, common, blob in zip(rows["id"], rows["leaf"], rows["source_path"],
                                                  rows["common_name"], rows["image"]):
            assert tuple(truth[rid]) == leaf_paths[leaf]
            assert src.startswith("train/shard-00000") and src.endswith(f"!{rid}.jpg")
            assert common == f"common {rid[:4]}"
            with Image.open(io.BytesIO(blob)) as img:
                assert img.format == "JPEG" and img.size == (SIZE, SIZE)
                mean = np.asarray(img, dtype=float).reshape(-1, 3).mean(0)
            assert np.abs(mean - FULL[leaf_paths[leaf]][1]).max() < 12
        seen += rows["id"]
    assert len(seen) == len(set(seen))  # disjoint splits
    assert manifest["incomplete_dropped"] == 3 and manifest["split_counts"] == counts
    assert "val/shard-000000.tar" not in manifest["shards"]  # the default glob is train/


def test_split_is_seeded_and_stratified(tol):
    root, _ = tol
    ids = lambda seed: [r.key for r in make(root, seed=seed, test_fraction=0.4).records("test")]  # noqa: E731
    assert ids(0) == ids(0)
    assert any(ids(0) != ids(s) for s in (1, 2, 3))
    adapter = make(root, val_fraction=0.0, test_fraction=0.0)
    assert len(adapter.records("train")) == 18 and not adapter.records("test")


def test_max_shards_limit_and_glob_select_subsets(tol):
    root, truth = tol
    one = make(root, max_shards=1)
    assert one.info()["shards"] == ["train/shard-000000.tar"]
    assert one.info()["samples_read"] == 10
    limited = make(root, limit=4)
    assert sum(len(limited.records(s)) for s in ("train", "val", "test")) == 4
    both = make(root, shards="*/shard-*.tar")
    assert len(both.info()["shards"]) == 3


# ---------------------------------------------------------------- errors
def samples_for(n=3):
    return [(str(uuid.UUID(int=i + 1)), list(FULL)[i % len(FULL)], jpeg((10, 10, 10))) for i in range(n)]


def test_caption_without_image_and_image_without_caption_name_shard_and_key(tmp_path):
    s = samples_for()
    write_shard(tmp_path / "a" / "train" / "shard-000000.tar", s, skip=(s[1][0], "jpg"))
    with pytest.raises(TaxonbenchError, match=rf"train/shard-000000\.tar: key '{s[1][0]}' has a taxonTag\.txt "
                                              r"caption but no \.jpg image"):
        make(tmp_path / "a").taxonomy()
    write_shard(tmp_path / "b" / "train" / "shard-000003.tar", s, skip=(s[2][0], "taxonTag.txt"))
    with pytest.raises(TaxonbenchError, match=rf"shard-000003\.tar: key '{s[2][0]}' has a \.jpg image but no "
                                              r"taxonTag\.txt caption"):
        make(tmp_path / "b").taxonomy()


def test_key_in_two_shards_and_bad_caption_are_named(tmp_path):
    s = samples_for()
    write_shard(tmp_path / "a" / "train" / "shard-000000.tar", s)
    write_shard(tmp_path / "a" / "train" / "shard-000001.tar", s[2:])
    with pytest.raises(TaxonbenchError, match=rf"shard-000001\.tar: key '{s[2][0]}' also appears in "
                                              r"train/shard-000000\.tar"):
        make(tmp_path / "a").taxonomy()
    root = tmp_path / "b" / "train"
    root.mkdir(parents=True)
    with tarfile.open(root / "shard-000000.tar", "w") as tar:
        add(tar, "k1.jpg", jpeg((1, 1, 1)))
        add(tar, "k1.taxonTag.txt", b"Animalia Chordata Aves")
    with pytest.raises(TaxonbenchError, match=r"shard-000000\.tar: key 'k1': cannot read k1\.taxonTag\.txt"):
        make(tmp_path / "b").taxonomy()


def test_corrupt_image_names_shard_and_member(tmp_path):
    s = samples_for()
    s[1] = (s[1][0], s[1][1], b"\xff\xd8\xff\xe0 not a jpeg at all")
    write_shard(tmp_path / "raw" / "train" / "shard-000000.tar", s)
    with pytest.raises(TaxonbenchError, match=rf"train/shard-000000\.tar!{s[1][0]}\.jpg: corrupt image"):
        prepare_dataset(make(tmp_path / "raw", val_fraction=0.0, test_fraction=0.0), tmp_path / "out",
                        rows_per_shard=10)
    assert not (tmp_path / "out").exists()
    manifest = prepare_dataset(make(tmp_path / "raw", val_fraction=0.0, test_fraction=0.0), tmp_path / "out",
                               rows_per_shard=10, on_corrupt_image="skip")
    assert manifest["splits"]["train"]["rows"] == 2 and manifest["corrupt_images"]["train"] == 1


def test_truncated_shard_is_named(tmp_path):
    shard = tmp_path / "raw" / "train" / "shard-000000.tar"
    write_shard(shard, samples_for(4))
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(TaxonbenchError, match=r"shard-000000\.tar: corrupt or truncated"):
        make(tmp_path / "raw").taxonomy()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # cut exactly where a member starts
        boundary = tar.getmembers()[6].offset
    shard.write_bytes(data[:boundary])
    with pytest.raises(TaxonbenchError, match=r"shard-000000\.tar: corrupt or truncated archive .*end-of-archive"):
        make(tmp_path / "raw").taxonomy()


def test_missing_shards_and_download_explain_how_to_build_them(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(TaxonbenchError, match=r"options\.shards: no file matches .*train/shard-\*\.tar.*make_wds"):
        make(tmp_path / "raw").taxonomy()
    with pytest.raises(TaxonbenchError, match=r"options\.download: the TreeOfLife-10M files cannot be downloaded "
                                              r"automatically: .*huggingface-cli download imageomics/TreeOfLife-10M"):
        make(tmp_path / "raw", download=True).taxonomy()


@pytest.mark.parametrize("options,pattern", [
    ({"incomplete": "keep"}, r"options\.incomplete: expected one of drop, fill"),
    ({"max_shard": 2}, r"options\.max_shard: unknown key \(did you mean 'max_shards'\?\)"),
    ({"limit": 0}, r"options\.limit: expected a positive integer or null"),
    ({"max_shards": "2"}, r"options\.max_shards: must be an integer or null"),
    ({"test_fraction": 1.5}, r"options\.test_fraction: expected a fraction"),
    ({"val_fraction": 0.6, "test_fraction": 0.5}, r"val_fraction \+ test_fraction must be below 1"),
    ({"shards": "../elsewhere/*.tar"}, r"options\.shards: expected a glob relative to root"),
])
def test_options_are_validated(tmp_path, options, pattern):
    with pytest.raises(TaxonbenchError, match=pattern):
        make(tmp_path, **options)
