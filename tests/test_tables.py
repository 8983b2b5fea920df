"""Tests of the table specs (HCCF paper Tables 1-6, toy tables of other shapes) and their CSV/LaTeX/vs-paper
rendering: axes, dataset columns, number formats and units (docs/tables.md)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from table_fixtures import GOLDEN_BUILDS, GOLDEN_DIR, write_golden_metrics
from taxonbench.errors import TaxonbenchError
from taxonbench.tables import (
    FRACTION_4,
    PERCENT_2,
    TABLES,
    Address,
    Entry,
    RowSpec,
    TableSpec,
    build_table,
    build_tables,
    format_value,
    levels,
    load_reference,
    product,
)
from taxonbench.tables.render import latex_escape, read_metrics
from taxonbench.tables.spec import reference_text

HCCF_IDS = [f"hccf_table{i}" for i in range(1, 7)]
KEYS = ["ap", "ac", "r_at_90c", "r_at_95c", "majority_f1", "leaf_f1", "leaf_top1"]


def write_metrics(root: Path, dataset: str, method: str, inference: str, **overrides) -> Path:
    """A fake metrics JSON; values 0.1, 0.2, ... unless overridden."""
    data = {k: (i + 1) / 10 for i, k in enumerate(KEYS)}
    data.update(n_samples=100, mistake_severity=1.5, some_unknown_key=42.0)
    data.update(overrides)
    path = root / dataset / method / f"{inference}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


# --------------------------------------------------------------------------- specs


def test_all_hccf_tables_registered():
    assert set(HCCF_IDS) <= set(TABLES.names())


@pytest.mark.parametrize("table_id", HCCF_IDS)
def test_spec_matches_its_reference_csv(table_id):
    """The spec's label/metric columns and every row label exist in the copied reference CSV,
    and the spec covers every paper row, in the paper's order."""
    spec = TABLES.get(table_id)
    reader = csv.DictReader(io.StringIO(reference_text(spec)))
    header = reader.fieldnames
    assert spec.label_column == header[0]
    assert spec.column_labels == header[1:]
    paper_labels = [row[spec.label_column] for row in reader]
    assert [r.label for r in spec.rows] == paper_labels
    ref = load_reference(spec)
    assert set(ref) == set(paper_labels)


def test_reference_copies_present():
    """Every reference CSV of the project's copy parses with a header and uniform row width."""
    from importlib import resources

    ref_dir = resources.files("taxonbench.tables").joinpath("reference")
    names = sorted(p.name for p in ref_dir.iterdir() if p.name.endswith(".csv"))
    assert len(names) == 34
    assert ref_dir.joinpath("README.md").is_file()
    for name in names:
        rows = list(csv.reader(io.StringIO(ref_dir.joinpath(name).read_text(encoding="utf-8"))))
        assert len(rows) >= 2, name
        assert {len(r) for r in rows} == {len(rows[0])}, name


def test_reference_numbers_kept_verbatim():
    ref1 = load_reference(TABLES.get("hccf_table1"))
    assert ref1["Flat softmax (Bertinetto et al., 2020)"]["AP"] == "61.18"
    assert ref1["HCCF + diffusion"]["Leaf Top1"] == "56.33"
    ref3 = load_reference(TABLES.get("hccf_table3"))
    assert ref3["CE loss + text embedding + L67"]["AC"] == "65.7"  # one decimal, as printed
    assert load_reference(TABLES.get("hccf_table6"))["HCCF L67 diffusion"]["Maj F1"] == "74.57"


def test_mappings():
    t1 = TABLES.get("hccf_table1")
    assert [(r.method, r.inference) for r in t1.rows][-2:] == [
        ("hccf", "bottom_up"),
        ("hccf", "diffusion"),
    ]
    assert t1.rows[0].inference == "bottom_up"  # the flat softmax's own node scores are bottom-up sums
    assert all(r.inference == "native" for r in t1.rows[1:8])
    t3 = TABLES.get("hccf_table3")
    assert (t3.rows[0].method, t3.rows[0].inference) == (t1.rows[0].method, t1.rows[0].inference)  # one model
    t4 = TABLES.get("hccf_table4")
    assert t4.rows[-1].method == "hccf" and t4.rows[0].method == "hccf_L7"
    t5 = TABLES.get("hccf_table5")
    assert t5.is_parametrized and t5.default_model == "hccf"
    assert [r.inference for r in t5.rows] == [
        "top_down",
        "advanced_top_down",
        "bottom_up",
        "diffusion",
        "differentiable_diffusion",
    ]
    t6 = TABLES.get("hccf_table6")
    assert {(r.method, r.inference) for r in t6.rows} == {
        (m, i)
        for m in ("hccf", "hccf_L67", "ce_text_init_levels_L1234567")  # "Flat softmax": Table 3's CE + text + L1234567
        for i in ("bottom_up", "diffusion", "differentiable_diffusion")
    }


def test_spec_is_frozen_and_validated():
    spec = TABLES.get("hccf_table1")
    with pytest.raises(AttributeError):
        spec.id = "x"  # type: ignore[misc]
    assert isinstance(spec.rows, tuple) and isinstance(spec.columns, tuple)
    with pytest.raises(ValueError):
        TableSpec("t", "p", "c", "f.csv", "Model", [("ap", "AP")], [RowSpec("a", None, "bu")])
    with pytest.raises(ValueError):
        TableSpec(
            "t", "p", "c", "f.csv", "Model", [("ap", "AP")],
            [RowSpec("a", "m", "bu"), RowSpec("a", "m", "td")],
        )


# --------------------------------------------------------------------------- building


@pytest.fixture
def table1_run(tmp_path):
    """Table 1 with three rows run (out of the paper's order on disk) on dataset 'syn_tail'."""
    root = tmp_path / "metrics"
    write_metrics(root, "syn_tail", "hccf", "diffusion", ap=0.7348)
    write_metrics(root, "syn_tail", "flat_softmax", "bottom_up", ap=0.61184, leaf_top1=0.5)
    write_metrics(root, "syn_tail", "cond_softmax", "native", ac=1.0, r_at_95c=0.0)
    # a run on another dataset must not leak in
    write_metrics(root, "other", "hccf", "bottom_up")
    out = tmp_path / "tables"
    paths = build_table("hccf_table1", "syn_tail", root, out)
    return out, paths


def test_build_table_writes_three_files(table1_run):
    out, paths = table1_run
    assert paths == [
        out / "hccf_table1.csv",
        out / "hccf_table1.tex",
        out / "hccf_table1_vs_paper.csv",
    ]
    assert all(p.is_file() for p in paths)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_csv_percentages_order_and_rows_left_out(table1_run):
    out, _ = table1_run
    lines = (out / "hccf_table1.csv").read_text().splitlines()
    assert lines[0] == "Model,AP,AC,R@90C,R@95C,Majority F1,Leaf F1,Leaf Top1"
    rows = read_csv(out / "hccf_table1.csv")
    assert [r["Model"] for r in rows] == [
        "Flat softmax (Bertinetto et al., 2020)",
        "Cond softmax (Redmon & Farhadi, 2017)",
        "HCCF + diffusion",
    ]
    flat = rows[0]
    assert flat["AP"] == "61.18"
    assert flat["AC"] == "20.00"
    assert flat["Leaf Top1"] == "50.00"
    assert rows[1]["AC"] == "100.00" and rows[1]["R@95C"] == "0.00"
    assert rows[2]["AP"] == "73.48"


def test_latex(table1_run):
    out, _ = table1_run
    tex = (out / "hccf_table1.tex").read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 1
    assert r"\begin{tabular}{lrrrrrrr}" in tex
    assert r"Cond softmax (Redmon \& Farhadi, 2017) & 10.00 & 100.00" in tex
    assert "Redmon & Farhadi" not in tex
    # caption names the dataset (escaped)
    caption = next(line for line in tex.splitlines() if line.startswith(r"\caption{"))
    assert r"syn\_tail" in caption and "HCCF paper Table 1" in caption
    # footnote lists the rows not run, in paper order
    foot = next(line for line in tex.splitlines() if "Not run:" in line)
    assert "Multilabel focal (Lin et al., 2017)" in foot
    assert "Descendant softmax (Valmadre, 2022)" in foot
    assert foot.index("Multilabel focal") < foot.index("Softmargin") < foot.index("; HCCF.")
    assert "Flat softmax" not in foot and "HCCF + diffusion" not in foot
    assert r"R@90C" in tex and "Majority F1" in tex


def test_vs_paper(table1_run):
    out, _ = table1_run
    rows = read_csv(out / "hccf_table1_vs_paper.csv")
    spec = TABLES.get("hccf_table1")
    assert [r["Model"] for r in rows] == [r.label for r in spec.rows]  # every paper row
    header = list(rows[0])
    assert header[:5] == ["Model", "dataset", "method", "inference", "paper dataset"]
    assert header[5:9] == ["AP (ours)", "AP (paper)", "AC (ours)", "AC (paper)"]
    flat = rows[0]
    assert flat["AP (paper)"] == "61.18" and flat["AP (ours)"] == "61.18"
    assert flat["Leaf Top1 (paper)"] == "47.33" and flat["Leaf Top1 (ours)"] == "50.00"
    assert flat["dataset"] == "syn_tail" and flat["paper dataset"] == "iNat18"
    focal = rows[1]
    assert focal["AP (ours)"] == "" and focal["AP (paper)"] == "46.70"
    assert (focal["method"], focal["inference"]) == ("multilabel_focal", "native")
    diff = rows[-1]
    assert (diff["method"], diff["inference"]) == ("hccf", "diffusion")
    assert diff["R@90C (paper)"] == "62.48"


def test_table3_vs_paper_keeps_printed_decimals(tmp_path):
    root = tmp_path / "m"
    write_metrics(root, "d", "ce_text_init_levels_L67", "bottom_up")
    build_table("hccf_table3", "d", root, tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "hccf_table3_vs_paper.csv")
    l67 = next(r for r in rows if r["Models"] == "CE loss + text embedding + L67")
    assert l67["AC (paper)"] == "65.7" and l67["AC (ours)"] == "20.00"
    assert [r["Models"] for r in read_csv(tmp_path / "out" / "hccf_table3.csv")] == [
        "CE loss + text embedding + L67"
    ]


def test_table6_column_label(tmp_path):
    root = tmp_path / "m"
    write_metrics(root, "d", "hccf_L67", "diffusion")
    build_table("hccf_table6", "d", root, tmp_path)
    assert (tmp_path / "hccf_table6.csv").read_text().splitlines()[0].split(",")[5] == "Maj F1"
    rows = read_csv(tmp_path / "hccf_table6_vs_paper.csv")
    assert rows[4]["Maj F1 (paper)"] == "74.57" and rows[4]["Maj F1 (ours)"] == "50.00"


def test_table5_model_parameter(tmp_path):
    root = tmp_path / "m"
    write_metrics(root, "d", "flat_softmax", "top_down", ap=0.5)
    write_metrics(root, "d", "hccf", "diffusion", ap=0.75)
    # default model: hccf (the paper's)
    build_table("hccf_table5", "d", root, tmp_path / "a")
    rows = read_csv(tmp_path / "a" / "hccf_table5.csv")
    assert [(r["Model"], r["AP"]) for r in rows] == [("Diffusion (Ours)", "75.00")]
    # override: flat_softmax
    build_table("hccf_table5", "d", root, tmp_path / "c", model_override="flat_softmax")
    rows = read_csv(tmp_path / "c" / "hccf_table5.csv")
    assert [(r["Model"], r["AP"]) for r in rows] == [("Top-down (Redmon & Farhadi, 2017)", "50.00")]
    assert "flat\\_softmax" in (tmp_path / "c" / "hccf_table5.tex").read_text()
    build_table("hccf_table5", "d", root, tmp_path / "b", model_override="hccf")
    vs = read_csv(tmp_path / "b" / "hccf_table5_vs_paper.csv")
    assert {r["method"] for r in vs} == {"hccf"}


def test_model_override_rejected_for_fixed_tables(tmp_path):
    with pytest.raises(TaxonbenchError, match="hccf_table1"):
        build_table("hccf_table1", "d", tmp_path, tmp_path, model_override="hccf")


def test_nothing_run_still_renders(tmp_path):
    paths = build_table("hccf_table4", "empty", tmp_path / "none", tmp_path / "out")
    assert (tmp_path / "out" / "hccf_table4.csv").read_text() == (
        "Model,AP,AC,R@90C,R@95C,Majority F1,Leaf F1,Leaf Top1\n"
    )
    tex = paths[1].read_text()
    assert "Not run: HCCF L7; HCCF L67" in tex
    assert len(read_csv(paths[2])) == 7


def test_build_tables(tmp_path):
    root = tmp_path / "m"
    write_metrics(root, "a", "hccf", "bottom_up")
    write_metrics(root, "b", "hccf", "differentiable_diffusion")
    paths = build_tables(
        {
            "hccf_table1": {"dataset": "a"},
            "hccf_table5": {"dataset": "b", "model": "hccf"},
        },
        root,
        tmp_path / "out",
    )
    assert [p.name for p in paths] == [
        "hccf_table1.csv",
        "hccf_table1.tex",
        "hccf_table1_vs_paper.csv",
        "hccf_table5.csv",
        "hccf_table5.tex",
        "hccf_table5_vs_paper.csv",
    ]
    assert [r["Model"] for r in read_csv(paths[3])] == ["Differentiable diffusion (Ours)"]


# --------------------------------------------------------------------------- errors


def test_unknown_table_id_lists_valid_ids(tmp_path):
    with pytest.raises(TaxonbenchError) as e:
        build_table("hccf_table9", "d", tmp_path, tmp_path)
    assert "hccf_table9" in str(e.value) and "hccf_table1" in str(e.value)
    with pytest.raises(TaxonbenchError, match="hccf_table6"):
        build_tables({"nope": {"dataset": "d"}}, tmp_path, tmp_path)


def test_build_tables_bad_params(tmp_path):
    with pytest.raises(TaxonbenchError, match="dataset"):
        build_tables({"hccf_table1": {}}, tmp_path, tmp_path / "o")
    with pytest.raises(TaxonbenchError, match="modle"):
        build_tables({"hccf_table5": {"dataset": "d", "modle": "x"}}, tmp_path, tmp_path / "o")
    # nothing written when a later table is invalid
    with pytest.raises(TaxonbenchError):
        build_tables(
            {"hccf_table1": {"dataset": "d"}, "hccf_table2": {"dataset": "d", "model": "x"}},
            tmp_path,
            tmp_path / "o",
        )
    assert not (tmp_path / "o").exists()


def test_corrupt_json_names_file(tmp_path):
    path = write_metrics(tmp_path, "d", "flat_softmax", "bottom_up")
    path.write_text("{not json")
    with pytest.raises(TaxonbenchError) as e:
        build_table("hccf_table1", "d", tmp_path, tmp_path / "out")
    assert str(path) in str(e.value) and "JSON" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_missing_key_names_file_and_key(tmp_path):
    path = write_metrics(tmp_path, "d", "softmargin", "native")
    data = json.loads(path.read_text())
    del data["r_at_95c"]
    path.write_text(json.dumps(data))
    with pytest.raises(TaxonbenchError) as e:
        build_table("hccf_table1", "d", tmp_path, tmp_path / "out")
    assert str(path) in str(e.value) and "r_at_95c" in str(e.value)


@pytest.mark.parametrize("bad", ["0.5", True, [0.5], 73.4, -0.2])
def test_bad_values_raise(tmp_path, bad):
    path = write_metrics(tmp_path, "d", "softmargin", "native", leaf_f1=bad)
    with pytest.raises(TaxonbenchError) as e:
        build_table("hccf_table1", "d", tmp_path, tmp_path / "out")
    assert str(path) in str(e.value) and "leaf_f1" in str(e.value)


def test_not_a_json_object(tmp_path):
    path = write_metrics(tmp_path, "d", "softmargin", "native")
    path.write_text("[1, 2]")
    with pytest.raises(TaxonbenchError, match="object"):
        build_table("hccf_table1", "d", tmp_path, tmp_path / "out")


def test_non_finite_values_left_empty_and_footnoted(tmp_path, caplog):
    root = tmp_path / "m"
    write_metrics(root, "d", "hccf", "bottom_up", r_at_95c=math.nan, leaf_f1=None)
    write_metrics(root, "d", "hccf", "diffusion", ap=math.inf)
    out = tmp_path / "out"
    build_table("hccf_table1", "d", root, out)
    rows = read_csv(out / "hccf_table1.csv")
    hccf = rows[0]
    assert hccf["Model"] == "HCCF"
    assert hccf["R@95C"] == "" and hccf["Leaf F1"] == "" and hccf["AP"] == "10.00"
    assert rows[1]["AP"] == ""
    tex = (out / "hccf_table1.tex").read_text()
    assert "nan" not in tex.lower() and "inf &" not in tex
    foot = next(line for line in tex.splitlines() if "Not finite" in line)
    assert "HCCF: R@95C" in foot and "HCCF: Leaf F1" in foot and "HCCF + diffusion: AP" in foot
    vs = read_csv(out / "hccf_table1_vs_paper.csv")
    assert vs[8]["R@95C (ours)"] == "" and vs[8]["R@95C (paper)"] == "52.60"
    assert "not finite" in caplog.text


def test_dataset_must_be_one_path_component(tmp_path):
    with pytest.raises(TaxonbenchError, match="dataset"):
        build_table("hccf_table1", "../x", tmp_path, tmp_path)


def test_latex_escape():
    assert latex_escape("a & b % c _ d # e $ {f} ~ ^ \\") == (
        r"a \& b \% c \_ d \# e \$ \{f\} \textasciitilde{} \textasciicircum{} \textbackslash{}"
    )


def test_table6_adds_every_other_model(tmp_path):
    root = tmp_path / "metrics"
    write_metrics(root, "d", "ce_text_init_levels_L1234567", "bottom_up")  # the paper's "Flat softmax" rows
    write_metrics(root, "d", "ce_text_init_levels_L1234567", "diffusion")
    write_metrics(root, "d", "cond_softmax", "native", ap=0.5)
    write_metrics(root, "d", "cond_softmax", "diffusion")
    write_metrics(root, "d", "cond_softmax", "top_down")  # not a Table 6 inference: not shown
    write_metrics(root, "d", "flat_softmax", "bottom_up")  # Table 1's flat softmax: another model here
    write_metrics(root, "d", "flat_softmax", "diffusion", ap=0.25)
    build_table("hccf_table6", "d", root, tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "hccf_table6.csv")
    assert [r["Model"] for r in rows] == [
        "Flat softmax bottom-up",
        "Flat softmax diffusion",
        "cond_softmax native",
        "cond_softmax diffusion",
        "flat_softmax diffusion",
    ]
    assert rows[2]["AP"] == "50.00" and rows[4]["AP"] == "25.00"
    vs = read_csv(tmp_path / "out" / "hccf_table6_vs_paper.csv")
    assert {r["method"] for r in vs if r["Model"].startswith("Flat softmax")} == {"ce_text_init_levels_L1234567"}


# --------------------------------------------------------------------------- the HCCF outputs are frozen


@pytest.mark.parametrize("build", GOLDEN_BUILDS, ids=[b[0] for b in GOLDEN_BUILDS])
def test_hccf_outputs_byte_identical_to_the_first_table_code(tmp_path, build):
    """CSV, LaTeX and vs-paper CSV of the six HCCF tables, from fixture metrics, are the bytes the
    percent-only table code wrote (captured in tests/data/tables_golden before the general engine)."""
    case, table_id, dataset, model = build
    root = tmp_path / "metrics"
    write_golden_metrics(root)
    paths = build_table(table_id, dataset, root, tmp_path / "out", model_override=model)
    expected_dir = GOLDEN_DIR / case
    assert sorted(p.name for p in expected_dir.iterdir()) == sorted(p.name for p in paths)
    for path in paths:
        assert path.read_bytes() == (expected_dir / path.name).read_bytes(), path.name


def test_hccf_outputs_byte_identical_through_build_tables(tmp_path):
    root = tmp_path / "metrics"
    write_golden_metrics(root)
    settings = {t: {"dataset": d} for case, t, d, m in GOLDEN_BUILDS if m is None}
    paths = build_tables(settings, root, tmp_path / "out")
    assert len(paths) == 18
    for path in paths:
        case = path.name.removesuffix("_vs_paper.csv").removesuffix(".csv").removesuffix(".tex")
        assert path.read_bytes() == (GOLDEN_DIR / case / path.name).read_bytes(), path.name


# --------------------------------------------------------------------------- the general engine


def write_json(root: Path, dataset: str, method: str, inference: str, data: dict) -> Path:
    path = root / dataset / method / f"{inference}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


#: paper numbers of the toy table (percentages, as a HiMulCon-style paper prints them)
TOY_REFERENCE = "Level,iNat,ModelNet40\nL1,91.20,88.0\nL2,80.50,70.10\nL3,60.00,55.55\n"


def toy_levels_spec(**overrides) -> TableSpec:
    """Datasets as columns, taxonomy levels as rows: cell = level{level}_micro_f1 of hccf/bottom_up."""
    fields = dict(
        id="toy_levels",
        paper="toy",
        caption="Per-level micro F1 on two datasets",
        reference_csv="",
        reference_data=TOY_REFERENCE,
        label_column="Level",
        columns=[
            Entry("iNat", "hccf", "bottom_up", dataset="iNat"),
            Entry("ModelNet40", "hccf", "bottom_up", dataset="ModelNet40"),
        ],
        rows=levels([1, 2, 3], metric="level{level}_micro_f1"),
        source="toy Table 1",
    )
    fields.update(overrides)
    return TableSpec(**fields)


@pytest.fixture
def registered():
    """Register specs in TABLES for one test only."""
    added = []

    def add(spec: TableSpec) -> TableSpec:
        TABLES.add(spec.id, spec)
        added.append(spec.id)
        return spec

    yield add
    for table_id in added:
        del TABLES._items[table_id]


@pytest.fixture
def toy_run(tmp_path, registered):
    root = tmp_path / "metrics"
    write_json(root, "syn_x", "hccf", "bottom_up",
               {"level1_micro_f1": 0.9, "level2_micro_f1": 0.8125, "level3_micro_f1": 0.5})
    write_json(root, "syn_y", "hccf", "bottom_up",
               {"level1_micro_f1": 0.75, "level2_micro_f1": None, "level3_micro_f1": 0.333333})
    registered(toy_levels_spec())
    out = tmp_path / "tables"
    paths = build_tables({"toy_levels": {"datasets": {"iNat": "syn_x", "ModelNet40": "syn_y"}}}, root, out)
    return out, paths


def test_spec_with_dataset_columns_and_level_rows():
    spec = toy_levels_spec()
    assert spec.dataset_keys == ["iNat", "ModelNet40"] and not spec.uses_default_dataset
    assert spec.cells[2][1] == Address("ModelNet40", "hccf", "bottom_up", "level3_micro_f1")
    assert spec.metric_keys == ["level1_micro_f1", "level2_micro_f1", "level3_micro_f1"]
    assert not spec.is_parametrized


def test_toy_table_csv(toy_run):
    out, paths = toy_run
    assert [p.name for p in paths] == ["toy_levels.csv", "toy_levels.tex", "toy_levels_vs_paper.csv"]
    assert (out / "toy_levels.csv").read_text() == (
        "Level,iNat,ModelNet40\nL1,90.00,75.00\nL2,81.25,\nL3,50.00,33.33\n"
    )


def test_toy_table_latex(toy_run):
    out, _ = toy_run
    tex = (out / "toy_levels.tex").read_text()
    assert r"\begin{tabular}{lrr}" in tex
    assert "Level & iNat & ModelNet40 \\\\" in tex
    assert "L2 & 81.25 &  \\\\" in tex
    assert "% Generated by taxonbench from the metrics of datasets 'syn\\_x'" not in tex
    assert "% Generated by taxonbench from the metrics of datasets 'syn_x', 'syn_y'; do not edit." in tex
    caption = next(line for line in tex.splitlines() if line.startswith(r"\caption{"))
    assert r"datasets syn\_x (for iNat), syn\_y (for ModelNet40)" in caption
    assert "Not finite (left empty): L2: ModelNet40." in tex
    assert "Not run" not in tex


def test_toy_table_vs_paper(toy_run):
    out, _ = toy_run
    text = (out / "toy_levels_vs_paper.csv").read_text()
    assert text.splitlines()[0] == (
        "Level,dataset,method,inference,paper dataset,"
        "iNat (ours),iNat (paper),ModelNet40 (ours),ModelNet40 (paper)"
    )
    rows = read_csv(out / "toy_levels_vs_paper.csv")
    assert rows[0] == {
        "Level": "L1", "dataset": "syn_x; syn_y", "method": "hccf", "inference": "bottom_up",
        "paper dataset": "iNat; ModelNet40", "iNat (ours)": "90.00", "iNat (paper)": "91.20",
        "ModelNet40 (ours)": "75.00", "ModelNet40 (paper)": "88.0",
    }
    assert rows[1]["ModelNet40 (ours)"] == "" and rows[1]["ModelNet40 (paper)"] == "70.10"


def test_cells_not_run_in_a_shown_row_are_footnoted(tmp_path):
    root = tmp_path / "m"
    write_json(root, "syn_x", "hccf", "bottom_up",
               {"level1_micro_f1": 0.9, "level2_micro_f1": 0.8, "level3_micro_f1": 0.5})
    out = tmp_path / "out"
    build_table(toy_levels_spec(), None, root, out, datasets={"iNat": "syn_x", "ModelNet40": "syn_y"})
    assert read_csv(out / "toy_levels.csv")[0] == {"Level": "L1", "iNat": "90.00", "ModelNet40": ""}
    tex = (out / "toy_levels.tex").read_text()
    assert "Not run (left empty): L1: ModelNet40; L2: ModelNet40; L3: ModelNet40." in tex


def test_dataset_parameters_checked_before_writing(tmp_path, registered):
    registered(toy_levels_spec())
    out = tmp_path / "o"
    cases = [
        ({"dataset": "syn_x"}, "datasets"),
        ({"datasets": {"iNat": "syn_x"}}, "ModelNet40"),
        ({"datasets": {"iNat": "a", "ModelNet40": "b", "CIFAR": "c"}}, "CIFAR"),
        ({"datasets": {"iNat": "a", "ModelNet40": "../b"}}, "ModelNet40"),
        ({"datasets": ["a", "b"]}, "mapping"),
    ]
    for params, word in cases:
        with pytest.raises(TaxonbenchError) as e:
            build_tables({"hccf_table1": {"dataset": "d"}, "toy_levels": params}, tmp_path, out)
        assert "toy_levels" in str(e.value) and word in str(e.value), (params, str(e.value))
    with pytest.raises(TaxonbenchError, match="hccf_table1.*name no dataset"):
        build_tables({"hccf_table1": {"dataset": "d", "datasets": {"iNat": "d"}}}, tmp_path, out)
    assert not out.exists()


def test_input_errors_of_a_later_table_write_nothing(tmp_path):
    root = tmp_path / "m"
    write_metrics(root, "d", "hccf", "bottom_up")
    bad = write_metrics(root, "e", "hccf", "bottom_up", ap=2.0)
    with pytest.raises(TaxonbenchError) as e:
        build_tables({"hccf_table1": {"dataset": "d"}, "hccf_table4": {"dataset": "e"}}, root, tmp_path / "o")
    assert str(bad) in str(e.value) and "'ap'" in str(e.value)
    assert not (tmp_path / "o").exists()


THESIS_REFERENCE = (
    "model,cw,rs,m-F1,Ni,mu,M-F1 pm\n"
    "ResNet-50,yes,no,0.8483,6,81.42,0.6411 ± 0.0100\n"
    "ResNet-50,no,yes,0.9084,21,4.21,0.6888 ± 0.0200\n"
)


def thesis_spec() -> TableSpec:
    """Factor rows (backbone x class weights x resampling; three label columns), fraction format."""
    backbones = [Entry("ResNet-50", vars={"bb": "r50"})]
    regimes = [
        Entry(("yes", "no"), method="{bb}_cw", inference="native"),
        Entry(("no", "yes"), method="{bb}_rs", inference="native"),
    ]
    return TableSpec(
        id="toy_thesis",
        paper="toy",
        caption="Class weights and resampling",
        reference_csv="",
        reference_data=THESIS_REFERENCE,
        label_column=("model", "cw", "rs"),
        columns=[
            ("micro_f1", "m-F1"),
            ("n_labels", "Ni"),
            ("mean_height", "mu"),
            Entry("M-F1 pm", metric="macro_f1", spread="macro_f1_std"),
        ],
        rows=product(backbones, regimes),
        number_format=FRACTION_4,
    )


def test_fraction_format_counts_reals_percents_and_spread(tmp_path):
    spec = thesis_spec()
    assert [r.labels for r in spec.rows] == [("ResNet-50", "yes", "no"), ("ResNet-50", "no", "yes")]
    assert spec.cells[1][0] == Address(None, "r50_rs", "native", "micro_f1")
    root = tmp_path / "m"
    units = {"n_labels": "count", "mean_height": "real", "macro_f1": "percent"}
    write_json(root, "d", "r50_cw", "native", {
        "micro_f1": 0.84826, "n_labels": 6, "mean_height": 81.4249, "macro_f1": 64.11,
        "macro_f1_std": 0.01, "units": units,
    })
    write_json(root, "d", "r50_rs", "native", {
        "micro_f1": 1, "n_labels": 21.0, "mean_height": -4.2, "macro_f1": 68.88,
        "macro_f1_std": math.nan, "units": units,
    })
    out = tmp_path / "out"
    build_table(spec, "d", root, out)
    assert (out / "toy_thesis.csv").read_text() == (
        "model,cw,rs,m-F1,Ni,mu,M-F1 pm\n"
        "ResNet-50,yes,no,0.8483,6,81.4249,0.6411 ± 0.0100\n"
        "ResNet-50,no,yes,1.0000,21,-4.2000,\n"
    )
    tex = (out / "toy_thesis.tex").read_text()
    assert r"\begin{tabular}{lllrrrr}" in tex
    assert r"model & cw & rs & m-F1 & Ni & mu & M-F1 pm \\" in tex
    assert r"ResNet-50 & yes & no & 0.8483 & 6 & 81.4249 & 0.6411 $\pm$ 0.0100 \\" in tex
    assert "Not finite (left empty): ResNet-50 / no / yes: M-F1 pm." in tex
    vs = read_csv(out / "toy_thesis_vs_paper.csv")
    assert [(r["model"], r["cw"], r["rs"]) for r in vs] == [("ResNet-50", "yes", "no"), ("ResNet-50", "no", "yes")]
    assert vs[0]["Ni (ours)"] == "6" and vs[0]["Ni (paper)"] == "6"
    assert vs[1]["m-F1 (paper)"] == "0.9084" and vs[1]["method"] == "r50_rs"
    assert load_reference(spec)[("ResNet-50", "no", "yes")]["mu"] == "4.21"


@pytest.mark.parametrize(
    ("value", "unit", "fmt", "text"),
    [
        (0.123456, "fraction", PERCENT_2, "12.35"),
        (0.123456, "fraction", FRACTION_4, "0.1235"),
        (73.4, "percent", PERCENT_2, "73.40"),
        (73.4, "percent", FRACTION_4, "0.7340"),
        (351, "count", FRACTION_4, "351"),
        (351.0, "count", PERCENT_2, "351"),
        (136.69, "real", FRACTION_4, "136.6900"),
        (1.5, "real", PERCENT_2, "1.50"),
        (math.nan, "real", PERCENT_2, ""),
        (math.inf, "count", PERCENT_2, ""),
    ],
)
def test_format_value(value, unit, fmt, text):
    assert format_value(value, unit, fmt) == text


def test_real_above_one_accepted_fraction_above_one_rejected(tmp_path):
    spec = TableSpec("toy_units", "toy", "c", "", "Model", [("x", "X")], [RowSpec("a", "m", "bu")],
                     reference_data="Model,X\na,1\n")
    root = tmp_path / "m"
    write_json(root, "d", "m", "bu", {"x": 2.5, "units": {"x": "real"}})
    build_table(spec, "d", root, tmp_path / "ok")
    assert read_csv(tmp_path / "ok" / "toy_units.csv") == [{"Model": "a", "X": "2.50"}]
    for units in ({}, {"x": "fraction"}):
        path = write_json(root, "d", "m", "bu", {"x": 1.5, "units": units})
        with pytest.raises(TaxonbenchError) as e:
            build_table(spec, "d", root, tmp_path / "bad")
        assert str(path) in str(e.value) and "'x'" in str(e.value) and "[0, 1]" in str(e.value)
    path = write_json(root, "d", "m", "bu", {"x": 3.5, "units": {"x": "count"}})
    with pytest.raises(TaxonbenchError, match="whole number") as e:
        build_table(spec, "d", root, tmp_path / "bad")
    assert str(path) in str(e.value)
    write_json(root, "d", "m", "bu", {"x": 0.5, "units": {"x": "percentage"}})
    with pytest.raises(TaxonbenchError, match="percentage.*fraction, percent, count, real"):
        build_table(spec, "d", root, tmp_path / "bad")
    write_json(root, "d", "m", "bu", {"x": 0.5, "units": ["real"]})
    with pytest.raises(TaxonbenchError, match="units"):
        build_table(spec, "d", root, tmp_path / "bad")
    write_json(root, "d", "m", "bu", {"x": 150.0, "units": {"x": "percent"}})
    build_table(spec, "d", root, tmp_path / "pct")  # only fractions are range-checked
    assert read_csv(tmp_path / "pct" / "toy_units.csv") == [{"Model": "a", "X": "150.00"}]
    assert not (tmp_path / "bad").exists()


def test_read_metrics_ignores_the_units_object(tmp_path):
    path = write_json(tmp_path, "d", "m", "bu", {"ap": 0.5, "units": {"ap": "fraction"}})
    assert read_metrics(path, ["ap"]) == {"ap": 0.5}
    with pytest.raises(TaxonbenchError) as e:
        read_metrics(path, ["units"])
    assert "missing metric key 'units'" in str(e.value) and "keys present: ap" in str(e.value)


def test_templates_fill_methods_from_variables(tmp_path):
    """Embedding dimensions as columns: method = '{family}_d{d}', one model per cell."""
    spec = TableSpec(
        "toy_dims", "toy", "mAP by embedding dimension", "", "Model",
        columns=[Entry(f"d={d}", vars={"d": d}, metric="mean_ap") for d in (2, 10)],
        rows=[Entry("Euclidean Cones", "{family}_d{d}", "native", vars={"family": "ec"})],
        number_format=FRACTION_4,
        reference_data="Model,d=2,d=10\nEuclidean Cones,0.8550,0.9919\n",
    )
    assert [a.method for a in spec.cells[0]] == ["ec_d2", "ec_d10"]
    root = tmp_path / "m"
    write_json(root, "d", "ec_d2", "native", {"mean_ap": 0.855})
    build_table(spec, "d", root, tmp_path / "o")
    assert (tmp_path / "o" / "toy_dims.csv").read_text() == "Model,d=2,d=10\nEuclidean Cones,0.8550,\n"
    vs = read_csv(tmp_path / "o" / "toy_dims_vs_paper.csv")
    assert vs[0]["method"] == "ec_d2; ec_d10" and vs[0]["d=10 (paper)"] == "0.9919"


def test_spec_errors_name_table_row_and_column():
    with pytest.raises(ValueError, match=r"toy.*'L1'.*'X'.*needs variable\(s\) level"):
        TableSpec("toy", "p", "c", "", "Level", [Entry("X", "m", "bu", metric="l{level}_f1")],
                  [Entry("L1")])
    with pytest.raises(ValueError, match="both set metric"):
        TableSpec("toy", "p", "c", "", "Model", [("ap", "AP")], [Entry("a", "m", "bu", metric="ac")])
    with pytest.raises(ValueError, match="no entry sets the cell's inference"):
        TableSpec("toy", "p", "c", "", "Model", [("ap", "AP")], [Entry("a", "m")])
    with pytest.raises(ValueError, match="label column"):
        TableSpec("toy", "p", "c", "", ("model", "cw"), [("ap", "AP")], [Entry("a", "m", "bu")])
    with pytest.raises(ValueError, match="duplicate column labels"):
        TableSpec("toy", "p", "c", "", "Model", [("ap", "AP"), ("ac", "AP")], [Entry("a", "m", "bu")])


def test_reference_data_must_cover_the_spec():
    spec = toy_levels_spec(reference_data="Level,iNat,ModelNet40\nL1,1,2\n")
    with pytest.raises(TaxonbenchError, match="no row labelled 'L2'"):
        load_reference(spec)
    spec = toy_levels_spec(reference_data="Level,iNat\nL1,1\n")
    with pytest.raises(TaxonbenchError, match="ModelNet40"):
        load_reference(spec)


def test_null_and_empty_defaults_are_absent(tmp_path, registered):
    """A params schema may fill defaults: dataset null, datasets {} and model null mean 'not given'."""
    registered(toy_levels_spec())
    root = tmp_path / "m"
    write_metrics(root, "d", "hccf", "bottom_up")
    write_json(root, "x", "hccf", "bottom_up",
               {"level1_micro_f1": 0.9, "level2_micro_f1": 0.8, "level3_micro_f1": 0.5})
    paths = build_tables({
        "hccf_table1": {"dataset": "d", "datasets": {}, "model": None},
        "toy_levels": {"dataset": None, "datasets": {"iNat": "x", "ModelNet40": "x"}, "model": None},
    }, root, tmp_path / "o")
    assert len(paths) == 6
    assert read_csv(tmp_path / "o" / "toy_levels.csv")[0] == {"Level": "L1", "iNat": "90.00", "ModelNet40": "90.00"}


def test_a_difference_row_subtracts_two_rows_cell_by_cell(tmp_path):
    from taxonbench.tables.spec import Difference

    spec = TableSpec(
        id="diff_demo", paper="demo", caption="demo", reference_csv="", label_column="Model",
        reference_data="Model,AP,Leaf F1\nours,,\nbase,,\nours - base,1.00,\n",
        columns=[("ap", "AP"), ("leaf_f1", "Leaf F1")],
        rows=[RowSpec("ours", "a", "native"), RowSpec("base", "b", "native")],
        differences=[Difference("ours - base", "ours", "base")])
    root = tmp_path / "m"
    write_metrics(root, "d", "a", "native", ap=0.75, leaf_f1=0.5)
    write_metrics(root, "d", "b", "native", ap=0.5, leaf_f1=float("nan"))
    build_table(spec, "d", root, tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "diff_demo.csv")
    assert [r["Model"] for r in rows] == ["ours", "base", "ours - base"]
    assert rows[2]["AP"] == "25.00"  # 0.75 - 0.5 in the table's percent format
    assert rows[2]["Leaf F1"] == ""  # a side that is not finite: no difference
    vs = read_csv(tmp_path / "out" / "diff_demo_vs_paper.csv")
    assert vs[2]["AP (paper)"] == "1.00" and vs[2]["method"] == "a − b"
    with pytest.raises(ValueError, match="difference 'x' names no row 'nope'"):
        TableSpec(id="bad", paper="demo", caption="demo", reference_csv="", label_column="Model",
                  reference_data="Model,AP\n", columns=[("ap", "AP")], rows=[RowSpec("ours", "a", "native")],
                  differences=[Difference("x", "ours", "nope")])
