"""ImageNet (ILSVRC-2012, 1000 classes) under a WordNet tree, read from the official archives.

Source format (the ILSVRC-2012 files from https://image-net.org, after
registration; the layout below is the one the archives have, the devkit's
``readme.txt`` describes ``meta.mat`` and the ground-truth file):

==================================  ==============================================================
file under ``root``                 content
==================================  ==============================================================
``ILSVRC2012_img_train.tar``        one uncompressed tar per class, ``n01440764.tar`` ...; each
                                    holds that class's JPEGs ``n01440764_10026.JPEG`` ...
``ILSVRC2012_img_val.tar``          the 50,000 validation JPEGs ``ILSVRC2012_val_00000001.JPEG`` ...
``ILSVRC2012_devkit_t12.tar.gz``    ``ILSVRC2012_devkit_t12/data/meta.mat`` (MATLAB struct array
                                    ``synsets``: ``ILSVRC2012_ID``, ``WNID``, ``words``,
                                    ``num_children``, ...; the 1000 classes are the entries with
                                    ``num_children == 0``) and
                                    ``ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt``
                                    (one ``ILSVRC2012_ID`` a line; line ``i`` labels validation
                                    image ``i``)
==================================  ==============================================================

With ``layout: folders`` the common extracted layout is read instead:
``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG`` (validation images already
sorted into class folders); the classes are the ``train`` sub-folders.
The archives are read in place, nothing is extracted: the tars are
uncompressed, so each image is read at its byte offset (outer member offset +
inner member offset); its ``where`` is
``ILSVRC2012_img_train.tar!n01440764.tar!n01440764_10026.JPEG``.

**Taxonomy.** The paper (HiMulConE §4.1) uses "the label hierarchy published in
the Robustness library": MadryLab/robustness ``ImageNetHierarchy`` reads
ImageNet's ``wordnet.is_a.txt`` (``parent child`` wnid pairs of the WordNet
DAG) and ``words.txt``. Neither can be downloaded without an ImageNet account,
so taxonbench ships the same relation derived from WordNet 3.0 itself
(ImageNet's wnids are WordNet 3.0 noun offsets):
``data/imagenet_wordnet_is_a.tsv`` (every hypernym and instance-hypernym edge of
the 1000 classes and their 860 ancestors, 1937 edges over 1860 synsets) and
``data/imagenet_wordnet_words.tsv`` (each synset's first lemma), written by
``tools/make_imagenet_hierarchy.py``. ``hierarchy: <path>`` reads an upstream
``wordnet.is_a.txt`` instead (``words: <path>`` an upstream ``words.txt``).

WordNet is a DAG (75 of the 1860 synsets have two or three hypernyms); the **tree
rule** keeps one parent per synset: with ``parent_rule: first`` (the default)
the parent from the first line of the is-a file that names the synset as a
child. In the shipped file a synset's lines follow WordNet's pointer order, so
this is *WordNet's first-listed hypernym at every step*.
``parent_rule: last`` keeps the last such line instead: that is what
Robustness's ``ImageNetHierarchy`` does (each ``add_child`` overwrites the
child's parent while it reads ``wordnet.is_a.txt`` in order), so
``hierarchy: <upstream wordnet.is_a.txt>`` with ``parent_rule: last``
reproduces the Robustness tree exactly; with the shipped file, ``last`` means
WordNet's last-listed hypernym. (Robustness's ``get_superclasses`` /
``get_subclasses`` and BREEDS then cut this tree into a few superclasses; the
adapter keeps the whole tree.) The tree is the union of the classes' root
paths under that rule; every class must be in the file, every path must end at
one common root (``entity``, ``n00001740``, for WordNet), and no class may lie on
another class's path (errors name the file and the wnids). With
``collapse_chains: true`` every internal node with exactly one child (other
than the root) is removed and its child attached to its parent; the default
keeps them (for the shipped file: 1808 nodes, 808 internal, of which 436 have a
single child; leaves at depths 4 to 18). Nodes are named by their first lemma
(two classes are both ``crane``, two ``maillot``; their wnids tell them apart in
the manifest's ``node_wnids``); ranks are ``root``, ``synset`` and, for the
leaves, ``ilsvrc_class``. The depth of a class varies: no fixed ranks.

Leaf ``i`` is the ``i``-th class in sorted wnid order, the standard ImageNet
class index (torchvision, timm), not the devkit's ``ILSVRC2012_ID`` order.

**Splits.** ImageNet's test labels are not public, so ``test`` is the official
validation set (50 images a class) and ``val`` a seeded, class-stratified
holdout of the official training set: ``val_per_class`` images of each class
(default 10, i.e. 10,000 images; at most half of a class), drawn with a
generator seeded by ``(seed, wnid)`` from the class's images in name order.
``train`` is the rest of the official training set (1,271,167 images for the
full data with the default). Row ids are the file stems
(``n01440764_10026``, ``ILSVRC2012_val_00000001``); extra columns
``source_path`` and ``wnid``.

**Images.** As every file dataset: any mode converted to RGB (ImageNet has a
few CMYK and grayscale JPEGs and one PNG named ``.JPEG``; Pillow reads them by
content), short side scaled to ``image_size``, center-cropped square, JPEG
quality 90.

**Download.** Not possible: ImageNet is distributed only to registered users
who accept its terms of access. ``download: true`` stops with a message saying
where to get the files. The three archives are listed in
:data:`taxonbench.download.SOURCES` with the MD5 sums published on the
ILSVRC-2012 download page (repeated in torchvision's ``imagenet.py``) so that
``verify: true`` can check archives placed by hand (it reads all 145 GB).
"""

from __future__ import annotations

import posixpath
import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from io import BytesIO
from pathlib import Path

import numpy as np

from taxonbench import download
from taxonbench.registries import DATASETS
from taxonbench.datasets.base import FileDatasetAdapter, FileOptions, Rows, row_batches
from taxonbench.datasets.images import ImageBytes, ImageFile
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import Taxonomy

DATA_DIR = Path(__file__).resolve().parent / "data"
SHIPPED_IS_A = DATA_DIR / "imagenet_wordnet_is_a.tsv"
SHIPPED_WORDS = DATA_DIR / "imagenet_wordnet_words.tsv"
ENTITY = "n00001740"  # WordNet's root synset, "entity"

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"
META = "ILSVRC2012_devkit_t12/data/meta.mat"
GROUND_TRUTH = "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"
SOURCE_KEYS = {TRAIN_TAR: "imagenet/ILSVRC2012_img_train.tar", VAL_TAR: "imagenet/ILSVRC2012_img_val.tar",
               DEVKIT: "imagenet/ILSVRC2012_devkit_t12.tar.gz"}

SPLITS = ("train", "val", "test")
LAYOUTS = ("archives", "folders")
PARENT_RULES = ("first", "last")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")  # files read from class folders (layout: folders)
_WNID = re.compile(r"n\d{8}")
_VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})\.JPEG")


# ----------------------------------------------------------------- hierarchy
def _data_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file, blank lines and ``#`` comments left out;
    a missing or unreadable file is an error naming it as ``what``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaxonbenchError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaxonbenchError(f"{path}: cannot read the {what} ({exc})") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]


def read_is_a(path: Path) -> list[tuple[str, str]]:
    """``(parent, child)`` wnid pairs in file order: the shipped TSV or an upstream ``wordnet.is_a.txt``.

    One pair a line, separated by white space; blank lines and ``#`` comments
    are skipped. A malformed line is an error naming the file and the line.
    """
    pairs = []
    for number, line in _data_lines(path, "hierarchy file"):
        fields = line.split()
        if len(fields) != 2 or not all(_WNID.fullmatch(f) for f in fields):
            raise TaxonbenchError(f"{path}:{number}: expected 'parent_wnid child_wnid' "
                                  f"(two wnids like n00001740), got {line.strip()!r}")
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise TaxonbenchError(f"{path}: no parent/child pairs")
    return pairs


def read_words(path: Path) -> dict[str, str]:
    """``{wnid: name}`` from ``wnid<TAB>lemma[, lemma...]`` lines (the shipped TSV or ``words.txt``).

    The name is the first lemma. ``#`` comments and blank lines are skipped.
    """
    words = {}
    for number, line in _data_lines(path, "words file"):
        wnid, tab, names = line.partition("\t")
        name = names.split(",")[0].strip()
        if not tab or not _WNID.fullmatch(wnid.strip()) or not name:
            raise TaxonbenchError(f"{path}:{number}: expected 'wnid<TAB>name[, name...]', got {line.strip()!r}")
        words[wnid.strip()] = name
    return words


def tree_parents(pairs: list[tuple[str, str]], classes: list[str], *, rule: str = "first",
                 source: str = "<hierarchy>") -> dict[str, str]:
    """``{wnid: parent wnid}`` of the tree the classes span under the tree rule (module docstring).

    Only the synsets on the classes' root paths are kept; the root has no
    entry. Errors name ``source`` and the offending wnids.
    """
    if rule not in PARENT_RULES:
        raise TaxonbenchError(f"parent rule {rule!r}: expected one of {', '.join(PARENT_RULES)}")
    chosen: dict[str, str] = {}
    for parent, child in pairs:
        if rule == "last" or child not in chosen:
            chosen[child] = parent
    known = set(chosen) | set(chosen.values())
    missing = [c for c in classes if c not in known]
    if missing:
        raise TaxonbenchError(f"{source}: {len(missing)} class(es) not in the hierarchy: "
                              f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    parent_of: dict[str, str] = {}
    roots: dict[str, list[str]] = {}
    for wnid in classes:
        path, node = [wnid], wnid
        while node in chosen:
            node = chosen[node]
            if node in path:
                raise TaxonbenchError(f"{source}: cycle through {node} on the path of class {wnid}")
            path.append(node)
        roots.setdefault(node, []).append(wnid)
        for child, parent in zip(path, path[1:]):
            parent_of[child] = parent
    if len(roots) > 1:
        tops = "; ".join(f"{r} (above {', '.join(c[:3])}{' ...' if len(c) > 3 else ''})" for r, c in roots.items())
        raise TaxonbenchError(f"{source}: the classes' paths end at {len(roots)} different roots: {tops}")
    inner = set(parent_of.values())
    nested = [c for c in classes if c in inner]
    if nested:
        below = "; ".join(f"{c} is the parent of " + ", ".join(sorted(k for k, p in parent_of.items() if p == c)[:3])
                          for c in nested[:5])
        raise TaxonbenchError(f"{source}: class(es) {', '.join(nested[:5])} lie on the path of other classes "
                              f"({below}); the classes must be the leaves")
    return parent_of


def collapse_chains(parent_of: dict[str, str], classes: list[str]) -> dict[str, str]:
    """The tree without its internal single-child nodes (the root is kept)."""
    n_children: dict[str, int] = {}
    for parent in parent_of.values():
        n_children[parent] = n_children.get(parent, 0) + 1
    leaves = set(classes)

    def kept_parent(node: str) -> str:
        parent = parent_of[node]
        while parent in parent_of and n_children[parent] == 1 and parent not in leaves:
            parent = parent_of[parent]
        return parent

    return {node: kept_parent(node) for node in parent_of if node in leaves or n_children.get(node, 0) > 1}


def build_taxonomy(parent_of: dict[str, str], classes: list[str], names: dict[str, str],
                   source: str) -> tuple[Taxonomy, list[str]]:
    """The :class:`Taxonomy` of a wnid tree and the wnid of each node.

    Node 0 is the root; internal nodes follow depth by depth in wnid order, then
    the leaves in sorted wnid order (leaf ``i`` = ``sorted(classes)[i]``).
    """
    classes = sorted(classes)
    leaves = set(classes)
    depth: dict[str, int] = {}

    def depth_of(node: str) -> int:
        if node not in depth:
            depth[node] = 0 if node not in parent_of else depth_of(parent_of[node]) + 1
        return depth[node]

    nodes = set(parent_of) | set(parent_of.values())
    root = next(n for n in nodes if n not in parent_of) if parent_of else classes[0]
    internal = sorted((n for n in nodes if n not in leaves and n != root), key=lambda n: (depth_of(n), n))
    order = [root, *internal, *classes]
    index = {wnid: i for i, wnid in enumerate(order)}
    parent = [-1] + [index[parent_of[w]] for w in order[1:]]
    rank = ["root"] + ["synset"] * len(internal) + ["ilsvrc_class"] * len(classes)
    name = [names.get(w, w) for w in order]
    tax = Taxonomy.from_parents(parent, name=name, rank=rank, source=source)
    return tax, order


# ------------------------------------------------------------------ devkit
@dataclass(frozen=True)
class Devkit:
    """What the adapter uses of the ILSVRC-2012 devkit."""

    wnid_of_id: dict[int, str]  # ILSVRC2012_ID -> wnid of the 1000 leaf synsets
    words: dict[str, str]  # wnid -> first lemma of its ``words``
    val_ids: list[int]  # ILSVRC2012_ID of validation image 1, 2, ...


def _mat_int(value, where: str) -> int:
    try:
        number = float(np.asarray(value).reshape(-1)[0])
    except (IndexError, TypeError, ValueError):
        raise TaxonbenchError(f"{where}: expected a number, got {value!r}") from None
    if number != int(number):
        raise TaxonbenchError(f"{where}: expected an integer, got {number}")
    return int(number)


def parse_meta(data: bytes, where: str) -> tuple[dict[int, str], dict[str, str]]:
    """``({ILSVRC2012_ID: wnid} of the leaf synsets, {wnid: first lemma})`` from ``meta.mat`` bytes."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(BytesIO(data), squeeze_me=True)
    except Exception as exc:  # scipy raises several types for unreadable files
        raise TaxonbenchError(f"{where}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from None
    if "synsets" not in mat:
        raise TaxonbenchError(f"{where}: missing variable 'synsets'")
    synsets = np.atleast_1d(mat["synsets"])
    fields = synsets.dtype.names or ()
    for field in ("ILSVRC2012_ID", "WNID", "words", "num_children"):
        if field not in fields:
            raise TaxonbenchError(f"{where}: synsets: missing field {field!r}")
    wnid_of_id: dict[int, str] = {}
    words: dict[str, str] = {}
    for k, entry in enumerate(synsets):
        wnid = str(entry["WNID"]).strip()
        what = f"{where}: synsets({k + 1})"
        if not _WNID.fullmatch(wnid):
            raise TaxonbenchError(f"{what}: field 'WNID' should be a wnid like n01440764, got {wnid!r}")
        if _mat_int(entry["num_children"], f"{what}.num_children") == 0:
            sid = _mat_int(entry["ILSVRC2012_ID"], f"{what}.ILSVRC2012_ID")
            if sid in wnid_of_id:
                raise TaxonbenchError(f"{what}: ILSVRC2012_ID {sid} appears twice")
            wnid_of_id[sid] = wnid
        words[wnid] = str(entry["words"]).split(",")[0].strip() or wnid
    if not wnid_of_id:
        raise TaxonbenchError(f"{where}: no leaf synsets (num_children == 0)")
    if len(set(wnid_of_id.values())) != len(wnid_of_id):
        raise TaxonbenchError(f"{where}: a wnid appears twice among the leaf synsets")
    return wnid_of_id, words


def parse_ground_truth(text: str, wnid_of_id: dict[int, str], where: str) -> list[int]:
    ids = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            sid = int(line.strip())
        except ValueError:
            raise TaxonbenchError(f"{where}:{number}: expected an ILSVRC2012_ID, got {line.strip()!r}") from None
        if sid not in wnid_of_id:
            raise TaxonbenchError(f"{where}:{number}: ILSVRC2012_ID {sid} is not a class of meta.mat")
        ids.append(sid)
    if not ids:
        raise TaxonbenchError(f"{where}: no labels")
    return ids


def read_devkit(path: Path) -> Devkit:
    """``meta.mat`` and the validation ground truth, read from the devkit archive without extracting it."""
    wanted = {META: None, GROUND_TRUTH: None}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = posixpath.normpath(member.name)
                if name in wanted and member.isfile():
                    wanted[name] = tar.extractfile(member).read()
            download.check_tar_complete(tar, path)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise TaxonbenchError(f"{path}: corrupt or truncated archive ({exc})") from None
    for name, data in wanted.items():
        if data is None:
            raise TaxonbenchError(f"{path}: missing member {name}")
    wnid_of_id, words = parse_meta(wanted[META], f"{path}!{META}")
    try:
        text = wanted[GROUND_TRUTH].decode("ascii")
    except UnicodeDecodeError:
        raise TaxonbenchError(f"{path}!{GROUND_TRUTH}: not a text file") from None
    val_ids = parse_ground_truth(text, wnid_of_id, f"{path}!{GROUND_TRUTH}")
    return Devkit(wnid_of_id, words, val_ids)


# ---------------------------------------------------------------- archives
@dataclass(frozen=True, slots=True)
class Member:
    """One image stored in an uncompressed tar: where its bytes are."""

    name: str  # file name inside its (inner) tar
    offset: int  # absolute byte offset in the archive file
    size: int


def _members(tar: tarfile.TarFile, base: int, where: str) -> list[Member]:
    out = []
    for m in tar:
        if m.isfile():
            out.append(Member(m.name, base + m.offset_data, m.size))
        elif not m.isdir():
            raise TaxonbenchError(f"{where}: unexpected member {m.name!r} (not a regular file)")
    return out


def _plain_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:")  # random access: headers are read, image data skipped
    except tarfile.ReadError as exc:
        raise TaxonbenchError(f"{path}: not an uncompressed tar archive, or truncated ({exc})") from None


def index_train_tar(path: Path) -> dict[str, list[Member]]:
    """``{wnid: its images sorted by name}`` of ``ILSVRC2012_img_train.tar`` (nested per-class tars)."""
    index: dict[str, list[Member]] = {}
    try:
        with _plain_tar(path) as outer:
            for m in outer:
                name = posixpath.basename(m.name)
                if m.isdir():
                    continue
                wnid, ext = posixpath.splitext(name)
                if not m.isfile() or ext != ".tar" or not _WNID.fullmatch(wnid):
                    raise TaxonbenchError(f"{path}: unexpected member {m.name!r} (expected per-class tars "
                                          f"like n01440764.tar)")
                if wnid in index:
                    raise TaxonbenchError(f"{path}: {name} appears twice")
                where = f"{path.name}!{name}"
                try:
                    with tarfile.open(fileobj=outer.extractfile(m), mode="r:") as inner:
                        members = _members(inner, m.offset_data, where)
                        download.check_tar_complete(inner, f"{path}: member {name}")
                except tarfile.TarError as exc:
                    raise TaxonbenchError(f"{path}: member {name}: corrupt or truncated tar ({exc})") from None
                index[wnid] = sorted(members, key=lambda x: x.name)
            download.check_tar_complete(outer, path)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise TaxonbenchError(f"{path}: corrupt or truncated archive ({exc})") from None
    return index


def index_val_tar(path: Path) -> list[Member]:
    """The images of ``ILSVRC2012_img_val.tar``, sorted by name."""
    try:
        with _plain_tar(path) as tar:
            members = _members(tar, 0, path.name)
            download.check_tar_complete(tar, path)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise TaxonbenchError(f"{path}: corrupt or truncated archive ({exc})") from None
    return sorted(members, key=lambda x: x.name)


def read_member(f, member: Member, where: str) -> bytes:
    f.seek(member.offset)
    data = f.read(member.size)
    if len(data) != member.size:
        raise TaxonbenchError(f"{where}: truncated archive (expected {member.size} bytes, read {len(data)})")
    return data


# ----------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class Record:
    """One image: what a shard row is made from (slots: 1.3 million of them for the full train set)."""

    wnid: str
    prefix: str  # shared by a class: "ILSVRC2012_img_train.tar!n01440764.tar!" or "train/n01440764/"
    name: str  # file name, n01440764_10026.JPEG
    member: Member | None = None  # where the bytes are (archives)

    @property
    def id(self) -> str:
        return posixpath.splitext(posixpath.basename(self.name))[0]

    @property
    def path(self) -> str:
        """The relative path (folders) or the archive chain (archives)."""
        return self.prefix + self.name


def holdout(records: dict[str, list[Record]], per_class: int, seed: int) -> tuple[set[str], dict[str, int]]:
    """The ids of the seeded class-stratified holdout, and how many of each class it takes."""
    held: set[str] = set()
    taken = {}
    for wnid in sorted(records):
        group = records[wnid]  # in name order
        k = min(per_class, len(group) // 2)
        rng = np.random.default_rng(np.random.SeedSequence(
            [seed, zlib.crc32(b"imagenet-val-holdout"), int(wnid[1:])]))
        held.update(group[i].id for i in rng.permutation(len(group))[:k])
        taken[wnid] = k
    return held, taken


# ------------------------------------------------------------------ adapter
@dataclass(frozen=True)
class ImagenetOptions(FileOptions):
    """The ``datasets.<name>.options`` block of a ``source: imagenet`` dataset."""

    root: str = "data/raw/imagenet"
    layout: str = "archives"  # "archives" (the three official files) or "folders" (train/<wnid>, val/<wnid>)
    hierarchy: str = "wordnet"  # "wordnet" (the shipped WordNet 3.0 file) or a path to a wordnet.is_a.txt
    words: str = ""  # a words.txt (wnid<TAB>names) for node names; "" = the shipped names
    parent_rule: str = "first"  # "first" or "last" listed parent of each synset (see the module docstring)
    collapse_chains: bool = False  # drop internal single-child nodes
    val_per_class: int = 10  # training images per class held out as the val split
    verify: bool = False  # check the archives' MD5 sums (published by ImageNet) before reading


@DATASETS.register("imagenet")
class ImageNet(FileDatasetAdapter):
    """ILSVRC-2012 under a WordNet tree (see the module docstring)."""

    Options = ImagenetOptions
    label = "ImageNet (ILSVRC-2012)"

    def validate_options(self) -> None:
        opts = self.options
        if opts.layout not in LAYOUTS:
            raise TaxonbenchError(f"{self.where}.layout: expected one of {', '.join(LAYOUTS)}, got {opts.layout!r}")
        if opts.parent_rule not in PARENT_RULES:
            raise TaxonbenchError(f"{self.where}.parent_rule: expected one of {', '.join(PARENT_RULES)}, "
                                  f"got {opts.parent_rule!r}")
        if opts.val_per_class < 0:
            raise TaxonbenchError(f"{self.where}.val_per_class: expected at least 0, got {opts.val_per_class}")
        if not opts.hierarchy:
            raise TaxonbenchError(f"{self.where}.hierarchy: expected 'wordnet' or the path of a wordnet.is_a.txt")
        if opts.verify and opts.layout != "archives":
            raise TaxonbenchError(f"{self.where}.verify: only the archives have published checksums "
                                  f"(layout: archives); got layout: {opts.layout}")

    def required(self) -> list[str]:
        return [TRAIN_TAR, VAL_TAR, DEVKIT] if self.options.layout == "archives" else ["train/", "val/"]

    def manual_note(self) -> str:
        return (f"ImageNet is only distributed to registered users: create an account at https://image-net.org, "
                f"accept the terms of access, download {TRAIN_TAR}, {VAL_TAR} and {DEVKIT} from "
                f"https://image-net.org/challenges/LSVRC/2012/2012-downloads.php and place them in {self.root} "
                f"(or, with layout: folders, the extracted train/<wnid>/ and val/<wnid>/ folders)")

    @cached_property
    def _root(self) -> Path:
        """``files``, with the archives' MD5 sums checked first when ``verify`` is on."""
        root = self.files
        if self.options.verify:
            for name, key in SOURCE_KEYS.items():
                download.verify(root / name, download.SOURCES[key])
        return root

    # ------------------------------------------------------------ records
    @cached_property
    def _devkit(self) -> Devkit:
        return read_devkit(self._root / DEVKIT)

    @cached_property
    def _classes(self) -> list[str]:
        """The class wnids, sorted (the leaf order): the devkit's leaf synsets, or the train folders."""
        if self.options.layout == "archives":
            return sorted(self._devkit.wnid_of_id.values())
        root = self._root
        classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
        bad = [c for c in classes if not _WNID.fullmatch(c)]
        if bad or not classes:
            raise TaxonbenchError(f"{root / 'train'}: expected one folder per class named by its wnid "
                                  f"(n01440764, ...); found {', '.join(bad[:5]) if bad else 'none'}")
        return classes

    @cached_property
    def _data(self) -> tuple[list[str], dict[str, list[Record]], list[Record]]:
        """(classes in sorted wnid order, training records per class, official validation records)."""
        return self._from_archives() if self.options.layout == "archives" else self._from_folders()

    def _from_archives(self) -> tuple[list[str], dict[str, list[Record]], list[Record]]:
        root, devkit, classes = self._root, self._devkit, self._classes
        train_path, val_path = root / TRAIN_TAR, root / VAL_TAR
        index = index_train_tar(train_path)
        unknown = sorted(set(index) - set(classes))
        absent = sorted(set(classes) - set(index))
        if unknown or absent:
            raise TaxonbenchError(
                f"{train_path}: its class tars do not match the classes of {root / DEVKIT}!{META}: "
                + "; ".join(part for part in (
                    f"not classes there: {', '.join(w + '.tar' for w in unknown[:5])}" if unknown else "",
                    f"missing: {', '.join(w + '.tar' for w in absent[:5])}" if absent else "") if part))
        train = {}
        for wnid in classes:
            prefix = f"{TRAIN_TAR}!{wnid}.tar!"
            train[wnid] = [Record(wnid, prefix, m.name, m) for m in index.pop(wnid)]
        members = index_val_tar(val_path)
        val = []
        n_labels = len(devkit.val_ids)
        for m in members:
            match = _VAL_NAME.fullmatch(posixpath.basename(m.name))
            number = int(match.group(1)) if match else 0
            if not 1 <= number <= n_labels:
                raise TaxonbenchError(f"{val_path}: member {m.name!r} has no label in {root / DEVKIT}!"
                                      f"{GROUND_TRUTH} ({n_labels} lines; expected ILSVRC2012_val_00000001.JPEG "
                                      f"... ILSVRC2012_val_{n_labels:08d}.JPEG)")
            val.append(Record(devkit.wnid_of_id[devkit.val_ids[number - 1]], f"{VAL_TAR}!", m.name, m))
        if len({r.id for r in val}) != len(val) or len(val) != n_labels:
            raise TaxonbenchError(f"{val_path}: holds {len(val)} images, but {root / DEVKIT}!{GROUND_TRUTH} "
                                  f"labels {n_labels}: incomplete archive or wrong ground-truth file")
        return classes, train, val

    def _folder_records(self, folder: Path, relative: str) -> list[Record]:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        prefix = f"{relative}/{folder.name}/"
        return [Record(folder.name, prefix, p.name) for p in files]

    def _from_folders(self) -> tuple[list[str], dict[str, list[Record]], list[Record]]:
        root, classes = self._root, self._classes
        train = {wnid: self._folder_records(root / "train" / wnid, "train") for wnid in classes}
        empty = [w for w, recs in train.items() if not recs]
        if empty:
            raise TaxonbenchError(f"{root / 'train'}: no images in {', '.join(empty[:5])}")
        val_dirs = sorted(d.name for d in (root / "val").iterdir() if d.is_dir())
        stray = [d for d in val_dirs if d not in set(classes)]
        if stray:
            raise TaxonbenchError(f"{root / 'val'}: folder(s) {', '.join(stray[:5])} are not classes of "
                                  f"{root / 'train'}")
        val = [r for d in val_dirs for r in self._folder_records(root / "val" / d, "val")]
        if not val:
            raise TaxonbenchError(f"{root / 'val'}: no images in val/<wnid>/ folders")
        return classes, train, sorted(val, key=lambda r: r.id)

    @cached_property
    def _splits(self) -> dict[str, list[Record]]:
        classes, train, test = self._data
        held, _ = holdout(train, self.options.val_per_class, self.seed)
        flat = [r for wnid in classes for r in train[wnid]]
        return {"train": [r for r in flat if r.id not in held], "val": [r for r in flat if r.id in held],
                "test": test}

    # ------------------------------------------------------------ taxonomy
    @cached_property
    def _hierarchy_file(self) -> Path:
        return SHIPPED_IS_A if self.options.hierarchy == "wordnet" else Path(self.options.hierarchy)

    @cached_property
    def _tree(self) -> tuple[Taxonomy, list[str]]:
        classes = self._classes
        source = str(self._hierarchy_file)
        if self.options.hierarchy != "wordnet" and not self._hierarchy_file.is_file():
            raise TaxonbenchError(f"{self.where}.hierarchy: {source} not found (expected 'wordnet' for the "
                                  f"shipped hierarchy, or the path of ImageNet's wordnet.is_a.txt)")
        if self.options.words and not Path(self.options.words).is_file():
            raise TaxonbenchError(f"{self.where}.words: {self.options.words} not found")
        parent_of = tree_parents(read_is_a(self._hierarchy_file), classes, rule=self.options.parent_rule,
                                 source=source)
        if self.options.collapse_chains:
            parent_of = collapse_chains(parent_of, classes)
        names = read_words(SHIPPED_WORDS)
        if self.options.layout == "archives":
            names.update({w: n for w, n in self._devkit.words.items() if w not in names})
        if self.options.words:
            names.update(read_words(Path(self.options.words)))
        return build_taxonomy(parent_of, classes, names, source)

    def taxonomy(self) -> Taxonomy:
        return self._tree[0]

    def splits(self) -> list[str]:
        return list(SPLITS)

    def records(self, split: str) -> list[Record]:
        self.check_split(split)
        return self._splits[split]

    def rows(self, split: str) -> Iterator[Rows]:
        records = self.records(split)
        leaf_of = {wnid: i for i, wnid in enumerate(self._classes)}
        root = self._root
        archive = root / (VAL_TAR if split == "test" else TRAIN_TAR)
        f = open(archive, "rb") if self.options.layout == "archives" else None
        try:
            yield from row_batches(records, lambda r: {
                "id": r.id,
                "image": (ImageBytes(read_member(f, r.member, r.path), r.path) if f is not None
                          else ImageFile(str(root / r.path))),
                "leaf": leaf_of[r.wnid],
                "source_path": r.path,
                "wnid": r.wnid,
            })
        finally:
            if f is not None:
                f.close()

    def info(self) -> dict:
        _, train, _ = self._data
        _, taken = holdout(train, self.options.val_per_class, self.seed)
        return {
            **super().info(),
            "layout": self.options.layout,
            "hierarchy": ("wordnet: WordNet 3.0 via " + SHIPPED_IS_A.name if self.options.hierarchy == "wordnet"
                          else self.options.hierarchy),
            "parent_rule": self.options.parent_rule,
            "collapse_chains": self.options.collapse_chains,
            "split_counts": {s: len(self.records(s)) for s in SPLITS},
            "val_split": f"a seeded class-stratified holdout of the official training set "
                         f"({self.options.val_per_class} per class, at most half a class; {sum(taken.values())} "
                         f"images)",
            "test_split": "the official ILSVRC-2012 validation set (ImageNet's test labels are not public)",
            "node_wnids": self._tree[1],
        }
