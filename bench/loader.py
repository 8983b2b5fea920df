"""Training-loader images/s from shards, against torchvision's ImageFolder over the same JPEGs (issue 5 target).

A synthetic folder of ``--images`` photo-like JPEGs at 500 x 375
(bench/_jpeg_folder.py) is prepared to shards (256 x 256, ``--rows-per-shard``
rows per shard, so the split spans several shards as at paper scale). Both
loaders then feed one training epoch of ``--batch-size`` normalised float
batches for a 224-px backbone (resize to 224, reflect-padded random crop,
flip) with ``--workers`` DataLoader workers:

- taxonbench: :class:`taxonbench.batches.LoaderBatches` (the loader training
  uses for data that does not fit in memory: shards read in shuffled blocks,
  uint8 tensors from the workers, normalised per batch);
- baseline: ``torchvision.datasets.ImageFolder`` over the original JPEGs with
  a shuffling ``DataLoader`` and the usual per-image ``ToTensor`` +
  ``Normalize``.

Each timing is the best of ``--repeats`` epochs. Target: >= 1.5 x the baseline.

    .venv/bin/python bench/loader.py --images 2000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jpeg_folder import flat_view, make_jpeg_folder  # noqa: E402

from taxonbench.batches import LoaderBatches, epoch_generator  # noqa: E402
from taxonbench.samplers import make_sampler  # noqa: E402
from taxonbench.datasets import DATASETS, prepare_dataset  # noqa: E402
from taxonbench.models.backbones import Preprocess  # noqa: E402

STORED, INPUT = 256, 224
AUGMENT = {"random_crop_padding": 16, "hflip": True}


def time_epochs(epoch, repeats: int) -> tuple[float, int]:
    best, n = float("inf"), 0
    for r in range(repeats):
        start = time.perf_counter()
        n = sum(len(y) for _, y in epoch(r))
        best = min(best, time.perf_counter() - start)
    return best, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rows-per-shard", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_jpeg_folder(tmp / "jpegs", args.images)
        adapter = DATASETS.get("image_folder")({"root": str(tmp / "jpegs"), "image_size": STORED},
                                               name="bench", seed=0)
        prepare_dataset(adapter, tmp / "shards", args.rows_per_shard, workers=args.workers)
        preprocess = Preprocess(image_size=INPUT)
        cpu = torch.device("cpu")

        shuffle = make_sampler({"name": "shuffle"}, None, args.batch_size)
        ours = LoaderBatches(tmp / "shards", "train", preprocess, STORED, AUGMENT, cpu, args.workers)
        t_ours, n_ours = time_epochs(lambda e: ours.epoch(args.batch_size, shuffle, epoch_generator(0, e)),
                                     args.repeats)

        # what one writes with ImageFolder for the same tensors: the same crops, ToTensor + Normalize per image
        from torchvision import transforms as T
        per_image = T.Compose([T.Resize(INPUT), T.RandomCrop(INPUT, padding=AUGMENT["random_crop_padding"],
                                                              padding_mode="reflect"),
                               T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(preprocess.mean, preprocess.std)])
        folder = ImageFolder(str(flat_view(tmp / "jpegs", tmp / "flat")), transform=per_image)

        def baseline_epoch(e):
            gen = torch.Generator().manual_seed(e)
            return DataLoader(folder, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                              generator=gen)
        t_base, n_base = time_epochs(baseline_epoch, args.repeats)
        assert n_ours == n_base == len(paths)

        print(f"{len(paths)} images 500x375 -> {INPUT}x{INPUT} train batches of {args.batch_size}, "
              f"{args.workers} DataLoader workers, best of {args.repeats} epochs\n")
        print(f"{'':52s} {'s':>7s} {'images/s':>9s} {'vs baseline':>11s}")
        for label, seconds in (("torchvision ImageFolder over the JPEGs (baseline)", t_base),
                               (f"taxonbench shards ({STORED} px, {args.rows_per_shard} rows/shard)", t_ours)):
            print(f"{label:52s} {seconds:7.2f} {len(paths) / seconds:9.1f} {t_base / seconds:10.2f}x")
        ratio = t_base / t_ours
        print(f"\ntarget: shards >= 1.5x ImageFolder: {'met' if ratio >= 1.5 else 'NOT met'} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
