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
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import io
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from taxonbench import distributed
from taxonbench.batches import epoch_generator, make_batches
from taxonbench.devices import resolve_device
from taxonbench.distributed import Context
from taxonbench.errors import TaxonbenchError
from taxonbench.io import atomic_path, load_weights_only, write_text_atomic
from taxonbench.methods import METHODS, Method
from taxonbench.models.backbones import Preprocess, build_backbone
from taxonbench.shards import TAXONOMY, read_manifest
from taxonbench.taxonomy import Taxonomy

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
        preprocess = Preprocess(mean=tuple(saved["mean"]), std=tuple(saved["std"]), image_size=saved["image_size"])
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
def _accuracy(model: Method, batches, batch_size: int, device, amp: bool, ctx: Context | None = None) -> float:
    """Top-1 over the split; under DDP each rank scores its slice of every batch and the counts are summed."""
    ctx = ctx or Context(device=device)
    model.eval()
    correct = total = 0
    for images, leaf, _ in batches.epoch_parts(batch_size, False, epoch_generator(0, 0), ctx.part):
        if len(leaf):
            with torch.autocast(device.type, enabled=amp):
                out = model(images)
            correct += int((model.predict_leaf(out) == leaf).sum())
        total += len(leaf)
    correct, total = distributed.all_reduce_sum(ctx, [correct, total])
    return correct / max(1, total)


#: buffers agree on every rank already (the same initialisation; BatchNorm statistics of the global batch),
#: so DDP need not broadcast them before every forward (HCCF's prompt tokens alone are megabytes at iNat
#: scale); ``forward_sync_buffers`` replaces ``broadcast_buffers`` in recent PyTorch
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(torch.nn.parallel.DistributedDataParallel).parameters
                   else {"broadcast_buffers": False})


class _TrainingStep(torch.nn.Module):
    """``method.training_forward`` as a module's ``forward``, so that DistributedDataParallel (which
    hooks ``forward``) wraps the training computation; holds no state of its own."""

    def __init__(self, method: Method) -> None:
        super().__init__()
        self.method = method

    def forward(self, images: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        return self.method.training_forward(images, leaf)


def _check_splittable(method: Method, where: str) -> None:
    """Refuse a method whose training outputs may depend on how a batch is split between processes."""
    if type(method).training_forward is not Method.training_forward and not method.label_set_forward:
        raise TaxonbenchError(
            f"{where}: method {method.name!r} overrides training_forward, so its training outputs may depend on "
            "how a batch is split between processes; taxonbench cannot make it exact under several processes. "
            "Train it with one process (train.gpus <= 1, train.cpu_processes: 1), or set label_set_forward = True on "
            "the method if its training_forward reads only the set of labels in the batch"
        )


def _save_torch_atomic(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def train(settings: dict, shards_dir: str | os.PathLike, out_dir: str | os.PathLike, progress: bool = True) -> Path:
    """Train one method on one prepared dataset; write ``model.pt`` and ``train_log.csv`` in ``out_dir``.

    ``settings`` is :func:`taxonbench.params.train_settings` output. Started by torchrun, every
    process calls this; they form one data-parallel run (:mod:`taxonbench.distributed`).
    """
    ctx = distributed.setup(resolve_device(settings["device"]))
    try:
        return _train(settings, Path(shards_dir), Path(out_dir), progress, ctx)
    finally:
        distributed.teardown(ctx)


def _train(settings: dict, shards_dir: Path, out_dir: Path, progress: bool, ctx: Context) -> Path:
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(shards_dir)
    taxonomy = Taxonomy.read(shards_dir / TAXONOMY)
    cfg = settings["train"]
    seed = int(settings["seed"])
    device = ctx.device
    amp = bool(cfg["amp"]) and device.type == "cuda"
    torch.set_num_threads(cfg["threads"])
    where = f"train {settings['dataset']}/{settings.get('experiment', settings['method'])}"

    torch.manual_seed(seed)
    meta = {
        "method": settings["method"],
        "experiment": settings.get("experiment", settings["method"]),
        "backbone": cfg["backbone"],
        "pretrained": cfg["pretrained"],
        "hparams": settings["hparams"],
        "dataset": settings["dataset"],
        "n_leaves": taxonomy.n_leaves,
        "n_nodes": taxonomy.n_nodes,
        "image_size": int(manifest.get("image_size", 32)),
    }
    model, preprocess = build_method(meta, taxonomy)
    meta["preprocess"] = asdict(preprocess)
    if ctx.distributed:
        _check_splittable(model, where)
        model = distributed.convert_batchnorm(model, ctx)
    model.to(device)

    def batches(split: str, augment: dict | None):
        return make_batches(shards_dir, split, preprocess, meta["image_size"], augment, device,
                            cfg["num_workers"], cfg["cache_decoded_mb"], manifest["splits"][split]["rows"])

    train_set = batches("train", cfg["augment"])
    val_set = batches("val", None) if "val" in manifest["splits"] else None
    steps_per_epoch = math.ceil(len(train_set) / cfg["batch_size"])  # global batches: the same for any rank count
    optimizer = _optimizer(model.parameters(), cfg["optimizer"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(cfg["schedule"], cfg["epochs"], steps_per_epoch)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    digest = settings_digest({**settings, "train": {k: v for k, v in cfg.items() if k not in LAUNCH_KEYS},
                              "shards": manifest})
    start_epoch, log_rows = 0, []
    ckpt_path = out_dir / CHECKPOINT
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        if ckpt.get("digest") == digest:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            scaler.load_state_dict(ckpt["scaler"])
            start_epoch, log_rows = int(ckpt["epoch"]) + 1, list(ckpt["log"])
            if ctx.is_main:
                print(f"resuming {out_dir} from epoch {start_epoch}", flush=True)
        elif ctx.is_main:
            print(f"{ckpt_path}: settings changed since this checkpoint; starting afresh", flush=True)
    if ctx.distributed:  # every rank must have read the same checkpoint (a shared out_dir) and built the same model
        distributed.check_identical(ctx, f"the starting weights and epoch ({ckpt_path} must be on a file system "
                                    "every node sees)", [*model.state_dict().values(), torch.tensor(start_epoch)])
        stepper: torch.nn.Module = torch.nn.parallel.DistributedDataParallel(
            _TrainingStep(model), device_ids=[device.index] if device.type == "cuda" else None, **_NO_BUFFER_SYNC)
    else:
        stepper = _TrainingStep(model)

    for epoch in range(start_epoch, cfg["epochs"]):
        t0 = time.time()
        model.train()
        total_loss = correct = seen = 0.0
        bar = tqdm(train_set.epoch_parts(cfg["batch_size"], True, epoch_generator(seed, epoch), ctx.part),
                   total=steps_per_epoch, desc=f"{settings['method']} epoch {epoch + 1}/{cfg['epochs']}",
                   disable=not (progress and ctx.is_main), mininterval=2.0, leave=False)
        for images, leaf, batch_leaf in bar:
            sizes = ctx.part.sizes(len(batch_leaf))
            with torch.autocast(device.type, enabled=amp):
                # under DDP the labels given are the whole batch's: HCCF encodes the batch's taxa from them
                outputs = stepper(images, batch_leaf if ctx.distributed else leaf)
            # every rank computes the one-process loss of the whole batch (distributed.gather_rows)
            loss = model.loss(distributed.gather_rows(ctx, outputs, sizes), batch_leaf)
            if not torch.isfinite(loss):
                raise TaxonbenchError(f"{settings['method']}: the training loss became {loss.item()} at epoch {epoch + 1}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total_loss += float(loss.detach()) * len(batch_leaf)
            if len(leaf):
                correct += float((model.predict_leaf(outputs.detach()) == leaf).sum())
            seen += len(batch_leaf)
        (correct,) = distributed.all_reduce_sum(ctx, [correct])
        val_top1 = _accuracy(model, val_set, cfg["eval_batch_size"], device, amp, ctx) \
            if val_set is not None else float("nan")
        row = {
            "epoch": epoch + 1,
            "train_loss": total_loss / max(1, seen),
            "train_top1": correct / max(1, seen),
            "val_top1": val_top1,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.time() - t0,
        }
        log_rows.append(row)
        if ctx.is_main:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
            _save_torch_atomic(
                {
                    "digest": digest,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "log": log_rows,
                },
                ckpt_path,
            )

    model_path = out_dir / MODEL
    if ctx.is_main:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(log_rows)
        write_text_atomic(out_dir / TRAIN_LOG, buf.getvalue())
        _save_torch_atomic({"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": meta},
                           model_path)
        ckpt_path.unlink(missing_ok=True)
    return model_path


def load_model(model_path: str | os.PathLike, taxonomy: Taxonomy, device: torch.device) -> tuple[Method, Preprocess, dict]:
    """Rebuild a trained method from ``model.pt`` (weights-only load)."""
    saved = load_weights_only(model_path, "model")
    meta = saved["meta"]
    if meta["n_leaves"] != taxonomy.n_leaves or meta["n_nodes"] != taxonomy.n_nodes:
        raise TaxonbenchError(
            f"{model_path}: trained on a taxonomy of {meta['n_nodes']} nodes / {meta['n_leaves']} leaves, "
            f"but the dataset has {taxonomy.n_nodes} / {taxonomy.n_leaves}"
        )
    model, preprocess = build_method(meta, taxonomy, load_pretrained=False)
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), preprocess, meta
