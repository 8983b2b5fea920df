"""The embedded default dataset: a procedurally generated "synthetic taxonomy" (docs/design.md §4).

A random tree of the seven Linnaean ranks below the root (kingdom ... species;
option ``ranks`` keeps a subsequence of them, e.g. a 4-level tree like ETHEC's)
with a pseudo-Latin name per taxon. Every node carries an *appearance code*, a
vector in ``R^D``: the root's is zero and a child's is its parent's plus
Gaussian noise of standard deviation ``code_sigma * code_decay**(d - 1)`` at
depth ``d``, so taxa close in the tree have close codes. An image renders its
leaf's code (plus a little per-sample jitter, the "individual" variation)
through one fixed, smooth map to appearance: background, body and stripe
colours, a radial body outline ``r(t) = r0 (1 + sum_k a_k cos(k t + p_k))``,
elongation and a stripe texture. Per-sample nuisance (position, scale,
rotation, stripe phase, background gradient, colour jitter, pixel noise)
makes the leaf task hard enough for the hierarchy to matter.

Two variants: ``balanced`` (the same number of train images per leaf, like
iNat21-mini) and ``long_tailed`` (Zipf train frequencies with a floor, like
iNat18); val and test are balanced in both, and identical between the two
variants for the same seed and tree options.

Everything is a deterministic function of ``(seed, options)``: the tree, the
names, the codes and, per split, every image (the same PNG bytes on every run).

**Seen / unseen parts** (the HiMulCon paper's §4.5 protocol). ``part: seen`` or
``part: unseen`` keeps one part of the tree: ``floor(unseen_fraction · n)`` of
the ``n`` top-rank taxa (the "categories"; option ``part_rank`` names another
rank, e.g. ``species``: held-out species, as BioCLIP holds Rare Species out of
its training set), drawn by a generator seeded with
``(seed, crc32("synthetic-unseen"))``, are unseen, the others seen; the part's
dataset holds their subtrees only, with the names and appearance codes they have
in the whole tree (and their ancestors, for a rank below the top). Two datasets
with the same seed and tree options and the two parts thus share no taxon of
that rank or below (an encoder trained on the seen part meets new categories,
or new species, in the unseen one).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from taxonbench.registries import DATASETS
from taxonbench.datasets.base import DatasetAdapter, Rows
from taxonbench.errors import TaxonbenchError
from taxonbench.params import dataclass_from_dict
from taxonbench.shards import encode_png
from taxonbench.taxonomy import RANKS_7, Taxonomy

VARIANTS = ("balanced", "long_tailed")
PARTS = ("all", "seen", "unseen")
SPLITS = ("train", "val", "test")

DEFAULT_BRANCHING: dict[str, list[int]] = {
    "kingdom": [3, 3],
    "phylum": [1, 3],
    "class": [1, 2],
    "order": [1, 3],
    "family": [1, 2],
    "genus": [1, 3],
    "species": [2, 4],
}


@dataclass(frozen=True)
class SyntheticOptions:
    """The ``datasets.<name>.options`` block of a ``source: synthetic`` dataset."""

    variant: str = "balanced"  # "balanced" (iNat21-mini-like) or "long_tailed" (iNat18-like train split)
    # the ranks below the root, a subsequence of kingdom ... species (e.g. [order, family, genus, species]:
    # a 4-level tree like ETHEC's; [genus, species]: 2 levels like the thesis's hierarchical CIFAR-10)
    ranks: list = field(default_factory=lambda: list(RANKS_7))
    # children per node, keyed by the children's rank: {rank: [min, max]}, each count drawn
    # uniformly in [min, max]; ranks left out keep DEFAULT_BRANCHING (min 1 gives single-child taxa)
    branching: dict = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_BRANCHING.items()})
    # accepted [min, max] number of leaves; trees are redrawn (deterministically) until inside
    leaves: list = field(default_factory=lambda: [100, 200])
    image_size: int = 32  # stored image side in pixels (square RGB PNG)
    train_per_leaf: int = 40  # balanced variant: train images per leaf
    val_per_leaf: int = 10  # val images per leaf (both variants)
    test_per_leaf: int = 20  # test images per leaf (both variants)
    # long_tailed: the leaf of frequency rank r (a seeded random order) gets
    # max(long_tail_min, round(long_tail_max * r**-zipf_exponent)) train images
    zipf_exponent: float = 1.0
    long_tail_max: int = 1000  # long_tailed: train images of the most frequent leaf
    long_tail_min: int = 4  # long_tailed: the floor, train images of the rarest leaves
    code_sigma: float = 1.0  # appearance-code step from the root to a kingdom
    code_decay: float = 0.7  # each rank deeper, the step shrinks by this factor (sigma_d = code_sigma * decay**(d-1))
    sample_sigma: float = 0.05  # per-image jitter of the leaf code (individual variation)
    shift: float = 0.15  # max object-centre offset, as a fraction of the half image width
    scale_range: list = field(default_factory=lambda: [0.8, 1.2])  # object scale, drawn log-uniformly in [min, max]
    rotation_deg: float = 30.0  # object rotation, drawn uniformly in [-rotation_deg, rotation_deg]
    background_gradient: float = 0.15  # max strength of a random linear brightness ramp on the background
    color_jitter: float = 0.06  # std of per-image brightness gain and per-channel colour offset
    noise: float = 0.04  # std of per-pixel Gaussian noise (intensities in [0, 1])
    part: str = "all"  # "all", or the "seen" / "unseen" taxa of rank part_rank only (module docstring)
    unseen_fraction: float = 0.5  # the share of the part_rank taxa that are unseen
    part_rank: str | None = None  # the rank whose taxa are split into seen / unseen; null = the top rank


def _check_options(opts: SyntheticOptions, where: str) -> SyntheticOptions:
    """Semantic checks beyond types; fills ranks left out of ``branching``. Errors name the key."""

    def fail(key: str, msg: str) -> None:
        raise TaxonbenchError(f"{where}.{key}: {msg}")

    def int_pair(key: str, value: Any, lo: int) -> list[int]:
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            fail(key, f"expected [min, max] as two integers, got {value!r}")
        if not lo <= value[0] <= value[1]:
            fail(key, f"expected {lo} <= min <= max, got {list(value)}")
        return [int(value[0]), int(value[1])]

    if opts.variant not in VARIANTS:
        fail("variant", f"expected one of {', '.join(VARIANTS)}, got {opts.variant!r}")
    ranks = list(opts.ranks) if isinstance(opts.ranks, (list, tuple)) else None
    if not ranks or any(r not in RANKS_7 for r in ranks) or [r for r in RANKS_7 if r in ranks] != ranks \
            or len(set(ranks)) != len(ranks):
        fail("ranks", f"expected a non-empty subsequence of {', '.join(RANKS_7)} in that order, got {opts.ranks!r}")
    branching = {k: list(v) for k, v in DEFAULT_BRANCHING.items()}
    for rank, pair in opts.branching.items():
        if rank not in ranks and list(pair) != DEFAULT_BRANCHING.get(rank):  # defaults of unused ranks pass
            fail(f"branching.{rank}", f"unknown rank; valid ranks: {', '.join(ranks)}")
        branching[rank] = int_pair(f"branching.{rank}", pair, 1)
    leaves = int_pair("leaves", opts.leaves, 1)
    lo = int(np.prod([branching[r][0] for r in ranks]))
    hi = int(np.prod([branching[r][1] for r in ranks]))
    if lo > leaves[1] or hi < leaves[0]:
        fail("leaves", f"{leaves} cannot be reached: the branching gives between {lo} and {hi} leaves")
    for key in ("image_size",):
        if getattr(opts, key) < 8:
            fail(key, f"expected at least 8, got {getattr(opts, key)}")
    for key in ("train_per_leaf", "val_per_leaf", "test_per_leaf", "long_tail_min"):
        if getattr(opts, key) < 1:
            fail(key, f"expected at least 1, got {getattr(opts, key)}")
    if opts.long_tail_max < opts.long_tail_min:
        fail("long_tail_max", f"expected >= long_tail_min ({opts.long_tail_min}), got {opts.long_tail_max}")
    for key in ("zipf_exponent", "code_sigma", "sample_sigma", "shift", "rotation_deg",
                "background_gradient", "color_jitter", "noise"):
        if getattr(opts, key) < 0:
            fail(key, f"expected >= 0, got {getattr(opts, key)}")
    if opts.part not in PARTS:
        fail("part", f"expected one of {', '.join(PARTS)}, got {opts.part!r}")
    if not 0 < opts.unseen_fraction < 1:
        fail("unseen_fraction", f"expected a number in (0, 1), got {opts.unseen_fraction!r}")
    if opts.part_rank is not None and opts.part_rank not in opts.ranks:
        fail("part_rank", f"expected one of the ranks {', '.join(opts.ranks)} (or null), got {opts.part_rank!r}")
    if not 0 < opts.code_decay <= 1:
        fail("code_decay", f"expected 0 < code_decay <= 1, got {opts.code_decay}")
    sr = opts.scale_range
    if (not isinstance(sr, (list, tuple)) or len(sr) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in sr)
            or not 0 < sr[0] <= sr[1]):
        fail("scale_range", f"expected [min, max] with 0 < min <= max, got {sr!r}")
    return dataclasses.replace(opts, ranks=ranks, branching=branching, leaves=leaves,
                               scale_range=[float(sr[0]), float(sr[1])])


# ------------------------------------------------------------------- names
_ONSETS = ("b", "c", "d", "f", "g", "l", "m", "n", "p", "r", "s", "t", "v",
           "ch", "ph", "th", "cr", "pr", "tr", "st", "gl", "br", "sc", "h", "x", "z")
_VOWELS = ("a", "a", "e", "e", "i", "i", "o", "o", "u", "u", "ae", "y")
_FINALS = ("r", "n", "l", "s", "t", "d", "c", "m", "nt", "st", "ph", "th", "g", "b")
_SUFFIXES = {
    "kingdom": ("ia", "ae", "ota", "ales"),
    "phylum": ("ophyta", "ozoa", "opoda", "ota", "ifera"),
    "class": ("opsida", "ea", "ia", "ata", "oidea"),
    "order": ("ales", "iformes", "ida", "optera"),
    "family": ("idae", "aceae", "inae"),
    "genus": ("us", "a", "um", "ix", "is", "on", "ella", "ops", "ia", "ax"),
    "species": ("us", "a", "um", "is", "ensis", "oides", "atus", "ica", "ii", "ina", "ens", "ifolia"),
}


def _stem(rng: np.random.Generator, rank: str) -> str:
    n_syllables = int(rng.integers(2, 4) if rank in ("genus", "species") else rng.integers(1, 3))
    syllables = [_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                 for _ in range(n_syllables)]
    return "".join(syllables) + _FINALS[rng.integers(len(_FINALS))]


def _names(ranks: list[str], seed: int) -> list[str]:
    """One pseudo-Latin name per node (the root is "root"), unique within each rank."""
    rng = _rng(seed, "names")
    used: dict[str, set[str]] = {r: set() for r in RANKS_7}
    out = ["root"]
    for rank in ranks[1:]:
        for _ in range(100):
            name = _stem(rng, rank) + _SUFFIXES[rank][rng.integers(len(_SUFFIXES[rank]))]
            if name not in used[rank]:
                break
        else:  # pragma: no cover - 100 collisions in a row do not happen at these sizes
            base, k = name, 2
            while name in used[rank]:
                name, k = f"{base}{k}", k + 1
        used[rank].add(name)
        out.append(name if rank == "species" else name.capitalize())
    return out


# -------------------------------------------------------------- randomness
def _rng(seed: int, *tags: str | int) -> np.random.Generator:
    """A generator for one purpose: seeded by the dataset seed and stable tags (crc32 of strings)."""
    words = [t if isinstance(t, int) else zlib.crc32(t.encode()) for t in tags]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


# ---------------------------------------------------------------- rendering
# Layout of the appearance code: which entries drive which visual property.
_BG, _FG, _STRIPE_COL = slice(0, 3), slice(3, 6), slice(6, 9)
_RADIUS, _AMP, _PHASE = 9, slice(10, 14), slice(14, 18)
_FREQ, _ORIENT, _CONTRAST, _ELONG = 18, 19, 20, 21
CODE_DIM = 22
_HARMONICS = np.arange(2, 6, dtype=np.float64)  # k = 2..5 in r(t)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def render(codes: np.ndarray, nuisance: Mapping[str, np.ndarray], size: int,
           noise: np.ndarray) -> np.ndarray:
    """Render a batch of appearance codes ``(B, CODE_DIM)`` as uint8 images ``(B, size, size, 3)``.

    ``nuisance`` holds per-image ``shift`` (B, 2), ``scale`` (B,), ``angle`` (B,) in radians,
    ``stripe_phase`` (B,), ``gradient`` (B, 2), ``gain`` (B,), ``offset`` (B, 3);
    ``noise`` is the (B, size, size, 3) pixel noise, already scaled. Computed in float64 so
    that the rounding to uint8 does not depend on the CPU's SIMD maths (same bytes everywhere).
    """
    c = np.asarray(codes, dtype=np.float64)
    col = lambda a: np.asarray(a, dtype=np.float64)[:, None, None]  # noqa: E731  (B,) -> (B,1,1)
    bg = _sigmoid(c[:, _BG])[:, None, None, :]
    fg = _sigmoid(c[:, _FG])[:, None, None, :]
    stripe_col = _sigmoid(c[:, _STRIPE_COL])[:, None, None, :]
    r0 = 0.38 + 0.25 * _sigmoid(c[:, _RADIUS])
    amps = (0.22 * np.tanh(c[:, _AMP]) / np.sqrt(_HARMONICS - 1))[:, :, None, None]
    phases = (np.pi * c[:, _PHASE])[:, :, None, None]
    freq = 1.0 + 3.0 * _sigmoid(c[:, _FREQ])  # stripe cycles per unit length
    orient = 0.5 * np.pi * c[:, _ORIENT]
    contrast = 0.85 * _sigmoid(c[:, _CONTRAST] + 0.5)
    elong = np.exp(0.35 * np.tanh(c[:, _ELONG]))

    u = (np.arange(size, dtype=np.float64) + 0.5) / size * 2 - 1  # pixel centres in (-1, 1)
    gx, gy = u[None, None, :], u[None, :, None]  # x along columns, y along rows
    x = gx - col(nuisance["shift"][:, 0])
    y = gy - col(nuisance["shift"][:, 1])
    cos_a, sin_a = col(np.cos(nuisance["angle"])), col(np.sin(nuisance["angle"]))
    scale = col(nuisance["scale"])
    px = (cos_a * x + sin_a * y) / scale  # rotate by -angle into the object's frame
    py = (-sin_a * x + cos_a * y) / scale
    px, py = px / col(elong), py * col(elong)
    r = np.sqrt(px * px + py * py)
    theta = np.arctan2(py, px)
    outline = col(r0) * (1.0 + (amps * np.cos(_HARMONICS[None, :, None, None] * theta[:, None] + phases)).sum(1))
    edge = 1.5 / size / scale  # soft edge about one pixel wide
    body = _sigmoid((outline - r) / edge)[..., None]

    t = col(np.cos(orient)) * px + col(np.sin(orient)) * py
    stripes = 0.5 + 0.5 * np.cos(2 * np.pi * col(freq) * t + col(nuisance["stripe_phase"]))
    weight = (col(contrast) * stripes)[..., None]
    inside = fg * (1 - weight) + stripe_col * weight
    ramp = (col(nuisance["gradient"][:, 0]) * gx + col(nuisance["gradient"][:, 1]) * gy)[..., None]
    outside = bg * (1 + ramp)
    img = outside * (1 - body) + inside * body
    img = img * col(nuisance["gain"])[..., None] + np.asarray(nuisance["offset"], np.float64)[:, None, None, :]
    img = img + noise
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ adapter
_BATCH = 512  # rows per generated batch; fixed, since the noise stream is drawn batch by batch


@DATASETS.register("synthetic")
class SyntheticTaxonomy(DatasetAdapter):
    """The synthetic taxonomy dataset (see the module docstring)."""

    label = "synthetic"

    def __init__(self, options: Mapping[str, Any] | None, *, name: str, seed: int) -> None:
        super().__init__(options, name=name, seed=seed)
        where = f"datasets.{name}.options"
        if isinstance(options, Mapping) or options is None:
            opts = dataclass_from_dict(SyntheticOptions, options, where=where)
        else:
            raise TaxonbenchError(f"{where}: expected a mapping, got {options!r}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise TaxonbenchError(f"seed: expected a non-negative integer, got {seed!r}")
        self.options = _check_options(opts, where)

    # ------------------------------------------------------------ the tree
    @cached_property
    def _tree(self) -> tuple[np.ndarray, np.ndarray]:
        """(parent, depth) of the dataset's tree: the whole tree, or its seen / unseen part; BFS order."""
        parent, depth = self._full_tree
        kept = self._kept
        new_index = np.full(len(parent), -1, dtype=np.int64)
        new_index[kept] = np.arange(len(kept))
        return np.where(parent[kept] >= 0, new_index[np.maximum(parent[kept], 0)], -1), depth[kept]

    @cached_property
    def _kept(self) -> np.ndarray:
        """Indices, in the whole tree, of the nodes of this part (all of them for ``part: all``): the chosen
        taxa of rank ``part_rank``, everything below them and their ancestors."""
        parent, depth = self._full_tree
        if self.options.part == "all":
            return np.arange(len(parent))
        rank = self.options.part_rank or self.options.ranks[0]
        level = self.options.ranks.index(rank) + 1
        taxa = np.flatnonzero(depth == level)
        n_unseen = int(np.floor(self.options.unseen_fraction * len(taxa) + 1e-9))
        if not 0 < n_unseen < len(taxa):
            raise TaxonbenchError(
                f"datasets.{self.name}.options.unseen_fraction: {self.options.unseen_fraction} of the {len(taxa)} "
                f"{rank} taxa gives {n_unseen} unseen; both parts need at least one")
        unseen = _rng(self.seed, "synthetic-unseen").choice(taxa, size=n_unseen, replace=False)
        chosen = set(unseen.tolist()) if self.options.part == "unseen" else set(taxa.tolist()) - set(unseen.tolist())
        keep = np.zeros(len(parent), dtype=bool)
        for v in range(1, len(parent)):  # BFS order: a parent comes before its children
            keep[v] = v in chosen if depth[v] == level else depth[v] > level and keep[parent[v]]
        for v in range(len(parent) - 1, 0, -1):  # and back up: the ancestors of every kept taxon
            if keep[v]:
                keep[parent[v]] = True
        keep[0] = True
        return np.flatnonzero(keep)

    @cached_property
    def _full_tree(self) -> tuple[np.ndarray, np.ndarray]:
        """(parent, depth) of a tree with a leaf count inside ``options.leaves``; nodes in BFS order."""
        lo, hi = self.options.leaves
        for attempt in range(10_000):
            rng = _rng(self.seed, "tree", attempt)
            parent, depth = [-1], [0]
            frontier = [0]
            for d, rank in enumerate(self.options.ranks, start=1):
                a, b = self.options.branching[rank]
                counts = rng.integers(a, b + 1, size=len(frontier))
                nxt = []
                for p, k in zip(frontier, counts):
                    for _ in range(int(k)):
                        nxt.append(len(parent))
                        parent.append(p)
                        depth.append(d)
                frontier = nxt
                if len(frontier) > hi:
                    break
            if lo <= len(frontier) <= hi and depth[-1] == len(self.options.ranks):
                return np.array(parent, dtype=np.int64), np.array(depth, dtype=np.int64)
        raise TaxonbenchError(
            f"datasets.{self.name}.options.leaves: no tree with {lo}..{hi} leaves found in 10000 draws; "
            f"widen the range or change the branching"
        )

    def taxonomy(self) -> Taxonomy:
        parent, depth = self._tree
        ranks = ["root"] + [self.options.ranks[d - 1] for d in depth[1:]]
        full_depth = self._full_tree[1]
        names = _names(["root"] + [self.options.ranks[d - 1] for d in full_depth[1:]], self.seed)
        return Taxonomy.from_parents(parent, name=[names[v] for v in self._kept], rank=ranks,
                                     fixed_ranks=True, source=f"synthetic dataset {self.name!r}")

    @cached_property
    def codes(self) -> np.ndarray:
        """Appearance code of every node, ``(n_nodes, CODE_DIM)``; root = 0 (a part keeps its whole-tree codes)."""
        parent, depth = self._full_tree
        steps = _rng(self.seed, "codes").standard_normal((len(parent), CODE_DIM))
        sigma = self.options.code_sigma * self.options.code_decay ** np.maximum(depth - 1, 0)
        codes = np.zeros((len(parent), CODE_DIM))
        for v in range(1, len(parent)):  # BFS order: a parent comes before its children
            codes[v] = codes[parent[v]] + sigma[v] * steps[v]
        return codes[self._kept]

    @cached_property
    def leaf_nodes(self) -> np.ndarray:
        parent, depth = self._tree
        return np.flatnonzero(depth == len(self.options.ranks))

    # ---------------------------------------------------------- the splits
    def splits(self) -> list[str]:
        return list(SPLITS)

    def split_counts(self, split: str) -> np.ndarray:
        """Images per leaf in ``split``, ``(n_leaves,)``."""
        o, n = self.options, len(self.leaf_nodes)
        self.check_split(split)
        if split != "train":
            return np.full(n, o.val_per_leaf if split == "val" else o.test_per_leaf, dtype=np.int64)
        if o.variant == "balanced":
            return np.full(n, o.train_per_leaf, dtype=np.int64)
        rank_of = _rng(self.seed, "frequency-ranks").permutation(n)
        return zipf_counts(rank_of, o.long_tail_max, o.long_tail_min, o.zipf_exponent)

    def arrays(self, split: str) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
        """Batches ``(ids, images uint8 (B, H, W, 3), leaf indices)`` of one split, undecoded."""
        o = self.options
        counts = self.split_counts(split)
        rng = _rng(self.seed, "split", split, o.variant if split == "train" else "any")
        leaf = rng.permutation(np.repeat(np.arange(len(counts)), counts))
        n, size = len(leaf), o.image_size
        jitter = o.sample_sigma * rng.standard_normal((n, CODE_DIM))
        lo, hi = np.log(o.scale_range)
        nuisance = {
            "shift": rng.uniform(-o.shift, o.shift, (n, 2)),
            "scale": np.exp(rng.uniform(lo, hi, n)),
            "angle": np.deg2rad(rng.uniform(-o.rotation_deg, o.rotation_deg, n)),
            "stripe_phase": rng.uniform(0, 2 * np.pi, n),
            "gradient": o.background_gradient * rng.uniform(-1, 1, (n, 2)) / np.sqrt(2),
            "gain": 1 + o.color_jitter * rng.standard_normal(n),
            "offset": o.color_jitter * rng.standard_normal((n, 3)),
        }
        codes = self.codes[self.leaf_nodes[leaf]] + jitter
        width = max(6, len(str(n - 1)))
        for start in range(0, n, _BATCH):
            sl = slice(start, min(start + _BATCH, n))
            b = sl.stop - sl.start
            noise = o.noise * rng.standard_normal((b, size, size, 3))
            images = render(codes[sl], {k: v[sl] for k, v in nuisance.items()}, size, noise)
            ids = [f"syn-{split}-{i:0{width}d}" for i in range(sl.start, sl.stop)]
            yield ids, images, leaf[sl]

    def rows(self, split: str) -> Iterator[Rows]:
        for ids, images, leaves in self.arrays(split):
            yield {"id": ids, "image": [encode_png(im) for im in images],
                   "leaf": leaves.astype(np.int32).tolist()}

    def info(self) -> dict:
        return {
            "image_size": self.options.image_size,
            "variant": self.options.variant,
            "split_counts": {s: int(self.split_counts(s).sum()) for s in SPLITS},
            "options": dataclasses.asdict(self.options),
        }


def zipf_counts(rank_of: np.ndarray, head: int, floor: int, exponent: float) -> np.ndarray:
    """Long-tailed train counts: leaf ``i``, of frequency rank ``r = rank_of[i] + 1``, gets
    ``max(floor, round(head * r**-exponent))`` images."""
    r = np.asarray(rank_of, dtype=np.float64) + 1
    return np.maximum(floor, np.rint(head * r ** -exponent)).astype(np.int64)
