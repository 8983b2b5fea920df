"""The ImageNet (ILSVRC-2012) adapter and its shipped WordNet hierarchy.

Fixtures are written in the upstream layout: ``ILSVRC2012_img_train.tar`` (one uncompressed tar
per class, ``n01440764.tar`` holding ``n01440764_<k>.JPEG``), ``ILSVRC2012_img_val.tar`` (flat
``ILSVRC2012_val_<8 digits>.JPEG``) and ``ILSVRC2012_devkit_t12.tar.gz`` with
``ILSVRC2012_devkit_t12/data/meta.mat`` (a MATLAB struct array ``synsets`` with the devkit's
fields, written with ``scipy.io.savemat``) and ``data/ILSVRC2012_validation_ground_truth.txt``.
The classes are real ILSVRC-2012 wnids, so the shipped hierarchy applies to them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from taxonbench import download
from taxonbench.datasets import DATASETS, prepare_dataset
from taxonbench.datasets import imagenet as inet
from taxonbench.errors import TaxonbenchError
from taxonbench.shards import read_manifest
from dataset_fixtures import split_table

REPO = Path(__file__).resolve().parents[1]
# (wnid, ILSVRC2012_ID): the devkit's ids are deliberately not in wnid order
CLASSES = [("n02123159", 1), ("n01440764", 2), ("n03126707", 3), ("n02012849", 4), ("n02123045", 5)]
WNIDS = sorted(w for w, _ in CLASSES)  # leaf order: n01440764 n02012849 n02123045 n02123159 n03126707
ID_OF = dict(CLASSES)
COLOURS = {"n01440764": (20, 20, 20), "n02012849": (200, 30, 30), "n02123045": (30, 200, 30),
           "n02123159": (30, 30, 200), "n03126707": (220, 220, 40)}
N_TRAIN, N_VAL = 6, 3  # images per class
SIZE = 16
# (ILSVRC2012_ID, WNID, words, num_children, children) of some internal devkit synsets
INTERNAL = [(1001, "n02121808", "domestic cat, house cat, Felis domesticus", 2, [1, 5]),
            (1002, "n02000954", "wading bird, wader", 1, [4])]
META_FIELDS = ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height",
               "num_train_images")


def jpeg(colour, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def meta_mat(drop: str | None = None) -> bytes:
    """``meta.mat`` bytes in the devkit's layout: ``synsets``, an N x 1 struct array."""
    fields = [f for f in META_FIELDS if f != drop]
    entries = [(sid, w, f"{w} words", 0, []) for w, sid in CLASSES] + INTERNAL
    synsets = np.zeros((len(entries), 1), dtype=[(f, "O") for f in fields])
    for k, (sid, wnid, words, n_children, children) in enumerate(entries):
        values = {"ILSVRC2012_ID": float(sid), "WNID": wnid, "words": words, "gloss": "a gloss",
                  "num_children": float(n_children), "children": np.array([children], dtype=float),
                  "wordnet_height": float(bool(n_children)), "num_train_images": float(N_TRAIN * (not n_children))}
        for f in fields:
            synsets[k, 0][f] = values[f]
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"synsets": synsets})
    return buf.getvalue()


def val_truth() -> list[str]:
    """The class of validation image 1, 2, ... (classes interleaved, as upstream)."""
    return [WNIDS[(i * 2) % len(WNIDS)] for i in range(N_VAL * len(WNIDS))]


def write_imagenet(root: Path, drop_meta_field: str | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / inet.TRAIN_TAR, "w") as outer:
        for wnid in reversed(WNIDS):  # archive order is not wnid order
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as inner:
                for k in (12, 3, 7, 10026, 5, 1)[:N_TRAIN]:
                    add_bytes(inner, f"{wnid}_{k}.JPEG", jpeg(COLOURS[wnid]))
            add_bytes(outer, f"{wnid}.tar", buf.getvalue())
    with tarfile.open(root / inet.VAL_TAR, "w") as tar:
        for i, wnid in enumerate(val_truth(), 1):
            add_bytes(tar, f"ILSVRC2012_val_{i:08d}.JPEG", jpeg(COLOURS[wnid], size=(30, 40)))
    with tarfile.open(root / inet.DEVKIT, "w:gz") as tar:
        add_bytes(tar, "ILSVRC2012_devkit_t12/readme.txt", b"ILSVRC2012 devkit (fixture)\n")
        add_bytes(tar, inet.META, meta_mat(drop_meta_field))
        add_bytes(tar, inet.GROUND_TRUTH, "".join(f"{ID_OF[w]}\n" for w in val_truth()).encode())


def write_folders(root: Path) -> None:
    """The common extracted layout of the same images: train/<wnid>/*.JPEG, val/<wnid>/*.JPEG."""
    for wnid in WNIDS:
        for k in (12, 3, 7, 10026, 5, 1)[:N_TRAIN]:
            path = root / "train" / wnid / f"{wnid}_{k}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(jpeg(COLOURS[wnid]))
    for i, wnid in enumerate(val_truth(), 1):
        path = root / "val" / wnid / f"ILSVRC2012_val_{i:08d}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg(COLOURS[wnid], size=(30, 40)))


def make(root: Path, seed: int = 0, **options):
    return DATASETS.get("imagenet")({"root": str(root), "image_size": SIZE, "val_per_class": 2, **options},
                                    name="imagenet_fixture", seed=seed)


@pytest.fixture
def archives(tmp_path):
    root = tmp_path / "raw" / "imagenet"
    write_imagenet(root)
    return root


# ------------------------------------------------------- shipped hierarchy
def timm_wnids() -> list[str]:
    spec = importlib.util.find_spec("timm")
    if spec is None:
        pytest.skip("timm is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "_info" / "imagenet_synsets.txt"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def test_shipped_hierarchy_is_a_tree_over_the_1000_classes_rooted_at_entity():
    classes = timm_wnids()
    assert len(classes) == 1000
    pairs = inet.read_is_a(inet.SHIPPED_IS_A)
    assert len(pairs) == 1937 and len({c for _, c in pairs} | {p for p, _ in pairs}) == 1860
    words = inet.read_words(inet.SHIPPED_WORDS)
    assert len(words) == 1860 and words["n00001740"] == "entity" and words["n01440764"] == "tench"
    parent_of = inet.tree_parents(pairs, classes, source="shipped")
    tax, wnids = inet.build_taxonomy(parent_of, classes, words, "shipped")
    assert wnids[0] == inet.ENTITY and tax.name[0] == "entity"
    assert [wnids[v] for v in tax.leaf_nodes] == sorted(classes)  # leaves: exactly the 1000, sorted
    assert tax.n_leaves == 1000 and tax.n_nodes == 1808 and int(tax.is_trivial.sum()) == 436
    depths = tax.depth[tax.leaf_nodes]
    assert (depths.min(), depths.max()) == (4, 18) and not tax.fixed_ranks
    # the first-listed hypernym at each step: the tench's path down from entity
    assert tax.path_names(int(tax.leaf_nodes[0]), "/") == (
        "physical entity/object/whole/living thing/organism/animal/chordate/vertebrate/aquatic vertebrate/"
        "fish/bony fish/teleost fish/soft-finned fish/cypriniform fish/cyprinid/tench")
    collapsed = inet.collapse_chains(parent_of, classes)
    tax2, _ = inet.build_taxonomy(collapsed, classes, words, "shipped")
    assert tax2.n_leaves == 1000 and tax2.n_nodes == 1372 and not tax2.is_trivial.any()


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").is_file(),
                    reason="WordNet 3.0 data.noun not installed (apt-get install wordnet-base)")
def test_regenerating_from_wordnet_reproduces_the_shipped_files():
    timm_wnids()  # skips without timm (the generator reads its class list)
    spec = importlib.util.spec_from_file_location("make_imagenet_hierarchy",
                                                  REPO / "tools" / "make_imagenet_hierarchy.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    texts = tool.render(Path("/usr/share/wordnet/data.noun"), tool.timm_synsets())
    for name, path in ((tool.IS_A_FILE, inet.SHIPPED_IS_A), (tool.WORDS_FILE, inet.SHIPPED_WORDS)):
        assert tool.data_lines(texts[name]) == tool.data_lines(path.read_text()), name


def test_shipped_files_are_package_data():
    assert 'datasets/data/*.tsv' in (REPO / "pyproject.toml").read_text()


# --------------------------------------------------------------- tree rule
# a toy DAG: d has two parents (b listed first, c second); e is a chain under d
TOY_IS_A = [("r", "b"), ("r", "c"), ("b", "d"), ("c", "d"), ("d", "e"), ("e", "x"), ("e", "y"), ("c", "z")]


def toy(pairs):
    ids = {n: f"n{i:08d}" for i, n in enumerate("rbcdexyz")}
    return [(ids[p], ids[c]) for p, c in pairs], ids


def test_tree_rule_first_and_last_listed_parent():
    pairs, ids = toy(TOY_IS_A)
    classes = [ids["x"], ids["y"], ids["z"]]
    first = inet.tree_parents(pairs, classes, rule="first")
    last = inet.tree_parents(pairs, classes, rule="last")
    assert first[ids["d"]] == ids["b"] and last[ids["d"]] == ids["c"]
    assert set(first) == {ids[n] for n in "bcdexyz"}  # the root has no parent
    assert set(last) == {ids[n] for n in "cdexyz"}  # b is on no path any more
    collapsed = inet.collapse_chains(first, classes)  # b, c, d: one child each; e has two
    assert collapsed == {ids["e"]: ids["r"], ids["x"]: ids["e"], ids["y"]: ids["e"], ids["z"]: ids["r"]}
    tax, order = inet.build_taxonomy(first, classes, {ids["e"]: "ee"}, "toy")
    assert order == [ids[n] for n in "rbcdexyz"]  # root, internal nodes by (depth, wnid), sorted leaves
    assert [str(tax.name[v]) for v in tax.leaf_nodes] == [ids["x"], ids["y"], ids["z"]]  # no name: the wnid
    assert tax.path_names(int(tax.leaf_nodes[0]), "/") == f"{ids['b']}/{ids['d']}/ee/{ids['x']}"
    assert list(tax.rank[:2]) == ["root", "synset"] and tax.rank[tax.leaf_nodes[0]] == "ilsvrc_class"


@pytest.mark.parametrize("pairs,classes,pattern", [
    (TOY_IS_A, "xq", r"toy: 1 class\(es\) not in the hierarchy: n\d{8}"),
    (TOY_IS_A, "xe", r"toy: class\(es\) n00000004 lie on the path of other classes \(n00000004 is the parent"),
    (TOY_IS_A + [("q", "z")], "xz", r"toy: the classes' paths end at 2 different roots"),
    ([("b", "r"), ("r", "b"), ("b", "x")], "x", r"toy: cycle through"),
])
def test_tree_rule_errors_name_the_file_and_wnids(pairs, classes, pattern):
    ids = {n: f"n{i:08d}" for i, n in enumerate("rbcdexyzq")}
    with pytest.raises(TaxonbenchError, match=pattern):
        inet.tree_parents([(ids[p], ids[c]) for p, c in pairs], [ids[c] for c in classes], source="toy",
                          rule="last" if ("q", "z") in pairs else "first")


def test_upstream_wordnet_is_a_and_words_with_the_robustness_rule(archives, tmp_path):
    # ImageNet's wordnet.is_a.txt format: "parent child" per line, space separated; words.txt: wnid<TAB>names.
    # Here the tench gets two parents; Robustness's ImageNetHierarchy keeps the last line's.
    is_a = tmp_path / "wordnet.is_a.txt"
    lines = ["n00001740 n01440764", "n00000001 n01440764"] + [f"n00001740 {w}" for w in WNIDS[1:]]
    lines += ["n00001740 n00000001"]
    is_a.write_text("\n".join(lines) + "\n")
    words = tmp_path / "words.txt"
    words.write_text("n00000001\tthing one, thingummy\nn01440764\tTinca tinca, tench\n")
    last = make(archives, hierarchy=str(is_a), words=str(words), parent_rule="last").taxonomy()
    assert last.n_nodes == 7 and last.path_names(int(last.leaf_nodes[0]), "/") == "thing one/Tinca tinca"
    first = make(archives, hierarchy=str(is_a), parent_rule="first").taxonomy()
    assert first.n_nodes == 6 and first.path_names(int(first.leaf_nodes[0]), "/") == "tench"
    is_a.write_text("n00001740 n01440764 extra\n")
    with pytest.raises(TaxonbenchError, match=r"wordnet\.is_a\.txt:1: expected 'parent_wnid child_wnid'"):
        make(archives, hierarchy=str(is_a)).taxonomy()
    with pytest.raises(TaxonbenchError, match=r"options\.hierarchy: .*nowhere\.txt not found"):
        make(archives, hierarchy=str(tmp_path / "nowhere.txt")).taxonomy()


# ---------------------------------------------------------------- taxonomy
def test_fixture_taxonomy_is_the_hand_worked_wordnet_tree(archives):
    tax = make(archives).taxonomy()
    assert tax.n_leaves == 5 and tax.n_nodes == 34 and tax.name[0] == "entity"
    common = "physical entity/object/whole/"
    animal = common + "living thing/organism/animal/chordate/vertebrate/"
    cat = animal + "mammal/placental/carnivore/feline/cat/domestic cat/"
    assert [tax.path_names(int(v), "/") for v in tax.leaf_nodes] == [  # leaf i = i-th wnid in sorted order
        animal + "aquatic vertebrate/fish/bony fish/teleost fish/soft-finned fish/cypriniform fish/cyprinid/tench",
        animal + "bird/aquatic bird/wading bird/crane",
        cat + "tabby", cat + "tiger cat",
        common + "artifact/instrumentality/device/lifting device/crane"]
    collapsed = make(archives, collapse_chains=True).taxonomy()
    assert [collapsed.path_names(int(v), "/") for v in collapsed.leaf_nodes] == [
        "whole/vertebrate/tench", "whole/vertebrate/crane", "whole/vertebrate/domestic cat/tabby",
        "whole/vertebrate/domestic cat/tiger cat", "whole/crane"]


# ------------------------------------------------------------------ shards
def test_prepare_from_the_archives(archives, tmp_path):
    out = tmp_path / "shards"
    manifest = prepare_dataset(make(archives), out, rows_per_shard=8)
    assert read_manifest(out) == manifest
    counts = {s: manifest["splits"][s]["rows"] for s in ("train", "val", "test")}
    assert counts == {"train": 5 * (N_TRAIN - 2), "val": 5 * 2, "test": 5 * N_VAL}
    assert manifest["n_leaves"] == 5 and manifest["n_nodes"] == 34 and manifest["layout"] == "archives"
    assert manifest["node_wnids"][0] == inet.ENTITY and manifest["node_wnids"][-5:] == WNIDS
    rows = {s: split_table(out, s) for s in ("train", "val", "test")}
    for split in ("train", "val"):
        for rid, leaf, wnid, where in zip(rows[split]["id"], rows[split]["leaf"], rows[split]["wnid"],
                                          rows[split]["source_path"]):
            assert rid.startswith(wnid + "_") and WNIDS[leaf] == wnid
            assert where == f"ILSVRC2012_img_train.tar!{wnid}.tar!{rid}.JPEG"
    assert np.bincount(rows["val"]["leaf"]).tolist() == [2] * 5
    assert not set(rows["train"]["id"]) & set(rows["val"]["id"])
    assert sorted(rows["train"]["id"] + rows["val"]["id"]) == sorted(
        f"{w}_{k}" for w in WNIDS for k in (12, 3, 7, 10026, 5, 1))
    # test: the official validation images, labelled by the ground truth through meta.mat's ids
    assert rows["test"]["id"] == [f"ILSVRC2012_val_{i:08d}" for i in range(1, 16)]
    assert [WNIDS[k] for k in rows["test"]["leaf"]] == val_truth()
    assert rows["test"]["source_path"][0] == "ILSVRC2012_img_val.tar!ILSVRC2012_val_00000001.JPEG"
    for blob, leaf in zip(rows["test"]["image"], rows["test"]["leaf"]):
        with Image.open(io.BytesIO(blob)) as img:
            assert img.format == "JPEG" and img.size == (SIZE, SIZE)
            mean = np.asarray(img, dtype=float).reshape(-1, 3).mean(0)
        assert np.abs(mean - COLOURS[WNIDS[leaf]]).max() < 12


def test_folders_layout_gives_the_same_rows(archives, tmp_path):
    folders = tmp_path / "extracted"
    write_folders(folders)
    a = prepare_dataset(make(archives), tmp_path / "a", rows_per_shard=100)
    b = prepare_dataset(make(folders, layout="folders"), tmp_path / "b", rows_per_shard=100)
    assert {s: v["rows"] for s, v in a["splits"].items()} == {s: v["rows"] for s, v in b["splits"].items()}
    for split in ("train", "val", "test"):
        ra, rb = split_table(tmp_path / "a", split), split_table(tmp_path / "b", split)
        assert (ra["id"], ra["leaf"], ra["image"]) == (rb["id"], rb["leaf"], rb["image"]), split
    assert split_table(tmp_path / "b", "test")["source_path"][0] == "val/n01440764/ILSVRC2012_val_00000001.JPEG"


def test_val_holdout_is_seeded_and_stratified(archives):
    ids = lambda seed, k=2: [r.id for r in make(archives, seed=seed, val_per_class=k).records("val")]  # noqa: E731
    assert ids(0) == ids(0)
    assert any(ids(0) != ids(s) for s in (1, 2, 3))
    assert len(ids(0, k=100)) == 5 * (N_TRAIN // 2)  # at most half of each class
    assert ids(0, k=0) == []


# ------------------------------------------------------------------ errors
def test_meta_mat_missing_field_names_the_file_and_field(tmp_path):
    root = tmp_path / "imagenet"
    write_imagenet(root, drop_meta_field="num_children")
    with pytest.raises(TaxonbenchError, match=r"ILSVRC2012_devkit_t12\.tar\.gz!ILSVRC2012_devkit_t12/data/"
                                              r"meta\.mat: synsets: missing field 'num_children'"):
        make(root).taxonomy()


def test_ground_truth_with_an_unknown_id_is_named(archives):
    with tarfile.open(archives / inet.DEVKIT, "w:gz") as tar:
        add_bytes(tar, inet.META, meta_mat())
        add_bytes(tar, inet.GROUND_TRUTH, b"1\n2\n77\n")
    with pytest.raises(TaxonbenchError, match=r"ILSVRC2012_validation_ground_truth\.txt:3: ILSVRC2012_ID 77 "
                                              r"is not a class of meta\.mat"):
        make(archives).taxonomy()


def test_corrupt_image_names_the_archive_chain(tmp_path):
    root = tmp_path / "imagenet"
    write_imagenet(root)
    with tarfile.open(root / inet.TRAIN_TAR, "w") as outer:  # rewrite one class tar with a broken JPEG
        for wnid in WNIDS:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as inner:
                for k in (12, 3, 7, 10026, 5, 1):
                    data = b"\xff\xd8\xff\xe0 not a jpeg" if (wnid, k) == ("n02123045", 7) else jpeg(COLOURS[wnid])
                    add_bytes(inner, f"{wnid}_{k}.JPEG", data)
            add_bytes(outer, f"{wnid}.tar", buf.getvalue())
    with pytest.raises(TaxonbenchError, match=r"ILSVRC2012_img_train\.tar!n02123045\.tar!n02123045_7\.JPEG: "
                                              r"corrupt image"):
        prepare_dataset(make(root, val_per_class=0), tmp_path / "shards", rows_per_shard=100)
    assert not (tmp_path / "shards").exists()


@pytest.mark.parametrize("name", [inet.TRAIN_TAR, inet.VAL_TAR, inet.DEVKIT])
def test_truncated_archive_is_named(archives, name):
    path = archives / name
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2 + 100])
    with pytest.raises(TaxonbenchError, match=rf"{name.replace('.', '[.]')}: .*truncated"):
        make(archives).records("test")


def test_class_tars_must_match_meta_mat(archives):
    with tarfile.open(archives / inet.TRAIN_TAR, "a") as outer:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as inner:
            add_bytes(inner, "n09999999_1.JPEG", jpeg((0, 0, 0)))
        add_bytes(outer, "n09999999.tar", buf.getvalue())
    adapter = make(archives)
    assert adapter.taxonomy().n_leaves == 5  # the classes come from meta.mat alone
    with pytest.raises(TaxonbenchError, match=r"class tars do not match the classes of .*meta\.mat: "
                                              r"not classes there: n09999999\.tar"):
        adapter.records("train")


def test_missing_root_says_where_to_get_the_files(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(TaxonbenchError) as info:
        make(root).taxonomy()
    msg = str(info.value)
    for expected in (str(root), "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar",
                     "ILSVRC2012_devkit_t12.tar.gz", "image-net.org", "registered"):
        assert expected in msg, msg


def test_download_is_refused_with_the_manual_note(tmp_path):
    with pytest.raises(TaxonbenchError, match=r"options\.download: the ImageNet \(ILSVRC-2012\) files cannot be "
                                              r"downloaded automatically: ImageNet is only distributed"):
        make(tmp_path / "imagenet", download=True).taxonomy()


def test_verify_checks_the_published_md5_sums(archives, monkeypatch):
    for name, key in inet.SOURCE_KEYS.items():
        assert download.SOURCES[key].algorithm == "md5" and download.SOURCES[key].filename == name
        md5 = hashlib.md5((archives / name).read_bytes()).hexdigest()
        monkeypatch.setitem(download.SOURCES, key, download.Source(f"https://example.invalid/{name}", md5, name,
                                                                   "md5"))
    assert make(archives, verify=True).taxonomy().n_leaves == 5
    key = inet.SOURCE_KEYS[inet.VAL_TAR]
    monkeypatch.setitem(download.SOURCES, key, download.Source("https://example.invalid/v", "0" * 32,
                                                               inet.VAL_TAR, "md5"))
    with pytest.raises(TaxonbenchError, match=r"ILSVRC2012_img_val\.tar: md5 mismatch"):
        make(archives, verify=True).taxonomy()


def test_published_checksums_are_listed():
    assert {k: download.SOURCES[k].checksum for k in inet.SOURCE_KEYS.values()} == {
        "imagenet/ILSVRC2012_img_train.tar": "1d675b47d978889d74fa0da5fadfb00e",
        "imagenet/ILSVRC2012_img_val.tar": "29b22e2961454d5413ddabcf34fc5622",
        "imagenet/ILSVRC2012_devkit_t12.tar.gz": "fa75699e90414af021442c21a62c3abf"}


@pytest.mark.parametrize("options,pattern", [
    ({"layout": "folder"}, r"options\.layout: expected one of archives, folders"),
    ({"parent_rule": "second"}, r"options\.parent_rule: expected one of first, last"),
    ({"val_per_clas": 3}, r"options\.val_per_clas: unknown key \(did you mean 'val_per_class'\?\)"),
    ({"collapse_chains": "yes"}, r"options\.collapse_chains: must be true or false"),
    ({"val_per_class": -1}, r"options\.val_per_class: expected at least 0"),
    ({"layout": "folders", "verify": True}, r"options\.verify: only the archives have published checksums"),
    ({"hierarchy": ""}, r"options\.hierarchy: expected 'wordnet' or the path"),
])
def test_options_are_validated(tmp_path, options, pattern):
    with pytest.raises(TaxonbenchError, match=pattern):
        make(tmp_path, **options)


def test_folders_layout_errors_name_the_folder(tmp_path):
    root = tmp_path / "extracted"
    write_folders(root)
    (root / "val" / "n09999999").mkdir()
    with pytest.raises(TaxonbenchError, match=r"extracted/val: folder\(s\) n09999999 are not classes of"):
        make(root, layout="folders").records("test")
    (root / "val" / "n09999999").rmdir()
    (root / "train" / "tench").mkdir()
    with pytest.raises(TaxonbenchError, match=r"extracted/train: expected one folder per class named by its "
                                              r"wnid .*found tench"):
        make(root, layout="folders").taxonomy()
    (root / "train" / "tench").rmdir()
    (root / "val").rename(root / "validation")
    with pytest.raises(TaxonbenchError, match=r"extracted/val not found; expected the ImageNet \(ILSVRC-2012\) files "
                                              r"train/, val/ under"):
        make(root, layout="folders").taxonomy()
