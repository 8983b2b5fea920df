"""The Fashion-MNIST adapter on tiny fixtures in the upstream IDX format.

https://github.com/zalandoresearch/fashion-mnist (README, "Get the Data"): ``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``; gzip-compressed
IDX files: a big-endian int32 header (magic 2051 for images with item, row and column counts, 2049 for
labels with the item count) and then the uint8 data. The fixture has a few 28 x 28 images per class.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taxonbench import download
from taxonbench.datasets import DATASETS, prepare_dataset
from taxonbench.datasets.fashion_mnist import CLASSES
from taxonbench.errors import TaxonbenchError
from taxonbench.shards import read_manifest
from dataset_fixtures import split_table

FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz"]
TRAIN_PER_CLASS, TEST_PER_CLASS = 5, 2


def image(label: int, serial: int) -> np.ndarray:
    img = np.zeros((28, 28), np.uint8)
    img[4:24, 6:22] = 25 * label + 5  # the garment
    img[0, :] = serial % 256  # a serial number in the top row
    return img


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(f">{1 + array.ndim}i", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_fashion(root: Path) -> dict[str, np.ndarray]:
    """Write the four .gz files; return {stem: labels}."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    out, serial = {}, 0
    for stem, per in (("train", TRAIN_PER_CLASS), ("t10k", TEST_PER_CLASS)):
        labels = np.repeat(np.arange(10), per)
        rng.shuffle(labels)
        images = np.stack([image(int(c), serial + k) for k, c in enumerate(labels)])
        serial += len(labels)
        (root / f"{stem}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images, 2051)))
        (root / f"{stem}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels, 2049)))
        out[stem] = labels
    return out


def make(root: Path, seed: int = 0, **options):
    return DATASETS.get("fashion_mnist")({"root": str(root), "val_size": 10, **options},
                                         name="fmnist_fixture", seed=seed)


@pytest.fixture
def fashion(tmp_path):
    root = tmp_path / "raw" / "fashion_mnist"
    return root, write_fashion(root)


def test_taxonomy_is_the_thesis_hierarchy(fashion):
    root, _ = fashion
    tax = make(root).taxonomy()
    assert tax.n_nodes == 14 and tax.n_leaves == 10 and tax.fixed_ranks and tax.rank_names == ["group", "class"]
    assert str(tax.name[0]) == "fashion-wear"
    assert [str(tax.name[v]) for v in tax.leaf_nodes] == [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    groups: dict[str, list[str]] = {}
    for v in tax.leaf_nodes:
        groups.setdefault(str(tax.name[tax.parent[v]]), []).append(str(tax.name[v]))
    assert groups == {"top-wear": ["T-shirt/top", "Pullover", "Dress", "Coat", "Shirt"],
                      "bottom-wear and accessories": ["Trouser", "Bag"],
                      "footwear": ["Sandal", "Sneaker", "Ankle boot"]}
    assert all(tax.parent[v] == 0 for v in tax.nodes_at_depth(1))


def test_prepare_writes_splits_labels_and_images(fashion, tmp_path):
    root, labels = fashion
    out = tmp_path / "shards"
    manifest = prepare_dataset(make(root), out, rows_per_shard=16)
    assert read_manifest(out) == manifest
    assert {s: manifest["splits"][s]["rows"] for s in ("train", "val", "test")} == {"train": 40, "val": 10, "test": 20}
    assert manifest["image_size"] == 28 and manifest["image_codec"] == "png" and manifest["n_nodes"] == 14
    rows = {s: split_table(out, s) for s in ("train", "val", "test")}
    assert rows["test"]["id"] == [f"t10k-{i}" for i in range(20)]
    assert rows["test"]["leaf"] == labels["t10k"].tolist()
    assert np.bincount(rows["val"]["leaf"]).tolist() == [1] * 10  # stratified: 10 % of every class
    assert sorted(rows["train"]["index"] + rows["val"]["index"]) == list(range(50))
    for split in ("train", "val"):
        assert rows[split]["index"] == sorted(rows[split]["index"])
        assert rows[split]["id"] == [f"train-{i}" for i in rows[split]["index"]]
        assert rows[split]["leaf"] == [int(labels["train"][i]) for i in rows[split]["index"]]
    serial_base = {"train": 0, "t10k": 50}
    for split in ("train", "val", "test"):
        for rid, blob, leaf in zip(rows[split]["id"], rows[split]["image"], rows[split]["leaf"]):
            stem, k = rid.split("-")
            with Image.open(io.BytesIO(blob)) as img:
                assert img.format == "PNG" and img.mode == "RGB" and img.size == (28, 28)
                arr = np.asarray(img)
            grey = image(leaf, serial_base[stem] + int(k))
            np.testing.assert_array_equal(arr, np.repeat(grey[..., None], 3, axis=2))


def test_default_val_size_is_the_thesis_10000():
    opts = DATASETS.get("fashion_mnist")(None, name="f", seed=0).options
    assert opts.val_size == 10000 and opts.image_size is None and opts.root == "data/raw/fashion_mnist"


def test_image_size_option_and_seeded_val(fashion, tmp_path):
    root, _ = fashion
    manifest = prepare_dataset(make(root, image_size=56), tmp_path / "shards", rows_per_shard=100)
    assert manifest["image_size"] == 56
    with Image.open(io.BytesIO(split_table(tmp_path / "shards", "test")["image"][0])) as img:
        assert img.size == (56, 56)
    val = make(root).indices("val")[1].tolist()
    assert make(root).indices("val")[1].tolist() == val
    assert any(make(root, seed=s).indices("val")[1].tolist() != val for s in (1, 2, 3))
    with pytest.raises(TaxonbenchError, match=r"options\.val_size: 50 is not smaller than the 50 training images"):
        make(root, val_size=50).indices("val")


# -------------------------------------------------------------------- errors
def rewrite(path: Path, transform) -> None:
    path.write_bytes(gzip.compress(transform(gzip.decompress(path.read_bytes()))))


def test_wrong_magic_names_the_file(fashion):
    root, _ = fashion
    rewrite(root / "t10k-labels-idx1-ubyte.gz", lambda b: struct.pack(">i", 2051) + b[4:])
    with pytest.raises(TaxonbenchError, match=r"t10k-labels-idx1-ubyte\.gz: magic number 2051, expected 2049"):
        make(root).indices("test")


def test_header_and_data_length_must_agree(fashion):
    root, _ = fashion
    rewrite(root / "train-images-idx3-ubyte.gz", lambda b: b[:-28])  # one image row short
    with pytest.raises(TaxonbenchError, match=r"train-images-idx3-ubyte\.gz: the header says 50 x 28 x 28 = 39200 "
                                              r"bytes of data, the file holds 39172"):
        make(root).indices("train")
    rewrite(root / "train-images-idx3-ubyte.gz", lambda b: b[:10])
    with pytest.raises(TaxonbenchError, match=r"train-images-idx3-ubyte\.gz: 10 bytes, shorter than the 16-byte"):
        make(root).indices("train")


def test_image_and_label_counts_must_agree(fashion):
    root, _ = fashion
    rewrite(root / "t10k-labels-idx1-ubyte.gz", lambda b: struct.pack(">ii", 2049, 19) + b[8:-1])
    with pytest.raises(TaxonbenchError, match=r"t10k-images-idx3-ubyte\.gz holds 20 images but .*"
                                              r"t10k-labels-idx1-ubyte\.gz 19 labels"):
        make(root).indices("test")


def test_label_out_of_range_names_file_and_item(fashion):
    root, _ = fashion
    rewrite(root / "train-labels-idx1-ubyte.gz", lambda b: b[:8 + 7] + bytes([10]) + b[8 + 8:])
    with pytest.raises(TaxonbenchError, match=r"train-labels-idx1-ubyte\.gz: item 7: label 10 is outside 0\.\.9"):
        make(root).indices("train")


def test_truncated_or_corrupt_gzip_names_the_file(fashion):
    root, _ = fashion
    path = root / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(TaxonbenchError, match=r"t10k-images-idx3-ubyte\.gz: not a readable gzip file, or truncated"):
        make(root).indices("test")
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(TaxonbenchError, match=r"t10k-images-idx3-ubyte\.gz: not a readable gzip file"):
        make(root).indices("test")


def test_missing_file_says_what_to_place_where(fashion):
    root, _ = fashion
    (root / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(TaxonbenchError) as info:
        make(root).indices("train")
    msg = str(info.value)
    assert "train-labels-idx1-ubyte.gz not found" in msg and "download: true" in msg and str(root) in msg


@pytest.mark.parametrize("options,pattern", [
    ({"val_sise": 10}, r"options\.val_sise: unknown key \(did you mean 'val_size'\?\)"),
    ({"val_size": -1}, r"options\.val_size: expected a non-negative integer"),
    ({"val_size": 1.5}, r"options\.val_size: must be an integer"),
    ({"image_size": "28"}, r"options\.image_size: expected an integer or null"),
    ({"image_size": 4}, r"options\.image_size: expected at least 8"),
    ({"allow_unverified": 1}, r"options\.allow_unverified: must be true or false"),
])
def test_options_are_validated(tmp_path, options, pattern):
    with pytest.raises(TaxonbenchError, match=pattern):
        make(tmp_path, **options)


# ------------------------------------------------------------------ download
def serve(tmp_path: Path, monkeypatch, truncate: str | None = None) -> None:
    """Put the fixture's four files on a file:// "server" and point download.SOURCES at them."""
    server = tmp_path / "server"
    write_fashion(server)
    for name in FILES:
        key = f"fashion_mnist/{name}"
        assert download.SOURCES[key].algorithm == "md5" and download.SOURCES[key].url.endswith("/" + name)
        if name == truncate:
            (server / name).write_bytes((server / name).read_bytes()[:-30])
        md5 = hashlib.md5((server / name).read_bytes()).hexdigest()
        monkeypatch.setitem(download.SOURCES, key, download.Source((server / name).as_uri(), md5, name, "md5"))


def test_download_fetches_the_four_files_and_keeps_them_compressed(tmp_path, monkeypatch):
    serve(tmp_path, monkeypatch)
    root = tmp_path / "raw"
    manifest = prepare_dataset(make(root, download=True), tmp_path / "shards", rows_per_shard=100)
    assert manifest["splits"]["test"]["rows"] == 20
    assert sorted(p.name for p in root.iterdir()) == sorted(FILES)  # .gz kept, nothing extracted
    for name in FILES:
        monkeypatch.setitem(download.SOURCES, f"fashion_mnist/{name}",
                            download.Source("file:///nonexistent", "0" * 32, name, "md5"))
    assert make(root, download=True).indices("test")[1].tolist() == list(range(20))  # nothing fetched again


def test_truncated_download_is_named(tmp_path, monkeypatch):
    serve(tmp_path, monkeypatch, truncate="train-images-idx3-ubyte.gz")
    with pytest.raises(TaxonbenchError, match=r"raw/train-images-idx3-ubyte\.gz: not a readable gzip file, or "
                                              r"truncated"):
        prepare_dataset(make(tmp_path / "raw", download=True), tmp_path / "shards", rows_per_shard=100)
    assert not (tmp_path / "shards").exists()


def test_published_checksums_are_the_readme_ones():
    md5 = {k.split("/")[1]: s.checksum for k, s in download.SOURCES.items() if k.startswith("fashion_mnist/")}
    assert md5 == {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                   "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                   "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                   "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}
    assert len(CLASSES) == 10
