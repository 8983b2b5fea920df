"""Specs of the HCCF paper's Tables 1-6.

Source: "Hierarchical Classification by Training to Diffuse on the Manifold"
(anonymous submission, Tables 1-6), numbers transcribed in
``reference/hccf_table*.csv`` (provenance in ``reference/README.md``).

Every HCCF table is an experiment table: rows are experiments, columns metric
keys (:data:`HCCF_COLUMNS`), one dataset per table (``tables.<id>.dataset``),
numbers printed as percentages with two decimals (:data:`taxonbench.tables.spec.PERCENT_2`, the
default format of a :class:`TableSpec`; metrics JSONs hold fractions).

Each row maps the paper's label (exactly as printed) to the registry names
``(method, inference)`` of the experiment that reproduces it. The paper's
baselines are evaluated with their own node scores (after Valmadre 2022):
``native`` inference (:mod:`taxonbench.score_kinds`); the flat softmax's own
node scores are the bottom-up sums, so its rows use ``bottom_up``. Table 5 varies only the inference on
one trained model (HCCF in the paper); its rows carry ``method=None`` and the
model is a parameter of the build (default ``hccf``, the paper's model).

Where the paper prints one run's numbers in two tables, both rows read one
experiment, so a config trains it once: Table 1's "Flat softmax" and Table 3's
"CE loss baseline" are ``flat_softmax``; Table 6's "Flat softmax ..." rows are
Table 3's "CE loss + text embedding + L1234567" (``ce_text_init_levels_L1234567``).
Table 5's "Diffusion" and Table 6's "HCCF L1234567 diffusion" are one
experiment too, although the paper's numbers differ (see the notes).
"""

from __future__ import annotations

from taxonbench.tables.spec import RowSpec, TableSpec, register_table

PAPER = "hccf"

#: Metric key of the metrics JSON -> the paper's column header (Tables 1-5).
HCCF_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ap", "AP"),
    ("ac", "AC"),
    ("r_at_90c", "R@90C"),
    ("r_at_95c", "R@95C"),
    ("majority_f1", "Majority F1"),
    ("leaf_f1", "Leaf F1"),
    ("leaf_top1", "Leaf Top1"),
)
#: Table 6 prints "Maj F1" instead of "Majority F1".
HCCF_TABLE6_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (key, "Maj F1" if key == "majority_f1" else label) for key, label in HCCF_COLUMNS
)

BU = "bottom_up"
NATIVE = "native"

#: Table 3's "CE loss + text embedding + L1234567", which Table 6 labels "Flat softmax".
CE_TEXT_L1234567 = "ce_text_init_levels_L1234567"

#: Table 5's "Diffusion (Ours)" and Table 6's "HCCF L1234567 diffusion": one experiment, two numbers.
_DIFFUSION_NOTE = (
    "Table 5's 'Diffusion (Ours)' and Table 6's 'HCCF L1234567 diffusion' are one experiment here "
    "(hccf, diffusion). The paper prints different numbers for them (AP 73.48 vs 73.60; Table 5's "
    "equal Table 1's 'HCCF + diffusion') but states no difference between them: Table 5 uses 'the "
    "same trained model', Table 6's HCCF L1234567 bottom-up and differentiable-diffusion rows equal "
    "Table 5's, and the paper gives no diffusion alpha, iteration count or Table 6 dataset that "
    "could set the two apart."
)


def _rows(*rows: tuple[str, str | None, str]) -> tuple[RowSpec, ...]:
    return tuple(RowSpec(label, method, inference) for label, method, inference in rows)


HCCF_TABLE1 = register_table(
    TableSpec(
        id="hccf_table1",
        paper=PAPER,
        source="HCCF paper Table 1",
        caption="Benchmark against prior hierarchical methods, then HCCF and HCCF + diffusion",
        reference_csv="hccf_table1.csv",
        label_column="Model",
        paper_dataset="iNat18",
        columns=HCCF_COLUMNS,
        rows=_rows(
            ("Flat softmax (Bertinetto et al., 2020)", "flat_softmax", BU),
            ("Multilabel focal (Lin et al., 2017)", "multilabel_focal", NATIVE),
            ("Cond softmax (Redmon & Farhadi, 2017)", "cond_softmax", NATIVE),
            ("Cond sigmoid (Brust & Denzler, 2019)", "cond_sigmoid", NATIVE),
            ("Deep RTC (Wu et al., 2020)", "deep_rtc", NATIVE),
            ("PS softmax (Wu et al., 2020)", "ps_softmax", NATIVE),
            ("Softmargin (Valmadre, 2022)", "softmargin", NATIVE),
            ("Descendant softmax (Valmadre, 2022)", "descendant_softmax", NATIVE),
            ("HCCF", "hccf", BU),
            ("HCCF + diffusion", "hccf", "diffusion"),
        ),
    )
)

# Table 2 prints descendant softmax before softmargin, in lower case.
HCCF_TABLE2 = register_table(
    TableSpec(
        id="hccf_table2",
        paper=PAPER,
        source="HCCF paper Table 2",
        caption="Benchmark against prior hierarchical methods, then HCCF and HCCF + diffusion",
        reference_csv="hccf_table2.csv",
        label_column="Model",
        paper_dataset="iNat21",
        columns=HCCF_COLUMNS,
        rows=_rows(
            ("Flat softmax (Bertinetto et al., 2020)", "flat_softmax", BU),
            ("Multilabel focal (Lin et al., 2017)", "multilabel_focal", NATIVE),
            ("Cond softmax (Redmon & Farhadi, 2017)", "cond_softmax", NATIVE),
            ("Cond sigmoid (Brust & Denzler, 2019)", "cond_sigmoid", NATIVE),
            ("Deep RTC (Wu et al., 2020)", "deep_rtc", NATIVE),
            ("PS softmax (Wu et al., 2020)", "ps_softmax", NATIVE),
            ("descendant softmax (Valmadre, 2022)", "descendant_softmax", NATIVE),
            ("softmargin (Valmadre, 2022)", "softmargin", NATIVE),
            ("HCCF (Ours)", "hccf", BU),
            ("HCCF + diffusion (Ours)", "hccf", "diffusion"),
        ),
    )
)

HCCF_TABLE3 = register_table(
    TableSpec(
        id="hccf_table3",
        paper=PAPER,
        source="HCCF paper Table 3",
        caption=(
            "Ablation from the CE baseline: + CLIP text embedding, + hierarchical levels, "
            "+ contrastive loss (= HCCF)"
        ),
        reference_csv="hccf_table3.csv",
        label_column="Models",
        paper_dataset="iNat18",
        columns=HCCF_COLUMNS,
        rows=_rows(
            ("CE loss baseline (Bertinetto et al., 2020)", "flat_softmax", BU),
            ("CE loss + text embedding", "ce_text_init", BU),
            ("CE loss + text embedding + L67", "ce_text_init_levels_L67", BU),
            ("CE loss + text embedding + L1234567", CE_TEXT_L1234567, BU),
            ("CL + text encoder + L1234567 (HCCF)", "hccf", BU),
        ),
        notes=(
            "The paper's caption says L123456; its rows say L1234567 (rows followed).",
            (
                "'CE loss baseline' reads flat_softmax, the experiment of Table 1's 'Flat softmax': the "
                "paper prints the same numbers for both (one CE model on the CLIP backbone, trained once)."
            ),
        ),
    )
)

HCCF_TABLE4 = register_table(
    TableSpec(
        id="hccf_table4",
        paper=PAPER,
        source="HCCF paper Table 4",
        caption="HCCF trained on different sets of taxonomy levels (L7 ... L1234567)",
        reference_csv="hccf_table4.csv",
        label_column="Model",
        paper_dataset="iNat18",
        columns=HCCF_COLUMNS,
        rows=_rows(
            ("HCCF L7", "hccf_L7", BU),
            ("HCCF L67", "hccf_L67", BU),
            ("HCCF L567", "hccf_L567", BU),
            ("HCCF L4567", "hccf_L4567", BU),
            ("HCCF L34567", "hccf_L34567", BU),
            ("HCCF L234567", "hccf_L234567", BU),
            ("HCCF L1234567", "hccf", BU),
        ),
    )
)

HCCF_TABLE5 = register_table(
    TableSpec(
        id="hccf_table5",
        paper=PAPER,
        source="HCCF paper Table 5",
        caption="Inference methods on one trained model",
        reference_csv="hccf_table5.csv",
        label_column="Model",
        paper_dataset="iNat18",
        columns=HCCF_COLUMNS,
        default_model="hccf",
        rows=_rows(
            ("Top-down (Redmon & Farhadi, 2017)", None, "top_down"),
            ("Advanced-top-down (Jain et al., 2023)", None, "advanced_top_down"),
            ("Bottom-up (Valmadre, 2022)", None, BU),
            ("Diffusion (Ours)", None, "diffusion"),
            ("Differentiable diffusion (Ours)", None, "differentiable_diffusion"),
        ),
        notes=(
            "The paper's model is HCCF (its bottom-up row equals Table 1's HCCF row).",
            _DIFFUSION_NOTE,
        ),
    )
)

HCCF_TABLE6 = register_table(
    TableSpec(
        id="hccf_table6",
        paper=PAPER,
        source="HCCF paper Table 6",
        caption="Diffusion works with any model: three models x {bottom-up, diffusion, "
        "differentiable diffusion}",
        reference_csv="hccf_table6.csv",
        label_column="Model",
        paper_dataset="iNat18 (inferred)",
        extra_model_inference=("native", "diffusion", "differentiable_diffusion"),
        columns=HCCF_TABLE6_COLUMNS,
        rows=_rows(
            ("HCCF L1234567 bottom-up", "hccf", BU),
            ("HCCF L1234567 diffusion", "hccf", "diffusion"),
            ("HCCF L1234567 differentiable diffusion", "hccf", "differentiable_diffusion"),
            ("HCCF L67 bottom-up", "hccf_L67", BU),
            ("HCCF L67 diffusion", "hccf_L67", "diffusion"),
            ("HCCF L67 differentiable diffusion", "hccf_L67", "differentiable_diffusion"),
            ("Flat softmax bottom-up", CE_TEXT_L1234567, BU),
            ("Flat softmax diffusion", CE_TEXT_L1234567, "diffusion"),
            ("Flat softmax differentiable diffusion", CE_TEXT_L1234567, "differentiable_diffusion"),
        ),
        notes=(
            (
                "The 'Flat softmax' rows (labels as printed) read ce_text_init_levels_L1234567, Table 3's "
                "'CE loss + text embedding + L1234567': the paper's 'Flat softmax bottom-up' numbers equal "
                "that row, not Table 1's Flat softmax (flat_softmax: its rows, when run, follow among the "
                "other models)."
            ),
            (
                "The paper's caption says HCCF L123456; its rows say L1234567, and its bottom-up row equals "
                "Table 1's HCCF (rows followed)."
            ),
            _DIFFUSION_NOTE,
        ),
    )
)
