"""The command line: a user mistake is one clear line on stderr and exit status 2."""

import subprocess
import sys

import pytest
import yaml

from taxonbench.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({
        "device": "cpu",
        "datasets": {"toy": {"source": "synthetic"}},
        "train": {"epochs": 1, "batch_size": 8, "num_workers": 0},
        "experiments": {"datasets": ["toy"], "methods": ["flat_softmax"], "inference": ["bottom_up"]},
    }))
    return path


def test_unknown_method(capsys, params_file, toy_shards, tmp_path):
    code, _, err = run(capsys, "train", "--params", str(params_file), "--dataset", "toy", "--method", "flat_sofmax",
                       "--shards", str(toy_shards), "--out", str(tmp_path / "m"))
    assert code == 2
    assert "taxonbench: error: unknown method 'flat_sofmax'; available: " in err and "flat_softmax" in err
    assert not (tmp_path / "m" / "model.pt").exists()


def test_params_typo(capsys, params_file, toy_shards, tmp_path):
    cfg = yaml.safe_load(params_file.read_text())
    cfg["train"]["lr"] = 0.1
    params_file.write_text(yaml.safe_dump(cfg))
    code, _, err = run(capsys, "train", "--params", str(params_file), "--dataset", "toy", "--method", "flat_softmax",
                       "--shards", str(toy_shards), "--out", str(tmp_path / "m"))
    assert code == 2
    assert f"{params_file}: train.lr: unknown key" in err


def test_unknown_inference_and_missing_inputs(capsys, toy_shards, tmp_path):
    code, _, err = run(capsys, "infer", "--inference", "bottom-up", "--logits", str(tmp_path / "x.parquet"),
                       "--shards", str(toy_shards), "--out", str(tmp_path / "y.parquet"))
    assert code == 2 and "unknown inference 'bottom-up'; available: " in err and "bottom_up" in err
    code, _, err = run(capsys, "infer", "--inference", "bottom_up", "--logits", str(tmp_path / "x.parquet"),
                       "--shards", str(toy_shards), "--out", str(tmp_path / "y.parquet"))
    assert code == 2 and "x.json: sidecar missing" in err
    code, _, err = run(capsys, "logits", "--model", str(tmp_path / "none.pt"), "--shards", str(toy_shards),
                       "--split", "test", "--out", str(tmp_path / "l.parquet"))
    assert code == 2 and "model not found" in err
    code, _, err = run(capsys, "evaluate", "--scores", str(tmp_path / "s.parquet"), "--shards", str(tmp_path / "nowhere"),
                       "--out", str(tmp_path / "m.json"))
    assert code == 2 and "taxonomy file not found" in err


def test_console_script_lists_registries():
    out = subprocess.run([sys.executable, "-m", "taxonbench.cli", "list"], capture_output=True, text=True, check=True)
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    assert "flat_softmax" in lines["methods"].split(", ")
    assert "bottom_up" in lines["inference"].split(", ")
    assert "hccf_table1" in out.stdout


def test_train_with_params_needs_dataset_and_method(capsys, params_file, toy_shards, tmp_path):
    code, _, err = run(capsys, "train", "--params", str(params_file), "--shards", str(toy_shards),
                       "--out", str(tmp_path / "m"))
    assert code == 2 and "train: --dataset and --method required with --params" in err
