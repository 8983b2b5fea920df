"""Dump a trained model's outputs for one split (docs/design.md §3 "Logits")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from taxonbench.batches import epoch_generator, make_batches
from taxonbench.errors import TaxonbenchError
from taxonbench.matrix_io import write_matrix
from taxonbench.shards import TAXONOMY, read_manifest, read_split_column
from taxonbench.taxonomy import Taxonomy
from taxonbench.devices import resolve_device
from taxonbench.training import load_model


def check_same_taxonomy(meta: dict, kind: str, shards_dir: Path, taxonomy: Taxonomy, model_path) -> None:
    """A model trained on another dataset (cross-dataset evaluation) must have been trained on the same tree
    (parents and names) unless its outputs are embeddings; the training dataset's taxonomy is read beside
    ``shards_dir`` (``data/shards/<dataset>/``)."""
    trained = meta.get("dataset")
    if kind == "embeddings" or not trained or trained == shards_dir.name:
        return
    path = shards_dir.parent / trained / TAXONOMY
    if not path.exists():
        raise TaxonbenchError(f"{model_path}: trained on dataset {trained!r}, whose taxonomy {path} is missing; "
                              f"its outputs ({kind}) can be compared with {shards_dir.name!r} only on the same tree")
    source = Taxonomy.read(path)
    if not (np.array_equal(source.parent, taxonomy.parent) and list(source.name) == list(taxonomy.name)):
        raise TaxonbenchError(
            f"{model_path}: trained on dataset {trained!r}, whose taxonomy differs from {shards_dir.name!r}'s; "
            f"outputs of kind {kind!r} are tied to the training taxonomy (only embeddings transfer to another tree)")


def dump_logits(
    model_path: str | os.PathLike,
    shards_dir: str | os.PathLike,
    split: str,
    out_path: str | os.PathLike,
    *,
    device: str = "auto",
    batch_size: int = 512,
    num_workers: int = 0,
    cache_decoded_mb: int = 2048,
    features: bool = False,
) -> int:
    """Run the model over ``split`` in shard order; write ``id, leaf, scores`` + the JSON sidecar.

    ``features``: the encoder's output instead (the backbone before any head), of kind ``embeddings``:
    the frozen image features of the thesis's joint embeddings (§5.6, Eq. 5.2)."""
    shards_dir = Path(shards_dir)
    manifest = read_manifest(shards_dir)
    taxonomy = Taxonomy.read(shards_dir / TAXONOMY)
    dev = resolve_device(device)
    model, preprocess, meta = load_model(model_path, taxonomy, dev)
    check_same_taxonomy(meta, "embeddings" if features else model.output_kind, shards_dir, taxonomy, model_path)
    forward = model.backbone if features else model
    if split not in manifest["splits"]:
        raise TaxonbenchError(f"{shards_dir}: no split {split!r}; the manifest lists {', '.join(manifest['splits'])}")
    source = make_batches(shards_dir, split, preprocess, int(manifest.get("image_size", 32)), None, dev,
                           num_workers, cache_decoded_mb, manifest["splits"][split]["rows"])
    ids = read_split_column(shards_dir, split, "id")
    amp = dev.type == "cuda"

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        start = 0
        with torch.no_grad():
            for images, leaf in source.epoch(batch_size, None, epoch_generator(0, 0)):
                with torch.autocast(dev.type, enabled=amp):
                    out = forward(images)
                n = len(leaf)
                yield ids[start : start + n], leaf.cpu().numpy(), out.float().cpu().numpy()
                start += n

    sidecar = {**model.sidecar(), "split": split, "dataset": meta["dataset"],
               "order": "leaf index 0..L-1" if model.output_kind == "leaf_logits" else "see kind"}
    if features:
        sidecar |= {"kind": "embeddings", "dim": model.num_features, "of": "encoder features",
                    "order": "feature index 0..F-1"}
    return write_matrix(out_path, "scores", batches(), sidecar)
