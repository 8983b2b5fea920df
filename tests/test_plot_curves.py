"""Tests of the operating-curve figure (Valmadre 2022 curves, as used by the HCCF paper):
one panel per paper table, legends outside the axes, the paper's operating points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curve_fixtures import write_fake_curves
from taxonbench.cli import main
from taxonbench.errors import TaxonbenchError
from taxonbench.plots.curves import (
    MAX_CURVES_PER_PANEL,
    dataset_figure,
    other_panels,
    plot_dataset_curves,
    plot_operating_curves,
    read_curve,
)
from taxonbench.tables import TABLES, load_reference

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


# --------------------------------------------------------------------------- one panel per table

#: the params ``tables:`` block of the default experiment set
TABLES_SETTINGS = {
    "hccf_table1": {"dataset": "syn_tail"},
    "hccf_table2": {"dataset": "syn_bal"},
    "hccf_table3": {"dataset": "syn_tail"},
    "hccf_table4": {"dataset": "syn_tail"},
    "hccf_table5": {"dataset": "syn_tail", "model": "hccf"},
    "hccf_table6": {"dataset": "syn_tail"},
}
ON_TAIL = ["hccf_table1", "hccf_table3", "hccf_table4", "hccf_table5", "hccf_table6"]
#: experiments of no table: 14 curves, so two "other experiments" panels
OTHERS = [(m, i) for m in ("hxe", "soft_labels") for i in ("bottom_up", "diffusion", "top_down")] + [
    ("cond_softmax", i) for i in ("diffusion", "top_down", "advanced_top_down", "bottom_up")
] + [("deep_rtc", i) for i in ("diffusion", "top_down", "bottom_up", "differentiable_diffusion")]


def table_experiments(table_ids, skip=()):
    out = []
    for table_id in table_ids:
        spec = TABLES.get(table_id)
        model = TABLES_SETTINGS[table_id].get("model")
        for row in spec.rows:
            e = row.resolve(model or spec.default_model)
            if e not in out and e not in skip:
                out.append(e)
    return out


def fake_run(root, skip=()):
    experiments = table_experiments(ON_TAIL, skip) + OTHERS
    return write_fake_curves(root / "curves", "syn_tail", experiments)


def _bbox(artist, fig):
    return artist.get_window_extent().transformed(fig.transFigure.inverted())


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.fixture(scope="module")
def tail_figure(tmp_path_factory):
    root = tmp_path_factory.mktemp("curves")
    paths = fake_run(root)
    fig = dataset_figure(paths, "Operating curves: syn_tail", TABLES_SETTINGS, "syn_tail")
    fig.canvas.draw()
    return fig


def panels_of(fig):
    return [ax for ax in fig.axes if ax.axison]


def test_one_panel_per_table_on_the_dataset_plus_other_panels(tail_figure):
    axes = panels_of(tail_figure)
    titles = [ax.get_title() for ax in axes]
    assert len(axes) == len(ON_TAIL) + 2
    for table_id, title in zip(ON_TAIL, titles, strict=False):
        assert f"({table_id})" in title
    assert "hccf_table2" not in " ".join(titles)  # built on the other dataset
    assert titles[-2].startswith("Other experiments (1/2)") and titles[-1].startswith("Other experiments (2/2)")
    for ax in axes:
        assert ax.get_xlabel() == "info recall" and ax.get_ylabel() == "correct"
        assert len(ax.get_legend().get_texts()) <= MAX_CURVES_PER_PANEL + 2


def test_legend_labels_are_the_row_labels(tail_figure):
    axes = panels_of(tail_figure)
    t1 = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert t1[:10] == [r.label for r in TABLES.get("hccf_table1").rows]
    assert t1[10:] == ["paper R@90C (at correct 0.90)", "paper R@95C (at correct 0.95)"]
    others = [t.get_text() for ax in axes[-2:] for t in ax.get_legend().get_texts()]
    assert sorted(others) == sorted(f"{m} / {i}" for m, i in OTHERS)


def test_legends_titles_and_axes_do_not_overlap(tail_figure):
    fig = tail_figure
    axes = panels_of(fig)
    legends = [ax.get_legend() for ax in axes]
    titles = [ax.title for ax in axes]
    for i, ax in enumerate(axes):
        box = _bbox(ax, fig)
        assert 0 <= box.x0 and box.x1 <= 1 and 0 <= box.y0 and box.y1 <= 1
        for j, legend in enumerate(legends):
            lb = _bbox(legend, fig)
            assert 0 <= lb.x0 and lb.x1 <= 1 and 0 <= lb.y0 and lb.y1 <= 1, f"legend {j} leaves the figure"
            assert not _overlap(ax.get_window_extent().transformed(fig.transFigure.inverted()), lb), (i, j)
            if i != j:
                assert not _overlap(_bbox(legends[i], fig), lb), (i, j)
        for j, title in enumerate(titles):
            tb = _bbox(title, fig)
            assert not _overlap(box, tb), (i, j)
            assert not _overlap(_bbox(legends[i], fig), tb), (i, j)


def test_paper_points_drawn_for_rows_with_paper_numbers(tail_figure):
    axes = panels_of(tail_figure)
    t1 = axes[0]
    points = {ln.get_gid(): ln for ln in t1.lines if (ln.get_gid() or "").startswith("paper_point:")}
    assert len(points) == 2 * 10  # every Table 1 row has R@90C and R@95C in the paper
    ref = load_reference(TABLES.get("hccf_table1"))
    label = "Flat softmax (Bertinetto et al., 2020)"
    p90 = points[f"paper_point:{label}:r_at_90c"]
    p95 = points[f"paper_point:{label}:r_at_95c"]
    assert p90.get_xdata()[0] == pytest.approx(float(ref[label]["R@90C"]) / 100)
    assert p90.get_ydata()[0] == 0.90 and p95.get_ydata()[0] == 0.95
    assert p90.get_marker() != p95.get_marker()
    curve = next(ln for ln in t1.lines if ln.get_label() == label)
    assert p90.get_color() == curve.get_color() == p95.get_color()
    for ax in axes[-2:]:  # other experiments: no paper numbers
        assert not [ln for ln in ax.lines if (ln.get_gid() or "").startswith("paper_point:")]


def test_rows_not_run_are_noted_and_figure_written(tmp_path):
    skip = {("flat_softmax", "bottom_up"), ("hccf", "diffusion")}
    paths = fake_run(tmp_path, skip=skip)
    out = tmp_path / "fig" / "operating_curves_syn_tail.png"
    assert plot_dataset_curves(paths, out, "t", TABLES_SETTINGS, "syn_tail") == out
    assert out.read_bytes().startswith(PNG_MAGIC)
    fig = dataset_figure(paths, "t", TABLES_SETTINGS)  # the dataset read from the paths
    titles = [ax.get_title() for ax in panels_of(fig)]
    assert "(2 of 10 rows not run)" in titles[0]
    assert "(1 of 5 rows not run)" in titles[3]  # Table 5: HCCF + diffusion


def test_cli_curves_figure_with_tables(tmp_path):
    paths = fake_run(tmp_path)
    out = tmp_path / "operating_curves_syn_tail.png"
    rc = main(["curves-figure", "--title", "Operating curves: syn_tail", "--tables",
               json.dumps(TABLES_SETTINGS), "--dataset", "syn_tail", "--out", str(out), *map(str, paths)])
    assert rc == 0 and out.read_bytes().startswith(PNG_MAGIC)
    rc = main(["curves-figure", "--tables", "{bad", "--out", str(tmp_path / "x.png"), str(paths[0])])
    assert rc == 2 and not (tmp_path / "x.png").exists()


def test_no_tables_splits_many_curves_into_panels(tmp_path):
    experiments = [(f"m{i:02d}", "bottom_up") for i in range(30)]
    paths = write_fake_curves(tmp_path, "d", experiments)
    fig = dataset_figure(paths, "t")
    axes = panels_of(fig)
    assert len(axes) == 3
    assert sum(len(ax.get_legend().get_texts()) for ax in axes) == 30


def test_other_panels_keep_a_method_together():
    experiments = [("a", str(i)) for i in range(5)] + [("b", str(i)) for i in range(9)] + [("c", "x")]
    panels = other_panels(experiments, max_curves=12)
    assert [sorted({m for m, _ in p.curves.values()}) for p in panels] == [["a"], ["b", "c"]]
    big = other_panels([("a", str(i)) for i in range(30)], max_curves=12)
    assert [len(p.curves) for p in big] == [12, 12, 6]


def test_a_table_without_curved_inference_gets_no_panel():
    """HiMulCon Table 4 reads retrieval of embeddings (no operating curve): no empty panel for it; Table 1's
    linear probe gives node scores, so it has one."""
    from taxonbench.plots.curves import table_panel

    datasets = {"datasets": {k: "d" for k in ("DeepFashion", "iNaturalist", "ModelNet40")}}
    assert table_panel("himulcon_table4", datasets, "d", set()) is None
    probe = {"datasets": {k: "d" for k in ("ImageNet", "DeepFashion", "iNaturalist", "ModelNet40")}}
    panel = table_panel("himulcon_table1", probe, "d", {("himulcone", "linear_probe")})
    assert panel is not None and list(panel.curves.values()) == [("himulcone", "linear_probe")]
    # the thesis's label-graph tables read no registered inference: no panel, no error
    assert table_panel("dhall_thesis_table6_1", {"dataset": "d"}, "d", set()) is None
