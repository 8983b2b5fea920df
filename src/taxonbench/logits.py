"""Dump a trained model's outputs for one split (DESIGN.md §3 "Logits")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from taxonbench.matrix_io import write_matrix
from taxonbench.shards import TAXONOMY, ShardDataset, read_manifest
from taxonbench.taxonomy import Taxonomy
from taxonbench.training import image_transform, load_model, resolve_device


def dump_logits(
    model_path: str | os.PathLike,
    shards_dir: str | os.PathLike,
    split: str,
    out_path: str | os.PathLike,
    *,
    device: str = "auto",
    batch_size: int = 512,
    num_workers: int = 0,
) -> int:
    """Run the model over ``split`` in shard order; write ``id, leaf, scores`` + the JSON sidecar."""
    shards_dir = Path(shards_dir)
    manifest = read_manifest(shards_dir)
    taxonomy = Taxonomy.read(shards_dir / TAXONOMY)
    dev = resolve_device(device)
    model, preprocess, meta = load_model(model_path, taxonomy, dev)
    dataset = ShardDataset(shards_dir, split, image_transform(preprocess, int(manifest.get("image_size", 32)), None))
    ids = dataset.ids
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    amp = dev.type == "cuda"

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        start = 0
        with torch.no_grad():
            for images, leaf in loader:
                with torch.autocast(dev.type, enabled=amp):
                    out = model(images.to(dev))
                n = len(leaf)
                yield ids[start : start + n], leaf.numpy(), out.float().cpu().numpy()
                start += n

    sidecar = {**model.sidecar(), "split": split, "dataset": meta["dataset"],
               "order": "leaf index 0..L-1" if model.output_kind == "leaf_logits" else "see kind"}
    return write_matrix(out_path, "scores", batches(), sidecar)
