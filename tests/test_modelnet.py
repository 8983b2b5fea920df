"""The ModelNet40 rendered-views adapter on a tiny fixture in the MVCNN 12-view layout.

``modelnet40_images_new_12x/<category>/<train|test>/<category>_<NNNN>.obj.shaded_v<VVV>.png``,
as ``shaded_images.tar.gz`` extracts (jongchyisu/mvcnn_pytorch README).
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
from taxonbench.errors import TaxonbenchError
from dataset_fixtures import split_table

MODELS = {"airplane": ([1, 2, 3, 4], [5]), "night_stand": ([1, 2, 3], [4]), "flower_pot": ([1, 2], [3])}
LEAVES = sorted((c, f"{c}_{n:04d}") for c, (tr, te) in MODELS.items() for n in tr + te)
SIZE = 16


def shade(category: str, view: int) -> int:
    return 40 * sorted(MODELS).index(category) + 10 * view


def write_views(root: Path) -> Path:
    folder = root / "modelnet40_images_new_12x"
    for cat, (train, test) in MODELS.items():
        for official, numbers in (("train", train), ("test", test)):
            (folder / cat / official).mkdir(parents=True)
            for n in numbers:
                for v in range(1, 13):
                    Image.new("RGB", (24, 24), (shade(cat, v),) * 3).save(
                        folder / cat / official / f"{cat}_{n:04d}.obj.shaded_v{v:03d}.png")
    (folder / "airplane" / "train" / "._airplane_0001.obj.shaded_v001.png").write_bytes(b"\0resource fork")
    return folder


def make(root: Path, seed: int = 0, **options):
    return DATASETS.get("modelnet40_views")({"root": str(root), "image_size": SIZE, **options},
                                            name="modelnet_fixture", seed=seed)


@pytest.fixture
def views(tmp_path):
    root = tmp_path / "raw" / "modelnet40"
    return root, write_views(root)


def test_taxonomy_category_then_model(views):
    root, _ = views
    tax = make(root).taxonomy()
    assert tax.rank_names == ["category", "model"]
    assert [str(tax.name[v]) for v in tax.nodes_at_depth(1)] == ["airplane", "flower_pot", "night_stand"]
    assert [tax.path_names(int(v), "/") for v in tax.leaf_nodes] == ["/".join(p) for p in LEAVES]
    cat = make(root, leaf_level="category").taxonomy()
    assert cat.n_leaves == 3 and cat.max_depth == 1


def test_prepare_holds_out_whole_models_for_val(views, tmp_path):
    root, folder = views
    out = tmp_path / "shards"
    manifest = prepare_dataset(make(root, val_fraction=0.5, unseen_categories=["night_stand"]), out,
                               rows_per_shard=40)
    counts = {s: v["rows"] for s, v in manifest["splits"].items()}
    # val: 2 of 4 airplanes, 1 of 3 night stands, 1 of 2 flower pots; 12 views each
    assert counts == {"train": 60, "val": 48, "test": 36, "seen_train": 36, "seen_val": 36, "seen_test": 24,
                      "unseen_train": 24, "unseen_val": 12, "unseen_test": 12}
    tables = {s: split_table(out, s) for s in counts}
    assert not set(tables["train"]["model"]) & set(tables["val"]["model"])
    assert set(tables["test"]["model"]) == {"airplane_0005", "night_stand_0004", "flower_pot_0003"}
    for split, t in tables.items():
        for rid, leaf, model, view, path, blob in zip(*(t[k] for k in ("id", "leaf", "model", "view",
                                                                       "source_path", "image"))):
            cat = LEAVES[leaf][0]
            assert LEAVES[leaf][1] == model and rid == f"{model}_v{view:03d}"
            assert path == f"modelnet40_images_new_12x/{cat}/{'test' if split.endswith('test') else 'train'}/" \
                           f"{model}.obj.shaded_v{view:03d}.png" and (root / path).is_file()
            assert (cat == "night_stand") == split.startswith("unseen") or not split.startswith(("seen", "unseen"))
            with Image.open(io.BytesIO(blob)) as img:
                assert img.format == "PNG" and img.size == (SIZE, SIZE)
                assert abs(np.asarray(img, float).mean() - shade(cat, view)) < 1  # lossless
        assert sorted(t["view"]) == sorted(list(range(1, 13)) * (len(t["view"]) // 12))


def test_val_holdout_is_seeded(views):
    root, _ = views
    val = lambda seed: sorted({v.model for v in make(root, seed=seed, val_fraction=0.5).views("val")})  # noqa
    assert val(0) == val(0) and any(val(0) != val(s) for s in range(1, 6))


def test_part_unseen_restricts_everything(views, tmp_path):
    root, _ = views
    adapter = make(root, part="unseen", unseen_categories=["night_stand", "airplane"], codec="jpeg")
    assert [str(n) for n in adapter.taxonomy().name[adapter.taxonomy().nodes_at_depth(1)]] == \
        ["airplane", "night_stand"]
    manifest = prepare_dataset(adapter, tmp_path / "s", rows_per_shard=100)
    assert set(manifest["splits"]) == {"train", "val", "test"} and manifest["n_leaves"] == 9
    blob = split_table(tmp_path / "s", "test")["image"][0]
    assert blob[:3] == b"\xff\xd8\xff"


# ------------------------------------------------------------------ errors
def test_badly_named_view_is_named(views):
    root, folder = views
    bad = folder / "flower_pot" / "test" / "flower_pot_3.obj.shaded_v001.png"
    (folder / "flower_pot" / "test" / "flower_pot_0003.obj.shaded_v001.png").rename(bad)
    with pytest.raises(TaxonbenchError, match=r"flower_pot_3\.obj\.shaded_v001\.png: not a view named "
                                              r"flower_pot_<NNNN>\.obj\.shaded_v<VVV>\.png"):
        make(root).taxonomy()


def test_missing_view_and_missing_split_folder_are_named(views):
    root, folder = views
    (folder / "airplane" / "train" / "airplane_0002.obj.shaded_v007.png").unlink()
    with pytest.raises(TaxonbenchError, match=r"model airplane_0002 has views .* \(missing 7\)"):
        make(root).taxonomy()
    assert make(root, n_views=0).taxonomy().n_leaves == 12
    for f in (folder / "flower_pot" / "test").iterdir():
        f.unlink()
    (folder / "flower_pot" / "test").rmdir()
    with pytest.raises(TaxonbenchError, match=r"flower_pot/test: missing"):
        make(root, n_views=0).taxonomy()


def test_model_in_train_and_test_is_named(views):
    root, folder = views
    (folder / "flower_pot" / "test" / "flower_pot_0001.obj.shaded_v001.png").write_bytes(b"x")
    with pytest.raises(TaxonbenchError, match=r"model flower_pot_0001 is in both train/ and test/"):
        make(root).taxonomy()


def test_corrupt_view_is_named(views, tmp_path):
    root, folder = views
    bad = folder / "night_stand" / "test" / "night_stand_0004.obj.shaded_v003.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(TaxonbenchError, match=r"night_stand_0004\.obj\.shaded_v003\.png: corrupt image"):
        prepare_dataset(make(root), tmp_path / "shards", rows_per_shard=100)


@pytest.mark.parametrize("options,pattern", [
    ({"leaf_level": "view"}, r"options\.leaf_level: expected one of category, model"),
    ({"codec": "webp"}, r"options\.codec: expected one of png, jpeg"),
    ({"val_fraction": 1.0}, r"options\.val_fraction: expected a number in \[0, 1\)"),
    ({"n_view": 12}, r"options\.n_view: unknown key \(did you mean 'n_views'\?\)"),
    ({"splits": ["query"]}, r"options\.splits: 'query' is not a split"),
])
def test_options_are_validated(tmp_path, options, pattern):
    with pytest.raises(TaxonbenchError, match=pattern):
        make(tmp_path, **options)


# ---------------------------------------------------------------- download
def _fixed(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def tar_views(folder: Path, archive: Path, truncate: bool = False) -> str:
    """``folder`` as ``shaded_images.tar.gz``; member metadata fixed, so that the archive bytes (and the
    point where a truncated one stops: inside a member, not at a header boundary) are reproducible."""
    if truncate:  # incompressible views, so that half the archive ends inside a view
        noise = np.random.default_rng(0)
        for f in sorted(folder.rglob("*.png")):
            Image.fromarray(noise.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(f)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name, filter=_fixed)
    if truncate:
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    return hashlib.md5(archive.read_bytes()).hexdigest()


def test_download_fetches_extracts_and_prepares(tmp_path, monkeypatch):
    folder = write_views(tmp_path / "upstream")
    archive = tmp_path / "server" / "shaded_images.tar.gz"
    archive.parent.mkdir()
    md5 = tar_views(folder, archive)
    root = tmp_path / "raw"
    with pytest.raises(TaxonbenchError, match=r"publish no checksum .*shaded_images\.tar\.gz"):
        make(root, download=True).taxonomy()
    monkeypatch.setitem(download.SOURCES, "modelnet40/shaded_images.tar.gz",
                        download.Source(archive.as_uri(), md5, archive.name, "md5"))
    manifest = prepare_dataset(make(root, download=True, splits=["train", "test"]), tmp_path / "s",
                               rows_per_shard=100)
    assert manifest["splits"]["test"]["rows"] == 36 and manifest["splits"]["train"]["rows"] == 108  # val_fraction 0.1 of <= 4 models: none held out
    assert sorted(p.name for p in root.iterdir()) == ["modelnet40_images_new_12x", "shaded_images.tar.gz"]


def test_truncated_archive_is_named(tmp_path, monkeypatch):
    folder = write_views(tmp_path / "upstream")
    archive = tmp_path / "shaded_images.tar.gz"
    md5 = tar_views(folder, archive, truncate=True)
    monkeypatch.setitem(download.SOURCES, "modelnet40/shaded_images.tar.gz",
                        download.Source(archive.as_uri(), md5, archive.name, "md5"))
    with pytest.raises(TaxonbenchError, match=r"shaded_images\.tar\.gz: corrupt or truncated archive"):
        make(tmp_path / "raw", download=True).taxonomy()
