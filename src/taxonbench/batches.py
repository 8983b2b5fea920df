"""Batches of (images, leaf) for training and evaluation.

Two interchangeable sources, chosen by :func:`make_batches`:

- :class:`DecodedBatches` — a split small enough (``cache_decoded_mb``) is
  decoded once into one uint8 tensor; augmentation (reflect-padded random
  crop, horizontal flip) and normalisation run on whole batches. This is the
  fast path for the embedded default (32-px images) on CPU.
- :class:`LoaderBatches` — a torch ``DataLoader`` over :class:`ShardDataset`
  with torchvision transforms and worker processes, for paper-scale data,
  when images must be resized for the backbone, or for the SupCon / MoCo
  augmentations (``RandomResizedCrop``, ``ColorJitter`` applied with
  probability ``color_jitter_p``, ``RandomGrayscale``; the HiMulCon paper
  §4.2, "the same as [13, 18]").

Both draw the data order and the augmentation of epoch ``e`` from a generator
seeded with ``(seed, e)``, so a resumed run replays an uninterrupted one.

What a source yields for training (docs/training.md):

- the order of an epoch comes from a batch sampler (:mod:`taxonbench.samplers`;
  ``None``: the rows in stored order, for evaluation);
- ``views`` augmented views of every image (``B x V x 3 x H x W`` when
  ``views > 1``; each view's crops and flips drawn independently), for the
  two-view contrastive losses;
- ``rows``: a fixed subset of the split (``train.train_subset``,
  :func:`subset_rows`);
- grayscale input when the preprocess says so (:func:`to_grayscale`).

Distributed training (:mod:`taxonbench.distributed`): every rank draws the
same order and the same augmentation for the whole *global* batch and keeps
its slice (:class:`~taxonbench.distributed.Part`, :meth:`epoch_parts`), so N
processes see exactly the images, crops and flips one process would. The
loader path seeds each image's transform from the epoch generator (one seed
per position in the epoch's order), so its augmentation depends neither on
the rank count nor on the number of DataLoader workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from taxonbench.distributed import WHOLE, Part
from taxonbench.models.backbones import Preprocess
from taxonbench.shards import ShardDataset, decode_image, read_shard, split_files

if TYPE_CHECKING:
    from taxonbench.samplers import Sampler


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(seed * 1_000_003 + epoch)
    return gen


def subset_rows(n_rows: int, size: int | None, seed: int) -> np.ndarray | None:
    """``size`` rows of a split of ``n_rows`` drawn uniformly without replacement (sorted), the same every
    epoch, on every rank and on resumption (a generator of its own, seeded by ``seed``); None: every row."""
    if size is None:
        return None
    gen = torch.Generator()
    gen.manual_seed(seed * 1_000_003 - 1)  # apart from every epoch's generator (seed * 1_000_003 + epoch)
    return np.sort(torch.randperm(n_rows, generator=gen)[:size].numpy())


def image_transform(preprocess: Preprocess, image_size: int, augment: dict | None):
    """Per-image torchvision transform (a ``Compose``) to a ``3 x H x W`` **uint8** tensor: eval
    (``augment=None``) or train. Scaling to [0, 1] and normalising happen per batch
    (:func:`normalize_batch`): a quarter of the bytes cross from the loader workers, and one
    vectorised operation replaces one per image.

    torchvision is imported here, not at module level: importing it pulls in
    ``torch._dynamo`` (about 3 s), which the in-memory path never needs.
    """
    from torchvision import transforms as T

    size = preprocess.image_size or image_size
    augment = augment or {}  # evaluation: no random step
    steps: list = []
    resized_crop = augment.get("resized_crop_scale")
    if resized_crop:  # crop an area share in [lo, hi] with aspect ratio in [3/4, 4/3], scaled to size
        steps.append(T.RandomResizedCrop(size, scale=tuple(resized_crop), antialias=True))
    elif size != image_size:
        steps.append(T.Resize(size))
    if not resized_crop and augment.get("random_crop_padding", 0):
        steps.append(T.RandomCrop(size, padding=augment["random_crop_padding"], padding_mode="reflect"))
    if augment.get("hflip"):
        steps.append(T.RandomHorizontalFlip())
    if augment.get("color_jitter"):
        steps.append(T.RandomApply([T.ColorJitter(*augment["color_jitter"])], p=augment.get("color_jitter_p", 0.8)))
    if augment.get("grayscale_p", 0):
        steps.append(T.RandomGrayscale(p=augment["grayscale_p"]))
    steps.append(T.PILToTensor())
    return T.Compose(steps)


PER_IMAGE_AUGMENTATIONS = ("resized_crop_scale", "color_jitter", "grayscale_p")
"""``train.augment`` keys that only the per-image torchvision path (:class:`LoaderBatches`) applies."""


def needs_per_image_transforms(augment: dict | None) -> bool:
    """True when ``augment`` asks for the SupCon / MoCo augmentations (random resized crop, colour jitter,
    random grayscale), which :class:`DecodedBatches` does not vectorise."""
    return bool(augment) and any(augment.get(key) for key in PER_IMAGE_AUGMENTATIONS)


class ImageViews:
    """``views`` independent draws of a per-image transform, stacked: ``V x 3 x H x W`` (picklable for
    DataLoader workers)."""

    def __init__(self, transform, views: int) -> None:
        self.transform = transform
        self.views = views

    def __call__(self, image):
        return torch.stack([self.transform(image) for _ in range(self.views)])


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma ``L = 0.2989 R + 0.587 G + 0.114 B`` of a uint8 ``... x 3 x H x W`` batch, cast
    back to uint8 and repeated on the three channels (``torchvision.transforms.functional.rgb_to_grayscale``
    with ``num_output_channels=3``, which a test compares)."""
    r, g, b = x.unbind(-3)
    luma = (0.2989 * r + 0.587 * g + 0.114 * b).to(x.dtype)
    return luma.unsqueeze(-3).expand_as(x)


def normalize_batch(x: torch.Tensor, preprocess: Preprocess) -> torch.Tensor:
    """``(x / 255 - mean) / std`` per channel for a uint8 batch ``N x 3 x H x W`` or ``N x V x 3 x H x W``
    (what ``ToTensor`` + ``Normalize`` do per image), after :func:`to_grayscale` when the preprocess asks."""
    if preprocess.grayscale:
        x = to_grayscale(x)
    mean = torch.tensor(preprocess.mean, device=x.device).view(3, 1, 1)
    std = torch.tensor(preprocess.std, device=x.device).view(3, 1, 1)
    return (x.float().div_(255) - mean) / std


class DecodedBatches:
    """A whole split decoded into memory; batch-wise augmentation with tensor ops."""

    def __init__(self, shards_dir: str | os.PathLike, split: str, preprocess: Preprocess,
                 augment: dict | None, device: torch.device, views: int = 1, rows: np.ndarray | None = None) -> None:
        images, leaves = [], []
        for path in split_files(shards_dir, split):
            table = read_shard(path, ["id", "image", "leaf"])
            blobs, ids = table.column("image").to_pylist(), table.column("id").to_pylist()
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                decoded = list(pool.map(lambda a: np.asarray(decode_image(a[0], f"{path} row {a[2]} (id {a[1]})")),
                                        zip(blobs, ids, range(len(ids)))))
            images.append(np.stack(decoded) if decoded else np.zeros((0, 1, 1, 3), np.uint8))
            leaves.append(table.column("leaf").to_numpy().astype(np.int64))
        self.images = torch.from_numpy(np.concatenate(images)).permute(0, 3, 1, 2).contiguous()  # N,3,H,W uint8
        self.leaves = torch.from_numpy(np.concatenate(leaves))
        if rows is not None:
            self.images, self.leaves = self.images[torch.from_numpy(rows)], self.leaves[torch.from_numpy(rows)]
        self.views = views
        self.augment = augment
        self.device = device
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.leaves)

    def shuffled(self, gen: torch.Generator) -> torch.Tensor:
        return torch.randperm(len(self), generator=gen)

    def _augment(self, x: torch.Tensor, gen: torch.Generator, n: int, lo: int, hi: int) -> torch.Tensor:
        """Crop offsets and flips drawn for all ``n`` rows of the global batch; rows ``lo:hi`` are ``x``."""
        pad = int(self.augment.get("random_crop_padding", 0))
        if pad:
            oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)[lo:hi].to(x.device)
            ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)[lo:hi].to(x.device)
        if self.augment.get("hflip"):
            flip = (torch.rand(n, generator=gen) < 0.5)[lo:hi].to(x.device)
        b, _, h, w = x.shape
        if b == 0:
            return x
        if pad:
            padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
            rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
            x = padded[torch.arange(b, device=x.device)[:, None, None, None],
                       torch.arange(3, device=x.device)[None, :, None, None], rows, cols]
        if self.augment.get("hflip"):
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def epoch_parts(self, batch_size: int, sampler: Sampler | None, gen: torch.Generator,
                    part: Part = WHOLE) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(images, leaf, batch_leaf)`` per global batch: this rank's rows and the whole batch's labels."""
        order = torch.as_tensor(epoch_order(self, sampler, gen), dtype=torch.int64)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            lo, hi = part.bounds(len(idx))
            x = self.images[idx[lo:hi]].to(self.device, non_blocking=True)
            if self.augment is not None:  # crops and flips commute with the normalisation
                if self.views == 1:
                    x = self._augment(x, gen, len(idx), lo, hi)
                else:
                    x = torch.stack([self._augment(x, gen, len(idx), lo, hi) for _ in range(self.views)], 1)
            elif self.views > 1:
                x = x.unsqueeze(1).expand(-1, self.views, -1, -1, -1)
            yield (normalize_batch(x, self.preprocess), self.leaves[idx[lo:hi]].to(self.device, non_blocking=True),
                   self.leaves[idx].to(self.device, non_blocking=True))

    def epoch(self, batch_size: int, sampler: Sampler | None, gen: torch.Generator
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, leaf, _ in self.epoch_parts(batch_size, sampler, gen):
            yield x, leaf


def epoch_order(source, sampler: Sampler | None, gen: torch.Generator):
    """The positions of one epoch: the sampler's (:mod:`taxonbench.samplers`), or every row in order."""
    return range(len(source)) if sampler is None else sampler.order(source, gen)


def block_shuffled_order(offsets: np.ndarray, block_shards: int, gen: torch.Generator) -> list[int]:
    """A shuffled order of all rows that visits the shards in blocks.

    ``offsets[k]`` is the first row of shard ``k`` (``offsets[-1]`` the total).
    The shards are permuted, cut into blocks of ``block_shards`` consecutive
    ones, and the rows of each block are permuted. A reader caching
    ``block_shards`` shards then reads every shard once per epoch, where a
    uniform permutation of all rows would read a whole shard for almost every
    row of a split spanning many shards (iNat: thousands).
    """
    n_shards = len(offsets) - 1
    shard_order = torch.randperm(n_shards, generator=gen).tolist()
    order: list[int] = []
    for b in range(0, n_shards, block_shards):
        rows = np.concatenate([np.arange(offsets[k], offsets[k + 1]) for k in shard_order[b:b + block_shards]])
        order += rows[torch.randperm(len(rows), generator=gen).numpy()].tolist()
    return order


class _SeededItems:
    """``dataset[index]`` with torch's CPU generator seeded by ``seed`` for the item's random transforms
    (torchvision draws from it), then restored; ``seed`` None: no seeding (evaluation)."""

    def __init__(self, dataset: ShardDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int | None]):
        index, seed = key
        if seed is None:
            return self.dataset[index]
        state = torch.default_generator.get_state()
        torch.default_generator.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            torch.default_generator.set_state(state)


class LoaderBatches:
    """A DataLoader over the shards with per-image torchvision transforms.

    Training order: :func:`block_shuffled_order` with blocks of the dataset's
    shard cache size (each worker process keeps that many decoded shards).
    """

    def __init__(self, shards_dir: str | os.PathLike, split: str, preprocess: Preprocess, image_size: int,
                 augment: dict | None, device: torch.device, num_workers: int, views: int = 1,
                 rows: np.ndarray | None = None) -> None:
        transform = image_transform(preprocess, image_size, augment)
        self.dataset = ShardDataset(shards_dir, split, transform if views == 1 else ImageViews(transform, views))
        self.views = views
        self.rows = rows  # positions -> rows of the split (None: every row)
        self.augmented = augment is not None
        self.size = preprocess.image_size or image_size
        self.preprocess = preprocess
        self.device = device
        self.num_workers = num_workers
        self._leaves: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.dataset) if self.rows is None else len(self.rows)

    @property
    def leaves(self) -> np.ndarray:
        """The leaf of every position."""
        if self._leaves is None:
            self._leaves = self.dataset.leaves
        return self._leaves if self.rows is None else self._leaves[self.rows]

    def shuffled(self, gen: torch.Generator) -> list[int]:
        """A block-shuffled order of the shards' rows (:func:`block_shuffled_order`); a subset: uniform."""
        if self.rows is not None:
            return torch.randperm(len(self), generator=gen).tolist()
        return block_shuffled_order(self.dataset.index.offsets, self.dataset.cache_shards, gen)

    def epoch_parts(self, batch_size: int, sampler: Sampler | None, gen: torch.Generator,
                    part: Part = WHOLE) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(images, leaf, batch_leaf)`` per global batch: this rank's rows and the whole batch's labels."""
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))  # in-process randomness
        positions = np.asarray(epoch_order(self, sampler, gen), dtype=np.int64)
        order = (positions if self.rows is None else self.rows[positions]).tolist()
        seeds = torch.randint(0, 2**62, (len(order),), generator=gen) if self.augmented else None
        if self._leaves is None:
            self._leaves = self.dataset.leaves
        starts = range(0, len(order), batch_size)

        def local_keys(start: int) -> list[tuple[int, int | None]]:
            """This rank's rows of the global batch at ``start``, each with its transform seed."""
            lo, hi = part.bounds(len(order[start : start + batch_size]))
            local_seeds = [None] * (hi - lo) if seeds is None else seeds[start + lo : start + hi].tolist()
            return list(zip(order[start + lo : start + hi], local_seeds))

        class _LocalBatches:  # the DataLoader's batch sampler: this rank's non-empty slices, made as they are read
            def __iter__(self):
                return (keys for keys in map(local_keys, starts) if keys)

        loaded = iter(DataLoader(_SeededItems(self.dataset), batch_sampler=_LocalBatches(),
                                 num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                                 persistent_workers=False))
        for start in starts:
            rows = order[start : start + batch_size]
            lo, hi = part.bounds(len(rows))
            if hi > lo:
                images, leaf = next(loaded)
            else:  # a last batch smaller than the number of ranks leaves this one without a row
                views = (self.views,) if self.views > 1 else ()
                images = torch.zeros((0, *views, 3, self.size, self.size), dtype=torch.uint8)
                leaf = torch.zeros(0, dtype=torch.int64)
            x = normalize_batch(images.to(self.device, non_blocking=True), self.preprocess)
            yield (x, leaf.to(self.device, non_blocking=True),
                   torch.as_tensor(self._leaves[rows]).to(self.device, non_blocking=True))

    def epoch(self, batch_size: int, sampler: Sampler | None, gen: torch.Generator
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, leaf, _ in self.epoch_parts(batch_size, sampler, gen):
            yield x, leaf


def make_batches(shards_dir: str | os.PathLike, split: str, preprocess: Preprocess, image_size: int,
                 augment: dict | None, device: torch.device, num_workers: int, cache_decoded_mb: int,
                 n_rows: int, views: int = 1, rows: np.ndarray | None = None) -> DecodedBatches | LoaderBatches:
    """The decoded in-memory source when the split (or its ``rows``) fits in ``cache_decoded_mb``, needs
    no resize and no per-image augmentation (:func:`needs_per_image_transforms`)."""
    decoded_mb = (n_rows if rows is None else len(rows)) * 3 * image_size * image_size / 2**20
    if (preprocess.image_size in (None, image_size)) and decoded_mb <= cache_decoded_mb \
            and not needs_per_image_transforms(augment):
        return DecodedBatches(Path(shards_dir), split, preprocess, augment, device, views, rows)
    return LoaderBatches(Path(shards_dir), split, preprocess, image_size, augment, device, num_workers, views, rows)
