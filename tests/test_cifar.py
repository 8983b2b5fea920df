"""The CIFAR-10 / CIFAR-100 adapters on tiny fixtures written in the upstream binary format.

https://www.cs.toronto.edu/~kriz/cifar.html, "Binary version": ``cifar-10-batches-bin/`` holds
``data_batch_1.bin`` ... ``data_batch_5.bin``, ``test_batch.bin`` (records of 1 label byte + 3072
pixel bytes: the 32 x 32 red, green and blue planes, row-major), ``batches.meta.txt`` (the class
names) and ``readme.html``; ``cifar-100-binary/`` holds ``train.bin`` / ``test.bin`` (records of a
coarse label byte, a fine label byte and the same 3072 pixel bytes) and
``coarse_label_names.txt`` / ``fine_label_names.txt``. The fixtures have a few records per class.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taxonbench import download
from taxonbench.datasets import DATASETS, prepare_dataset
from taxonbench.datasets.cifar import stratified_holdout
from taxonbench.errors import TaxonbenchError
from taxonbench.shards import read_manifest
from taxonbench.taxonomy import Taxonomy
from dataset_fixtures import split_table

NAMES10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TRAIN_PER_CLASS, TEST_PER_CLASS = 4, 1  # CIFAR-10 fixture: 8 records per data batch, 10 in test_batch


def pixels(label: int, serial: int) -> np.ndarray:
    """A 32 x 32 x 3 image telling its label (red), its serial number (blue) and the position (green)."""
    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 0] = (20 * label + 3) % 256
    img[..., 1] = (np.arange(32)[None, :] * 7 + np.arange(32)[:, None]) % 256
    img[..., 2] = serial % 256
    return img


def record(labels: tuple[int, ...], img: np.ndarray) -> bytes:
    """One binary record: the label byte(s), then the R, G and B planes."""
    return bytes(labels) + img.transpose(2, 0, 1).tobytes()


def write_cifar10(root: Path, names=NAMES10) -> dict[str, list[int]]:
    """Write ``cifar-10-batches-bin``; return {file stem: labels of its records}."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    train = [c for c in range(10) for _ in range(TRAIN_PER_CLASS)]
    np.random.default_rng(5).shuffle(train)  # the training batches hold the classes in random order
    files = {f"data_batch_{i + 1}": train[8 * i:8 * i + 8] for i in range(5)}
    files["test_batch"] = [c for c in range(10) for _ in range(TEST_PER_CLASS)][::-1]
    serial = 0
    for stem, labels in files.items():
        blob = b""
        for label in labels:
            blob += record((label,), pixels(label, serial))
            serial += 1
        (folder / f"{stem}.bin").write_bytes(blob)
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    (folder / "readme.html").write_text("<meta HTTP-EQUIV=\"REFRESH\" content=\"0; url=https://www.cs.toronto.edu/"
                                        "~kriz/cifar.html\">\n")
    return files


def make(source: str, root: Path, seed: int = 0, **options):
    return DATASETS.get(source)({"root": str(root), **options}, name=f"{source}_fixture", seed=seed)


@pytest.fixture
def cifar10(tmp_path):
    root = tmp_path / "raw" / "cifar10"
    return root, write_cifar10(root)


# ------------------------------------------------------------- CIFAR-10 tree
def test_cifar10_taxonomy_is_the_thesis_hierarchy(cifar10):
    root, _ = cifar10
    tax = make("cifar10", root).taxonomy()
    assert tax.n_nodes == 17 and tax.n_leaves == 10 and tax.fixed_ranks
    assert tax.rank_names == ["group", "subgroup", "class"]
    assert str(tax.name[0]) == "entity"
    assert [str(tax.name[v]) for v in tax.leaf_nodes] == NAMES10  # leaf i = label i
    parent_of = {str(tax.name[v]): str(tax.name[tax.parent[v]]) for v in range(1, tax.n_nodes)}
    assert parent_of == {
        "living": "entity", "non-living": "entity",
        "mammal": "living", "non-mammal": "living", "vehicle": "non-living", "craft": "non-living",
        "cat": "mammal", "deer": "mammal", "dog": "mammal", "horse": "mammal", "bird": "non-mammal",
        "frog": "non-mammal", "automobile": "vehicle", "truck": "vehicle", "airplane": "craft", "ship": "craft",
    }
    assert [int((tax.depth == d).sum()) for d in (1, 2, 3)] == [2, 4, 10]


def test_cifar10_leaf_order_follows_batches_meta(tmp_path):
    names = NAMES10[::-1]
    root = tmp_path / "cifar10"
    write_cifar10(root, names=names)
    tax = make("cifar10", root).taxonomy()
    assert [str(tax.name[v]) for v in tax.leaf_nodes] == names
    assert str(tax.name[tax.parent[tax.leaf_nodes[0]]]) == "vehicle"  # truck


# ----------------------------------------------------------- CIFAR-10 shards
def test_cifar10_prepare_official_protocol(cifar10, tmp_path):
    root, files = cifar10
    out = tmp_path / "shards"
    manifest = prepare_dataset(make("cifar10", root), out, rows_per_shard=7)
    assert read_manifest(out) == manifest
    n_train = 10 * TRAIN_PER_CLASS
    assert {s: manifest["splits"][s]["rows"] for s in ("train", "val", "test")} == {
        "train": n_train - 4, "val": 4, "test": 10}  # val: 10 % of 40 training records
    assert manifest["image_size"] == 32 and manifest["image_codec"] == "png" and manifest["protocol"] == "official"
    assert manifest["n_nodes"] == 17 and Taxonomy.read(out / "taxonomy.parquet").n_leaves == 10

    rows = {s: split_table(out, s) for s in ("train", "val", "test")}
    assert rows["test"]["id"] == [f"test_batch-{i}" for i in range(10)]
    assert rows["test"]["leaf"] == files["test_batch"]
    assert set(rows["test"]["source_path"]) == {"cifar-10-batches-bin/test_batch.bin"}
    # train + val = the five data batches, in file and record order, each id once, labels kept
    every = {f"{stem}-{i}": label for stem, labels in files.items() if stem != "test_batch"
             for i, label in enumerate(labels)}
    assert sorted(rows["train"]["id"] + rows["val"]["id"]) == sorted(every)
    assert not set(rows["train"]["id"]) & set(rows["val"]["id"])
    for split in ("train", "val"):
        r = rows[split]
        assert [every[i] for i in r["id"]] == r["leaf"]
        keys = [(int(i.split("_")[2].split("-")[0]), int(i.rsplit("-", 1)[1])) for i in r["id"]]
        assert keys == sorted(keys)
        assert all(i == f"{Path(p).stem}-{k}" for i, p, k in zip(r["id"], r["source_path"], r["record"]))
    # 4 of 10 equal-sized classes: largest remainders tie, so labels 0..3 get one each
    assert sorted(rows["val"]["leaf"]) == [0, 1, 2, 3]


def test_cifar10_images_are_the_records_pixels_as_png(cifar10, tmp_path):
    root, files = cifar10
    out = tmp_path / "shards"
    prepare_dataset(make("cifar10", root), out, rows_per_shard=100)
    offsets, serial = {}, 0
    for stem, labels in files.items():
        offsets[stem], serial = serial, serial + len(labels)
    for split in ("train", "val", "test"):
        r = split_table(out, split)
        for rid, blob, leaf in zip(r["id"], r["image"], r["leaf"]):
            assert blob[:8] == b"\x89PNG\r\n\x1a\n"
            stem, k = rid.rsplit("-", 1)
            with Image.open(io.BytesIO(blob)) as img:
                assert img.size == (32, 32) and img.mode == "RGB"
                np.testing.assert_array_equal(np.asarray(img), pixels(leaf, offsets[stem] + int(k)))


def test_cifar10_image_size_option_resizes(cifar10, tmp_path):
    root, _ = cifar10
    manifest = prepare_dataset(make("cifar10", root, image_size=16), tmp_path / "shards", rows_per_shard=100)
    assert manifest["image_size"] == 16
    blob = split_table(tmp_path / "shards", "test")["image"][0]
    with Image.open(io.BytesIO(blob)) as img:
        assert img.format == "PNG" and img.size == (16, 16)
        assert abs(int(np.asarray(img)[..., 0].mean()) - (20 * 9 + 3)) <= 1  # test_batch record 0 is a truck


def test_cifar10_pooled_80_10_10_protocol(cifar10, tmp_path):
    root, _ = cifar10
    adapter = make("cifar10", root, protocol="pooled_80_10_10")
    manifest = prepare_dataset(adapter, tmp_path / "shards", rows_per_shard=100)
    # 5 records per class pooled: 10 % (rounded half up) = 1 to test, 1 to val, 3 to train
    assert {s: manifest["splits"][s]["rows"] for s in ("train", "val", "test")} == {"train": 30, "val": 10, "test": 10}
    rows = {s: split_table(tmp_path / "shards", s) for s in ("train", "val", "test")}
    for split, per_class in (("train", 3), ("val", 1), ("test", 1)):
        assert np.bincount(rows[split]["leaf"], minlength=10).tolist() == [per_class] * 10
    ids = rows["train"]["id"] + rows["val"]["id"] + rows["test"]["id"]
    assert len(set(ids)) == 50
    assert any(i.startswith("test_batch-") for i in rows["train"]["id"] + rows["val"]["id"])  # really pooled
    assert any(i.startswith("data_batch_") for i in rows["test"]["id"])
    assert make("cifar10", root, protocol="pooled_80_10_10", seed=0).records("test") == adapter.records("test")
    assert any(make("cifar10", root, protocol="pooled_80_10_10", seed=s).records("test") != adapter.records("test")
               for s in (1, 2, 3))


def test_cifar10_val_size_and_seed(cifar10):
    root, _ = cifar10
    val = make("cifar10", root, val_size=10).records("val")
    assert sorted(r.leaf for r in val) == list(range(10))  # stratified: one per class
    assert make("cifar10", root, val_size=10).records("val") == val  # deterministic for the seed
    assert any(make("cifar10", root, val_size=10, seed=s).records("val") != val for s in (1, 2, 3))
    assert make("cifar10", root, val_size=0).records("val") == []
    with pytest.raises(TaxonbenchError, match=r"options\.val_size: 40 is not smaller than the 40 training records"):
        make("cifar10", root, val_size=40).records("val")


def test_workers_do_not_change_the_shards(cifar10, tmp_path):
    root, _ = cifar10
    prepare_dataset(make("cifar10", root), tmp_path / "one", rows_per_shard=100, workers=1)
    prepare_dataset(make("cifar10", root), tmp_path / "two", rows_per_shard=100, workers=2)
    for split in ("train", "val", "test"):
        assert split_table(tmp_path / "one", split) == split_table(tmp_path / "two", split)


def test_stratified_holdout_proportions():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    mask = stratified_holdout(labels, 10, seed=3, tag=b"t")
    assert mask.sum() == 10 and np.bincount(labels[mask]).tolist() == [5, 3, 2]
    mask = stratified_holdout(labels, 7, seed=3, tag=b"t")  # exact 3.5 / 2.1 / 1.4 -> 4 / 2 / 1
    assert np.bincount(labels[mask], minlength=3).tolist() == [4, 2, 1]
    assert (stratified_holdout(labels, 7, seed=3, tag=b"t") == mask).all()


# ----------------------------------------------------------- CIFAR-10 errors
def test_truncated_record_file_names_file_and_record(cifar10):
    root, _ = cifar10
    path = root / "cifar-10-batches-bin" / "data_batch_2.bin"
    path.write_bytes(path.read_bytes() + b"\x03" + b"\x00" * 4)
    with pytest.raises(TaxonbenchError, match=r"data_batch_2\.bin: 24589 bytes is not a whole number of 3073-byte "
                                              r"records .*record 8 is truncated \(5 of 3073 bytes\)"):
        make("cifar10", root).records("train")


def test_label_out_of_range_names_file_and_record(cifar10):
    root, _ = cifar10
    path = root / "cifar-10-batches-bin" / "test_batch.bin"
    data = bytearray(path.read_bytes())
    data[3 * 3073] = 10
    path.write_bytes(bytes(data))
    with pytest.raises(TaxonbenchError, match=r"test_batch\.bin: record 3: label 10 is outside 0\.\.9"):
        make("cifar10", root).records("test")


def test_unknown_or_missing_class_names_in_batches_meta(cifar10):
    root, _ = cifar10
    meta = root / "cifar-10-batches-bin" / "batches.meta.txt"
    meta.write_text("aeroplane\n" + "\n".join(NAMES10[1:]) + "\n")
    with pytest.raises(TaxonbenchError, match=r"batches\.meta\.txt: line 1: class 'aeroplane' is not one of the ten"):
        make("cifar10", root).taxonomy()
    meta.write_text("\n".join(NAMES10[:9]) + "\n")
    with pytest.raises(TaxonbenchError, match=r"batches\.meta\.txt: expected 10 class names .*found 9"):
        make("cifar10", root).taxonomy()
    meta.write_text("\n".join(NAMES10[:4] + ["", *NAMES10[4:]]) + "\n")
    with pytest.raises(TaxonbenchError, match=r"batches\.meta\.txt: line 5: empty class name"):
        make("cifar10", root).taxonomy()


def test_missing_files_say_what_to_place_where(cifar10, tmp_path):
    root, _ = cifar10
    (root / "cifar-10-batches-bin" / "data_batch_4.bin").unlink()
    with pytest.raises(TaxonbenchError, match=r"data_batch_4\.bin not found; expected the CIFAR-10 files .*"
                                              r"download: true to fetch cifar-10-binary\.tar\.gz"):
        make("cifar10", root).taxonomy()
    with pytest.raises(TaxonbenchError, match=r"does not exist"):
        make("cifar100", tmp_path / "nowhere").taxonomy()


@pytest.mark.parametrize("options,pattern", [
    ({"protocl": "official"}, r"options\.protocl: unknown key \(did you mean 'protocol'\?\)"),
    ({"protocol": "thesis"}, r"options\.protocol: expected one of official, pooled_80_10_10"),
    ({"val_size": -1}, r"options\.val_size: expected a non-negative integer or null"),
    ({"val_size": "5000"}, r"options\.val_size: must be an integer or null"),
    ({"val_size": 10, "protocol": "pooled_80_10_10"}, r"options\.val_size: only used with protocol: official"),
    ({"image_size": "32"}, r"options\.image_size: expected an integer or null"),
    ({"image_size": 4}, r"options\.image_size: expected at least 8"),
    ({"download": "yes"}, r"options\.download: must be true or false"),
])
def test_options_are_validated(tmp_path, options, pattern):
    with pytest.raises(TaxonbenchError, match=pattern):
        make("cifar10", tmp_path, **options)


# ----------------------------------------------------------------- CIFAR-100
COARSE = ["aquatic_mammals", "fish", "flowers", "vehicles_1"]
FINE = ["beaver", "dolphin", "aquarium_fish", "flatfish", "orchid", "poppy", "bicycle", "pickup_truck"]
FINE_TO_COARSE = [0, 0, 1, 1, 2, 2, 3, 3]


def write_cifar100(root: Path, coarse=COARSE, fine=FINE, parent=FINE_TO_COARSE, per_class=(3, 1)) -> None:
    folder = root / "cifar-100-binary"
    folder.mkdir(parents=True)
    serial = 0
    for stem, n in zip(("train", "test"), per_class):
        blob = b""
        for k in range(n):
            for f in (range(len(fine)) if k % 2 == 0 else reversed(range(len(fine)))):
                blob += record((parent[f], f), pixels(f, serial))
                serial += 1
        (folder / f"{stem}.bin").write_bytes(blob)
    (folder / "coarse_label_names.txt").write_text("\n".join(coarse) + "\n\n")
    (folder / "fine_label_names.txt").write_text("\n".join(fine) + "\n\n")


@pytest.fixture
def cifar100(tmp_path):
    root = tmp_path / "raw" / "cifar100"
    write_cifar100(root)
    return root


def test_cifar100_tree_from_the_records(cifar100):
    tax = make("cifar100", cifar100).taxonomy()
    assert tax.n_nodes == 1 + 4 + 8 and tax.rank_names == ["superclass", "class"]
    assert [str(tax.name[v]) for v in tax.leaf_nodes] == [n.replace("_", " ") for n in FINE]
    assert [str(tax.name[tax.parent[v]]) for v in tax.leaf_nodes] == [
        COARSE[c].replace("_", " ") for c in FINE_TO_COARSE]
    assert sorted(str(tax.name[v]) for v in tax.nodes_at_depth(1)) == [
        "aquatic mammals", "fish", "flowers", "vehicles 1"]


def test_cifar100_prepare(cifar100, tmp_path):
    out = tmp_path / "shards"
    manifest = prepare_dataset(make("cifar100", cifar100, val_size=8), out, rows_per_shard=5)
    assert {s: manifest["splits"][s]["rows"] for s in ("train", "val", "test")} == {"train": 16, "val": 8, "test": 8}
    assert manifest["n_superclasses"] == 4 and manifest["image_size"] == 32
    test = split_table(out, "test")
    assert test["id"] == [f"test-{i}" for i in range(8)] and test["leaf"] == list(range(8))
    val = split_table(out, "val")
    assert sorted(val["leaf"]) == list(range(8)) and all(i.startswith("train-") for i in val["id"])
    with Image.open(io.BytesIO(val["image"][0])) as img:
        np.testing.assert_array_equal(np.asarray(img), pixels(val["leaf"][0], val["record"][0]))


def test_cifar100_fine_class_under_two_superclasses_is_an_error(cifar100):
    path = cifar100 / "cifar-100-binary" / "test.bin"
    data = bytearray(path.read_bytes())
    data[5 * 3074] = 0  # record 5 is fine class 5 (poppy, under flowers = 2): put it under aquatic mammals
    path.write_bytes(bytes(data))
    with pytest.raises(TaxonbenchError, match=r"test\.bin: record 5: fine class 5 \(poppy\) under coarse class 0 "
                                              r"\(aquatic_mammals\), but record 5 of .*train\.bin puts it under "
                                              r"coarse class 2 \(flowers\)"):
        make("cifar100", cifar100).taxonomy()


def test_cifar100_label_errors_name_file_and_record(cifar100):
    path = cifar100 / "cifar-100-binary" / "train.bin"
    data = bytearray(path.read_bytes())
    data[2 * 3074 + 1] = 8
    path.write_bytes(bytes(data))
    with pytest.raises(TaxonbenchError, match=r"train\.bin: record 2: fine label 8 is outside 0\.\.7"):
        make("cifar100", cifar100).taxonomy()
    data[2 * 3074 + 1], data[0] = 2, 4
    path.write_bytes(bytes(data))
    with pytest.raises(TaxonbenchError, match=r"train\.bin: record 0: coarse label 4 is outside 0\.\.3"):
        make("cifar100", cifar100).taxonomy()
    path.write_bytes(bytes(data[:-1]))
    with pytest.raises(TaxonbenchError, match=r"train\.bin: .*3074-byte records .*record 23 is truncated"):
        make("cifar100", cifar100).taxonomy()


def test_cifar100_fine_class_without_records_is_an_error(tmp_path):
    write_cifar100(tmp_path, fine=FINE + ["tractor"], parent=FINE_TO_COARSE + [3])
    folder = tmp_path / "cifar-100-binary"
    for stem in ("train", "test"):  # drop every record of fine class 8
        data = np.frombuffer((folder / f"{stem}.bin").read_bytes(), np.uint8).reshape(-1, 3074)
        (folder / f"{stem}.bin").write_bytes(data[data[:, 1] != 8].tobytes())
    with pytest.raises(TaxonbenchError, match=r"fine_label_names\.txt: fine class 8 \(tractor\) has no record"):
        make("cifar100", tmp_path).taxonomy()


@pytest.mark.parametrize("break_it", [False, True])
def test_cifar100_full_size_has_five_classes_per_superclass(tmp_path, break_it):
    parent = [f // 5 for f in range(100)]
    if break_it:
        parent[7] = 0  # superclass 0 gets 6 classes, superclass 1 only 4
    write_cifar100(tmp_path, coarse=[f"super_{c}" for c in range(20)], fine=[f"class_{f}" for f in range(100)],
                   parent=parent, per_class=(1, 0))
    (tmp_path / "cifar-100-binary" / "test.bin").write_bytes(record((0, 0), pixels(0, 0)))
    adapter = make("cifar100", tmp_path)
    if break_it:
        with pytest.raises(TaxonbenchError, match=r"superclass 0 \(super 0\) has 6 classes .* 5 per superclass"):
            adapter.taxonomy()
    else:
        tax = adapter.taxonomy()
        assert tax.n_nodes == 121 and tax.n_leaves == 100
        assert all(len(tax.children[v]) == 5 for v in tax.nodes_at_depth(1))


# ------------------------------------------------------------------ download
def tar_folder(folder: Path, archive: Path) -> str:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return hashlib.md5(archive.read_bytes()).hexdigest()


@pytest.mark.parametrize("source,key,folder", [
    ("cifar10", "cifar10/cifar-10-binary.tar.gz", "cifar-10-batches-bin"),
    ("cifar100", "cifar100/cifar-100-binary.tar.gz", "cifar-100-binary"),
])
def test_download_fetches_verifies_and_extracts(tmp_path, monkeypatch, source, key, folder):
    upstream = tmp_path / "upstream"
    write_cifar10(upstream) if source == "cifar10" else write_cifar100(upstream)
    archive = tmp_path / "server" / key.split("/")[1]
    archive.parent.mkdir()
    md5 = tar_folder(upstream / folder, archive)
    assert download.SOURCES[key].algorithm == "md5" and download.SOURCES[key].url.startswith("https://www.cs.toronto")
    monkeypatch.setitem(download.SOURCES, key, download.Source(archive.as_uri(), md5, archive.name, "md5"))
    root = tmp_path / "raw"
    manifest = prepare_dataset(make(source, root, download=True), tmp_path / "shards", rows_per_shard=100)
    assert manifest["splits"]["test"]["rows"] == (10 if source == "cifar10" else 8)
    assert sorted(p.name for p in root.iterdir()) == sorted([folder, archive.name])
    # a second run finds the files in place and downloads nothing
    monkeypatch.setitem(download.SOURCES, key, download.Source("file:///nonexistent", "0" * 32, archive.name, "md5"))
    assert make(source, root, download=True).taxonomy().n_nodes == (17 if source == "cifar10" else 13)


def test_truncated_archive_is_named(tmp_path, monkeypatch):
    upstream = tmp_path / "upstream"
    write_cifar10(upstream)
    archive = tmp_path / "server" / "cifar-10-binary.tar.gz"
    archive.parent.mkdir()
    tar_folder(upstream / "cifar-10-batches-bin", archive)
    archive.write_bytes(archive.read_bytes()[:-200])
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(download.SOURCES, "cifar10/cifar-10-binary.tar.gz",
                        download.Source(archive.as_uri(), md5, archive.name, "md5"))
    root = tmp_path / "raw"
    with pytest.raises(TaxonbenchError, match=r"raw/cifar-10-binary\.tar\.gz: corrupt or truncated archive"):
        make("cifar10", root, download=True).taxonomy()
    assert not (root / "cifar-10-batches-bin").exists()


def test_wrong_checksum_is_refused(tmp_path, monkeypatch):
    upstream = tmp_path / "upstream"
    write_cifar100(upstream)
    archive = tmp_path / "server" / "cifar-100-binary.tar.gz"
    archive.parent.mkdir()
    tar_folder(upstream / "cifar-100-binary", archive)
    monkeypatch.setitem(download.SOURCES, "cifar100/cifar-100-binary.tar.gz",
                        download.Source(archive.as_uri(), "03b5dce01913d631647c71ecec9e9cb8", archive.name, "md5"))
    with pytest.raises(TaxonbenchError, match=r"md5 mismatch .*expected 03b5dce01913d631647c71ecec9e9cb8"):
        make("cifar100", tmp_path / "raw", download=True).taxonomy()
