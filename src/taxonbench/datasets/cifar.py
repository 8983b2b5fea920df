"""CIFAR-10 with the thesis's 3-level hierarchy, and CIFAR-100 with its 20 superclasses.

**Upstream format** (the *binary version* of both datasets, Krizhevsky 2009,
https://www.cs.toronto.edu/~kriz/cifar.html, section "Binary version"); no
pickle is read anywhere.

- ``cifar-10-binary.tar.gz`` extracts to ``cifar-10-batches-bin/`` with
  ``data_batch_1.bin`` ... ``data_batch_5.bin`` (training), ``test_batch.bin``
  and ``batches.meta.txt`` (the ten class names, one a line, in label order).
  Each ``.bin`` file is a plain run of 3073-byte records, 10000 per file:
  one label byte (0..9), then 3072 pixel bytes, the 32 x 32 red plane, then the
  green and the blue plane, each in row-major order.
- ``cifar-100-binary.tar.gz`` extracts to ``cifar-100-binary/`` with
  ``train.bin`` (50000 records), ``test.bin`` (10000),
  ``coarse_label_names.txt`` (20 superclass names) and ``fine_label_names.txt``
  (100 class names). A record is 3074 bytes: the coarse label byte, the fine
  label byte, then the same 3072 pixel bytes.

A record file whose size is not a whole number of records, or a label byte
beyond the names of its label file, is an error naming the file and the
record (0-based index in the file).

**Taxonomy.**

- ``cifar10``: the *Hierarchical CIFAR-10* of Dhall's thesis ("Learning
  Representations for Images with Hierarchical Labels", ETH Zurich 2019,
  §2.3.1): root ``entity``; ``living`` (``mammal``: cat, deer, dog, horse;
  ``non-mammal``: bird, frog) and ``non-living`` (``vehicle``: automobile,
  truck; ``craft``: airplane, ship). Ranks ``group``, ``subgroup``, ``class``;
  17 nodes. The class names are read from ``batches.meta.txt`` (leaf ``i`` =
  label ``i``); a name that is not one of the ten classes of the hierarchy is
  an error naming the file and the line.
- ``cifar100``: root, the superclasses, the classes (ranks ``superclass``,
  ``class``); built from the records' (coarse, fine) pairs of all record files,
  which must be consistent: a fine class met under two coarse classes is an
  error naming both records, and a fine class without any record (so without a
  known superclass) is an error. Leaf ``i`` = fine label ``i``; names from the
  two label files with ``_`` written as a space (``aquarium_fish`` ->
  ``aquarium fish``). With the full 20 / 100 names every superclass must have
  exactly five classes (as on the CIFAR page).

**Splits** (option ``protocol``).

- ``official`` (default): ``test`` is the official test file; ``val`` is a
  seeded, class-stratified holdout of ``val_size`` records of the training
  files (default: 10 % of them, 5000 = 500 per class for CIFAR-10, 50 per
  class for CIFAR-100) and ``train`` the rest.
- ``pooled_80_10_10``: the thesis's "80 % - 10 % - 10 % split for training,
  validation and testing" (§2.3.1): all 60000 records are pooled and, per
  class, a seeded 10 % goes to ``test``, 10 % to ``val`` and the rest to
  ``train`` (48000 / 6000 / 6000). The thesis does not say how it split, so
  this pooled, stratified reading is an assumption.

Class-stratified holdouts: each class's share of the holdout is proportional
to its count (largest remainders, ties to the smaller label), and its members
are drawn by a generator seeded with the params ``seed``; every split keeps
file and record order. Row ids are ``<file stem>-<record index>``
(``data_batch_3-1234``, ``test_batch-17``, ``train-4``, ``test-17``); the
extra columns ``source_path`` (the record file, relative to ``root``) and
``record`` (the index) locate each image.

**Images.** The records' raw pixels (:class:`ImagePixels`), stored as PNG
(lossless) at the native 32 x 32 by default (``image_size: null``); with an
``image_size`` they are scaled (bicubic) to that side first.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from taxonbench import download
from taxonbench.registries import DATASETS
from taxonbench.datasets.base import FileDatasetAdapter, FileOptions, Rows, row_batches
from taxonbench.datasets.images import ImageFormat, ImagePixels
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import Taxonomy

SPLITS = ("train", "val", "test")
PROTOCOLS = ("official", "pooled_80_10_10")
PIXELS = 3072  # 32 x 32 x 3 bytes per record
SIDE = 32

CIFAR10_TREE: dict[str, tuple[str, str]] = {
    # class: (level 1, level 2), Dhall 2019, §2.3.1
    "cat": ("living", "mammal"), "deer": ("living", "mammal"), "dog": ("living", "mammal"),
    "horse": ("living", "mammal"),
    "bird": ("living", "non-mammal"), "frog": ("living", "non-mammal"),
    "automobile": ("non-living", "vehicle"), "truck": ("non-living", "vehicle"),
    "airplane": ("non-living", "craft"), "ship": ("non-living", "craft"),
}
CIFAR10_ROOT = "entity"
CIFAR10_RANKS = ("group", "subgroup", "class")
CIFAR100_RANKS = ("superclass", "class")
CIFAR100_PER_SUPERCLASS = 5


# ------------------------------------------------------------ shared helpers
def stratified_holdout(labels: np.ndarray, size: int, seed: int, tag: bytes) -> np.ndarray:
    """A boolean mask of ``size`` items of ``labels``, class-stratified and seeded.

    Class ``c`` gets ``size * n_c / N`` items, rounded by largest remainders
    (ties to the smaller class); its members are a seeded random choice.
    """
    labels = np.asarray(labels)
    if not 0 <= size <= len(labels):
        raise ValueError(f"holdout of {size} from {len(labels)} items")
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / max(len(labels), 1)
    take = np.floor(exact).astype(np.int64)
    spare = size - int(take.sum())
    order = sorted(range(len(classes)), key=lambda k: (-(exact[k] - take[k]), k))
    for k in order[:spare]:
        take[k] += 1
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(tag)]))
    mask = np.zeros(len(labels), bool)
    for c, n in zip(classes, take):
        members = np.flatnonzero(labels == c)
        mask[members[rng.permutation(len(members))[:n]]] = True
    return mask


def check_image_size(options: Any, name: str) -> None:
    """``image_size`` must be an integer or null (checked before :class:`FileDatasetAdapter` compares it:
    its default here is null, so the typed-options parser does not check its type)."""
    size = options.get("image_size") if isinstance(options, Mapping) else None
    if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
        raise TaxonbenchError(f"datasets.{name}.options.image_size: expected an integer or null, got {size!r}")


def read_names(path: Path, expected: int | None = None) -> list[str]:
    """The non-empty lines of a label-name file (trailing blank lines are usual)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise TaxonbenchError(f"{path}: not a UTF-8 text file ({exc})") from None
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise TaxonbenchError(f"{path}: no class names")
    for k, name in enumerate(names):
        if not name:
            raise TaxonbenchError(f"{path}: line {k + 1}: empty class name")
    if expected is not None and len(names) != expected:
        raise TaxonbenchError(f"{path}: expected {expected} class names (one a line), found {len(names)}")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise TaxonbenchError(f"{path}: class name {dup!r} appears twice")
    return names


@dataclass
class RecordFile:
    """The records of one ``.bin`` file: labels (n x label bytes) and pixels, memory-mapped."""

    path: Path
    rel: str  # path relative to root, for rows and messages
    labels: np.ndarray  # (n, label_bytes) uint8
    data: np.memmap  # (n, label_bytes + PIXELS) uint8

    @property
    def stem(self) -> str:
        return self.path.stem

    def pixels(self, i: int) -> np.ndarray:
        """Record ``i`` as a 32 x 32 x 3 uint8 array."""
        flat = self.data[i, self.labels.shape[1]:]
        return np.ascontiguousarray(flat.reshape(3, SIDE, SIDE).transpose(1, 2, 0))


def read_record_file(path: Path, rel: str, label_bytes: int, label_what: Sequence[tuple[str, int]]) -> RecordFile:
    """Check and map one record file; ``label_what[k]`` = (name of label byte k, number of names)."""
    size_record = label_bytes + PIXELS
    size = path.stat().st_size
    if size == 0:
        raise TaxonbenchError(f"{path}: empty record file")
    if size % size_record:
        raise TaxonbenchError(
            f"{path}: {size} bytes is not a whole number of {size_record}-byte records ({label_bytes} label "
            f"byte(s) + {PIXELS} pixel bytes): record {size // size_record} is truncated "
            f"({size % size_record} of {size_record} bytes)")
    data = np.memmap(path, dtype=np.uint8, mode="r", shape=(size // size_record, size_record))
    labels = np.array(data[:, :label_bytes])
    for k, (what, n_names) in enumerate(label_what):
        bad = np.flatnonzero(labels[:, k] >= n_names)
        if len(bad):
            i = int(bad[0])
            raise TaxonbenchError(f"{path}: record {i}: {what} {int(labels[i, k])} is outside 0..{n_names - 1}")
    return RecordFile(path, rel, labels, data)


# ------------------------------------------------------------------ variants
@dataclass(frozen=True)
class Variant:
    """What one CIFAR dataset consists of."""

    label: str
    key: str  # download.SOURCES key
    folder: str  # what the archive extracts to, under root
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    name_files: tuple[str, ...]  # label-name files, one per label byte
    tag: bytes  # seeds the holdouts


CIFAR10 = Variant(
    label="CIFAR-10", key="cifar10/cifar-10-binary.tar.gz", folder="cifar-10-batches-bin",
    train_files=tuple(f"data_batch_{i}.bin" for i in range(1, 6)), test_files=("test_batch.bin",),
    name_files=("batches.meta.txt",), tag=b"cifar10-holdout")
CIFAR100 = Variant(
    label="CIFAR-100", key="cifar100/cifar-100-binary.tar.gz", folder="cifar-100-binary",
    train_files=("train.bin",), test_files=("test.bin",),
    name_files=("coarse_label_names.txt", "fine_label_names.txt"), tag=b"cifar100-holdout")


@dataclass(frozen=True)
class CifarOptions(FileOptions):
    """The ``datasets.<name>.options`` block of a ``source: cifar10`` dataset."""

    root: str = "data/raw/cifar10"
    image_size: int | None = None  # null: native 32 x 32; else the stored side (bicubic)
    protocol: str = "official"  # "official" or "pooled_80_10_10" (module docstring)
    val_size: int | None = None  # official protocol: training records held out as val; null: 10 %


@dataclass(frozen=True)
class Cifar100Options(CifarOptions):
    """The ``datasets.<name>.options`` block of a ``source: cifar100`` dataset."""

    root: str = "data/raw/cifar100"


@dataclass(frozen=True)
class Record:
    """One row-to-be: the record file (index into the variant's files), the record, the leaf."""

    file: int
    record: int
    leaf: int


class _Cifar(FileDatasetAdapter):
    """The parts shared by CIFAR-10 and CIFAR-100 (module docstring)."""

    variant: Variant

    def __init__(self, options: Mapping[str, Any] | None, *, name: str, seed: int) -> None:
        check_image_size(options, name)
        super().__init__(options, name=name, seed=seed)

    def validate_options(self) -> None:
        opts = self.options
        if opts.protocol not in PROTOCOLS:
            raise TaxonbenchError(f"{self.where}.protocol: expected one of {', '.join(PROTOCOLS)}, "
                                  f"got {opts.protocol!r}")
        if opts.val_size is not None:
            if not isinstance(opts.val_size, int) or isinstance(opts.val_size, bool) or opts.val_size < 0:
                raise TaxonbenchError(f"{self.where}.val_size: expected a non-negative integer or null, "
                                      f"got {opts.val_size!r}")
            if opts.protocol != "official":
                raise TaxonbenchError(f"{self.where}.val_size: only used with protocol: official "
                                      f"({opts.protocol} takes 10 % of every class); leave it out")

    # ------------------------------------------------------------- files
    def required(self) -> list[str]:
        v = self.variant
        return [f"{v.folder}/{f}" for f in (*v.train_files, *v.test_files, *v.name_files)]

    def fetches(self) -> list[download.Fetch]:
        return [download.Fetch(self.variant.key, self.variant.folder)]

    @cached_property
    def names(self) -> list[list[str]]:
        """The names of each label file."""
        root, v = self.files, self.variant
        return [self._read_names(root / v.folder / f) for f in v.name_files]

    def _read_names(self, path: Path) -> list[str]:
        return read_names(path)

    @cached_property
    def record_files(self) -> list[RecordFile]:
        """Every record file, training files first, checked."""
        v = self.variant
        what = self._label_what()
        return [read_record_file(self.files / v.folder / f, f"{v.folder}/{f}", len(what), what)
                for f in (*v.train_files, *v.test_files)]

    def _label_what(self) -> list[tuple[str, int]]:
        raise NotImplementedError

    def _leaf_labels(self, rf: RecordFile) -> np.ndarray:
        """The leaf index of each record of ``rf``."""
        return rf.labels[:, -1].astype(np.int64)

    # ------------------------------------------------------------ splits
    @cached_property
    def _splits(self) -> dict[str, list[Record]]:
        files = self.record_files
        self.taxonomy()  # names and label consistency are checked before any row
        n_train_files = len(self.variant.train_files)
        pools = {"train": [], "test": []}
        for k, rf in enumerate(files):
            leaves = self._leaf_labels(rf)
            pools["train" if k < n_train_files else "test"] += [Record(k, i, int(leaf)) for i, leaf in enumerate(leaves)]
        key = lambda r: (r.file, r.record)  # noqa: E731
        if self.options.protocol == "official":
            train = pools["train"]
            size = self.val_size(len(train))
            held = stratified_holdout(np.array([r.leaf for r in train], np.int64), size, self.seed, self.variant.tag)
            return {"train": [r for r, h in zip(train, held) if not h],
                    "val": [r for r, h in zip(train, held) if h],
                    "test": pools["test"]}
        pooled = pools["train"] + pools["test"]
        leaves = np.array([r.leaf for r in pooled], np.int64)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(self.variant.tag + b"-pooled")]))
        out: dict[str, list[Record]] = {s: [] for s in SPLITS}
        for c in np.unique(leaves):
            members = np.flatnonzero(leaves == c)
            order = members[rng.permutation(len(members))]
            n_tenth = (len(members) + 5) // 10  # 10 %, rounded half up
            out["test"] += [pooled[i] for i in order[:n_tenth]]
            out["val"] += [pooled[i] for i in order[n_tenth:2 * n_tenth]]
            out["train"] += [pooled[i] for i in order[2 * n_tenth:]]
        return {s: sorted(rs, key=key) for s, rs in out.items()}

    def val_size(self, n_train: int) -> int:
        """The size of the official protocol's val holdout, checked against the training records."""
        size = self.options.val_size
        if size is None:
            return (n_train + 5) // 10  # 10 %, rounded half up
        if size >= n_train:
            raise TaxonbenchError(f"{self.where}.val_size: {size} is not smaller than the {n_train} training "
                                  f"records of {', '.join(self.variant.train_files)}")
        return size

    # ------------------------------------------------------------ adapter
    def splits(self) -> list[str]:
        return list(SPLITS)

    def records(self, split: str) -> list[Record]:
        self.check_split(split)
        return self._splits[split]

    def rows(self, split: str) -> Iterator[Rows]:
        records, files = self.records(split), self.record_files
        yield from row_batches(records, lambda r: {
            "id": f"{files[r.file].stem}-{r.record}",
            "image": ImagePixels(files[r.file].pixels(r.record), f"{files[r.file].path} record {r.record}"),
            "leaf": r.leaf,
            "source_path": files[r.file].rel,
            "record": r.record,
        })

    def image_format(self) -> ImageFormat:
        return ImageFormat(size=self.options.image_size, codec="png")

    def info(self) -> dict:
        protocol = self.options.protocol
        return {
            **super().info(),
            "image_size": self.options.image_size or SIDE,  # the stored side
            "image_codec": "png",
            "protocol": protocol,
            "split_counts": {s: len(self.records(s)) for s in SPLITS},
            "val_split": ("a seeded, class-stratified holdout of the training files (test: the official test file)"
                          if protocol == "official" else
                          "train/val/test: a seeded 80/10/10 split of every class of all records pooled"),
        }


@DATASETS.register("cifar10")
class Cifar10(_Cifar):
    """CIFAR-10 (binary version) with the thesis's 3-level hierarchy (module docstring)."""

    Options = CifarOptions
    variant = CIFAR10
    label = "CIFAR-10"

    def _read_names(self, path: Path) -> list[str]:
        return read_names(path, expected=len(CIFAR10_TREE))

    def _label_what(self) -> list[tuple[str, int]]:
        return [("label", len(CIFAR10_TREE))]

    @cached_property
    def _taxonomy(self) -> Taxonomy:
        meta = self.files / self.variant.folder / self.variant.name_files[0]
        (names,) = self.names
        paths = []
        for k, name in enumerate(names):
            if name not in CIFAR10_TREE:
                raise TaxonbenchError(f"{meta}: line {k + 1}: class {name!r} is not one of the ten classes of the "
                                      f"hierarchical CIFAR-10 ({', '.join(sorted(CIFAR10_TREE))})")
            paths.append((*CIFAR10_TREE[name], name))
        return _named_root(Taxonomy.from_paths(paths, CIFAR10_RANKS, source=str(meta)), CIFAR10_ROOT)

    def taxonomy(self) -> Taxonomy:
        return self._taxonomy


@DATASETS.register("cifar100")
class Cifar100(_Cifar):
    """CIFAR-100 (binary version): 20 superclasses -> 100 classes (module docstring)."""

    Options = Cifar100Options
    variant = CIFAR100
    label = "CIFAR-100"

    def _label_what(self) -> list[tuple[str, int]]:
        coarse, fine = self.names
        return [("coarse label", len(coarse)), ("fine label", len(fine))]

    @cached_property
    def superclass_of(self) -> list[int]:
        """The coarse label of every fine label, from the records; checked consistent."""
        coarse_names, fine_names = self.names
        first: dict[int, tuple[int, RecordFile, int]] = {}  # fine -> (coarse, file, record)
        for rf in self.record_files:
            coarse, fine = rf.labels[:, 0], rf.labels[:, 1]
            for f in np.unique(fine):
                f = int(f)
                rows = np.flatnonzero(fine == f)
                if f not in first:
                    first[f] = (int(coarse[rows[0]]), rf, int(rows[0]))
                c0, rf0, i0 = first[f]
                bad = rows[coarse[rows] != c0]
                if len(bad):
                    i = int(bad[0])
                    raise TaxonbenchError(
                        f"{rf.path}: record {i}: fine class {f} ({fine_names[f]}) under coarse class "
                        f"{int(coarse[i])} ({coarse_names[int(coarse[i])]}), but record {i0} of {rf0.path} puts it "
                        f"under coarse class {c0} ({coarse_names[c0]})")
        missing = [f for f in range(len(fine_names)) if f not in first]
        if missing:
            f = missing[0]
            raise TaxonbenchError(
                f"{self.files / self.variant.folder / self.variant.name_files[1]}: fine class {f} "
                f"({fine_names[f]}) has no record in {', '.join(self.variant.train_files + self.variant.test_files)}, "
                f"so its superclass is unknown")
        return [first[f][0] for f in range(len(fine_names))]

    @cached_property
    def _taxonomy(self) -> Taxonomy:
        coarse_names, fine_names = (list(map(_spaced, n)) for n in self.names)
        parents = self.superclass_of
        fine_file = self.files / self.variant.folder / self.variant.name_files[1]
        if (len(coarse_names), len(fine_names)) == (20, 100):
            counts = np.bincount(parents, minlength=20)
            if (counts != CIFAR100_PER_SUPERCLASS).any():
                c = int(np.flatnonzero(counts != CIFAR100_PER_SUPERCLASS)[0])
                raise TaxonbenchError(f"{fine_file}: superclass {c} ({coarse_names[c]}) has {counts[c]} classes in "
                                      f"the records; CIFAR-100 has {CIFAR100_PER_SUPERCLASS} per superclass")
        paths = [(coarse_names[parents[f]], fine_names[f]) for f in range(len(fine_names))]
        return Taxonomy.from_paths(paths, CIFAR100_RANKS, source=str(fine_file))

    def taxonomy(self) -> Taxonomy:
        return self._taxonomy

    def info(self) -> dict:
        return {**super().info(), "n_superclasses": len(self.names[0])}


def _spaced(name: str) -> str:
    return name.replace("_", " ")


def _named_root(tax: Taxonomy, root: str) -> Taxonomy:
    """``tax`` with its root named ``root`` (``Taxonomy.from_paths`` calls it "root")."""
    names = np.array(tax.name, dtype=object)
    names[0] = root
    return Taxonomy.from_parents(tax.parent, name=list(names), rank=list(tax.rank), leaf_nodes=tax.leaf_nodes,
                                 fixed_ranks=tax.fixed_ranks, source=tax.source)
