"""Tests of the operating-curve figure (Valmadre 2022 curves, as used by the HCCF paper)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxonbench.errors import TaxonbenchError
from taxonbench.plots.curves import plot_operating_curves, read_curve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_curve(path: Path, scale: float = 1.0) -> Path:
    """A fake 1001-row curve CSV, thresholds 1.000 ... 0.000."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["threshold,info_recall,info_precision,correct"]
    for i in range(1001):
        t = 1 - i / 1000
        recall = 1 - t
        lines.append(f"{t:.3f},{recall:.6f},{0.9:.6f},{scale * (1 - 0.5 * recall):.6f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_plot_writes_png(tmp_path):
    a = write_curve(tmp_path / "curves" / "d" / "flat_softmax" / "bottom_up.csv")
    b = write_curve(tmp_path / "curves" / "d" / "hccf" / "diffusion.csv", scale=0.9)
    out = tmp_path / "figures" / "curves.png"
    result = plot_operating_curves(
        {"flat_softmax / bottom_up": a, "hccf / diffusion": b}, out, "Operating curves (d)"
    )
    assert result == out
    data = out.read_bytes()
    assert len(data) > 0 and data.startswith(PNG_MAGIC)
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # no temporary left


def test_read_curve(tmp_path):
    xs, ys = read_curve(write_curve(tmp_path / "c.csv"))
    assert len(xs) == len(ys) == 1001
    assert xs[0] == 0.0 and ys[0] == 1.0


def test_missing_curve_file_named(tmp_path):
    good = write_curve(tmp_path / "a.csv")
    missing = tmp_path / "nope" / "b.csv"
    out = tmp_path / "fig.png"
    with pytest.raises(TaxonbenchError) as e:
        plot_operating_curves({"a": good, "b": missing}, out, "t")
    assert str(missing) in str(e.value)
    assert not out.exists()


def test_bad_curve_files(tmp_path):
    no_col = tmp_path / "no_col.csv"
    no_col.write_text("threshold,info_precision,correct\n1.0,0.5,0.5\n")
    with pytest.raises(TaxonbenchError, match="info_recall"):
        plot_operating_curves({"x": no_col}, tmp_path / "f.png", "t")
    bad_num = tmp_path / "bad.csv"
    bad_num.write_text("threshold,info_recall,info_precision,correct\n1.0,abc,0.5,0.5\n")
    with pytest.raises(TaxonbenchError, match="line 2"):
        plot_operating_curves({"x": bad_num}, tmp_path / "f.png", "t")
    with pytest.raises(TaxonbenchError):
        plot_operating_curves({}, tmp_path / "f.png", "t")
