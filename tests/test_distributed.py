"""Data-parallel training (DDP, gloo on CPU) gives the results of one process.

- The tiny configuration with ``train.cpu_processes: 2`` through Snakemake: the train rule runs
  ``torchrun --standalone --nproc-per-node 2 -m taxonbench.cli train``; against one process: the CNN
  baseline with BatchNorm, batch augmentation and a last batch of one image, so that rank 1 holds
  no row of it.
- HCCF (a loss coupling every pair of the batch, BatchNorm in the CLIP visual tower, images through the
  DataLoader path) and a killed-then-resumed run, in two processes forked from the test (the same
  gloo process group torchrun would set up, without two more interpreter start-ups of torch and
  open_clip on a 2-core machine).

Tolerance. Two processes sum the per-rank BatchNorm statistics and gradients in another order than
one process sums the whole batch, so float32 results differ in the last bits (measured: at most
about 1e-6 on the weights after 2 epochs, 1e-7 relative on the first step's loss); ``ATOL`` = 1e-4
on the weights and ``RTOL`` = 1e-5 on the logged losses leave room for that, while a real difference
(a wrong loss normalisation, per-rank BatchNorm statistics, a rank seeing other images) moves the
weights by 1e-3 or more. The HCCF run uses SGD with a small step (lr 0.001): the tiny CLIP's training
is chaotic at larger steps — one process with 2 threads instead of 1 drifts from itself as much as
two ranks do (losses apart by 3 % after 10 steps at lr 0.005, measured) — and AdamW divides by the
root of the squared gradient, which turns the rounding noise of gradients that are mathematically
zero (attention key biases) into steps of size ``lr``. Both are properties of the optimisation, not
of the distribution; docs/distributed.md says what to expect on real runs.
"""

from __future__ import annotations

import copy
import csv
import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ToyAdapter
from test_e2e import REPO, TINY_PARAMS
from taxonbench import distributed, training
from taxonbench.datasets.base import prepare_dataset
from taxonbench.distributed import Part
from taxonbench.params import train_settings, validate_params

BIN = Path(sys.executable).parent
ATOL = 1e-4
RTOL = 1e-5


def _settings(method: str, n_epochs: int, hparams: dict | None = None, **train) -> dict:
    base = {"epochs": n_epochs, "batch_size": 8, "num_workers": 0,
            "augment": {"random_crop_padding": 2, "hflip": True}, **train}
    cfg = validate_params({
        "device": "cpu",
        "datasets": {"toy": {"source": "synthetic"}},
        "train": base,
        "methods": {method: hparams or {}},
        "experiments": {"datasets": ["toy"], "methods": [method], "inference": ["native"]},
    })
    return train_settings(cfg, "toy", method)


def _shards(tmp_path: Path, n_train: int) -> Path:
    out = tmp_path / "shards" / "toy"
    prepare_dataset(ToyAdapter(per_split={"train": n_train, "val": 7, "test": 4}), out, rows_per_shard=16)
    return out


def _log(path: Path) -> list[dict]:
    with open(path / training.TRAIN_LOG) as fh:
        return list(csv.DictReader(fh))


def _assert_same_training(one: Path, two: Path) -> None:
    a = torch.load(one / training.MODEL, weights_only=True)
    b = torch.load(two / training.MODEL, weights_only=True)
    assert a["meta"] == b["meta"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=ATOL, msg=lambda m: f"{key}: {m}")
    log_a, log_b = _log(one), _log(two)
    assert len(log_a) == len(log_b)
    for ra, rb in zip(log_a, log_b):
        assert ra["epoch"] == rb["epoch"]
        for column in ("train_loss", "lr"):
            assert float(rb[column]) == pytest.approx(float(ra[column]), rel=RTOL, abs=1e-12), column
        for column in ("train_top1", "val_top1"):  # counts over the same images (NaN: a method logging none)
            assert float(rb[column]) == pytest.approx(float(ra[column]), abs=1e-9, nan_ok=True), column


def test_part_splits_every_batch_into_consecutive_slices():
    assert [Part(r, 3).bounds(8) for r in range(3)] == [(0, 3), (3, 6), (6, 8)]
    assert [Part(r, 2).bounds(1) for r in range(2)] == [(0, 1), (1, 1)]  # rank 1 gets no row
    assert Part(0, 1).bounds(5) == (0, 5)


@pytest.mark.e2e
def test_train_rule_runs_torchrun_with_two_gloo_processes_equal_to_one_process(tmp_path):
    """The tiny configuration with train.cpu_processes: 2 through Snakemake: the train rule starts
    torchrun; the model equals one process's on the same shards."""
    params = copy.deepcopy(TINY_PARAMS)
    params["datasets"]["tiny"]["options"]["train_per_leaf"] = 11  # 66 images: batches of 13, the last of 1
    params["train"].update({"epochs": 2, "batch_size": 13, "cpu_processes": 2,
                            "augment": {"random_crop_padding": 2, "hflip": True}})
    params["experiments"]["inference"] = ["bottom_up"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    model_dir = tmp_path / "results/models/tiny/flat_softmax"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                           "--cores", "2", "-p", "results/models/tiny/flat_softmax/model.pt"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "torchrun --standalone --nproc-per-node 2 -m taxonbench.cli train" in out
    shards = tmp_path / "data/shards/tiny"
    rows = json.loads((shards / "manifest.json").read_text())["splits"]["train"]["rows"]
    assert rows % 13 == 1, f"{rows} training images: the last batch should hold one image (rank 1: none)"
    log = (tmp_path / "logs/train/tiny/flat_softmax.log").read_text()
    assert log.count("epoch=2 ") == 1 and log.count("wrote ") == 1  # rank 0 alone prints and writes

    cfg = validate_params(params)
    training.train(train_settings(cfg, "tiny", "flat_softmax"), shards, tmp_path / "one", progress=False)
    _assert_same_training(tmp_path / "one", model_dir)


def test_train_rule_asks_for_the_gpus_and_starts_one_process_per_gpu(tmp_path):
    params = copy.deepcopy(TINY_PARAMS)
    params["train"]["gpus"] = 4
    params["methods"]["ps_softmax"] = {"train": {"gpus": 1}}  # a method's own train block overrides it
    params["experiments"].update({"methods": ["flat_softmax", "ps_softmax"], "inference": ["bottom_up"]})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                           "--cores", "2", "--resources", "gpu=8", "-n", "-p",
                           "results/models/tiny/flat_softmax/model.pt", "results/models/tiny/ps_softmax/model.pt"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    jobs = {m: out[out.index(f"results/models/tiny/{m}/model.pt,"):] for m in ("flat_softmax", "ps_softmax")}
    flat, ps = (j[: j.index("> logs/train")] for j in jobs.values())
    assert "gpu=4" in flat and "torchrun --standalone --nproc-per-node 4 -m taxonbench.cli train" in flat
    assert "gpu=1" in ps and "Shell command: taxonbench train" in ps


# ------------------------------------------------------------------ two forked ranks
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, settings: dict, shards: str, out: str, kill_in_epoch: int | None) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    if kill_in_epoch is not None:  # die like a killed job: validation of that epoch, before its checkpoint
        real, calls = training._accuracy, []

        def dies(*args, **kwargs):
            calls.append(1)
            if len(calls) == kill_in_epoch:
                os._exit(9)
            return real(*args, **kwargs)

        training._accuracy = dies
    training.train(settings, shards, out, progress=False)


def _two_ranks(settings: dict, shards: Path, out: Path, kill_in_epoch: int | None = None) -> list[int]:
    fork = multiprocessing.get_context("fork")
    port = _free_port()
    procs = [fork.Process(target=_rank_main, args=(r, port, settings, str(shards), str(out), kill_in_epoch))
             for r in range(2)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(timeout=240)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    return [p.exitcode for p in procs]


def test_hccf_contrastive_loss_two_ranks_equal_one_process(tmp_path):
    pytest.importorskip("open_clip")
    # 34 images: the last batch of 2 gives each rank one image, whose InfoNCE needs the other's text
    shards = _shards(tmp_path, 34)
    settings = _settings("hccf", 2, backbone="open_clip:taxonbench-tiny-clip",
                         optimizer={"name": "sgd", "lr": 0.001}, cache_decoded_mb=0)
    training.train(settings, shards, tmp_path / "one", progress=False)
    assert _two_ranks(settings, shards, tmp_path / "two") == [0, 0]
    _assert_same_training(tmp_path / "one", tmp_path / "two")


def test_level_restricted_loss_two_ranks_equal_one_process(tmp_path):
    """The banks of unique texts come from the global batch's labels; each rank scores its images against them
    (and, hyperbolic, their entailment violations): the gathered rows give the one-process loss."""
    pytest.importorskip("open_clip")
    shards = _shards(tmp_path, 34)
    settings = _settings("level_restricted", 2, {"geometry": "hyperbolic"}, backbone="open_clip:taxonbench-tiny-clip",
                         optimizer={"name": "sgd", "lr": 0.001}, cache_decoded_mb=0)
    training.train(settings, shards, tmp_path / "one", progress=False)
    assert _two_ranks(settings, shards, tmp_path / "two") == [0, 0]
    _assert_same_training(tmp_path / "one", tmp_path / "two")


def test_killed_two_rank_run_resumes_to_the_one_process_result(tmp_path):
    shards = _shards(tmp_path, 33)
    settings = _settings("flat_softmax", 3)
    training.train(settings, shards, tmp_path / "one", progress=False)
    out = tmp_path / "two"
    assert _two_ranks(settings, shards, out, kill_in_epoch=2) == [9, 9]
    ckpt = torch.load(out / training.CHECKPOINT, weights_only=True)
    assert ckpt["epoch"] == 0 and not (out / training.MODEL).exists()
    assert _two_ranks(settings, shards, out) == [0, 0]
    _assert_same_training(tmp_path / "one", out)


def test_checkpoint_resumes_with_another_process_count(tmp_path):
    """A checkpoint does not depend on the process count (train.gpus / cpu_processes are left out of its digest)."""
    settings = _settings("flat_softmax", 3)
    relaunched = _settings("flat_softmax", 3, cpu_processes=2)
    assert training.settings_digest({**settings, "train": {k: v for k, v in settings["train"].items()
                                                           if k not in training.LAUNCH_KEYS}}) == \
        training.settings_digest({**relaunched, "train": {k: v for k, v in relaunched["train"].items()
                                                          if k not in training.LAUNCH_KEYS}})


def test_setup_without_torchrun_is_one_process(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    ctx = distributed.setup(torch.device("cpu"))
    assert (ctx.rank, ctx.world_size, ctx.distributed, ctx.is_main) == (0, 1, False, True)
    assert not torch.distributed.is_initialized()


def test_incomplete_torchrun_environment_is_named(monkeypatch):
    from taxonbench.errors import TaxonbenchError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(TaxonbenchError, match="LOCAL_RANK is not set.*torchrun"):
        distributed.setup(torch.device("cpu"))


def test_refuses_a_method_whose_training_outputs_depend_on_the_split():
    from taxonbench.errors import TaxonbenchError
    from taxonbench.methods import METHODS

    class Custom(METHODS.get("flat_softmax")):
        def training_forward(self, images, leaf):
            return self(images)

    distributed.check_splittable(METHODS.get("hccf").__new__(METHODS.get("hccf")), "here")  # HCCF: exact
    with pytest.raises(TaxonbenchError, match="overrides training_forward"):
        distributed.check_splittable(Custom.__new__(Custom), "train toy/custom")


def test_loader_augmentation_depends_on_neither_workers_nor_ranks(toy_shards):
    """Each image's transform is seeded from the epoch generator: 0 or 2 DataLoader workers, one rank
    or the two halves of every batch, give the same augmented pixels."""
    from taxonbench.batches import LoaderBatches, epoch_generator
    from taxonbench.models.backbones import Preprocess
    from taxonbench.samplers import make_sampler

    cpu, augment = torch.device("cpu"), {"random_crop_padding": 2, "hflip": True}
    SHUFFLE = make_sampler({"name": "shuffle"}, None, 10)
    runs = {}
    for workers in (0, 2):
        source = LoaderBatches(toy_shards, "train", Preprocess(), 16, augment, cpu, workers)
        runs[workers] = list(source.epoch(10, SHUFFLE, epoch_generator(3, 1)))
        halves = [list(source.epoch_parts(10, SHUFFLE, epoch_generator(3, 1), Part(r, 2))) for r in range(2)]
        for (x, leaf), a, b in zip(runs[workers], *halves):
            torch.testing.assert_close(torch.cat([a[0], b[0]]), x, rtol=0, atol=0)
            assert torch.cat([a[1], b[1]]).tolist() == leaf.tolist() == a[2].tolist() == b[2].tolist()
    for (xa, la), (xb, lb) in zip(runs[0], runs[2]):
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        assert la.tolist() == lb.tolist()
