"""Training: model + log written, checkpoints resume exactly, logits/inference contracts."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from taxonbench import training
from taxonbench.errors import TaxonbenchError
from taxonbench.inference import INFERENCE, run_inference
from taxonbench.logits import dump_logits
from taxonbench.matrix_io import iter_matrix, read_sidecar
from taxonbench.shards import ShardDataset
from taxonbench.params import train_settings, validate_params
from taxonbench.shards import TAXONOMY
from taxonbench.taxonomy import Taxonomy


def toy_settings(epochs=2, **train):
    cfg = validate_params({
        "device": "cpu",
        "datasets": {"toy": {"source": "synthetic"}},
        "train": {"epochs": epochs, "batch_size": 8, "num_workers": 0, **train},
        "experiments": {"datasets": ["toy"], "methods": ["flat_softmax"], "inference": ["bottom_up"]},
    })
    return train_settings(cfg, "toy", "flat_softmax")


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_train_writes_model_and_log(toy_shards, tmp_path):
    out = tmp_path / "model"
    training.train(toy_settings(epochs=3), toy_shards, out, progress=False)
    log = (out / "train_log.csv").read_text().splitlines()
    assert log[0] == ",".join(training.LOG_COLUMNS)
    assert len(log) == 4
    assert not (out / "checkpoint.pt").exists()
    saved = torch.load(out / "model.pt", weights_only=True)
    assert saved["meta"]["method"] == "flat_softmax"
    assert saved["meta"]["n_leaves"] == 4


@pytest.mark.parametrize("cache_decoded_mb", [2048, 0], ids=["decoded-in-memory", "dataloader"])
def test_resume_after_kill_matches_uninterrupted_run(toy_shards, tmp_path, monkeypatch, cache_decoded_mb):
    settings = toy_settings(cache_decoded_mb=cache_decoded_mb)
    straight = tmp_path / "straight"
    training.train(settings, toy_shards, straight, progress=False)

    resumed = tmp_path / "resumed"
    calls = {"n": 0}
    real_accuracy = training._accuracy

    def killed_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")
        return real_accuracy(*args, **kwargs)

    monkeypatch.setattr(training, "_accuracy", killed_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        training.train(settings, toy_shards, resumed, progress=False)
    assert (resumed / "checkpoint.pt").exists() and not (resumed / "model.pt").exists()
    monkeypatch.setattr(training, "_accuracy", real_accuracy)
    training.train(settings, toy_shards, resumed, progress=False)

    a, b = _weights(straight / "model.pt"), _weights(resumed / "model.pt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert (straight / "train_log.csv").read_text().count("\n") == (resumed / "train_log.csv").read_text().count("\n")


def test_same_seed_same_logits(toy_shards, tmp_path):
    paths = []
    for run in ("a", "b"):
        out = tmp_path / run
        training.train(toy_settings(epochs=1), toy_shards, out, progress=False)
        dump_logits(out / "model.pt", toy_shards, "test", out / "test.parquet", device="cpu")
        paths.append(out / "test.parquet")
    (ida, la, sa), = iter_matrix(paths[0], "scores")
    (idb, lb, sb), = iter_matrix(paths[1], "scores")
    assert ida.tolist() == idb.tolist()
    np.testing.assert_array_equal(sa, sb)


def test_logits_and_bottom_up_contract(toy_shards, tmp_path):
    out = tmp_path / "m"
    training.train(toy_settings(epochs=1), toy_shards, out, progress=False)
    n = dump_logits(out / "model.pt", toy_shards, "test", tmp_path / "logits" / "test.parquet", device="cpu")
    assert n == 12
    side = read_sidecar(tmp_path / "logits" / "test.parquet")
    assert side["kind"] == "leaf_logits" and side["dim"] == 4 and side["n_samples"] == 12
    tax = Taxonomy.read(toy_shards / TAXONOMY)
    run_inference(INFERENCE.get("bottom_up")(tax), tmp_path / "logits" / "test.parquet", tmp_path / "s.parquet")
    (ids, leaf, node_prob), = iter_matrix(tmp_path / "s.parquet", "node_prob")
    assert node_prob.shape == (12, 7)
    np.testing.assert_allclose(node_prob[:, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(node_prob[:, 1], node_prob[:, 3] + node_prob[:, 4], atol=1e-6)
    assert leaf.tolist() == [i % 4 for i in range(12)]


def test_inference_refuses_other_kinds(toy_shards, tmp_path):
    path = tmp_path / "x.parquet"
    from taxonbench.matrix_io import write_matrix

    write_matrix(path, "scores", [(np.array(["a"]), np.array([0]), np.zeros((1, 6)))],
                 {"kind": "node_logits", "method": "softmargin"})
    tax = Taxonomy.read(toy_shards / TAXONOMY)
    with pytest.raises(TaxonbenchError, match=r"inference 'bottom_up' cannot use the outputs of method 'softmargin'"):
        run_inference(INFERENCE.get("bottom_up")(tax), path, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_model_for_other_taxonomy_is_refused(toy_shards, tmp_path):
    out = tmp_path / "m"
    training.train(toy_settings(epochs=1), toy_shards, out, progress=False)
    other = Taxonomy.from_parents([-1, 0, 0])
    with pytest.raises(TaxonbenchError, match="trained on a taxonomy of 7 nodes / 4 leaves"):
        training.load_model(out / "model.pt", other, torch.device("cpu"))


def test_decoded_and_dataloader_batches_agree(toy_shards):
    from taxonbench.batches import DecodedBatches, LoaderBatches, epoch_generator, make_batches
    from taxonbench.models.backbones import Preprocess

    cpu = torch.device("cpu")
    fast = make_batches(toy_shards, "test", Preprocess(), 16, None, cpu, 0, 2048, 12)
    slow = make_batches(toy_shards, "test", Preprocess(), 16, None, cpu, 0, 0, 12)
    assert isinstance(fast, DecodedBatches) and isinstance(slow, LoaderBatches)
    (xa, ya), = fast.epoch(12, None, epoch_generator(0, 0))
    (xb, yb), = slow.epoch(12, None, epoch_generator(0, 0))
    torch.testing.assert_close(xa, xb, rtol=0, atol=1e-6)
    assert ya.tolist() == yb.tolist()
    from torchvision import transforms as T  # the per-image reference: ToTensor + Normalize

    reference = T.Compose([T.ToTensor(), T.Normalize(Preprocess().mean, Preprocess().std)])
    ds = ShardDataset(toy_shards, "test")
    torch.testing.assert_close(xb, torch.stack([reference(ds[i][0]) for i in range(len(ds))]), rtol=0, atol=1e-6)
    # augmentation keeps the shape and only moves pixels by at most the padding
    aug = make_batches(toy_shards, "test", Preprocess(), 16, {"random_crop_padding": 2, "hflip": True}, cpu, 0, 2048, 12)
    (xc, yc), = aug.epoch(12, None, epoch_generator(0, 1))
    assert xc.shape == xa.shape and yc.tolist() == ya.tolist()
    assert not torch.equal(xc, xa)


def test_training_and_logits_do_not_import_torchvision():
    """torchvision imports torch._dynamo (seconds per job); only the DataLoader path and the focal loss use it."""
    code = ("import sys, taxonbench.training, taxonbench.logits, taxonbench.methods; "
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_block_shuffled_order_visits_shards_in_blocks():
    from taxonbench.batches import block_shuffled_order, epoch_generator

    offsets = np.array([0, 5, 12, 20, 21, 30, 37, 44])  # 7 shards of uneven sizes
    order = block_shuffled_order(offsets, 3, epoch_generator(0, 0))
    assert sorted(order) == list(range(44))  # every row once
    assert order == block_shuffled_order(offsets, 3, epoch_generator(0, 0))  # a function of (seed, epoch)
    assert order != block_shuffled_order(offsets, 3, epoch_generator(0, 1))
    shard_of = (np.searchsorted(offsets, order, side="right") - 1).tolist()
    blocks, rest = [], shard_of
    while rest:  # cut the order into runs of at most 3 distinct shards
        shards: set[int] = set()
        n = 0
        while n < len(rest) and (rest[n] in shards or len(shards) < 3):
            shards.add(rest[n])
            n += 1
        assert n == sum(int(offsets[k + 1] - offsets[k]) for k in shards), "a block holds all rows of its shards"
        blocks.append(shards)
        rest = rest[n:]
    assert len(blocks) == 3 and sorted(k for b in blocks for k in b) == list(range(7))
    assert sum(a != b for a, b in zip(shard_of, shard_of[1:])) > 6  # rows interleaved within a block
