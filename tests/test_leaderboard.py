"""The leaderboard: rows from the plan, columns from the families' headlines, blanks with their reasons,
the four formats, bad input; the HTML page in a real headless Chromium (loads, sorts on a click)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from pathlib import Path

import pytest

from taxonbench import plan
from taxonbench.errors import TaxonbenchError
from taxonbench.leaderboard import write_leaderboards
from taxonbench.leaderboard.board import all_columns, build_board
from taxonbench.leaderboard.entries import LABEL_GRAPH, entries_from_metrics, experiment_info, leaderboard_entries
from taxonbench.leaderboard.render import cell_number, to_csv, to_html, to_json, to_markdown
from taxonbench.registries import METRIC_FAMILIES

REPO = Path(__file__).resolve().parents[1]
INFO = {"toy": {
    "flat": {"method": "flat_softmax", "backbone": "tiny_cnn", "trained_on": "toy"},
    "hxe": {"method": "hxe", "backbone": "resnet18", "trained_on": "toy"},
    "clip": {"method": "level_restricted", "backbone": "open_clip:x", "trained_on": "other"},
}}
# (experiment, inference) -> metrics JSON; units as the families write them
METRICS = {
    ("flat", "bottom_up"): {"ap": 0.5, "leaf_top1": 0.30, "mistake_severity": 2.0, "hit_at_5": 0.9,
                            "units": {"ap": "fraction", "leaf_top1": "fraction", "mistake_severity": "real"}},
    ("flat", "level_argmax"): {"set_micro_f1": 0.6, "labels_mean": 4.0,
                               "units": {"set_micro_f1": "fraction", "labels_mean": "real"}},
    ("hxe", "bottom_up"): {"ap": 0.7, "leaf_top1": 0.25, "mistake_severity": 1.5, "hit_at_5": 0.8,
                           "units": {"ap": "fraction", "leaf_top1": "fraction", "mistake_severity": "real"}},
    ("clip", "native"): {"ap": 0.6, "leaf_top1": 0.35, "mistake_severity": 1.8, "mean_level_acc": 0.4,
                         "units": {"ap": "fraction"}},
}


def _write_metrics(root: Path, metrics: dict = METRICS) -> list[str]:
    paths = []
    for (experiment, inference), values in metrics.items():
        path = root / "results/metrics/toy" / experiment / f"{inference}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
        paths.append(str(path.relative_to(root)))
    return paths


@pytest.fixture
def board(tmp_path):
    entries = entries_from_metrics(_write_metrics(tmp_path), INFO)
    return build_board("toy", entries["toy"], tmp_path)


def test_rows_sorted_by_the_first_ranked_column_and_blanks_explained(board):
    assert [r.key() for r in board.rows] == ["hxe/bottom_up", "clip/native", "flat/bottom_up", "flat/level_argmax"]
    groups = [g for g, _ in board.groups]
    assert groups == ["operating curve", "top-k", "mistake severity", "set-based", "zero-shot / consistency"]
    # only the declared columns some row fills
    assert [c.metric for c in board.columns] == ["ap", "leaf_top1", "hit_at_5", "mistake_severity", "set_micro_f1",
                                                 "labels_mean", "mean_level_acc"]
    sets = board.rows[-1]
    assert set(sets.notes) == {"operating curve", "top-k", "mistake severity", "zero-shot / consistency"}
    reason = board.footnotes[sets.notes["operating curve"]]
    assert "set predictions" in reason
    flat = board.rows[2]
    assert "set-based" in flat.notes and "node scores" in board.footnotes[flat.notes["set-based"]]
    assert board.footnotes[flat.notes["zero-shot / consistency"]] == "not in the row's metrics file"
    assert len(board.footnotes) == 3  # one per reason, not per cell


def test_inferences_with_the_same_numbers_are_one_row_but_each_stays_in_csv_and_json(tmp_path):
    same = {**METRICS[("hxe", "bottom_up")], "consistency": math.nan}
    metrics = {("hxe", "bottom_up"): same, ("hxe", "native"): same,  # leaf logits: native = bottom-up sums
               ("hxe", "diffusion"): {**same, "ap": 0.71},
               ("flat", "bottom_up"): same}  # another model with the same numbers stays its own row
    paths = _write_metrics(tmp_path, metrics)
    board = build_board("toy", entries_from_metrics(paths, INFO)["toy"], tmp_path)
    assert sorted(r.key() for r in board.rows) == ["flat/bottom_up", "hxe/bottom_up+native", "hxe/diffusion"]
    md = to_markdown(board)
    assert "| hxe | hxe | bottom_up = native | resnet18 |" in md and "give the same numbers" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(board))))
    assert sorted((r["experiment"], r["inference"]) for r in rows) == [
        ("flat", "bottom_up"), ("hxe", "bottom_up"), ("hxe", "diffusion"), ("hxe", "native")]
    data = json.loads(to_json([board]))["toy"]["hxe"]
    assert data["native"] == data["bottom_up"] and data["diffusion"]["ap"] == 0.71


def test_best_follows_each_columns_direction(board):
    columns = {c.metric: c for c in board.columns}
    assert board.best(columns["ap"]) == 0.7
    assert board.best(columns["mistake_severity"]) == 1.5  # lower is better
    assert board.best(columns["labels_mean"]) is None  # unranked


def test_every_family_declares_headline_columns_it_computes():
    for name, cls in METRIC_FAMILIES.items():
        assert cls.headline.columns, name
        for metric in cls.headline.columns:
            assert metric in cls.units, (name, metric)
    metrics = [c.metric for c in all_columns()]
    assert len(metrics) == len(set(metrics))


def test_csv_holds_the_values_as_computed(board):
    rows = list(csv.DictReader(io.StringIO(to_csv(board))))
    assert [r["experiment"] for r in rows] == ["hxe", "clip", "flat", "flat"]
    assert float(rows[0]["ap"]) == 0.7 and rows[-1]["ap"] == ""
    assert rows[1]["trained_on"] == "other"
    assert rows[-1]["notes"]


def test_markdown_and_html_show_percentages_bold_best_and_footnotes(board):
    md = to_markdown(board)
    assert "| hxe | hxe | bottom_up | resnet18 |  | **70.00** |" in md
    assert "| clip | level_restricted | native | open_clip:x | other |" in md
    assert "**1.500**" in md  # the smallest mistake severity is the best
    assert "Blank cells:" in md and "set predictions" in md
    page = to_html(board)
    assert page.count('<tr data-key="') == 4 and "<script>" in page and "http" not in page.split("<body>")[1]


@pytest.mark.parametrize("value, unit, text", [
    (0.7, "fraction", "70.00"), (70.0, "percent", "70.00"), (1.5, "real", "1.500"), (12.0, "count", "12"),
    (math.nan, "fraction", "nan"), (math.inf, "real", "inf"),
])
def test_board_cells_print_each_unit_as_the_tables_do_with_three_decimals_for_reals(value, unit, text):
    """One formatter for tables and boards (taxonbench.tables.format_value): a percent-unit metric is not
    multiplied again, a count has no decimals; a non-finite value is shown, not blanked (blank = not applicable)."""
    assert cell_number(value, unit) == text


def test_json_is_nested_dataset_experiment_inference(board):
    data = json.loads(to_json([board]))
    assert data["toy"]["hxe"]["bottom_up"]["ap"] == 0.7
    assert "ap" not in data["toy"]["flat"]["level_argmax"]


def test_missing_and_corrupt_metrics_stop_with_the_file_and_the_command(tmp_path):
    paths = _write_metrics(tmp_path)
    entries = entries_from_metrics(paths, INFO)["toy"]
    (tmp_path / paths[0]).write_text("{not json")
    with pytest.raises(TaxonbenchError, match=r"flat/bottom_up.json is not valid JSON .*snakemake"):
        build_board("toy", entries, tmp_path)
    (tmp_path / paths[0]).unlink()
    with pytest.raises(TaxonbenchError, match=r"missing metrics file .*flat/bottom_up.json \(run `snakemake"):
        build_board("toy", entries, tmp_path)
    with pytest.raises(TaxonbenchError, match="'nope' of dataset 'toy' is not in the run"):
        entries_from_metrics(["results/metrics/toy/nope/native.json"], INFO)


def test_nothing_is_written_when_one_board_fails(tmp_path):
    paths = _write_metrics(tmp_path)
    entries = entries_from_metrics(paths, INFO)
    entries["second"] = [dict(entries["toy"][0], metrics="results/metrics/second/x/native.json")]
    with pytest.raises(TaxonbenchError, match="missing metrics file"):
        write_leaderboards(entries, tmp_path / "out", tmp_path / "out/leaderboard.json", tmp_path)
    assert not (tmp_path / "out").exists()


def test_default_plan_gives_every_metrics_file_one_row():
    cfg = plan.load_params(str(REPO / "params.yaml"))
    entries = leaderboard_entries(cfg)
    pairs = plan.method_inference(cfg)
    expected = {(d, m, i) for d in cfg["experiments"]["datasets"] for m in plan.dataset_methods(cfg, d)
                for i in pairs[m]}
    got = {(d, r["experiment"], r["inference"]) for d, rows in entries.items() for r in rows}
    label_rows = {k for k in got if k[2] == LABEL_GRAPH}
    assert got - label_rows == expected
    assert {k[1] for k in label_rows} == set(cfg["label_embeddings"]["experiments"]) | set(
        cfg["label_embeddings"]["joint"])
    zero_shot = {r["experiment"]: r for r in entries["synthetic_rare_species"]}
    assert zero_shot["level_restricted"]["trained_on"] == "synthetic_treeoflife"
    assert zero_shot["level_restricted"]["backbone"].startswith("open_clip:")
    assert set(experiment_info(cfg)) == set(entries)


# ------------------------------------------------------------------ the page in a real browser
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    (not CHROMIUM or not CHROMEDRIVER) and not os.environ.get("TAXONBENCH_REQUIRE_BROWSER"),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them and sets TAXONBENCH_REQUIRE_BROWSER)")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM and CHROMEDRIVER, "chromium / chromedriver not installed (apt-get install chromium chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _column(driver, metric: str) -> list[float | None]:
    header = driver.find_element("css selector", f'th[data-metric="{metric}"]')
    col = int(header.get_attribute("data-col"))
    cells = driver.find_elements("css selector", f"#leaderboard tbody tr td:nth-child({col + 1})")
    return [float(c.get_attribute("data-value")) if c.get_attribute("data-value") else None for c in cells]


@needs_browser
def test_html_page_loads_sorts_on_click_and_shows_every_experiment(board, tmp_path, browser):
    page = tmp_path / "toy.html"
    page.write_text(to_html(board))
    browser.get(page.as_uri())
    keys = [r.get_attribute("data-key") for r in browser.find_elements("css selector", "#leaderboard tbody tr")]
    assert sorted(keys) == sorted(r.key() for r in board.rows)
    assert browser.find_element("tag name", "h1").text == "Leaderboard: toy"

    browser.find_element("css selector", 'th[data-metric="leaf_top1"]').click()
    assert _column(browser, "leaf_top1") == [0.35, 0.30, 0.25, None]  # higher first, the blank last
    browser.find_element("css selector", 'th[data-metric="leaf_top1"]').click()
    assert _column(browser, "leaf_top1") == [0.25, 0.30, 0.35, None]  # reversed, the blank still last
    browser.find_element("css selector", 'th[data-metric="mistake_severity"]').click()
    assert _column(browser, "mistake_severity") == [1.5, 1.8, 2.0, None]  # lower is better: ascending first
    header = browser.find_element("css selector", 'th[data-metric="mistake_severity"]')
    assert header.get_attribute("aria-sort") == "ascending"
    assert not any(math.isnan(v) for v in _column(browser, "ap") if v is not None)


def test_results_page_gathers_boards_and_tables(tmp_path, board):
    from taxonbench.results_page import write_results_page

    (tmp_path / "boards").mkdir()
    (tmp_path / "boards/toy.md").write_text(to_markdown(board))
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables/hccf_table1.csv").write_text('Model,AP\n"Flat softmax (Bertinetto et al., 2020)",56.69\n')
    figure = tmp_path / "boards/toy.png"
    figure.write_bytes(b"\x89PNG fake")
    out = tmp_path / "docs/results.md"
    write_results_page({"hccf_table1": {"dataset": "toy"}}, tmp_path / "tables", [tmp_path / "boards/toy.md"], out,
                       figure, tmp_path / "docs/img/leaderboard.png")
    text = out.read_text()
    assert "### Leaderboard: toy" in text and "## Tables: HCCF" in text
    assert "| Flat softmax (Bertinetto et al., 2020) | 56.69 |" in text
    assert "Table `hccf_table1`, on `toy`." in text
    assert (tmp_path / "docs/img/leaderboard.png").read_bytes() == b"\x89PNG fake"
    with pytest.raises(TaxonbenchError, match=r"missing table .*hccf_table2.csv"):
        write_results_page({"hccf_table2": {"dataset": "toy"}}, tmp_path / "tables", [], tmp_path / "x.md")
    assert not (tmp_path / "x.md").exists()

