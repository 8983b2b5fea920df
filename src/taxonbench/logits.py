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


def training_taxonomy(meta: dict, kind: str, shards_dir: Path, taxonomy: Taxonomy, model_path,
                      open_vocabulary: bool = False) -> Taxonomy:
    """The taxonomy to build a model on: ``taxonomy`` (the evaluated dataset's) when trained on that dataset,
    else (cross-dataset evaluation) the training dataset's, read beside ``shards_dir``
    (``data/shards/<dataset>/``). Outputs of kind ``embeddings`` transfer to another tree; so do those of an
    ``open_vocabulary`` method (its classes are the taxonomy's prompts: zero-shot), built on the evaluated
    taxonomy once its levels are checked (:func:`check_levels_seen`); any other kind needs the same tree."""
    trained = meta.get("dataset")
    if not trained or trained == shards_dir.name:
        return taxonomy
    if open_vocabulary:
        check_levels_seen(training_ranks(meta, shards_dir, model_path), taxonomy, shards_dir.name, trained,
                          model_path)
        return taxonomy
    source = _read_training_taxonomy(trained, shards_dir, model_path)
    same = np.array_equal(source.parent, taxonomy.parent) and list(source.name) == list(taxonomy.name)
    if kind != "embeddings" and not same:
        raise TaxonbenchError(
            f"{model_path}: trained on dataset {trained!r}, whose taxonomy differs from {shards_dir.name!r}'s; "
            f"outputs of kind {kind!r} are tied to the training taxonomy (only embeddings transfer to another tree: "
            f"a method of kind 'embeddings', or `logits --features`)")
    return source


def _read_training_taxonomy(trained: str, shards_dir: Path, model_path) -> Taxonomy:
    path = shards_dir.parent / trained / TAXONOMY
    if not path.exists():
        raise TaxonbenchError(f"{model_path}: trained on dataset {trained!r}, whose taxonomy {path} is missing; "
                              f"prepare it (the model's heads are built on it)")
    return Taxonomy.read(path)


def training_ranks(meta: dict, shards_dir: Path, model_path) -> list[str]:
    """The rank of each level of the training taxonomy, top first: saved with the model, or (a model saved
    before they were) read from the training dataset's taxonomy."""
    if "ranks" in meta:
        return list(meta["ranks"])
    return _read_training_taxonomy(meta["dataset"], shards_dir, model_path).rank_names


def check_levels_seen(trained_ranks: list[str], taxonomy: Taxonomy, dataset: str, trained: str, model_path) -> None:
    """Zero-shot on another taxonomy: its level ``d`` must be the training taxonomy's level ``d`` (the same
    rank, compared case-insensitively), so no level is one the model never saw."""
    target = taxonomy.rank_names
    for d, rank in enumerate(target, start=1):
        seen = trained_ranks[d - 1] if d <= len(trained_ranks) else None
        if seen is None or seen.lower() != rank.lower():
            was = f"its level {d} is {seen!r}" if seen else f"it has {len(trained_ranks)} levels"
            raise TaxonbenchError(
                f"{model_path}: zero-shot on dataset {dataset!r}: level {d} ({rank!r}) is not a level the model "
                f"was trained on ({trained!r}: {was}; levels {', '.join(trained_ranks)}). The evaluated "
                f"taxonomy's levels must be the training taxonomy's, top rank first: check datasets.{dataset} "
                "or the experiment's trained_on")


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
        method = METHODS.get(meta["method"])
        kind = "embeddings" if features else method.output_kind
        return training_taxonomy(meta, kind, shards_dir, taxonomy, model_path, method.open_vocabulary and not features)

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
