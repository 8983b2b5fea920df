"""Text prompts for taxa: what a text encoder reads for each node of the taxonomy.

A prompt is a template filled with a node's name in one of three styles
(the ``names`` setting), and optionally its rank:

``own``
    the taxon's own name as stored (``Xylosa``; a species' epithet alone).
``scientific``
    the own name, except that a species is written as its binomial
    "<genus> <epithet>" (the parent's name, then its own).
``cumulative``
    the cumulative-prefix ("taxonomic") name: every name from the top rank
    down to the node, e.g. ``Animalia Chordata Aves … Corvus corax``
    (BioCLIP's taxonomic names); the root's is its own name.

Templates are Python format strings with the fields ``{name}`` (required)
and ``{rank}`` (the node's rank, e.g. ``genus``), e.g. ``"a photo of {name}."``
(CLIP's prompt) or ``"a photo of the {rank} {name}."``. Prompts are indexed by
node id (root included), so the prompts of level ``d`` are those of
``taxonomy.nodes_at_depth(d)``.
"""

from __future__ import annotations

from collections.abc import Callable

from taxonbench import declare
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import Taxonomy

FIELDS = ("name", "rank")
DEFAULT_TEMPLATE = "a photo of {name}."
DEFAULT_NAMES = "cumulative"


def _own(tax: Taxonomy, v: int) -> str:
    return str(tax.name[v])


def _scientific(tax: Taxonomy, v: int) -> str:
    parent = int(tax.parent[v])
    if str(tax.rank[v]).lower() == "species" and parent > 0:
        return f"{tax.name[parent]} {tax.name[v]}"
    return str(tax.name[v])


def _cumulative(tax: Taxonomy, v: int) -> str:
    return tax.path_names(v) if v > 0 else str(tax.name[v])


NAME_STYLES: dict[str, Callable[[Taxonomy, int], str]] = {
    "own": _own,
    "scientific": _scientific,
    "cumulative": _cumulative,
}


def check_template(template: str, where: str) -> None:
    """A template must be a format string using ``{name}`` and no field beyond ``{name}``, ``{rank}``."""
    declare.check_template(template, FIELDS, where)


def node_prompts(taxonomy: Taxonomy, template: str = DEFAULT_TEMPLATE, names: str = DEFAULT_NAMES,
                 where: str = "prompts") -> list[str]:
    """One prompt per node (index = node id), ``template`` filled with the node's name in style ``names``."""
    check_template(template, f"{where}.prompt_template")
    if names not in NAME_STYLES:
        raise TaxonbenchError(
            f"{where}.names: must be one of {', '.join(NAME_STYLES)}; got {names!r}"
        )
    style = NAME_STYLES[names]
    return [template.format(name=style(taxonomy, v), rank=str(taxonomy.rank[v]))
            for v in range(taxonomy.n_nodes)]


__all__ = ["DEFAULT_NAMES", "DEFAULT_TEMPLATE", "NAME_STYLES", "check_template", "node_prompts"]
