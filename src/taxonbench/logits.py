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


def training_taxonomy(meta: dict, kind: str, shards_dir: Path, taxonomy: Taxonomy, model_path) -> Taxonomy:
    """The taxonomy a model was built on: ``taxonomy`` (the evaluated dataset's) when trained on that dataset,
    else (cross-dataset evaluation) the training dataset's, read beside ``shards_dir``
    (``data/shards/<dataset>/``). Only outputs of kind ``embeddings`` transfer to another tree; any other
    kind needs the same tree (parents and names)."""
    trained = meta.get("dataset")
    if not trained or trained == shards_dir.name:
        return taxonomy
    path = shards_dir.parent / trained / TAXONOMY
    if not path.exists():
        raise TaxonbenchError(f"{model_path}: trained on dataset {trained!r}, whose taxonomy {path} is missing; "
                              f"prepare it (the model's heads are built on it)")
    source = Taxonomy.read(path)
    same = np.array_equal(source.parent, taxonomy.parent) and list(source.name) == list(taxonomy.name)
    if kind != "embeddings" and not same:
        raise TaxonbenchError(
            f"{model_path}: trained on dataset {trained!r}, whose taxonomy differs from {shards_dir.name!r}'s; "
            f"outputs of kind {kind!r} are tied to the training taxonomy (only embeddings transfer to another tree: "
            f"a method of kind 'embeddings', or `logits --features`)")
    return source


def check_unseen(taxonomy: Taxonomy, dataset: str, seen_shards: Path) -> None:
    """``datasets.<dataset>.unseen_of``: no top-rank taxon (category) of ``taxonomy`` may be one of the seen
    dataset's (compared by name, as the seen / unseen parts of one tree name them)."""
    path = seen_shards / TAXONOMY
    if not path.exists():
        raise TaxonbenchError(f"datasets.{dataset}.unseen_of: the seen dataset's taxonomy {path} is missing")
    seen = Taxonomy.read(path)
    top = {str(seen.name[v]) for v in seen.nodes_at_depth(1)}
    shared = sorted(str(taxonomy.name[v]) for v in taxonomy.nodes_at_depth(1) if str(taxonomy.name[v]) in top)
    if shared:
        raise TaxonbenchError(
            f"datasets.{dataset}.unseen_of: {dataset!r} shares {len(shared)} categor{'y' if len(shared) == 1 else 'ies'} "
            f"with {seen_shards.name!r} ({', '.join(shared[:5])}{', ...' if len(shared) > 5 else ''}); an unseen split "
            "must not overlap the seen one (check the two datasets' part / unseen_fraction / unseen_categories)")


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
    unseen_of: str | os.PathLike | None = None,
) -> int:
    """Run the model over ``split`` in shard order; write ``id, leaf, scores`` + the JSON sidecar.

    ``features``: the encoder's output instead (the backbone before any head), of kind ``embeddings``:
    the frozen image features of the thesis's joint embeddings (§5.6, Eq. 5.2). ``unseen_of``: the shards
    directory of the seen dataset this one must share no category with (:func:`check_unseen`)."""
    shards_dir = Path(shards_dir)
    manifest = read_manifest(shards_dir)
    taxonomy = Taxonomy.read(shards_dir / TAXONOMY)
    if unseen_of is not None:
        check_unseen(taxonomy, shards_dir.name, Path(unseen_of))
    dev = resolve_device(device)
    from taxonbench.methods import METHODS

    def taxonomy_of(meta: dict) -> Taxonomy:
        kind = "embeddings" if features else METHODS.get(meta["method"]).output_kind
        return training_taxonomy(meta, kind, shards_dir, taxonomy, model_path)

    model, preprocess, meta = load_model(model_path, taxonomy, dev, taxonomy_of)
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
