"""Specs of the HiMulCon paper's Tables 1-4 (Zhang et al., "Use All The Labels: A Hierarchical Multi-Label
Contrastive Learning Framework", CVPR 2022), numbers in ``reference/himulcon_table*.csv``.

Every row is an encoder trained with one loss (SimCLR, cross-entropy, SupCon, Guided, HiMulCon, HiConE,
HiMulConE), then frozen; the cells read downstream tasks on its embeddings (docs/himulcon.md):

* Tables 1-2 — top-1 of the linear probe (inference ``linear_probe``, 40 epochs): at the finest level
  (``hit_at_1``) for ImageNet and iNaturalist, at the super-category level (``hit_at_1_L1``) for
  DeepFashion and ModelNet40 (Table 1's caption). Table 2: encoders trained on the *seen* categories
  (experiments ``<method>_seen``, ``trained_on`` the seen dataset), the probe trained and scored on the
  seen or the unseen part (§4.5).
* Table 3 — category NMI and product NMI (K-means, metric family ``clustering``) of the ``_seen`` encoders
  on the unseen test set (§4.6); product = depth 2 (DeepFashion's product ID, ModelNet40's object).
* Table 4 — MAP@R of retrieval on the full datasets (metric family ``retrieval``, inference ``embedding``).

Datasets are the columns; ``tables.<id>.datasets`` maps the paper's dataset keys to ours.
"""

from __future__ import annotations

from taxonbench.tables.spec import PERCENT_2, Entry, NumberFormat, TableSpec, register_table

PAPER = "himulcon"
PROBE, EMBEDDING = "linear_probe", "embedding"
FRACTION_2 = NumberFormat("fraction", 1, 2)
PERCENT_1 = NumberFormat("percent", 100, 1)
#: the linear-probe level of Table 1's datasets: finest (ImageNet, iNaturalist) or super-category
FINEST, CATEGORY = "hit_at_1", "hit_at_1_L1"

SEEN_SUFFIX = "_seen"


def _rows(pairs, suffix: str = "", inference: str = PROBE) -> tuple[Entry, ...]:
    return tuple(Entry(label, f"{method}{suffix}", inference) for label, method in pairs)


HIMULCON_TABLE1 = register_table(TableSpec(
    id="himulcon_table1", paper=PAPER, source="HiMulCon paper Table 1", reference_csv="himulcon_table1.csv",
    caption="Top-1 classification accuracy of a linear probe on the frozen encoder, full datasets",
    label_column="model", paper_dataset="ImageNet, DeepFashion In-Shop, iNaturalist 2017, ModelNet40",
    columns=(Entry("ImageNet [29]", dataset="ImageNet", metric=FINEST),
             Entry("DeepFashion [21]", dataset="DeepFashion", metric=CATEGORY),
             Entry("iNaturalist [36]", dataset="iNaturalist", metric=FINEST),
             Entry("ModelNet40 [45]", dataset="ModelNet40", metric=CATEGORY)),
    rows=_rows((("SimCLR [5]", "simclr"), ("Cross Entropy", "ce"), ("SupCon [18]", "supcon"),
                ("Guided [10]", "guided"), ("HiMulConE (Ours)", "himulcone"))),
    number_format=PERCENT_2))

HIMULCON_TABLE2 = register_table(TableSpec(
    id="himulcon_table2", paper=PAPER, source="HiMulCon paper Table 2", reference_csv="himulcon_table2.csv",
    caption="Top-1 (category level) of a linear probe on encoders trained on the seen categories",
    label_column="model", paper_dataset="DeepFashion In-Shop, ModelNet40 (seen / unseen categories)",
    columns=tuple(Entry(f"{d} {part}", dataset=f"{d} {part}", metric=CATEGORY)
                  for d in ("DeepFashion", "ModelNet40") for part in ("Seen", "Unseen")),
    rows=_rows((("SimCLR", "simclr"), ("Cross Entropy", "ce"), ("SupCon", "supcon"), ("Guided", "guided"),
                ("HiMulCon", "himulcon"), ("HiConE", "hicone"), ("HiMulConE", "himulcone")), SEEN_SUFFIX),
    number_format=PERCENT_2))

HIMULCON_TABLE3 = register_table(TableSpec(
    id="himulcon_table3", paper=PAPER, source="HiMulCon paper Table 3", reference_csv="himulcon_table3.csv",
    caption="NMI of K-means on the unseen test set (encoders trained on the seen categories)",
    label_column="model", paper_dataset="DeepFashion In-Shop, ModelNet40 (unseen categories)",
    columns=tuple(Entry(f"{d} {label}", dataset=d, metric=metric) for d in ("DeepFashion", "ModelNet40")
                  for label, metric in (("Category NMI", "category_nmi"), ("Product NMI", "product_nmi_L2"))),
    rows=_rows((("SimCLR", "simclr"), ("CE", "ce"), ("SupCon", "supcon"), ("HiMulCon", "himulcon"),
                ("HiConE", "hicone"), ("HiMulConE", "himulcone")), SEEN_SUFFIX, EMBEDDING),
    number_format=FRACTION_2))

HIMULCON_TABLE4 = register_table(TableSpec(
    id="himulcon_table4", paper=PAPER, source="HiMulCon paper Table 4", reference_csv="himulcon_table4.csv",
    caption="Retrieval MAP@R on the full datasets",
    label_column="model", paper_dataset="DeepFashion In-Shop, iNaturalist 2017, ModelNet40",
    columns=tuple(Entry(d, dataset=d, metric="map_at_r") for d in ("DeepFashion", "iNaturalist", "ModelNet40")),
    rows=_rows((("SupCon", "supcon"), ("HiMulConE", "himulcone")), inference=EMBEDDING),
    number_format=PERCENT_1))

HIMULCON_TABLE_IDS = ("himulcon_table1", "himulcon_table2", "himulcon_table3", "himulcon_table4")

__all__ = ["HIMULCON_TABLE_IDS"]
