"""Fake but plausible operating curves (correct vs info recall) for figure tests and examples.

A curve starts at (0, 1) (threshold 1: only the root is predicted, always
correct) and falls to the leaf top-1 accuracy at the experiment's largest info
recall, ``correct(r) = 1 - (1 - top1) * (r / r_max) ** p``; ``top1``, ``r_max``
and ``p`` are drawn per experiment from a hash of its name, so curves differ
but are stable from run to run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def _uniform(name: str, what: str, lo: float, hi: float) -> float:
    digest = hashlib.sha256(f"{name}/{what}".encode()).digest()
    return lo + (hi - lo) * int.from_bytes(digest[:8], "big") / 2**64


def write_fake_curve(path: Path, name: str, rows: int = 201) -> Path:
    top1 = _uniform(name, "top1", 0.15, 0.6)
    r_max = _uniform(name, "r_max", 0.75, 0.98)
    p = _uniform(name, "p", 1.2, 3.5)
    lines = ["threshold,info_recall,info_precision,correct"]
    for i in range(rows):
        t = 1 - i / (rows - 1)
        r = r_max * (1 - t)
        correct = 1 - (1 - top1) * (r / r_max) ** p
        lines.append(f"{t:.4f},{r:.6f},{min(1.0, correct + 0.05):.6f},{correct:.6f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_fake_curves(root: Path, dataset: str, experiments: Iterable[tuple[str, str]]) -> list[Path]:
    """``root/<dataset>/<method>/<inference>.csv`` for every experiment."""
    return [
        write_fake_curve(root / dataset / m / f"{i}.csv", f"{dataset}/{m}/{i}")
        for m, i in experiments
    ]
