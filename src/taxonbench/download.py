"""Fetching and unpacking dataset sources safely.

- :data:`SOURCES`: the public archives the real-data adapters need, with the
  checksums their authors publish. The iNaturalist archives live on the AWS
  Open Data bucket ``ml-inat-competition-datasets``; their MD5 sums are the
  ones printed in the competition READMEs ("Running ``md5sum <file>`` should
  produce ...", https://github.com/visipedia/inat_comp/blob/master/2018/README.md
  and .../2021/README.md, section *Data*). A source whose authors publish no
  checksum has ``checksum=None`` and is refused unless the caller passes
  ``allow_unverified=True``: no checksum here is made up or computed by us.
- :func:`fetch`: a resumable download (HTTP ``Range`` from ``<file>.part``)
  that renames the file to its final name only once its checksum matches; a
  mismatching download is kept as ``<file>.bad`` for inspection.
- :func:`verify`: chunked hashing of a file against its source.
- :func:`extract`: tar (plain, gz, bz2, xz) and zip archives, refusing members
  that would land outside the destination (``..``, absolute paths, links
  pointing out, special files) and staging everything in a temporary sibling
  directory, so nothing half-extracted is ever left under a final name.
"""

from __future__ import annotations

import hashlib
import http.client
import lzma
import os
import posixpath
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from taxonbench import __version__
from taxonbench.errors import TaxonbenchError

ALGORITHMS = {"sha256": 64, "md5": 32}  # supported digests and their hex lengths
_CHUNK = 1 << 20  # bytes per read, for hashing and downloading
_TIMEOUT_S = 60  # socket timeout of one download request
_FILTER_ERROR = getattr(tarfile, "FilterError", ())  # refusals of tarfile's "data" filter, where it exists


@dataclass(frozen=True)
class Source:
    """One downloadable file: where it is, what it is called, how to check it.

    ``checksum`` is the hex digest published by the file's authors (``None``
    when they publish none), computed with ``algorithm`` (``"sha256"`` or
    ``"md5"``). ``size`` is the exact size in bytes when known.
    """

    url: str
    checksum: str | None
    filename: str
    algorithm: str = "sha256"
    size: int | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"{self.filename}: unknown checksum algorithm {self.algorithm!r}; "
                             f"valid: {', '.join(ALGORITHMS)}")
        if self.checksum is not None and not re.fullmatch(
                f"[0-9a-fA-F]{{{ALGORITHMS[self.algorithm]}}}", self.checksum):
            raise ValueError(f"{self.filename}: {self.checksum!r} is not a {self.algorithm} hex digest")
        if "/" in self.filename or self.filename in ("", ".", ".."):
            raise ValueError(f"{self.filename!r}: a source's filename must be a plain file name")


_S3 = "https://ml-inat-competition-datasets.s3.amazonaws.com"

SOURCES: dict[str, Source] = {
    # iNaturalist 2017: the links and the images' MD5 sum of https://github.com/visipedia/inat_comp
    # (README, 2017 "Data"); the annotations zip has no published checksum.
    "inat2017/train_val_images.tar.gz": Source(
        "https://storage.googleapis.com/us_inat_data/train_val/train_val_images.tar.gz",
        "7c784ea5e424efaec655bd392f87301f", "train_val_images.tar.gz", "md5"),
    "inat2017/train_val2017.zip": Source(
        "https://storage.googleapis.com/us_inat_data/train_val/train_val2017.zip", None, "train_val2017.zip", "md5"),
    # iNaturalist 2018: MD5 sums from https://github.com/visipedia/inat_comp/blob/master/2018/README.md#data
    "inat2018/train_val2018.tar.gz": Source(
        f"{_S3}/2018/train_val2018.tar.gz", "b1c6952ce38f31868cc50ea72d066cc3", "train_val2018.tar.gz", "md5"),
    "inat2018/train2018.json.tar.gz": Source(
        f"{_S3}/2018/train2018.json.tar.gz", "bfa29d89d629cbf04d826a720c0a68b0", "train2018.json.tar.gz", "md5"),
    "inat2018/val2018.json.tar.gz": Source(
        f"{_S3}/2018/val2018.json.tar.gz", "f2ed8bfe3e9901cdefceb4e53cd3775d", "val2018.json.tar.gz", "md5"),
    # The un-obfuscated category names (released June 2018): the README gives no checksum for it.
    "inat2018/categories.json.tar.gz": Source(
        f"{_S3}/2018/categories.json.tar.gz", None, "categories.json.tar.gz", "md5"),
    # iNaturalist 2021: MD5 sums from https://github.com/visipedia/inat_comp/blob/master/2021/README.md#data
    "inat2021/train.tar.gz": Source(
        f"{_S3}/2021/train.tar.gz", "e0526d53c7f7b2e3167b2b43bb2690ed", "train.tar.gz", "md5"),
    "inat2021/train.json.tar.gz": Source(
        f"{_S3}/2021/train.json.tar.gz", "38a7bb733f7a09214d44293460ec0021", "train.json.tar.gz", "md5"),
    "inat2021/train_mini.tar.gz": Source(
        f"{_S3}/2021/train_mini.tar.gz", "db6ed8330e634445efc8fec83ae81442", "train_mini.tar.gz", "md5"),
    "inat2021/train_mini.json.tar.gz": Source(
        f"{_S3}/2021/train_mini.json.tar.gz", "395a35be3651d86dc3b0d365b8ea5f92", "train_mini.json.tar.gz", "md5"),
    "inat2021/val.tar.gz": Source(
        f"{_S3}/2021/val.tar.gz", "f6f6e0e242e3d4c9569ba56400938afc", "val.tar.gz", "md5"),
    "inat2021/val.json.tar.gz": Source(
        f"{_S3}/2021/val.json.tar.gz", "4d761e0f6a86cc63e8f7afc91f6a8f0b", "val.json.tar.gz", "md5"),
    # --- CIFAR-10 / CIFAR-100 / Fashion-MNIST
    # CIFAR binary versions: MD5 sums from the table on https://www.cs.toronto.edu/~kriz/cifar.html
    # ("Version | Size | md5sum"; the page gives sizes only as 162 MB / 161 MB, so no exact size here).
    "cifar10/cifar-10-binary.tar.gz": Source(
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
        "cifar-10-binary.tar.gz", "md5"),
    "cifar100/cifar-100-binary.tar.gz": Source(
        "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8",
        "cifar-100-binary.tar.gz", "md5"),
    # Fashion-MNIST: links and MD5 sums from the "Get the Data" table of
    # https://github.com/zalandoresearch/fashion-mnist/blob/master/README.md (the S3 website serves http only).
    "fashion_mnist/train-images-idx3-ubyte.gz": Source(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "train-images-idx3-ubyte.gz", "md5"),
    "fashion_mnist/train-labels-idx1-ubyte.gz": Source(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-labels-idx1-ubyte.gz",
        "25c81989df183df01b3e8a0aad5dffbe", "train-labels-idx1-ubyte.gz", "md5"),
    "fashion_mnist/t10k-images-idx3-ubyte.gz": Source(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-images-idx3-ubyte.gz",
        "bef4ecab320f06d8554ea6380940ec79", "t10k-images-idx3-ubyte.gz", "md5"),
    "fashion_mnist/t10k-labels-idx1-ubyte.gz": Source(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz",
        "bb300cfdad3c16e7a12a480ee83cd310", "t10k-labels-idx1-ubyte.gz", "md5"),
    # --- ETHEC / DeepFashion In-Shop / ModelNet40
    # ETHEC v0.2 in the ETH Research Collection (handle 20.500.11850/365379); the record page publishes no
    # checksum that taxonbench could check, so it needs allow_unverified. v0.1 (the thesis') is manual.
    "ethec/ETHEC_dataset_v0.2.zip": Source(
        "https://www.research-collection.ethz.ch/bitstream/handle/20.500.11850/365379/"
        "ETHEC_dataset_v0.2.zip?sequence=6&isAllowed=y", None, "ETHEC_dataset_v0.2.zip", "md5"),
    # ModelNet40 12-view shaded renders of "A Deeper Look at 3D Shape Classifiers" (jongchyisu/mvcnn_pytorch
    # README, "Shaded Images"); no checksum is published. DeepFashion In-Shop is on Google Drive: manual.
    "modelnet40/shaded_images.tar.gz": Source(
        "http://supermoe.cs.umass.edu/shape_recog/shaded_images.tar.gz", None, "shaded_images.tar.gz", "md5"),
    # --- ImageNet
    # ILSVRC-2012: MD5 sums as listed on https://image-net.org/challenges/LSVRC/2012/2012-downloads.php (and
    # repeated in torchvision's datasets/imagenet.py ARCHIVE_META). The URLs need a logged-in ImageNet account:
    # the imagenet adapter never downloads them (fetches() is empty); the entries let `verify: true` check
    # archives placed by hand.
    "imagenet/ILSVRC2012_img_train.tar": Source(
        "https://image-net.org/data/ILSVRC/2012/ILSVRC2012_img_train.tar", "1d675b47d978889d74fa0da5fadfb00e",
        "ILSVRC2012_img_train.tar", "md5"),
    "imagenet/ILSVRC2012_img_val.tar": Source(
        "https://image-net.org/data/ILSVRC/2012/ILSVRC2012_img_val.tar", "29b22e2961454d5413ddabcf34fc5622",
        "ILSVRC2012_img_val.tar", "md5"),
    "imagenet/ILSVRC2012_devkit_t12.tar.gz": Source(
        "https://image-net.org/data/ILSVRC/2012/ILSVRC2012_devkit_t12.tar.gz", "fa75699e90414af021442c21a62c3abf",
        "ILSVRC2012_devkit_t12.tar.gz", "md5"),
    # --- TreeOfLife-10M / Rare Species / CrypticBio
    # Hugging Face hub files. The hub lists a SHA-256 for each LFS file but no digest was readable
    # offline and the dataset cards publish none: checksum None (needs allow_unverified: true).
    # TreeOfLife-10M's webdataset shards are built locally (datasets/treeoflife.py), so none here.
    "rare_species/metadata.csv": Source(
        "https://huggingface.co/datasets/imageomics/rare-species/resolve/main/metadata.csv", None, "metadata.csv"),
    **{f"crypticbio/CrypticBio-{subset}.csv": Source(
        f"https://huggingface.co/datasets/gmanolache/CrypticBio/resolve/main/CrypticBio-Benchmark/"
        f"CrypticBio-{subset}.csv", None, f"CrypticBio-{subset}.csv")
       for subset in ("Common", "CommonUnseen", "Endangered", "Invasive")},
}


@dataclass(frozen=True)
class Fetch:
    """One thing a dataset needs from :data:`SOURCES`: the source ``key`` and the
    path ``target`` (relative to the dataset root) that it provides, either by
    extracting the archive (``extract``) or as the downloaded file itself."""

    key: str
    target: str
    extract: bool = True


# ------------------------------------------------------------------ checking
def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """The hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _verifiable(source: Source, allow_unverified: bool) -> bool:
    """True when ``source`` has a checksum; without one, refuse unless ``allow_unverified``."""
    if source.checksum is not None:
        return True
    if not allow_unverified:
        raise TaxonbenchError(
            f"{source.filename}: its authors publish no checksum for {source.url}, so it cannot be "
            f"verified; refusing to use it unverified (pass allow_unverified=True to accept it as is)"
        )
    return False


def verify(path: str | os.PathLike, source: Source, *, allow_unverified: bool = False) -> None:
    """Check ``path`` against ``source``'s size and checksum; a mismatch names the file and both digests."""
    path = Path(path)
    if not path.is_file():
        raise TaxonbenchError(f"file not found: {path}")
    if not _verifiable(source, allow_unverified):
        return
    if source.size is not None and path.stat().st_size != source.size:
        raise TaxonbenchError(
            f"{path}: size mismatch: expected {source.size} bytes, found {path.stat().st_size}"
        )
    actual = file_digest(path, source.algorithm)
    if actual != source.checksum.lower():
        raise TaxonbenchError(
            f"{path}: {source.algorithm} mismatch: expected {source.checksum.lower()}, got {actual}"
        )


# ----------------------------------------------------------------- fetching
def _status(response: Any) -> int:
    """The HTTP status of a response; 200 for schemes without one (``file:``)."""
    status = getattr(response, "status", None)
    if status is None and hasattr(response, "getcode"):
        status = response.getcode()
    return 200 if status is None else int(status)


def _range_start(content_range: str | None) -> int | None:
    """The first byte of a ``Content-Range: bytes START-END/TOTAL`` header."""
    m = re.match(r"\s*bytes\s+(\d+)-", content_range or "")
    return int(m.group(1)) if m else None


def fetch(source: Source, dest_dir: str | os.PathLike, *, progress: bool = True,
          opener: Callable[..., Any] = urllib.request.urlopen, allow_unverified: bool = False) -> Path:
    """Download ``source`` into ``dest_dir/<filename>`` and return that path.

    The bytes go to ``<filename>.part``; when it already exists (an earlier,
    interrupted run) the download resumes from its end with an HTTP ``Range``
    request (a server that ignores the range restarts it from scratch). The
    checksum is computed along the way; only a matching download is renamed to
    its final name. A mismatching one is renamed ``<filename>.bad`` and a
    :class:`TaxonbenchError` names the file and the expected and actual
    digests. If the final file is already there and verifies, nothing is
    downloaded. ``opener(request, timeout=...)`` opens the URL (tests inject a
    fake server).
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / source.filename
    part = dest_dir / f"{source.filename}.part"
    bad = dest_dir / f"{source.filename}.bad"
    checked = _verifiable(source, allow_unverified)
    if final.exists():
        try:
            verify(final, source, allow_unverified=allow_unverified)
        except TaxonbenchError as exc:
            raise TaxonbenchError(f"{exc}; it is already there, so it is not downloaded again: "
                                  f"delete it to download {source.url} anew") from None
        return final

    hasher = hashlib.new(source.algorithm) if checked else None
    offset = part.stat().st_size if part.exists() else 0
    if offset and hasher is not None:
        with open(part, "rb") as f:
            while chunk := f.read(_CHUNK):
                hasher.update(chunk)

    headers = {"User-Agent": f"taxonbench/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(source.url, headers=headers)
    try:
        response = opener(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if not (exc.code == 416 and offset):  # 416 on a resume: the .part already holds every byte
            raise TaxonbenchError(f"{source.url}: download failed: HTTP {exc.code} {exc.reason}") from None
        response = None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise TaxonbenchError(f"{source.url}: download failed ({reason})") from None

    if response is not None:
        with response:
            status = _status(response)
            if status == 206 and offset:
                start = _range_start(response.headers.get("Content-Range"))
                if start != offset:
                    raise TaxonbenchError(
                        f"{source.url}: asked to resume at byte {offset}, the server sent "
                        f"Content-Range {response.headers.get('Content-Range')!r}; delete {part} and run again"
                    )
                mode = "ab"
            elif status == 200:
                offset, mode = 0, "wb"  # a fresh download, or a server that ignored the range
                hasher = hashlib.new(source.algorithm) if checked else None
            else:
                raise TaxonbenchError(f"{source.url}: download failed: unexpected HTTP status {status}")
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None else None
            total = offset + expected if expected is not None else source.size
            received = 0
            with open(part, mode) as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                               unit_divisor=1024, desc=source.filename,
                                               disable=not progress, leave=False) as bar:
                try:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        if hasher is not None:
                            hasher.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                except (OSError, http.client.HTTPException) as exc:
                    raise TaxonbenchError(
                        f"{source.url}: download interrupted after {offset + received} bytes ({exc}); "
                        f"run again to resume from {part}"
                    ) from None
            if expected is not None and received < expected:
                raise TaxonbenchError(
                    f"{source.url}: download interrupted after {offset + received} of {offset + expected} "
                    f"bytes; run again to resume from {part}"
                )

    if hasher is not None:
        actual = hasher.hexdigest()
        size = part.stat().st_size
        if actual != source.checksum.lower() or (source.size is not None and size != source.size):
            os.replace(part, bad)
            raise TaxonbenchError(
                f"{final}: {source.algorithm} mismatch after downloading {source.url}: expected "
                f"{source.checksum.lower()}, got {actual} ({size} bytes); the download is kept as {bad} "
                f"(delete it and run again)"
            )
    os.replace(part, final)
    return final


# --------------------------------------------------------------- extracting
def _inside(rel: str) -> bool:
    """True when a normalised relative POSIX path stays inside its root."""
    return rel != ".." and not rel.startswith("../")


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name))


def _within(path: str, root: str) -> bool:
    """True when the real path ``path`` is ``root`` or below it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class _Members:
    """The checks every member passes before anything of it is written.

    ``staging`` is the directory members are extracted into and ``dest_dir``
    the one their top-level entries will be moved to.
    """

    def __init__(self, archive: Path, staging: Path, dest_dir: Path) -> None:
        self.archive, self.staging, self.dest_dir = archive, staging, dest_dir
        self.real_staging = os.path.realpath(staging)
        self.tops: set[str] = set()

    def refuse(self, name: str, why: str) -> TaxonbenchError:
        return TaxonbenchError(f"{self.archive}: refusing member {name!r}: {why}")

    def path(self, name: str) -> str | None:
        """The member's normalised relative path (``None`` for the archive root itself)."""
        if _is_absolute(name):
            raise self.refuse(name, "absolute path")
        rel = posixpath.normpath(name.replace("\\", "/"))
        if not _inside(rel):
            raise self.refuse(name, "its path escapes the destination directory")
        if rel == ".":
            return None
        # Following the symlinks extracted so far, the member must still land inside.
        if not _within(os.path.realpath(os.path.join(self.staging, rel)), self.real_staging):
            raise self.refuse(name, "its path escapes the destination directory through a symlink")
        top = rel.split("/", 1)[0]
        if top not in self.tops:
            if os.path.lexists(self.dest_dir / top):
                raise TaxonbenchError(
                    f"{self.archive}: cannot extract into {self.dest_dir}: {self.dest_dir / top} "
                    f"already exists (remove it to extract again)"
                )
            self.tops.add(top)
        return rel

    def link(self, name: str, rel: str, linkname: str, symbolic: bool) -> None:
        """A link's target must stay inside too (symlinks: relative to their directory)."""
        kind = "symlink" if symbolic else "hard link"
        if _is_absolute(linkname):
            raise self.refuse(name, f"{kind} to an absolute path ({linkname!r})")
        base = posixpath.dirname(rel) if symbolic else ""
        target = posixpath.join(base, linkname.replace("\\", "/"))
        # lexically, then physically (through the symlinks extracted so far: "b/.." with b -> ".")
        real = os.path.realpath(os.path.join(self.staging, target))
        target = posixpath.normpath(target)
        if not _inside(target) or not _within(real, self.real_staging):
            raise self.refuse(name, f"{kind} pointing outside the destination ({linkname!r})")


def check_tar_complete(tar: tarfile.TarFile, where: str | os.PathLike) -> None:
    """Stop unless ``tar``, iterated to its end, reached its end-of-archive block.

    ``tarfile`` ends an iteration silently when the data stops where a member
    header should be (a short read is taken for the end), so an archive cut at
    a member boundary reads as a smaller complete one. A complete archive has
    had its all-zero end block read by then: the underlying stream stands at
    least one block past ``tar.offset``. Call after the last member.
    """
    if tar.fileobj.tell() < tar.offset + tarfile.BLOCKSIZE:
        raise TaxonbenchError(f"{where}: corrupt or truncated archive (it stops after the member at byte "
                              f"{tar.offset}, before its end-of-archive block)")


def _extract_tar(archive: Path, members: _Members) -> None:
    data_filter = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.11.4
    with tarfile.open(archive, "r|*") as tar:  # streamed: one sequential pass over the archive
        for member in tar:
            rel = members.path(member.name)
            if rel is None:
                continue
            if member.issym() or member.islnk():
                members.link(member.name, rel, member.linkname, symbolic=member.issym())
            elif not (member.isfile() or member.isdir()):
                raise members.refuse(member.name, "special file (device, FIFO, ...)")
            try:
                # directories get default permissions (a read-only one would block its own files)
                tar.extract(member, members.staging, set_attrs=not member.isdir(), **data_filter)
            except _FILTER_ERROR as exc:
                raise members.refuse(member.name, str(exc)) from None
        check_tar_complete(tar, archive)


def _extract_zip(archive: Path, members: _Members) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # zip has a central directory: check every name before writing any
            members.path(info.filename)
        for info in infos:
            if members.path(info.filename) is not None:
                zf.extract(info, members.staging)


def extract(archive: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Extract a tar (plain/gz/bz2/xz) or zip archive into ``dest_dir``; return ``dest_dir``.

    Members are written to a temporary sibling directory
    ``dest_dir/.<archive name>.extracting``; only when the whole archive has
    been read are its top-level entries renamed into ``dest_dir``. Refused,
    with a message naming the archive and the member: absolute paths, paths
    escaping ``dest_dir`` (``../evil``, also through a symlink extracted
    earlier), symlinks and hard links pointing outside, special files, and
    top-level entries that already exist in ``dest_dir``. ``tarfile``'s
    ``filter="data"`` is applied on top where the Python version has it. A
    truncated or corrupt archive raises a :class:`TaxonbenchError` naming it.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if not archive.is_file():
        raise TaxonbenchError(f"archive not found: {archive}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    staging = dest_dir / f".{archive.name}.extracting"
    shutil.rmtree(staging, ignore_errors=True)  # leftovers of a killed run
    staging.mkdir()
    members = _Members(archive, staging, dest_dir)
    try:
        try:
            if archive.name.lower().endswith(".zip") or zipfile.is_zipfile(archive):
                _extract_zip(archive, members)
            else:
                _extract_tar(archive, members)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise TaxonbenchError(f"{archive}: corrupt or truncated archive ({exc})") from None
        except OSError as exc:
            raise TaxonbenchError(f"{archive}: extraction failed ({exc})") from None
        entries = sorted(staging.iterdir())
        for entry in entries:  # checked before the first rename, so either all move or none
            if os.path.lexists(dest_dir / entry.name):
                raise TaxonbenchError(
                    f"{archive}: cannot extract into {dest_dir}: {dest_dir / entry.name} already exists "
                    f"(remove it to extract again)"
                )
        for entry in entries:
            os.replace(entry, dest_dir / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest_dir


def fetch_missing(fetches: list[Fetch], root: str | os.PathLike, *, progress: bool = True,
                  allow_unverified: bool = False, opener: Callable[..., Any] = urllib.request.urlopen) -> list[Path]:
    """Fetch (and extract) every :class:`Fetch` whose ``target`` is missing under ``root``.

    Targets already present are left alone; a source without a published
    checksum is refused unless ``allow_unverified``. The archive is kept in
    ``root`` after extraction (delete it to save space). Returns the paths
    fetched.
    """
    root = Path(root)
    fetched = []
    for item in fetches:
        if item.key not in SOURCES:
            raise TaxonbenchError(f"no download source {item.key!r}; known: {', '.join(sorted(SOURCES))}")
        if (root / item.target).exists():
            continue
        source = SOURCES[item.key]
        if source.checksum is None and not allow_unverified:
            raise TaxonbenchError(
                f"{root / item.target} not found, and its authors publish no checksum for {source.url}, so "
                f"taxonbench does not download it unverified: fetch it yourself and place {item.target} under "
                f"{root}, or set the dataset option allow_unverified: true"
            )
        path = fetch(source, root, progress=progress, opener=opener, allow_unverified=allow_unverified)
        if item.extract:
            extract(path, root)
        if not (root / item.target).exists():
            raise TaxonbenchError(f"{path}: fetched into {root}, but {root / item.target} is still missing")
        fetched.append(path)
    return fetched
