"""Operating-curve figures: correct vs. info recall, one panel per paper table.

The curves are those of Valmadre (2022), "Hierarchical classification at
multiple operating points", which the HCCF paper's AP/AC/R@XC metrics are
read from: ``correct`` (y) against ``info_recall`` (x, the specificity of the
predictions) as the threshold sweeps from 1 to 0. Input: curve CSVs
``results/curves/<dataset>/<method>/<inference>.csv`` with columns
``threshold,info_recall,info_precision,correct``.

:func:`plot_dataset_curves` draws one panel per paper table built on the
dataset (the params ``tables:`` block, resolved by
:func:`taxonbench.tables.resolve_table`): the curves of the table's rows,
labelled with the paper's row labels, and the paper's operating points where
the paper gives them. A row's paper R@90C and R@95C (the table's reference
CSV, read in the table's number format, e.g. percentages) are the points
``(R@90C, 0.90)`` and ``(R@95C, 0.95)`` of the correct-vs-info-recall plane:
the info recall at which the paper's curve reaches 90 % / 95 % correct. They
are drawn in the colour of the row's curve (circle: R@90C, square: R@95C).
Curves of experiments in no table go into "other experiments" panels, at most
:data:`MAX_CURVES_PER_PANEL` per panel, grouped by method. Every legend is
outside its axes; the figure sizes itself from the number of panels and the
longest label, and constrained layout keeps titles, axes and legends apart.

Drawn with the Agg backend on a private Figure (no pyplot global state) and
written atomically; every curve is read and checked before anything is drawn.
"""

from __future__ import annotations

import csv
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from taxonbench.errors import TaxonbenchError
from taxonbench.io import atomic_path

X_COLUMN = "info_recall"
Y_COLUMN = "correct"
X_LABEL = "info recall"
Y_LABEL = "correct"

#: Metric key of a table column -> the correct level its paper number is the info recall at.
PAPER_POINTS: dict[str, float] = {"r_at_90c": 0.90, "r_at_95c": 0.95}
#: Marker of each paper point, and its legend text.
POINT_MARKERS: dict[str, tuple[str, str]] = {
    "r_at_90c": ("o", "paper R@90C (at correct 0.90)"),
    "r_at_95c": ("s", "paper R@95C (at correct 0.95)"),
}
#: An "other experiments" panel holds at most this many curves.
MAX_CURVES_PER_PANEL = 12

Experiment = tuple[str, str]  # (method, inference)


def read_curve(path: str | os.PathLike) -> tuple[list[float], list[float]]:
    """``(info_recall, correct)`` of a curve CSV; errors name the file, row and column."""
    path = Path(path)
    if not path.is_file():
        raise TaxonbenchError(f"curve file not found: {path}")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (X_COLUMN, Y_COLUMN) if c not in (reader.fieldnames or [])]
        if missing:
            raise TaxonbenchError(
                f"{path}: missing column(s) {missing}; header is {reader.fieldnames}"
            )
        xs: list[float] = []
        ys: list[float] = []
        for line_no, row in enumerate(reader, start=2):
            try:
                x, y = float(row[X_COLUMN]), float(row[Y_COLUMN])
            except (TypeError, ValueError):
                raise TaxonbenchError(
                    f"{path}, line {line_no}: {X_COLUMN}={row[X_COLUMN]!r}, "
                    f"{Y_COLUMN}={row[Y_COLUMN]!r}; expected numbers"
                ) from None
            if not (math.isfinite(x) and math.isfinite(y)):
                raise TaxonbenchError(f"{path}, line {line_no}: non-finite value")
            xs.append(x)
            ys.append(y)
    if not xs:
        raise TaxonbenchError(f"{path}: no data rows")
    return xs, ys


def experiment_of(path: str | os.PathLike) -> tuple[str | None, str, str]:
    """``(dataset, method, inference)`` of ``.../<dataset>/<method>/<inference>.csv`` (dataset
    ``None`` for a path of two parts)."""
    parts = Path(path).with_suffix("").parts
    if len(parts) < 2:
        raise TaxonbenchError(f"curve path {path}: expected .../<dataset>/<method>/<inference>.csv")
    return (parts[-3] if len(parts) >= 3 else None), parts[-2], parts[-1]


# --------------------------------------------------------------------------- panels


@dataclass(frozen=True)
class PaperPoint:
    """One operating point the paper reports: ``(x, y)`` on the correct-vs-info-recall plane."""

    metric: str  # a key of PAPER_POINTS
    x: float
    y: float


@dataclass
class Panel:
    """One axes of the figure: a title and its curves (legend label -> experiment, in order)."""

    title: str
    curves: dict[str, Experiment] = field(default_factory=dict)
    points: dict[str, list[PaperPoint]] = field(default_factory=dict)  # legend label -> points
    note: str = ""  # shown under the title (rows not run)
    table: str | None = None  # the table id, for table panels


def table_panel(table_id: str, params: Mapping, dataset: str, available: set[Experiment]) -> Panel | None:
    """The panel of one table on ``dataset`` (``None`` if the table is not built on it, or if no cell reads an
    inference with an operating curve: node scores, e.g. not HiMulCon's retrieval table).

    A row whose cells on ``dataset`` read one experiment is one curve,
    labelled with the row's label; an experiment several rows share (e.g.
    levels as rows) is labelled ``method / inference``. Paper points come from
    the columns whose metric key is in :data:`PAPER_POINTS`.
    """
    from taxonbench.declarations import inference_declarations
    from taxonbench.tables import load_reference, resolve_table

    declared = inference_declarations()

    def curved(inference: str) -> bool:  # the label-graph rows name no registered inference: no curve
        return inference in declared and declared[inference].produces == "node_prob"

    job = resolve_table(table_id, params)
    if dataset not in job.our_datasets:
        return None
    spec = job.spec
    reference = load_reference(spec)
    per_row: list[tuple[str, list[Experiment], list[PaperPoint]]] = []
    for row in spec.rows:
        experiments: list[Experiment] = []
        points: list[PaperPoint] = []
        for column in spec.columns:
            address = spec.cell_of(row, column)
            d, method, inference = job.experiment(address)
            if d != dataset or not curved(inference):
                continue
            if (method, inference) not in experiments:
                experiments.append((method, inference))
            if address.metric in PAPER_POINTS:
                text = reference.get(spec.reference_key(row), {}).get(column.label, "")  # type: ignore[arg-type]
                x = spec.number_format.paper_fraction(text)
                if x is not None and math.isfinite(x):
                    points.append(PaperPoint(address.metric, x, PAPER_POINTS[address.metric]))
        if experiments:
            per_row.append((row.display, experiments, points))
    if not per_row:
        return None
    counts: dict[Experiment, int] = {}
    for _, experiments, _ in per_row:
        for e in experiments:
            counts[e] = counts.get(e, 0) + 1
    title = textwrap.fill(f"{spec.source or spec.id} ({spec.id})", 48)
    if spec.caption:
        title += "\n" + textwrap.fill(spec.caption, 48)
    panel = Panel(title=title, table=spec.id)
    not_run = 0
    for label, experiments, points in per_row:
        ran = [e for e in experiments if e in available]
        if not ran:
            not_run += 1
        for e in ran:
            name = label if counts[e] == 1 and len(experiments) == 1 else f"{e[0]} / {e[1]}"
            if e in panel.curves.values():
                continue
            panel.curves[name] = e
            if len(experiments) == 1 and points:
                panel.points[name] = points
    if not_run:
        panel.note = f"{not_run} of {len(per_row)} rows not run"
    return panel


def other_panels(experiments: Sequence[Experiment], max_curves: int = MAX_CURVES_PER_PANEL,
                 title: str = "Other experiments") -> list[Panel]:
    """Panels of at most ``max_curves`` curves, one method's curves together where they fit."""
    by_method: dict[str, list[Experiment]] = {}
    for e in sorted(experiments):
        by_method.setdefault(e[0], []).append(e)
    chunks: list[list[Experiment]] = []
    current: list[Experiment] = []
    for group in by_method.values():
        while len(group) > max_curves:  # one method with more inference than a panel holds
            if current:
                chunks.append(current)
                current = []
            chunks.append(group[:max_curves])
            group = group[max_curves:]
        if len(current) + len(group) > max_curves:
            chunks.append(current)
            current = []
        current = current + group
    if current:
        chunks.append(current)
    panels = []
    for i, chunk in enumerate(chunks, start=1):
        methods = ", ".join(dict.fromkeys(m for m, _ in chunk))
        name = title if len(chunks) == 1 else f"{title} ({i}/{len(chunks)})"
        panels.append(Panel(
            title=name + "\n" + textwrap.fill(methods, 48),
            curves={f"{m} / {i_}": (m, i_) for m, i_ in chunk},
        ))
    return panels


def dataset_panels(
    experiments: Sequence[Experiment], dataset: str | None, tables: Mapping[str, Mapping] | None
) -> list[Panel]:
    """Table panels (params order) then "other experiments" panels for the given experiments."""
    available = set(experiments)
    panels: list[Panel] = []
    if tables and dataset is not None:
        for table_id, params in tables.items():
            panel = table_panel(table_id, params, dataset, available)
            if panel is not None:
                panels.append(panel)
    shown = {e for p in panels for e in p.curves.values()}
    rest = [e for e in dict.fromkeys(experiments) if e not in shown]
    if rest:
        panels += other_panels(rest, title="Other experiments" if panels else "Experiments")
    return panels


# --------------------------------------------------------------------------- drawing

_LEGEND_FONT = 7.5
_CHAR_IN = 0.058  # approximate width of one legend character at _LEGEND_FONT, inches
_AXES_IN = 3.3


def _colours(n: int) -> list:
    """tab10 colours; past ten curves the colours repeat with another line style (:data:`_STYLES`)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


_STYLES = ["-", "--", "-.", ":"]


def draw_panels(
    panels: Sequence[Panel], data: Mapping[Experiment, tuple[list[float], list[float]]], title: str
) -> Figure:
    """The figure: a grid of panels, each with its legend outside the axes (to the right)."""
    n = len(panels)
    ncols = 1 if n == 1 else 2
    nrows = math.ceil(n / ncols)
    longest = max((len(label) for p in panels for label in p.curves), default=10)
    longest = max(longest, max(len(t) for _, t in POINT_MARKERS.values()))
    legend_in = min(0.6 + _CHAR_IN * longest, 4.2)
    most = max((len(p.curves) for p in panels), default=1) + len(POINT_MARKERS)
    row_in = max(_AXES_IN + 1.3, 0.2 * most + 1.3)
    width = ncols * (_AXES_IN + 0.8 + legend_in)
    height = nrows * row_in + 1.0
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        _draw_panel(ax, panel, data)
    for ax in list(axes.flat)[n:]:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=12)
    caption = (
        "Operating curves: correct vs info recall as the threshold goes from 1 to 0. "
        "A table panel shows the rows of one paper table, labelled as in the paper; "
        "markers: the paper's own R@90C (circle) and R@95C (square) of that row, in the colour "
        "of its curve. Other panels: the experiments of no table, by method."
    )
    fig.supxlabel(textwrap.fill(caption, int(width * 15)), fontsize=8)  # ~15 characters of 8 pt per inch
    return fig


def _draw_panel(ax, panel: Panel, data) -> None:
    colours = _colours(len(panel.curves))
    handles = []
    for i, (label, experiment) in enumerate(panel.curves.items()):
        xs, ys = data[experiment]
        (line,) = ax.plot(xs, ys, label=label, color=colours[i], linewidth=1.4,
                          linestyle=_STYLES[(i // 10) % len(_STYLES)])
        handles.append(line)
        for point in panel.points.get(label, []):
            marker = POINT_MARKERS[point.metric][0]
            ax.plot([point.x], [point.y], marker=marker, markersize=7, color=colours[i],
                    markeredgecolor="black", markeredgewidth=0.7, linestyle="none",
                    gid=f"paper_point:{label}:{point.metric}", clip_on=False, zorder=5)
    if panel.points:
        for metric, (marker, text) in POINT_MARKERS.items():
            if any(p.metric == metric for pts in panel.points.values() for p in pts):
                handles.append(Line2D([], [], marker=marker, color="0.6", markeredgecolor="black",
                                      markeredgewidth=0.7, linestyle="none", label=text))
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    title = panel.title + (f"\n({panel.note})" if panel.note else "")
    ax.set_title(title, fontsize=8.5)
    ax.grid(True, alpha=0.3)
    if panel.table is None and not panel.curves:
        return
    if not panel.curves:
        ax.text(0.5, 0.5, "no curve of this table's rows", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)
        return
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0,
              fontsize=_LEGEND_FONT, frameon=False)


def dataset_figure(
    curve_paths: Sequence[str | os.PathLike],
    title: str,
    tables: Mapping[str, Mapping] | None = None,
    dataset: str | None = None,
) -> Figure:
    """The figure of :func:`plot_dataset_curves` (not written)."""
    if not curve_paths:
        raise TaxonbenchError("curves figure: no curves given")
    located = [experiment_of(p) for p in curve_paths]
    if dataset is None:
        found = {d for d, _, _ in located}
        dataset = found.pop() if len(found) == 1 else None
        if tables and dataset is None:
            raise TaxonbenchError("curves figure: curves of several datasets; name the dataset")
    several = len({d for d, _, _ in located}) > 1  # no table panels: name the dataset in the label
    data = {
        (f"{d}/{m}" if several else m, i): read_curve(p)
        for (d, m, i), p in zip(located, curve_paths, strict=True)
    }
    return draw_panels(dataset_panels(list(data), dataset, tables), data, title)


def plot_dataset_curves(
    curve_paths: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    title: str,
    tables: Mapping[str, Mapping] | None = None,
    dataset: str | None = None,
) -> Path:
    """Plot the curves of one dataset, one panel per table built on it; write a PNG to ``out_path``.

    ``curve_paths`` are ``.../<dataset>/<method>/<inference>.csv``;
    ``tables`` the params ``tables:`` block (``{id: {dataset|datasets, model}}``;
    ``None``: no table panels); ``dataset`` defaults to the dataset of the
    paths when they share one. Every curve is read (and checked) before the
    figure is drawn, so a missing or malformed file leaves ``out_path``
    untouched. Returns ``out_path``.
    """
    return _save(dataset_figure(curve_paths, title, tables, dataset), out_path)


def plot_operating_curves(
    curves: Mapping[str, str | os.PathLike], out_path: str | os.PathLike, title: str
) -> Path:
    """Plot correct vs. info recall for each ``label -> curve CSV``, no tables; write a PNG.

    The curves go into panels of at most :data:`MAX_CURVES_PER_PANEL`, legends
    outside the axes. Returns ``out_path``.
    """
    if not curves:
        raise TaxonbenchError("plot_operating_curves: no curves given")
    data = {(label, ""): read_curve(path) for label, path in curves.items()}
    panels = []
    labels = list(curves)
    chunks = [labels[i:i + MAX_CURVES_PER_PANEL] for i in range(0, len(labels), MAX_CURVES_PER_PANEL)]
    for k, chunk in enumerate(chunks, start=1):
        name = "Experiments" if len(chunks) == 1 else f"Experiments ({k}/{len(chunks)})"
        panels.append(Panel(title=name, curves={label: (label, "") for label in chunk}))
    return _save(draw_panels(panels, data, title), out_path)


def _save(fig: Figure, out_path: str | os.PathLike) -> Path:
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png")
    return out_path
