"""Shards: writing in numbered parts, atomic swap, reading back, clear errors."""


import numpy as np
import pytest
import torch
from torchvision import transforms as T

from taxonbench.datasets.base import prepare_dataset
from taxonbench.errors import TaxonbenchError
from taxonbench.shards import ShardDataset, read_manifest, read_shard, split_files

from conftest import ToyAdapter


def test_prepare_writes_numbered_shards(toy_shards):
    manifest = read_manifest(toy_shards)
    assert manifest["splits"]["train"] == {"files": ["train-00000.parquet", "train-00001.parquet"], "rows": 32}
    assert manifest["splits"]["test"]["files"] == ["test-00000.parquet"]
    table = read_shard(toy_shards / "train-00001.parquet")
    assert table.num_rows == 16
    assert table.column_names[:3] == ["id", "image", "leaf"]


def test_dataset_decodes_in_order(toy_shards):
    ds = ShardDataset(toy_shards, "train", T.ToTensor())
    assert len(ds) == 32
    img, leaf = ds[17]
    assert isinstance(img, torch.Tensor) and img.shape == (3, 16, 16)
    assert leaf == 17 % 4
    assert ds.leaves.tolist() == [i % 4 for i in range(32)]
    assert ds.ids[0] == "toy-train-0000"
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2)
    assert sum(len(b[1]) for b in loader) == 32


def test_failed_prepare_keeps_previous_shards(toy_shards):
    before = {p.name: p.read_bytes() for p in toy_shards.iterdir()}

    class Broken(ToyAdapter):
        def rows(self, split):
            yield from super().rows(split)
            raise RuntimeError("killed mid-way")

    with pytest.raises(RuntimeError):
        prepare_dataset(Broken(), toy_shards, rows_per_shard=16)
    after = {p.name: p.read_bytes() for p in toy_shards.iterdir()}
    assert after == before
    assert not any(p.name.endswith(".tmp") for p in toy_shards.parent.iterdir())


def test_missing_and_corrupt_shards(toy_shards):
    (toy_shards / "train-00001.parquet").unlink()
    with pytest.raises(TaxonbenchError, match=r"missing shard\(s\).*train-00001.parquet"):
        ShardDataset(toy_shards, "train")
    (toy_shards / "val-00000.parquet").write_bytes(b"garbage")
    with pytest.raises(TaxonbenchError, match=r"val-00000.parquet: corrupt or unreadable shard"):
        ShardDataset(toy_shards, "val")
    with pytest.raises(TaxonbenchError, match=r"no split 'nope'; the manifest lists train, val, test"):
        split_files(toy_shards, "nope")
    (toy_shards / "manifest.json").unlink()
    with pytest.raises(TaxonbenchError, match=r"no manifest.json"):
        split_files(toy_shards, "train")


def test_corrupt_image_names_row_and_id(tmp_path):
    class CorruptOne(ToyAdapter):
        def rows(self, split):
            for batch in super().rows(split):
                if split == "test":
                    batch = dict(batch, image=[b"\x89PNG broken"] + list(batch["image"][1:]))
                yield batch

    out = tmp_path / "corrupt"
    prepare_dataset(CorruptOne(), out, rows_per_shard=100)
    ds = ShardDataset(out, "test")
    with pytest.raises(TaxonbenchError, match=r"test-00000.parquet row 0 \(id toy-test-0000\): corrupt image"):
        ds[0]
    assert np.asarray(ds[1][0]).shape == (16, 16, 3)
