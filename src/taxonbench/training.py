"""Training loop: one (dataset, method) experiment from shards to ``model.pt``.

- One seed controls everything: initialisation (``torch.manual_seed``), the
  data order and augmentation of epoch ``e`` (a generator seeded with
  ``(seed, e)``, :mod:`taxonbench.batches`), so a resumed run replays exactly
  what an uninterrupted one does.
- A checkpoint is written atomically after every epoch; a killed run resumes
  from it when started again with the same settings.
- CUDA with automatic mixed precision when present, CPU otherwise.
- Under ``torchrun`` (several processes: :mod:`taxonbench.distributed`) the
  model is wrapped in DistributedDataParallel and every global batch is split
  between the ranks; the data order, augmentation, loss, BatchNorm statistics
  and optimisation steps are those of one process with the same global batch
  (docs/distributed.md). Rank 0 alone writes the checkpoint, the model and the
  log; the model saved is the unwrapped method.

The steps, one function each: :func:`_resolve` (settings, shards) ->
:func:`_build` (method, frozen layers, batch sources and sampler, optimiser) ->
:func:`_resume` (a matching checkpoint) -> :func:`_run_epoch` per epoch ->
:func:`_save`; the ranks are one collaborator, :class:`~taxonbench.distributed.DataParallel`.
The loader features (batch samplers, two views, fine-tuning regimes, grayscale,
a training subset) are described in docs/training.md.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from taxonbench import distributed
from taxonbench.batches import epoch_generator, make_batches, subset_rows
from taxonbench.devices import resolve_device
from taxonbench.distributed import DataParallel
from taxonbench.errors import TaxonbenchError
from taxonbench.finetune import freeze_backbone
from taxonbench.io import load_weights_only, write_text_atomic, write_torch_atomic
from taxonbench.methods import METHODS, Method
from taxonbench.models.backbones import Preprocess, build_backbone
from taxonbench.samplers import Sampler, make_sampler
from taxonbench.shards import TAXONOMY, read_manifest
from taxonbench.taxonomy import Taxonomy
from taxonbench.training_curves import check_curves, curve_columns, split_scores

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
TRAIN_LOG = "train_log.csv"
LOG_COLUMNS = ["epoch", "train_loss", "train_top1", "val_top1", "lr", "seconds"]
#: ``train`` keys that say how many processes run a training, not what it computes: a checkpoint
#: written with one process count resumes with another (the results agree up to floating-point order)
LAUNCH_KEYS = ("gpus", "cpu_processes")


def build_method(meta: dict, taxonomy: Taxonomy, load_pretrained: bool = True) -> tuple[Method, Preprocess]:
    """Instantiate the method described by ``meta`` (method, backbone, pretrained, hparams).

    ``load_pretrained=False``: the weights come from a saved state dict next, so neither the
    pretrained backbone weights nor :meth:`Method.initialise` (text-derived classifiers) are loaded.
    """
    method_cls = METHODS.get(meta["method"])
    backbone = build_backbone(meta["backbone"], meta.get("pretrained") if load_pretrained else None)
    preprocess = backbone.preprocess
    if "preprocess" in meta:  # a saved model keeps the normalisation it was trained with
        saved = meta["preprocess"]
        preprocess = Preprocess(mean=tuple(saved["mean"]), std=tuple(saved["std"]), image_size=saved["image_size"],
                                grayscale=bool(saved.get("grayscale", False)))
    model = method_cls(backbone, taxonomy, meta.get("hparams", {}), meta.get("experiment"))
    if load_pretrained:  # a new model; without it, a saved state dict follows and would overwrite this
        model.initialise()
    return model, preprocess


def settings_digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _lr_lambda(schedule: dict, epochs: int, steps_per_epoch: int):
    total = max(1, epochs * steps_per_epoch)
    warmup = schedule.get("warmup_epochs", 0) * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule["name"] == "cosine":
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if schedule["name"] == "step":
            return schedule["gamma"] ** ((step // steps_per_epoch) // schedule["step_size"])
        return 1.0

    return factor


def _optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    if cfg["name"] == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    return torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])


@torch.no_grad()
def _accuracy(model: Method, batches, batch_size: int, amp: bool, ranks: DataParallel) -> float:
    """Top-1 over the split; under DDP each rank scores its slice of every batch and the counts are summed."""
    device = ranks.device
    model.eval()
    correct = total = 0
    for images, leaf, _ in batches.epoch_parts(batch_size, None, epoch_generator(0, 0), ranks.part):
        if len(leaf):
            with torch.autocast(device.type, enabled=amp):
                out = model(images)
            correct += int((model.predict_leaf(out) == leaf).sum())
        total += len(leaf)
    correct, total = ranks.sum([correct, total])
    return correct / max(1, total)


@dataclass
class _Run:
    """The resolved settings of one training (:func:`_resolve`)."""

    settings: dict
    cfg: dict  # the train block
    seed: int
    amp: bool
    where: str  # what messages name: "train <dataset>/<experiment>"
    shards_dir: Path
    out_dir: Path
    manifest: dict
    taxonomy: Taxonomy

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / CHECKPOINT

    def digest(self) -> str:
        """What a checkpoint must match to be resumed: every setting but the launch keys, and the shards."""
        return settings_digest({**self.settings, "shards": self.manifest,
                                "train": {k: v for k, v in self.cfg.items() if k not in LAUNCH_KEYS}})


@dataclass
class _Parts:
    """What a training is made of (:func:`_build`)."""

    model: Method
    meta: dict
    frozen: list[torch.nn.Module]  # backbone layers train.finetune keeps fixed (and in eval mode)
    train_set: Any
    val_set: Any
    curve_sets: dict[str, Any]  # train.curve_splits: the splits scored after every epoch (training_curves)
    sampler: Sampler
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    steps_per_epoch: int

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])


def train(settings: dict, shards_dir: str | os.PathLike, out_dir: str | os.PathLike, progress: bool = True) -> Path:
    """Train one method on one prepared dataset; write ``model.pt`` and ``train_log.csv`` in ``out_dir``.

    ``settings`` is :func:`taxonbench.params.train_settings` output. Started by torchrun, every
    process calls this; they form one data-parallel run (:mod:`taxonbench.distributed`).
    """
    ctx = distributed.setup(resolve_device(settings["device"]))
    try:
        return _train(settings, Path(shards_dir), Path(out_dir), progress, DataParallel(ctx))
    finally:
        distributed.teardown(ctx)


def _train(settings: dict, shards_dir: Path, out_dir: Path, progress: bool, ranks: DataParallel) -> Path:
    """resolve -> build -> resume -> epochs (a checkpoint after each) -> save."""
    run = _resolve(settings, shards_dir, out_dir, ranks)
    parts = _build(run, ranks)
    start_epoch, log_rows = _resume(run, parts, ranks)
    stepper = ranks.stepper(parts.model)
    for epoch in range(start_epoch, run.cfg["epochs"]):
        log_rows.append(_run_epoch(run, parts, stepper, epoch, ranks, progress))
        if ranks.is_main:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in log_rows[-1].items()),
                  flush=True)
            write_torch_atomic({"digest": run.digest(), "epoch": epoch, **parts.state(), "log": log_rows},
                               run.checkpoint)
    return _save(run, parts, log_rows, ranks)


def _resolve(settings: dict, shards_dir: Path, out_dir: Path, ranks: DataParallel) -> _Run:
    """Read the shards' manifest and taxonomy; fix the seed, the threads and mixed precision."""
    if ranks.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    cfg = settings["train"]
    torch.set_num_threads(cfg["threads"])
    return _Run(settings=settings, cfg=cfg, seed=int(settings["seed"]),
                amp=bool(cfg["amp"]) and ranks.device.type == "cuda",
                where=f"train {settings['dataset']}/{settings.get('experiment', settings['method'])}",
                shards_dir=shards_dir, out_dir=out_dir, manifest=read_manifest(shards_dir),
                taxonomy=Taxonomy.read(shards_dir / TAXONOMY))


def _build(run: _Run, ranks: DataParallel) -> _Parts:
    """The method (seeded), its frozen layers, the batch sources and sampler, optimiser and schedule."""
    cfg, settings, device = run.cfg, run.settings, ranks.device
    torch.manual_seed(run.seed)
    meta = {
        "method": settings["method"],
        "experiment": settings.get("experiment", settings["method"]),
        "backbone": cfg["backbone"],
        "pretrained": cfg["pretrained"],
        "hparams": settings["hparams"],
        "dataset": settings["dataset"],
        "n_leaves": run.taxonomy.n_leaves,
        "n_nodes": run.taxonomy.n_nodes,
        "ranks": run.taxonomy.rank_names,  # the levels an open-vocabulary model can be evaluated on
        "image_size": int(run.manifest.get("image_size", 32)),
    }
    model, preprocess = build_method(meta, run.taxonomy)
    if cfg.get("image_size"):  # train.image_size: every input resized to this side (stored with the model)
        preprocess = replace(preprocess, image_size=int(cfg["image_size"]))
    side = preprocess.image_size or meta["image_size"]
    if side < model.min_image_size:
        raise TaxonbenchError(f"{run.where}: train.backbone {cfg['backbone']!r} needs images of at least "
                              f"{model.min_image_size} px; {run.shards_dir} stores {side} px")
    if cfg.get("grayscale") and int(run.manifest.get("channels", 3)) == 1:
        raise TaxonbenchError(f"{run.where}: train.grayscale is set, but {run.shards_dir} holds one-channel (grey) "
                              "images already; leave it false")
    preprocess = replace(preprocess, grayscale=bool(cfg.get("grayscale", False)))
    meta["preprocess"] = asdict(preprocess)
    model = ranks.prepare(model, run.where)  # under DDP: BatchNorm layers replaced by global-batch ones
    frozen = freeze_backbone(model.backbone, cfg.get("finetune", "all"), cfg.get("finetune_last_k", 1), "train")
    model.to(device)

    def batches(split: str, augment: dict | None, views: int = 1, rows=None):
        return make_batches(run.shards_dir, split, preprocess, meta["image_size"], augment, device,
                            cfg["num_workers"], cfg["cache_decoded_mb"], run.manifest["splits"][split]["rows"],
                            views, rows)

    train_set = batches("train", cfg["augment"], model.views, _subset(run))
    model.observe_training_labels(np.bincount(np.asarray(train_set.leaves), minlength=run.taxonomy.n_leaves))
    val_set = batches("val", None) if "val" in run.manifest["splits"] else None
    splits = list(run.cfg.get("curve_splits", []))
    check_curves(model, splits, list(run.manifest["splits"]), run.where)
    curve_sets = {s: val_set if s == "val" else batches(s, None, 1, _subset(run) if s == "train" else None)
                  for s in splits}  # train: the rows trained on, without augmentation
    steps_per_epoch = math.ceil(len(train_set) / cfg["batch_size"])  # global batches: the same for any rank count
    optimizer = _optimizer(model.parameters(), cfg["optimizer"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg["schedule"], cfg["epochs"],
                                                                        steps_per_epoch))
    return _Parts(model=model, meta=meta, frozen=frozen, train_set=train_set, val_set=val_set, curve_sets=curve_sets,
                  sampler=make_sampler(cfg.get("sampler", {}), run.taxonomy, cfg["batch_size"]),
                  optimizer=optimizer, scheduler=scheduler, scaler=torch.amp.GradScaler(device.type, enabled=run.amp),
                  steps_per_epoch=steps_per_epoch)


def _subset(run: _Run):
    """``train.train_subset`` rows of the train split (None: all of them)."""
    size, n_rows = run.cfg.get("train_subset"), run.manifest["splits"]["train"]["rows"]
    if size is not None and size > n_rows:
        raise TaxonbenchError(f"{run.where}: train.train_subset {size} exceeds the {n_rows} rows of the train split "
                              f"of {run.shards_dir}")
    return subset_rows(n_rows, size, run.seed)


def _resume(run: _Run, parts: _Parts, ranks: DataParallel) -> tuple[int, list[dict]]:
    """The epoch to start at and the log so far: from a checkpoint written with the same settings, else 0."""
    start_epoch, log_rows = 0, []
    path = run.checkpoint
    if path.exists():
        ckpt = torch.load(path, map_location=ranks.device, weights_only=True)
        if ckpt.get("digest") == run.digest():
            parts.load_state(ckpt)
            start_epoch, log_rows = int(ckpt["epoch"]) + 1, list(ckpt["log"])
            if ranks.is_main:
                print(f"resuming {run.out_dir} from epoch {start_epoch}", flush=True)
        elif ranks.is_main:
            print(f"{path}: settings changed since this checkpoint; starting afresh", flush=True)
    # every rank must have read the same checkpoint (a shared out_dir) and built the same model
    ranks.check_start(f"the starting weights and epoch ({path} must be on a file system every node sees)",
                      [*parts.model.state_dict().values(), torch.tensor(start_epoch)])
    return start_epoch, log_rows


def _run_epoch(run: _Run, parts: _Parts, stepper: torch.nn.Module, epoch: int, ranks: DataParallel,
               progress: bool) -> dict:
    """One pass over the sampler's order of epoch ``epoch``, then validation top-1 and the curve splits' scores;
    the log row."""
    cfg, model, device = run.cfg, parts.model, ranks.device
    t0 = time.time()
    model.train()
    for module in parts.frozen:
        module.eval()
    total_loss = correct = seen = 0.0
    batches = parts.train_set.epoch_parts(cfg["batch_size"], parts.sampler, epoch_generator(run.seed, epoch),
                                          ranks.part)
    bar = tqdm(batches, total=parts.steps_per_epoch,
               desc=f"{run.settings['method']} epoch {epoch + 1}/{cfg['epochs']}",
               disable=not (progress and ranks.is_main), mininterval=2.0, leave=False)
    for images, leaf, batch_leaf in bar:
        with torch.autocast(device.type, enabled=run.amp):
            outputs = stepper(images, ranks.step_labels(leaf, batch_leaf))
        # every rank computes the one-process loss of the whole batch (distributed.gather_rows)
        loss = model.loss(ranks.gather(outputs, len(batch_leaf)), batch_leaf)
        if not torch.isfinite(loss):
            raise TaxonbenchError(f"{run.settings['method']}: the training loss became {loss.item()} "
                                  f"at epoch {epoch + 1}")
        parts.optimizer.zero_grad(set_to_none=True)
        parts.scaler.scale(loss).backward()
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
        parts.scheduler.step()
        total_loss += float(loss.detach()) * len(batch_leaf)
        if len(leaf) and model.scores_leaves and model.training_top1:
            correct += float((model.predict_leaf(outputs.detach()) == leaf).sum())
        seen += len(batch_leaf)
    (correct,) = ranks.sum([correct])
    nan = float("nan")
    curves = {split: split_scores(model, source, cfg["eval_batch_size"], run.amp, ranks, run.taxonomy, split)
              for split, source in parts.curve_sets.items()}
    if "val" in curves:  # scored once: its top-1 comes from the same pass
        val_top1 = curves["val"][1]
    else:
        val_top1 = _accuracy(model, parts.val_set, cfg["eval_batch_size"], run.amp, ranks) \
            if parts.val_set is not None and model.scores_leaves else nan
    row = {
        "epoch": epoch + 1,
        "train_loss": total_loss / max(1, seen),
        "train_top1": correct / max(1, seen) if model.scores_leaves and model.training_top1 else nan,
        "val_top1": val_top1,
        "lr": parts.optimizer.param_groups[0]["lr"],
    }
    for scores, _ in curves.values():
        row.update(scores)
    return {**row, "seconds": time.time() - t0}


def _save(run: _Run, parts: _Parts, log_rows: list[dict], ranks: DataParallel) -> Path:
    """Rank 0 writes ``train_log.csv`` and ``model.pt`` (the unwrapped method on CPU) and drops the checkpoint."""
    model_path = run.out_dir / MODEL
    if ranks.is_main:
        buf = io.StringIO()
        columns = LOG_COLUMNS[:-1] + curve_columns(list(run.cfg.get("curve_splits", []))) + LOG_COLUMNS[-1:]
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(log_rows)
        write_text_atomic(run.out_dir / TRAIN_LOG, buf.getvalue())
        write_torch_atomic({"state_dict": {k: v.cpu() for k, v in parts.model.state_dict().items()},
                            "meta": parts.meta}, model_path)
        run.checkpoint.unlink(missing_ok=True)
    return model_path


def load_model(model_path: str | os.PathLike, taxonomy: Taxonomy, device: torch.device,
               taxonomy_of=None) -> tuple[Method, Preprocess, dict]:
    """Rebuild a trained method from ``model.pt`` (weights-only load). ``taxonomy_of(meta)``, when given,
    returns the taxonomy to build it on (a model trained on another dataset: its training taxonomy)."""
    saved = load_weights_only(model_path, "model")
    meta = saved["meta"]
    if taxonomy_of is not None:
        taxonomy = taxonomy_of(meta)
    tied = not METHODS.get(meta["method"]).open_vocabulary  # an open-vocabulary model is built on any taxonomy
    if tied and (meta["n_leaves"] != taxonomy.n_leaves or meta["n_nodes"] != taxonomy.n_nodes):
        raise TaxonbenchError(
            f"{model_path}: trained on a taxonomy of {meta['n_nodes']} nodes / {meta['n_leaves']} leaves, "
            f"but the dataset has {taxonomy.n_nodes} / {taxonomy.n_leaves}"
        )
    model, preprocess = build_method(meta, taxonomy, load_pretrained=False)
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), preprocess, meta
