"""Shared by the CLIP tests: the tiny open_clip backbone name and a named three-level tree."""

from __future__ import annotations

from taxonbench.models.clip import TINY_CLIP
from taxonbench.taxonomy import Taxonomy

TINY = f"open_clip:{TINY_CLIP}"

#            root
#         /        \
#        A          B          kingdom
#      /   \        |
#     Aa    Ab      Ba         genus
#    / \    |      /  \
#   s1  s2  s3    s4   s5      species
TREE = Taxonomy.from_parents(
    [-1, 0, 0, 1, 1, 2, 3, 3, 4, 5, 5],
    name=["Life", "Animalia", "Plantae", "Corvus", "Pica", "Quercus", "corax", "corone", "pica", "robur", "alba"],
    rank=["root", "kingdom", "kingdom", "genus", "genus", "genus", "species", "species", "species", "species",
          "species"],
    fixed_ranks=True,
)
