"""Atomic file writing: write to a temporary sibling, then rename.

A killed or failed step never leaves a file that reads as complete, and a file
that existed before is only replaced once its successor is whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, missing: str, corrupt: str) -> Any:
    """A JSON file; ``missing`` / ``corrupt`` are the messages (``{path}``, and ``{exc}`` for the parser's
    reason, filled in) of the :class:`~taxonbench.errors.TaxonbenchError` raised when it is absent or not JSON."""
    from taxonbench.errors import TaxonbenchError

    path = Path(path)
    if not path.exists():
        raise TaxonbenchError(missing.format(path=path))
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TaxonbenchError(corrupt.format(path=path, exc=exc)) from None


def write_torch_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (a killed job leaves no half-written file); the path."""
    import torch

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def load_weights_only(path: str | os.PathLike, what: str, missing_hint: str = "") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors naming the file.

    A missing file: ``"<what> not found: <path>"`` (+ hint); an unreadable one:
    ``"<path>: corrupt <what> (<reason>)"``. torch is imported here, not at
    module import, so the Snakefile's imports stay light.
    """
    import torch

    from taxonbench.errors import TaxonbenchError

    path = Path(path)
    if not path.exists():
        raise TaxonbenchError(f"{what} not found: {path}{missing_hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged or foreign files
        from taxonbench.recovery import rebuild_hint

        raise TaxonbenchError(f"{path}: corrupt or truncated {what} ({exc}){rebuild_hint(path)}") from None
