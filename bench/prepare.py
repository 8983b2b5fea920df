"""Images/s from a folder of JPEGs to Parquet shards, against a plain Pillow loop (issue 5 target).

A synthetic folder of ``--images`` photo-like JPEGs at 500 x 375
(bench/_jpeg_folder.py) is prepared to shards of 256 x 256 images (short side
scaled to 256, center crop, JPEG q90) by the ``image_folder`` source through
:func:`taxonbench.datasets.prepare_dataset` with 1 and with 2 worker
processes. The baseline, measured in the same run on the same files, is a
plain single-process Pillow loop doing the same per-image work (open, RGB,
resize, crop, encode) and keeping the bytes in memory (it writes no shards:
the comparison favours it). Each timing is the best of ``--repeats`` runs.
Target: 2 workers >= 1.8 x the baseline.

    .venv/bin/python bench/prepare.py --images 2000
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _jpeg_folder import make_jpeg_folder  # noqa: E402

from taxonbench.datasets import DATASETS, prepare_dataset  # noqa: E402

SIZE = 256


def pillow_loop(paths: list[Path]) -> int:
    """The baseline: what a researcher's one-off resize script does, one image after another."""
    total = 0
    for path in paths:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
        w, h = rgb.size
        scale = SIZE / min(w, h)
        rgb = rgb.resize((max(SIZE, round(w * scale)), max(SIZE, round(h * scale))), Image.Resampling.BICUBIC)
        left, top = (rgb.width - SIZE) // 2, (rgb.height - SIZE) // 2
        buf = io.BytesIO()
        rgb.crop((left, top, left + SIZE, top + SIZE)).save(buf, format="JPEG", quality=90)
        total += len(buf.getvalue())
    return total


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        paths = make_jpeg_folder(tmp / "jpegs", args.images)
        print(f"wrote {len(paths)} JPEGs 500x375 in {time.perf_counter() - t0:.1f} s")
        adapter = DATASETS.get("image_folder")({"root": str(tmp / "jpegs"), "image_size": SIZE},
                                               name="bench", seed=0)
        pillow_loop(paths[:50])  # warm the page cache and Pillow
        baseline = best_of(args.repeats, lambda: pillow_loop(paths))
        rows = [("Pillow loop (baseline, 1 process, no shards)", baseline)]
        for w in args.workers:
            seconds = best_of(args.repeats, lambda: prepare_dataset(adapter, tmp / f"shards{w}", 1024, workers=w))
            rows.append((f"taxonbench prepare, {w} worker process{'es' if w > 1 else ''}", seconds))
        print(f"\n{'':48s} {'s':>7s} {'images/s':>9s} {'vs baseline':>11s}")
        for label, seconds in rows:
            print(f"{label:48s} {seconds:7.2f} {len(paths) / seconds:9.1f} {baseline / seconds:10.2f}x")
        ratio = baseline / rows[-1][1]
        print(f"\ntarget: {args.workers[-1]} workers >= 1.8x the baseline: {'met' if ratio >= 1.8 else 'NOT met'} "
              f"({ratio:.2f}x)")


if __name__ == "__main__":
    main()
