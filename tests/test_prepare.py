"""The shared preparation machinery: image sources, worker processes, the corrupt-image policy,
path-keyed taxonomies and fetching what a dataset lacks."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from taxonbench import download
from taxonbench.datasets.base import CORRUPT_REPORT, DatasetAdapter, prepare_dataset
from taxonbench.datasets.images import (
    CorruptImage,
    ImageBytes,
    ImageEncoder,
    ImageFile,
    ImageFormat,
    ImagePixels,
    encode,
)
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import Taxonomy


def jpeg_bytes(colour, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


class FolderAdapter(DatasetAdapter):
    """Two leaves, one split, images from files (one of them may be corrupt)."""

    def __init__(self, paths, **kw):
        super().__init__({}, name="folder", seed=0)
        self.paths = paths

    def taxonomy(self) -> Taxonomy:
        return Taxonomy.from_paths([("a", "x"), ("a", "y")], ["genus", "species"])

    def splits(self) -> list[str]:
        return ["train"]

    def rows(self, split: str) -> Iterator[dict]:
        for start in range(0, len(self.paths), 3):
            chunk = self.paths[start:start + 3]
            yield {"id": [p.stem for p in chunk], "image": [ImageFile(str(p), f"row {p.stem}") for p in chunk],
                   "leaf": [int(p.stem) % 2 for p in chunk]}

    def image_format(self) -> ImageFormat:
        return ImageFormat(size=16)


@pytest.fixture
def folder(tmp_path):
    paths = []
    for i in range(8):
        p = tmp_path / "images" / f"{i}.jpg"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(jpeg_bytes((30 * i, 255 - 30 * i, 7 * i)))
        paths.append(p)
    return paths


def shard_rows(directory, split="train"):
    manifest = json.loads((directory / "manifest.json").read_text())
    tables = [pq.read_table(directory / f) for f in manifest["splits"][split]["files"]]
    return [row for t in tables for row in t.to_pylist()]


def test_sources_are_conformed_to_the_stored_form():
    fmt = ImageFormat(size=16)
    for source in (ImageBytes(jpeg_bytes((200, 10, 10)), "mem"),
                   ImagePixels(np.full((30, 40, 3), (200, 10, 10), np.uint8), "pixels"),
                   ImagePixels(np.full((30, 40), 200, np.uint8), "grey")):
        out = encode(source, fmt)
        with Image.open(io.BytesIO(out)) as img:
            assert img.format == "JPEG" and img.mode == "RGB" and img.size == (16, 16)
    native = encode(ImagePixels(np.zeros((32, 32, 3), np.uint8), "cifar"), ImageFormat(size=None, codec="png"))
    with Image.open(io.BytesIO(native)) as img:
        assert img.format == "PNG" and img.size == (32, 32)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(native))), np.zeros((32, 32, 3), np.uint8))


def test_corrupt_source_is_reported_not_raised():
    out = encode(ImageBytes(b"\xff\xd8\xff\xe0 no jpeg", "archive.tar!member.jpg"), ImageFormat(size=16))
    assert isinstance(out, CorruptImage) and out.where == "archive.tar!member.jpg"


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(TaxonbenchError, match=r"nothere\.jpg \(row 3\): image not found"):
        encode(ImageFile(str(tmp_path / "nothere.jpg"), "row 3"), ImageFormat(size=16))


def test_shards_do_not_depend_on_the_number_of_workers(folder, tmp_path):
    prepare_dataset(FolderAdapter(folder), tmp_path / "one", rows_per_shard=5, workers=1)
    prepare_dataset(FolderAdapter(folder), tmp_path / "two", rows_per_shard=5, workers=2)
    one, two = shard_rows(tmp_path / "one"), shard_rows(tmp_path / "two")
    assert len(one) == 8 and one == two
    with ImageEncoder(ImageFormat(size=16), workers=2) as enc:  # passes bytes through, keeps order
        done = enc.encode([b"raw", ImageFile(str(folder[0]))])
    assert done[0] == b"raw" and done[1] == one[0]["image"]


def test_corrupt_image_stops_and_names_the_switch(folder, tmp_path):
    folder[5].write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "keep.txt").write_text("earlier output")
    with pytest.raises(TaxonbenchError) as info:
        prepare_dataset(FolderAdapter(folder), tmp_path / "shards", rows_per_shard=5, workers=2)
    msg = str(info.value)
    assert f"{folder[5]} (row 5): corrupt image" in msg and "on_corrupt_image: skip" in msg
    assert (tmp_path / "shards" / "keep.txt").read_text() == "earlier output"  # nothing replaced


def test_corrupt_images_skipped_are_counted_and_listed(folder, tmp_path, capsys):
    for k in (2, 5):
        folder[k].write_bytes(b"not an image at all")
    manifest = prepare_dataset(FolderAdapter(folder), tmp_path / "shards", rows_per_shard=5,
                               on_corrupt_image="skip")
    assert manifest["corrupt_images"] == {"train": 2} and manifest["splits"]["train"]["rows"] == 6
    assert [r["id"] for r in shard_rows(tmp_path / "shards")] == ["0", "1", "3", "4", "6", "7"]
    with open(tmp_path / "shards" / CORRUPT_REPORT) as f:
        report = list(csv.DictReader(f))
    assert [(r["split"], r["id"]) for r in report] == [("train", "2"), ("train", "5")]
    assert all(r["where"].startswith(str(folder[int(r["id"])])) and r["reason"] for r in report)
    assert "2 corrupt image(s) skipped" in capsys.readouterr().err


def test_unknown_corrupt_policy_is_refused(folder, tmp_path):
    with pytest.raises(TaxonbenchError, match=r"datasets\.folder\.on_corrupt_image: expected one of stop, skip"):
        prepare_dataset(FolderAdapter(folder), tmp_path / "s", rows_per_shard=5, on_corrupt_image="ignore")


# ------------------------------------------------------------ path taxonomy
def test_taxonomy_from_paths_hand_example():
    tax = Taxonomy.from_paths([("B", "g", "z"), ("A", "g", "y"), ("A", "g", "x"), ("A", "h", "x")],
                              ["order", "genus", "species"], source="hand")
    # internal nodes depth by depth, lexicographic paths: A, B, A/g, A/h, B/g; then leaves in order
    assert list(tax.name) == ["root", "A", "B", "g", "h", "g", "z", "y", "x", "x"]
    assert list(tax.parent) == [-1, 0, 0, 1, 1, 2, 5, 3, 3, 4]
    assert list(tax.rank[1:]) == ["order"] * 2 + ["genus"] * 3 + ["species"] * 4
    assert list(tax.leaf_nodes) == [6, 7, 8, 9] and tax.fixed_ranks
    ragged = Taxonomy.from_paths([("a", "b"), ("c",)], ["l1", "l2"])
    assert not ragged.fixed_ranks and list(ragged.depth[ragged.leaf_nodes]) == [2, 1]


@pytest.mark.parametrize("paths,pattern", [
    ([("a", "b"), ("a", "b")], r"hand: leaf a / b appears twice"),
    ([("a", "b"), ("a",)], r"hand: a is a leaf and also has children"),
    ([("a", "b", "c")], r"hand: leaf paths of 1 to 2 names"),
])
def test_taxonomy_from_paths_errors(paths, pattern):
    with pytest.raises(TaxonbenchError, match=pattern):
        Taxonomy.from_paths(paths, ["l1", "l2"], source="hand")


# ------------------------------------------------------------------ fetching
def test_fetch_missing_fetches_only_what_is_missing(tmp_path, monkeypatch):
    served = tmp_path / "server" / "labels.gz"
    served.parent.mkdir()
    served.write_bytes(b"label bytes")
    digest = hashlib.sha256(b"label bytes").hexdigest()
    monkeypatch.setitem(download.SOURCES, "test/labels.gz",
                        download.Source(served.as_uri(), digest, "labels.gz"))
    monkeypatch.setitem(download.SOURCES, "test/unverified.gz",
                        download.Source(served.as_uri(), None, "unverified.gz"))
    root = tmp_path / "root"
    fetched = download.fetch_missing([download.Fetch("test/labels.gz", "labels.gz", extract=False)], root,
                                     progress=False)
    assert fetched == [root / "labels.gz"] and (root / "labels.gz").read_bytes() == b"label bytes"
    assert download.fetch_missing([download.Fetch("test/labels.gz", "labels.gz", extract=False)], root) == []
    with pytest.raises(TaxonbenchError, match=r"publish no checksum .* allow_unverified: true"):
        download.fetch_missing([download.Fetch("test/unverified.gz", "unverified.gz", extract=False)], root)
    got = download.fetch_missing([download.Fetch("test/unverified.gz", "unverified.gz", extract=False)], root,
                                 allow_unverified=True, progress=False)
    assert got == [root / "unverified.gz"]
