"""Turning source images into the bytes stored in shards, in parallel worker processes.

An adapter's rows carry, in their ``image`` column, either finished encoded
bytes (the synthetic generator) or an *image source*: a picklable description
of where the pixels are (:class:`ImageFile`, :class:`ImageBytes`,
:class:`ImagePixels`), each with a ``where`` naming it in messages.
:class:`ImageEncoder` decodes the sources, brings them to the adapter's
:class:`ImageFormat` and encodes them, in ``workers`` processes (one: in this
process). A source that cannot be decoded comes back as a
:class:`CorruptImage` carrying the place and the reason, so that the caller
decides: stop, or skip it and count it.

The stored form (:func:`conform`): RGB; with ``size`` set, scaled so that the
short side is ``size`` (bicubic, aspect kept) and center-cropped to a
``size`` x ``size`` square (shards hold one size, so batches stack without a
further transform); without it, the native size. Encoded as JPEG
(``quality``) or PNG (lossless; for small images such as CIFAR's 32 x 32).
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from taxonbench.errors import TaxonbenchError

CODECS = {"jpeg": "JPEG", "png": "PNG"}
_DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageFormat:
    """How images are stored in a dataset's shards."""

    size: int | None = 256  # short side scaled to it, then center-cropped square; None keeps the native size
    codec: str = "jpeg"  # "jpeg" or "png"
    quality: int = 90  # JPEG quality

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise TaxonbenchError(f"image codec {self.codec!r}: expected one of {', '.join(CODECS)}")
        if self.size is not None and self.size < 8:
            raise TaxonbenchError(f"image size: expected at least 8, got {self.size}")


@dataclass(frozen=True)
class ImageFile:
    """An image file on disk."""

    path: str
    where: str = ""  # extra context for messages, e.g. the annotation id

    def describe(self) -> str:
        return f"{self.path} ({self.where})" if self.where else self.path

    def open(self) -> Image.Image:
        return Image.open(self.path)


@dataclass(frozen=True)
class ImageBytes:
    """Encoded image bytes read from somewhere else (an archive member, a Parquet cell)."""

    data: bytes
    where: str

    def describe(self) -> str:
        return self.where

    def open(self) -> Image.Image:
        return Image.open(io.BytesIO(self.data))


@dataclass(frozen=True)
class ImagePixels:
    """Raw pixels: ``H x W x 3`` or ``H x W`` (grayscale) uint8 (CIFAR, Fashion-MNIST records)."""

    array: np.ndarray
    where: str

    def describe(self) -> str:
        return self.where

    def open(self) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(self.array, dtype=np.uint8))


ImageSource = ImageFile | ImageBytes | ImagePixels


@dataclass(frozen=True)
class CorruptImage:
    """An image that could not be read: where it is and why."""

    where: str
    reason: str

    def error(self) -> TaxonbenchError:
        return TaxonbenchError(f"{self.where}: corrupt image ({self.reason})")


def resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    """The central square of side ``min(w, h)`` scaled to ``size`` x ``size`` (bicubic).

    The same picture as scaling the short side to ``size`` and cropping the
    central square, computed in one resampling pass over the kept region only
    (Pillow's ``resize(box=...)``): no pixel of the cropped-away margins is
    interpolated.
    """
    w, h = img.size
    side = min(w, h)
    if (w, h) == (size, size):
        return img
    left, top = (w - side) / 2, (h - side) / 2
    return img.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))


def conform(img: Image.Image, fmt: ImageFormat) -> bytes:
    """An opened image in the stored form of ``fmt`` (module docstring), encoded."""
    if fmt.size is not None:
        img.draft("RGB", (fmt.size, fmt.size))  # JPEG: decode at a reduced scale that is still >= size
    rgb = img.convert("RGB")
    if fmt.size is not None:
        rgb = resize_center_crop(rgb, fmt.size)
    buf = io.BytesIO()
    if fmt.codec == "jpeg":
        rgb.save(buf, format="JPEG", quality=fmt.quality)
    else:
        rgb.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def encode(source: ImageSource, fmt: ImageFormat) -> bytes | CorruptImage:
    """One source in the stored form, or a :class:`CorruptImage` saying why not.

    A missing file is an error (not a corrupt image): the dataset is incomplete.
    """
    try:
        with source.open() as img:
            return conform(img, fmt)
    except FileNotFoundError:
        raise TaxonbenchError(f"{source.describe()}: image not found") from None
    except _DECODE_ERRORS as exc:
        return CorruptImage(source.describe(), f"{type(exc).__name__}: {exc}")


def _encode_chunk(sources: list[ImageSource], fmt: ImageFormat) -> list[bytes | CorruptImage]:
    return [encode(source, fmt) for source in sources]


def _start_method() -> str:
    """``fork`` where the platform has it (workers start in milliseconds and re-import nothing; the
    pool is started before any other thread of ``prepare``), else ``forkserver``/``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    return "fork" if "fork" in methods and sys.platform.startswith("linux") else methods[0]


class ImageEncoder:
    """Encodes image sources in ``workers`` processes (1: in this process).

    Use as a context manager; the pool lives for the whole ``prepare``.
    :meth:`encode_batches` keeps up to :attr:`AHEAD` batches in flight, so the
    workers decode the next batches while this process writes shards. Results
    keep the input order: shards are identical whatever ``workers`` is.
    """

    AHEAD = 3  # batches submitted ahead of the one being written
    CHUNK = 16  # sources per task sent to a worker

    def __init__(self, fmt: ImageFormat, workers: int = 1) -> None:
        if workers < 1:
            raise TaxonbenchError(f"workers: expected at least 1, got {workers}")
        self.fmt = fmt
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ImageEncoder:
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(_start_method()))
            self._pool.submit(int).result()  # start the workers now, before prepare does anything else
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _submit(self, images: Sequence) -> Callable[[], list[bytes | CorruptImage]]:
        """Start encoding one batch; the returned callable waits for its results.

        Already-encoded ``bytes`` pass through unchanged.
        """
        todo = [i for i, s in enumerate(images) if not isinstance(s, (bytes, bytearray))]
        sources = [images[i] for i in todo]
        if self._pool is None:
            def run() -> list:
                return _encode_chunk(sources, self.fmt)
        else:
            futures = [self._pool.submit(_encode_chunk, sources[k:k + self.CHUNK], self.fmt)
                       for k in range(0, len(sources), self.CHUNK)]

            def run() -> list:
                return [r for f in futures for r in f.result()]

        def results() -> list:
            out = list(images)
            for i, result in zip(todo, run()):
                out[i] = result
            return out
        return results

    def encode(self, images: Sequence) -> list[bytes | CorruptImage]:
        """Encode one batch of sources."""
        return self._submit(images)()

    def encode_batches(self, batches: Iterable[Mapping[str, Sequence]]) -> Iterator[tuple[Mapping, list]]:
        """``(batch, encoded images)`` for each row batch, in order, encoding ahead."""
        pending: deque = deque()
        for batch in batches:
            pending.append((batch, self._submit(batch["image"])))
            if len(pending) > self.AHEAD:
                done, results = pending.popleft()
                yield done, results()
        while pending:
            done, results = pending.popleft()
            yield done, results()


def default_workers() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
