"""Results tables of the source papers: specs, rendering, comparison with the paper.

Importing this package registers every table spec in :data:`TABLES`
(``hccf_table1`` ... ``hccf_table6``, from :mod:`taxonbench.tables.hccf`).
"""

from taxonbench.tables import hccf as _hccf  # noqa: F401  (registers the HCCF specs)
from taxonbench.tables.render import build_table, build_tables
from taxonbench.tables.spec import TABLES, RowSpec, TableSpec, get_table, load_reference

__all__ = [
    "TABLES",
    "RowSpec",
    "TableSpec",
    "build_table",
    "build_tables",
    "get_table",
    "load_reference",
]
