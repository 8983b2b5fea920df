"""Downloads (a fake in-memory server with Range support) and safe archive extraction."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile
import urllib.error
import urllib.parse
import zipfile
from email.message import Message
from pathlib import Path

import pytest

from taxonbench.download import SOURCES, Source, extract, fetch, verify
from taxonbench.errors import TaxonbenchError

DATA = bytes(range(256)) * 41 + b"tail"  # 10,500 bytes
URL = "https://example.invalid/files/blob.bin"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source(data: bytes = DATA, **overrides) -> Source:
    fields = {"url": URL, "checksum": sha256(data), "filename": "blob.bin", "algorithm": "sha256"}
    return Source(**{**fields, **overrides})


class FakeResponse(io.BytesIO):
    def __init__(self, body: bytes, status: int, headers: dict[str, str]) -> None:
        super().__init__(body)
        self.status = status
        self.headers = headers


class FakeServer:
    """Serves ``data`` from memory like an HTTP server: honours ``Range`` unless told not to.

    ``cut_after`` sends only that many body bytes while announcing the full length
    (a dropped connection). Every request is recorded.
    """

    def __init__(self, data: bytes = DATA, honour_range: bool = True, cut_after: int | None = None) -> None:
        self.data, self.honour_range, self.cut_after = data, honour_range, cut_after
        self.requests: list[dict[str, str]] = []

    def __call__(self, request, timeout=None):
        headers = {k.lower(): v for k, v in request.header_items()}
        self.requests.append(headers)
        status, body, extra = 200, self.data, {}
        m = re.fullmatch(r"bytes=(\d+)-", headers.get("range", ""))
        if m and self.honour_range:
            start = int(m.group(1))
            if start >= len(self.data):
                raise urllib.error.HTTPError(request.full_url, 416, "Range Not Satisfiable", Message(), None)
            status, body = 206, self.data[start:]
            extra = {"Content-Range": f"bytes {start}-{len(self.data) - 1}/{len(self.data)}"}
        sent = body if self.cut_after is None else body[:self.cut_after]
        return FakeResponse(sent, status, {"Content-Length": str(len(body)), **extra})


def refuse_all(request, timeout=None):
    raise AssertionError(f"no request expected, got {request.full_url}")


# ------------------------------------------------------------------- fetch
def test_fresh_download_is_verified_and_renamed(tmp_path):
    server = FakeServer()
    path = fetch(source(), tmp_path / "dl", progress=False, opener=server)
    assert path == tmp_path / "dl" / "blob.bin"
    assert path.read_bytes() == DATA
    assert sorted(p.name for p in path.parent.iterdir()) == ["blob.bin"]
    assert len(server.requests) == 1 and "range" not in server.requests[0]


def test_resume_from_part_uses_range(tmp_path):
    (tmp_path / "blob.bin.part").write_bytes(DATA[:4000])
    server = FakeServer()
    path = fetch(source(), tmp_path, progress=False, opener=server)
    assert server.requests[0]["range"] == "bytes=4000-"
    assert path.read_bytes() == DATA
    assert not (tmp_path / "blob.bin.part").exists()


def test_server_ignoring_range_restarts_the_download(tmp_path):
    (tmp_path / "blob.bin.part").write_bytes(b"x" * 100)  # even a wrong prefix is overwritten
    path = fetch(source(), tmp_path, progress=False, opener=FakeServer(honour_range=False))
    assert path.read_bytes() == DATA


def test_complete_part_answered_416_is_verified(tmp_path):
    (tmp_path / "blob.bin.part").write_bytes(DATA)
    path = fetch(source(), tmp_path, progress=False, opener=FakeServer())
    assert path.read_bytes() == DATA


def test_interrupted_download_keeps_part_and_resumes(tmp_path):
    with pytest.raises(TaxonbenchError, match=r"interrupted after 3000 of 10500 bytes; run again to resume"):
        fetch(source(), tmp_path, progress=False, opener=FakeServer(cut_after=3000))
    assert (tmp_path / "blob.bin.part").read_bytes() == DATA[:3000]
    assert not (tmp_path / "blob.bin").exists()
    server = FakeServer()
    path = fetch(source(), tmp_path, progress=False, opener=server)
    assert server.requests[0]["range"] == "bytes=3000-"
    assert path.read_bytes() == DATA


def test_checksum_mismatch_keeps_bad_file_and_names_digests(tmp_path):
    wrong = sha256(b"something else")
    with pytest.raises(TaxonbenchError) as info:
        fetch(source(checksum=wrong), tmp_path, progress=False, opener=FakeServer())
    msg = str(info.value)
    assert "blob.bin" in msg and wrong in msg and sha256(DATA) in msg and "blob.bin.bad" in msg
    assert (tmp_path / "blob.bin.bad").read_bytes() == DATA
    assert not (tmp_path / "blob.bin").exists() and not (tmp_path / "blob.bin.part").exists()


def test_present_file_is_not_fetched_again(tmp_path):
    (tmp_path / "blob.bin").write_bytes(DATA)
    assert fetch(source(), tmp_path, progress=False, opener=refuse_all) == tmp_path / "blob.bin"


def test_present_but_corrupt_file_is_an_error_not_a_silent_redownload(tmp_path):
    (tmp_path / "blob.bin").write_bytes(DATA[:-1] + b"!")
    with pytest.raises(TaxonbenchError, match=f"expected {sha256(DATA)}, got {sha256(DATA[:-1] + b'!')}"):
        fetch(source(), tmp_path, progress=False, opener=refuse_all)
    assert (tmp_path / "blob.bin").read_bytes() == DATA[:-1] + b"!"


def test_unverified_source_is_refused_unless_allowed(tmp_path):
    unverified = source(checksum=None)
    with pytest.raises(TaxonbenchError, match="publish no checksum.*allow_unverified=True"):
        fetch(unverified, tmp_path, progress=False, opener=refuse_all)
    (tmp_path / "x.bin").write_bytes(DATA)
    with pytest.raises(TaxonbenchError, match="publish no checksum"):
        verify(tmp_path / "x.bin", unverified)
    verify(tmp_path / "x.bin", unverified, allow_unverified=True)
    path = fetch(unverified, tmp_path / "dl", progress=False, opener=FakeServer(), allow_unverified=True)
    assert path.read_bytes() == DATA


def test_verify_md5_and_size(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(DATA)
    md5 = hashlib.md5(DATA).hexdigest()
    verify(path, source(checksum=md5, algorithm="md5"))
    verify(path, source(size=len(DATA)))
    with pytest.raises(TaxonbenchError, match="size mismatch: expected 5 bytes"):
        verify(path, source(size=5))
    with pytest.raises(TaxonbenchError, match=f"blob.bin: md5 mismatch: expected {'0' * 32}, got {md5}"):
        verify(path, source(checksum="0" * 32, algorithm="md5"))
    with pytest.raises(TaxonbenchError, match="file not found"):
        verify(tmp_path / "missing.bin", source())


def test_source_rejects_malformed_checksums():
    with pytest.raises(ValueError, match="not a md5 hex digest"):
        Source(URL, "abc", "blob.bin", "md5")
    with pytest.raises(ValueError, match="unknown checksum algorithm"):
        Source(URL, None, "blob.bin", "crc32")


def test_sources_table_is_consistent():
    assert SOURCES, "the table lists the archives the adapters need"
    for key, src in SOURCES.items():
        family, name = key.split("/", 1)
        assert name == src.filename == urllib.parse.urlsplit(src.url).path.rsplit("/", 1)[1], key
        assert src.url.startswith(("https://", "http://")), key
    # the files whose authors publish no checksum: a new one must be added here knowingly
    assert sorted(k for k, s in SOURCES.items() if s.checksum is None) == [
        "crypticbio/CrypticBio-Common.csv", "crypticbio/CrypticBio-CommonUnseen.csv",
        "crypticbio/CrypticBio-Endangered.csv", "crypticbio/CrypticBio-Invasive.csv",
        "ethec/ETHEC_dataset_v0.2.zip", "inat2017/train_val2017.zip", "inat2018/categories.json.tar.gz",
        "modelnet40/shaded_images.tar.gz", "rare_species/metadata.csv"]
    # plain http only where the authors serve it so: Fashion-MNIST (its published MD5 is checked all the
    # same) and the MVCNN renders (no checksum: fetched only with allow_unverified)
    assert sorted(k.split("/")[0] for k, s in SOURCES.items() if s.url.startswith("http://")) == \
        ["fashion_mnist"] * 4 + ["modelnet40"]


# ----------------------------------------------------------------- extract
def add_file(tar: tarfile.TarFile, name: str, data: bytes = b"data") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_link(tar: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    tar.addfile(info)


def make_tar(path: Path, build, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        build(tar)
    return path


def upstream_like(tar: tarfile.TarFile) -> None:
    add_file(tar, "train_mini/00000_Animalia_Chordata/a.jpg", b"jpeg-a")
    add_file(tar, "train_mini/00001_Plantae_Tracheophyta/b.jpg", b"jpeg-b")
    add_file(tar, "train_mini.json", b"{}")


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("mode,suffix", [("w:gz", ".tar.gz"), ("w:bz2", ".tar.bz2"), ("w:xz", ".tar.xz"),
                                         ("w", ".tar")])
def test_extract_tar(tmp_path, mode, suffix):
    archive = make_tar(tmp_path / f"train_mini{suffix}", upstream_like, mode)
    dest = tmp_path / "root"
    assert extract(archive, dest) == dest
    assert (dest / "train_mini/00001_Plantae_Tracheophyta/b.jpg").read_bytes() == b"jpeg-b"
    assert listing(dest) == ["train_mini", "train_mini.json", "train_mini/00000_Animalia_Chordata",
                             "train_mini/00000_Animalia_Chordata/a.jpg", "train_mini/00001_Plantae_Tracheophyta",
                             "train_mini/00001_Plantae_Tracheophyta/b.jpg"]


def test_extract_zip_and_keep_other_entries(tmp_path):
    archive = tmp_path / "locations.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("inat2018_locations/train2018_locations.json", b"[]")
        zf.writestr("readme.txt", b"hello")
    dest = tmp_path / "root"
    (dest / "already_here").mkdir(parents=True)
    extract(archive, dest)
    assert (dest / "inat2018_locations/train2018_locations.json").read_bytes() == b"[]"
    assert sorted(p.name for p in dest.iterdir()) == ["already_here", "inat2018_locations", "readme.txt"]


def test_extract_inside_symlink_is_kept(tmp_path):
    def build(tar):
        add_file(tar, "pkg/data/file.txt", b"x")
        add_link(tar, "pkg/latest", "data/file.txt")
    dest = tmp_path / "root"
    extract(make_tar(tmp_path / "a.tar.gz", build), dest)
    assert (dest / "pkg/latest").is_symlink() and (dest / "pkg/latest").read_bytes() == b"x"


def refused(archive: Path, dest: Path, *patterns: str) -> None:
    """``extract`` refuses with a message naming the archive (and ``patterns``) and leaves nothing."""
    with pytest.raises(TaxonbenchError) as info:
        extract(archive, dest)
    assert str(archive) in str(info.value)
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), str(info.value)
    assert listing(dest) == []  # no final entry, no staging directory


@pytest.mark.parametrize("build,patterns", [
    (lambda t: (add_file(t, "good/x.txt"), add_file(t, "../evil")), ["'../evil'", "escapes"]),
    (lambda t: add_file(t, "good/../../evil"), ["'good/../../evil'", "escapes"]),
    (lambda t: add_file(t, "/tmp/taxonbench-abs-evil"), ["'/tmp/taxonbench-abs-evil'", "absolute path"]),
    (lambda t: add_link(t, "good/link", "../../outside"), ["'good/link'", "symlink pointing outside"]),
    (lambda t: add_link(t, "good/link", "/etc/passwd"), ["'good/link'", "symlink to an absolute path"]),
    (lambda t: add_link(t, "good/hard", "../outside", tarfile.LNKTYPE),
     ["'good/hard'", "hard link pointing outside"]),
    # each link looks inside on its own; through "b" (-> ".") "a" (-> "b/..") reaches the parent
    (lambda t: (add_link(t, "b", "."), add_link(t, "a", "b/..")), ["'a'", "symlink pointing outside"]),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink-out", "symlink-absolute", "hardlink-out", "symlink-chain"])
def test_extract_refuses_members_escaping_the_destination(tmp_path, build, patterns):
    archive = make_tar(tmp_path / "evil.tar.gz", build)
    dest = tmp_path / "a" / "root"
    refused(archive, dest, *patterns)
    assert not (tmp_path / "a" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not Path("/tmp/taxonbench-abs-evil").exists()


def test_extract_refuses_special_files(tmp_path):
    def build(tar):
        info = tarfile.TarInfo("good/fifo")
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)
    refused(make_tar(tmp_path / "f.tar", build, "w"), tmp_path / "root", "special file")


@pytest.mark.parametrize("name", ["../evil", "/abs/evil"])
def test_extract_zip_refuses_escaping_members(tmp_path, name):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good/x.txt", b"x")
        zf.writestr(zipfile.ZipInfo(name), b"evil")
    refused(archive, tmp_path / "root", re.escape(repr(name)))


def test_truncated_archives_are_named(tmp_path):
    def build(tar):
        for i in range(20):
            add_file(tar, f"train_mini/{i:03d}.jpg", os.urandom(4096))
    archive = make_tar(tmp_path / "t.tar.gz", build)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    refused(archive, tmp_path / "root", "corrupt or truncated archive")

    # cut exactly at a member boundary: tarfile alone would take it for a complete, smaller archive
    plain = make_tar(tmp_path / "p.tar", build, "w")
    with tarfile.open(plain) as tar:
        boundary = tar.getmembers()[10].offset
    for path, data in ((plain, plain.read_bytes()[:boundary]),
                       (tmp_path / "p.tar.gz", gzip.compress(plain.read_bytes()[:boundary]))):
        path.write_bytes(data)
        refused(path, tmp_path / f"root_{path.name}", "corrupt or truncated archive .*before its end-of-archive")

    zipped = tmp_path / "t.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("a.txt", os.urandom(4096))
    zipped.write_bytes(zipped.read_bytes()[:1000])
    refused(zipped, tmp_path / "root2", "corrupt or truncated archive")


def test_extract_does_not_overwrite_existing_entries(tmp_path):
    archive = make_tar(tmp_path / "train_mini.tar.gz", upstream_like)
    dest = tmp_path / "root"
    (dest / "train_mini").mkdir(parents=True)
    with pytest.raises(TaxonbenchError, match="train_mini already exists"):
        extract(archive, dest)
    assert listing(dest) == ["train_mini"]


def test_extract_missing_archive(tmp_path):
    with pytest.raises(TaxonbenchError, match="archive not found"):
        extract(tmp_path / "nope.tar.gz", tmp_path / "root")
