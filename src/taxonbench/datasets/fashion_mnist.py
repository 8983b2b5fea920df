"""Fashion-MNIST with the thesis's 2-level hierarchy (Hierarchical Fashion MNIST).

**Upstream format** (Xiao, Rasul & Vollgraf 2017,
https://github.com/zalandoresearch/fashion-mnist, README "Get the Data"):
four gzip-compressed IDX files, kept compressed under ``root`` (they are read
with :mod:`gzip` and numpy; no torchvision):

============================== ============ ==============================
file                           magic        contents
============================== ============ ==============================
``train-images-idx3-ubyte.gz`` 2051         60000 x 28 x 28 uint8 images
``train-labels-idx1-ubyte.gz`` 2049         60000 uint8 labels 0..9
``t10k-images-idx3-ubyte.gz``  2051         10000 images (the test set)
``t10k-labels-idx1-ubyte.gz``  2049         10000 labels
============================== ============ ==============================

An IDX file is a big-endian int32 header (the magic number, then one count
per dimension: items for labels; items, rows, columns for images) followed
by the uint8 data, row-major. A file that is not gzip or is truncated, a
wrong magic number, a data length that does not match the header, image and
label files of different lengths, or a label beyond 0..9 is an error naming
the file (and the item).

**Taxonomy** (Dhall 2019, "Learning Representations for Images with
Hierarchical Labels", ETH Zurich, §2.3.2): root ``fashion-wear``; ``top-wear``
(T-shirt/top, Pullover, Dress, Coat, Shirt), ``bottom-wear and accessories``
(Trouser, Bag) and ``footwear`` (Sandal, Sneaker, Ankle boot). Ranks
``group``, ``class``; 14 nodes. The IDX files carry no names: the class names
are the README's label descriptions, leaf ``i`` = label ``i``.

**Splits.** ``test`` is the official ``t10k`` set. The thesis splits the
60000 training images into 50000 for training and 10000 for validation
(§2.3.2): ``val`` is a seeded, class-stratified holdout of ``val_size``
(default 10000, 1000 per class) training images, ``train`` the rest. Each
split keeps file order; ids are ``train-<index>`` / ``t10k-<index>`` (0-based
item index in the file), also given in the extra column ``index``.

**Images.** The 28 x 28 grey pixels (:class:`ImagePixels`), stored as RGB PNG
(lossless) at the native size by default (``image_size: null``); with an
``image_size`` they are scaled (bicubic) to that side first.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from taxonbench import download
from taxonbench.registries import DATASETS
from taxonbench.datasets.base import FileDatasetAdapter, FileOptions, Rows, row_batches
from taxonbench.datasets.cifar import check_image_size, stratified_holdout
from taxonbench.datasets.images import ImageFormat, ImagePixels
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import Taxonomy

SPLITS = ("train", "val", "test")
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
FILES = {  # split stem: (images, labels)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
"""The README's label descriptions, label ``i`` = ``CLASSES[i]``."""
GROUPS = {  # Dhall 2019, §2.3.2
    "top-wear": ("T-shirt/top", "Pullover", "Dress", "Coat", "Shirt"),
    "bottom-wear and accessories": ("Trouser", "Bag"),
    "footwear": ("Sandal", "Sneaker", "Ankle boot"),
}
ROOT = "fashion-wear"
RANKS = ("group", "class")
NATIVE_SIDE = 28


def read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """The uint8 array of one gzip-compressed IDX file, its header checked."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise TaxonbenchError(f"{path}: not a readable gzip file, or truncated ({exc})") from None
    header = 4 * (1 + ndim)
    if len(data) < header:
        raise TaxonbenchError(f"{path}: {len(data)} bytes, shorter than the {header}-byte IDX header")
    found, *dims = struct.unpack(f">{1 + ndim}i", data[:header])
    if found != magic:
        raise TaxonbenchError(f"{path}: magic number {found}, expected {magic} "
                              f"(IDX {'images' if magic == IMAGES_MAGIC else 'labels'} file)")
    if min(dims) < 0:
        raise TaxonbenchError(f"{path}: negative size in the header {dims}")
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        raise TaxonbenchError(f"{path}: the header says {' x '.join(map(str, dims))} = {expected} bytes of data, "
                              f"the file holds {len(data) - header}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


@dataclass(frozen=True)
class FashionMnistOptions(FileOptions):
    """The ``datasets.<name>.options`` block of a ``source: fashion_mnist`` dataset."""

    root: str = "data/raw/fashion_mnist"
    image_size: int | None = None  # null: native 28 x 28 (stored as RGB); else the stored side (bicubic)
    val_size: int = 10000  # training images held out as val (the thesis: 50000 train / 10000 val)


@DATASETS.register("fashion_mnist")
class FashionMnist(FileDatasetAdapter):
    """Fashion-MNIST with the thesis's hierarchy (see the module docstring)."""

    Options = FashionMnistOptions
    label = "Fashion-MNIST"

    def __init__(self, options: Mapping[str, Any] | None, *, name: str, seed: int) -> None:
        check_image_size(options, name)
        super().__init__(options, name=name, seed=seed)

    def validate_options(self) -> None:
        if self.options.val_size < 0:
            raise TaxonbenchError(f"{self.where}.val_size: expected a non-negative integer, got {self.options.val_size}")

    def required(self) -> list[str]:
        return [f for pair in FILES.values() for f in pair]

    def fetches(self) -> list[download.Fetch]:
        return [download.Fetch(f"fashion_mnist/{f}", f, extract=False) for f in self.required()]

    @cached_property
    def data(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{file stem: (images n x rows x cols, labels n)}, checked."""
        out = {}
        for stem, (images_file, labels_file) in FILES.items():
            images = read_idx(self.files / images_file, IMAGES_MAGIC, 3)
            labels = read_idx(self.files / labels_file, LABELS_MAGIC, 1)
            if len(images) != len(labels):
                raise TaxonbenchError(f"{self.files / images_file} holds {len(images)} images but "
                                      f"{self.files / labels_file} {len(labels)} labels")
            bad = np.flatnonzero(labels >= len(CLASSES))
            if len(bad):
                raise TaxonbenchError(f"{self.files / labels_file}: item {int(bad[0])}: label {int(labels[bad[0]])} "
                                      f"is outside 0..{len(CLASSES) - 1}")
            out[stem] = (images, labels)
        return out

    @cached_property
    def _taxonomy(self) -> Taxonomy:
        group_of = {c: g for g, members in GROUPS.items() for c in members}
        tax = Taxonomy.from_paths([(group_of[c], c) for c in CLASSES], RANKS, source="Fashion-MNIST (thesis §2.3.2)")
        names = list(tax.name)
        names[0] = ROOT
        return Taxonomy.from_parents(tax.parent, name=names, rank=list(tax.rank), leaf_nodes=tax.leaf_nodes,
                                     fixed_ranks=True, source=tax.source)

    def taxonomy(self) -> Taxonomy:
        return self._taxonomy

    def splits(self) -> list[str]:
        return list(SPLITS)

    @cached_property
    def _indices(self) -> dict[str, tuple[str, np.ndarray]]:
        """{split: (file stem, item indices in file order)}."""
        labels = self.data["train"][1]
        size = self.options.val_size
        if size >= len(labels):
            raise TaxonbenchError(f"{self.where}.val_size: {size} is not smaller than the {len(labels)} training "
                                  f"images of {FILES['train'][0]}")
        held = stratified_holdout(labels, size, self.seed, b"fashion_mnist-holdout")
        return {"train": ("train", np.flatnonzero(~held)), "val": ("train", np.flatnonzero(held)),
                "test": ("t10k", np.arange(len(self.data["t10k"][1])))}

    def indices(self, split: str) -> tuple[str, np.ndarray]:
        self.check_split(split)
        return self._indices[split]

    def rows(self, split: str) -> Iterator[Rows]:
        stem, idx = self.indices(split)
        images, labels = self.data[stem]
        path = self.files / FILES[stem][0]
        yield from row_batches([int(i) for i in idx], lambda i: {
            "id": f"{stem}-{i}",
            "image": ImagePixels(np.array(images[i]), f"{path} image {i}"),
            "leaf": int(labels[i]),
            "index": i,
        })

    def image_format(self) -> ImageFormat:
        return ImageFormat(size=self.options.image_size, codec="png")

    def info(self) -> dict:
        return {
            **super().info(),
            "image_size": self.options.image_size or NATIVE_SIDE,  # the stored side
            "image_codec": "png",
            "channels": 1,  # grey images (stored as RGB PNGs with three equal channels)
            "split_counts": {s: len(self.indices(s)[1]) for s in SPLITS},
            "val_split": "a seeded, class-stratified holdout of the training file (test: the official t10k file)",
        }
