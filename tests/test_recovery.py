"""Recovery: file records and `taxonbench verify`, the remake commands in damaged-file messages, the stale
lock and the damaged-dataset check the Snakefile runs at start."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from taxonbench.cli import main
from taxonbench.errors import TaxonbenchError
from taxonbench.io import load_weights_only
from taxonbench.matrix_io import iter_matrix, write_matrix
from taxonbench.recovery import clear_stale_lock, is_dry_run, live_processes, recover_at_start
from taxonbench.shards import read_manifest, read_shard


def _verify(capsys, directory) -> tuple[int, str]:
    code = main(["verify", str(directory)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_manifest_records_every_file_and_verify_accepts_them(toy_shards, capsys):
    manifest = read_manifest(toy_shards)
    names = sorted(p.name for p in toy_shards.iterdir() if p.name != "manifest.json")
    assert sorted(manifest["files"]) == names and "taxonomy.parquet" in names
    for name, record in manifest["files"].items():
        data = (toy_shards / name).read_bytes()
        assert record == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    code, out = _verify(capsys, toy_shards)
    assert code == 0 and f"all {len(names)} files match" in out


def test_verify_names_a_truncated_and_an_altered_shard_and_the_command(toy_shards, capsys):
    shards = sorted(toy_shards.glob("*-0000*.parquet"))
    truncated, altered = shards[0], shards[1]
    truncated.write_bytes(truncated.read_bytes()[:100])
    data = bytearray(altered.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    altered.write_bytes(bytes(data))
    code, out = _verify(capsys, toy_shards)
    assert code == 2
    assert f"{truncated}: 100 bytes, the manifest recorded" in out
    assert f"{altered}: its SHA-256 differs" in out
    assert f"`snakemake --forcerun {toy_shards / 'manifest.json'}`" in out


def test_reading_a_truncated_shard_says_how_to_prepare_it_again(toy_shards):
    shard = sorted(toy_shards.glob("test-*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:5000 if shard.stat().st_size > 5000 else 50])
    with pytest.raises(TaxonbenchError) as err:
        read_shard(shard)
    assert f"{shard}: corrupt or unreadable shard" in str(err.value)
    assert f"`snakemake --forcerun {toy_shards / 'manifest.json'}`" in str(err.value)


def test_truncated_model_and_logits_name_the_file_and_the_command(tmp_path):
    import torch

    model = tmp_path / "results/models/toy/flat/model.pt"
    model.parent.mkdir(parents=True)
    torch.save({"state": torch.zeros(1000)}, model)
    model.write_bytes(model.read_bytes()[:300])
    with pytest.raises(TaxonbenchError, match=rf"{model}: corrupt or truncated model .*"
                                              rf"make it again: `snakemake --forcerun {model}`"):
        load_weights_only(model, "model")

    logits = tmp_path / "results/logits/toy/flat/test.parquet"
    write_matrix(logits, "scores", [(np.array(["a", "b"]), np.array([0, 1]), np.ones((2, 3), np.float32))],
                 {"kind": "leaf_logits"})
    logits.write_bytes(logits.read_bytes()[:40])
    with pytest.raises(TaxonbenchError, match=rf"{logits}: corrupt or truncated Parquet file .*"
                                              rf"`snakemake --forcerun {logits}`"):
        next(iter_matrix(logits, "scores"))

    checkpoint = tmp_path / "my_weights.pt"  # the user's own file: no pipeline command to remake it
    checkpoint.write_bytes(b"junk")
    with pytest.raises(TaxonbenchError) as err:
        load_weights_only(checkpoint, "checkpoint")
    assert "snakemake" not in str(err.value)


@pytest.mark.parametrize("argv, dry", [
    (["snakemake", "-n"], True), (["snakemake", "-pn", "--cores", "2"], True), (["snakemake", "--dry-run"], True),
    (["snakemake", "--cores", "2"], False), (["snakemake", "-p", "-s", "Snakefile"], False),
    (["snakemake", "--forcerun", "data/shards/x/manifest.json"], False)])
def test_dry_run_is_recognised(argv, dry):
    assert is_dry_run(argv) is dry


def _stale_lock(workdir: Path) -> Path:
    locks = workdir / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("results/x\n")
    return locks


def test_a_stale_lock_is_removed_when_no_run_works_here(tmp_path):
    locks = _stale_lock(tmp_path)
    line = clear_stale_lock(tmp_path)
    assert not locks.exists()
    assert "removed the lock a killed run left" in line
    assert clear_stale_lock(tmp_path) is None  # nothing to do any more


def test_a_lock_of_a_live_run_is_kept(tmp_path):
    locks = _stale_lock(tmp_path)
    fake = tmp_path / "bin" / "snakemake"  # a process whose program is called snakemake, working here
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    fake.chmod(0o755)
    proc = subprocess.Popen([str(fake)], cwd=tmp_path)
    try:
        deadline = time.time() + 10
        while not live_processes(tmp_path) and time.time() < deadline:
            time.sleep(0.05)
        assert [pid for pid, _ in live_processes(tmp_path)] == [proc.pid]
        line = clear_stale_lock(tmp_path)
        assert locks.exists() and f"pid {proc.pid}" in line and "still working here" in line
        assert recover_at_start(tmp_path, [], ["snakemake"]) == [line]
    finally:
        proc.kill()
        proc.wait()
    assert live_processes(tmp_path) == []


def _dataset(tmp_path: Path, toy_shards: Path) -> Path:
    directory = tmp_path / "work" / "data" / "shards" / "toy"
    shutil.copytree(toy_shards, directory)
    return directory


def test_a_damaged_dataset_is_set_aside_in_a_real_run_and_only_reported_in_a_dry_run(tmp_path, toy_shards):
    directory = _dataset(tmp_path, toy_shards)
    work = tmp_path / "work"
    assert recover_at_start(work, ["toy"], ["snakemake"]) == []  # intact: nothing to say
    shard = sorted(directory.glob("test-*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:200])

    dry = recover_at_start(work, ["toy", "absent"], ["snakemake", "-n"])
    assert len(dry) == 1 and f"{shard}: 200 bytes" in dry[0]
    assert "`snakemake --forcerun data/shards/toy/manifest.json`" in dry[0]
    assert (directory / "manifest.json").exists()

    real = recover_at_start(work, ["toy"], ["snakemake", "--cores", "2"])
    assert len(real) == 1 and "preparing it again" in real[0]
    assert not (directory / "manifest.json").exists() and (directory / "manifest.json.damaged").exists()
    assert json.loads((directory / "manifest.json.damaged").read_text())["files"]


def test_a_manifest_without_records_is_left_alone_and_verify_says_why(tmp_path, toy_shards, capsys):
    directory = _dataset(tmp_path, toy_shards)
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["files"]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert recover_at_start(tmp_path / "work", ["toy"], ["snakemake"]) == []
    code, out = _verify(capsys, directory)
    assert code == 2 and "records no file sizes or hashes" in out and "--forcerun" in out


def test_verify_of_a_directory_never_prepared(tmp_path, capsys):
    code, out = _verify(capsys, tmp_path)
    assert code == 2 and "no manifest.json" in out
    assert os.listdir(tmp_path) == []
