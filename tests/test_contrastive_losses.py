"""Two-view contrastive losses (taxonbench.losses.contrastive): SimCLR, SupCon, HiMulCon, HiConE, HiMulConE.

Checked against pytorch-metric-learning's SupConLoss / NTXentLoss, a plain-loop
oracle of Eqs. 4, 6, 7 (paper form), a hand-worked HiConE example, hand-written
level masks (paper and reference-code de-duplication), gradients, batch
permutation invariance and the input errors.
"""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses

from taxonbench.errors import TaxonbenchError
from taxonbench.losses.contrastive import (
    CODE_CONVENTIONS,
    ContrastiveInputError,
    hicone_loss,
    himulcon_loss,
    himulcone_loss,
    level_masks,
    masked_contrastive_loss,
    pair_loss,
    simclr_loss,
    supcon_loss,
)

TAU = 0.1
HIERARCHICAL = [himulcon_loss, hicone_loss, himulcone_loss]


def random_batch(n=8, d=6, labels=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    features = torch.nn.functional.normalize(torch.randn(2 * n, d, generator=g, dtype=torch.float64), dim=1)
    if labels is None:
        coarse = torch.randint(0, 2, (n,), generator=g)
        fine = coarse * 3 + torch.randint(0, 3, (n,), generator=g)
        labels = torch.stack([coarse, fine], dim=1)
    return features, labels


def close(a, b, tol=1e-10):
    return abs(float(a) - float(b)) <= tol * max(1.0, abs(float(b)))


# ------------------------------------------------------------------ 1. reductions to pml SupCon / NT-Xent
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_supcon_matches_pml(seed):
    features, labels = random_batch(n=10, seed=seed)
    expected = pml_losses.SupConLoss(temperature=TAU)(features, labels[:, 1].repeat(2))
    assert close(supcon_loss(features, labels[:, 1], TAU), expected, 1e-8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_himulcon_one_level_is_supcon(seed):
    """One level = one label column, no instance level, λ = 1: Eq. 4 is Eq. 2 (paper §3.2)."""
    features, labels = random_batch(n=10, seed=seed)
    one = labels[:, :1]
    expected = pml_losses.SupConLoss(temperature=TAU)(features, one[:, 0].repeat(2))
    got = himulcon_loss(features, one, TAU, include_instance=False, lambdas=[1.0])
    assert close(got, expected, 1e-8)
    assert close(himulcon_loss(features, one, TAU, include_instance=False, penalty=lambda x: 1.0), expected, 1e-8)
    # with the default λ = exp(1/1) it is e times SupCon
    assert close(himulcon_loss(features, one, TAU, include_instance=False), math.e * expected, 1e-8)


def hand_simclr(features, tau):
    n2 = features.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        s = [float(features[i] @ features[k]) / tau for k in range(n2)]
        total += -(s[j] - math.log(sum(math.exp(s[k]) for k in range(n2) if k != i)))
    return total / n2


@pytest.mark.parametrize("seed", [0, 3])
def test_simclr_matches_pml_ntxent_and_hand(seed):
    features, _ = random_batch(n=7, seed=seed)
    n = 7
    expected = pml_losses.NTXentLoss(temperature=TAU)(features, torch.arange(n).repeat(2))
    got = simclr_loss(features, TAU)
    assert close(got, expected, 1e-8)
    assert close(got, hand_simclr(features, TAU))
    # unlabeled scenario (no label columns, instance level only, λ = 1) reduces to SimCLR
    empty = torch.zeros((n, 0), dtype=torch.long)
    assert close(himulcon_loss(features, empty, TAU, lambdas=[1.0]), got)
    assert close(hicone_loss(features, empty, TAU), got)


# ------------------------------------------------------------------ plain-loop oracle of Eqs. 4, 6, 7 (paper form)
def oracle(features, labels, tau, lambdas, constrained):
    """Loops over levels / anchors / positives. Levels: instance, then columns L-1 .. 0."""
    n2 = features.shape[0]
    n = n2 // 2
    img = [k % n for k in range(n2)]
    s = [[float(features[i] @ features[a]) / tau for a in range(n2)] for i in range(n2)]
    lse = [math.log(sum(math.exp(s[i][a]) for a in range(n2) if a != i)) for i in range(n2)]
    depth = labels.shape[1]
    rows = labels.tolist()
    levels = ["instance"] + list(range(depth - 1, -1, -1))
    previous_max = -math.inf
    total = 0.0
    for lam, level in zip(lambdas, levels):
        def is_pos(i, p, level=level):
            if i == p:
                return False
            if level == "instance":
                return img[i] == img[p]
            return rows[img[i]][:level + 1] == rows[img[p]][:level + 1]
        level_max = -math.inf
        anchors = []
        for i in range(n2):
            vals = []
            for p in range(n2):
                if is_pos(i, p):
                    v = lse[i] - s[i][p]
                    if constrained:
                        v = max(v, previous_max)
                    level_max = max(level_max, v)
                    vals.append(v)
            if vals:
                anchors.append(sum(vals) / len(vals))
        total += lam * sum(anchors) / len(anchors)
        previous_max = max(previous_max, level_max)
    return total / len(levels)


@pytest.mark.parametrize("seed", [0, 1])
def test_paper_forms_match_loop_oracle(seed):
    features, labels = random_batch(n=6, seed=seed)
    lam = [math.exp(1 / k) for k in (1, 2, 3)]  # default F: exp(1/l'), l' = 1 at the instance level
    assert close(himulcon_loss(features, labels, TAU), oracle(features, labels, TAU, lam, False))
    assert close(hicone_loss(features, labels, TAU), oracle(features, labels, TAU, [1, 1, 1], True))
    assert close(himulcone_loss(features, labels, TAU), oracle(features, labels, TAU, lam, True))
    custom = [3.0, 2.0, 0.5]
    assert close(himulcone_loss(features, labels, TAU, lambdas=custom), oracle(features, labels, TAU, custom, True))
    pow2 = [2 ** (1 / k) for k in (1, 2, 3)]
    assert close(himulcon_loss(features, labels, TAU, penalty="pow2"), oracle(features, labels, TAU, pow2, False))


def test_code_normalization_and_anchor_sum():
    features, labels = random_batch(n=6, seed=4)
    paper = himulcon_loss(features, labels, TAU)
    # with the instance level and no de-duplication, the code's 1/(L + 1) equals the paper's 1/|L|;
    # what remains is SupCon's temperature / base_temperature factor
    assert close(himulcon_loss(features, labels, TAU, normalization="code"), paper * TAU / 0.07)
    # reduction="sum": literal Σ_i over the 2N anchors (all have a positive)
    assert close(himulcon_loss(features, labels, TAU, reduction="sum"), paper * 12)
    # code conventions: the instance level is not computed but still counted in the divisor L + 1
    no_inst = himulcon_loss(features, labels, TAU, include_instance=False, lambdas=[1.0, 1.0])
    code_no_dedupe = himulcon_loss(features, labels, TAU, include_instance=False, lambdas=[1.0, 1.0],
                                   normalization="code")
    assert close(code_no_dedupe, no_inst * 2 / 3 * TAU / 0.07)


# ------------------------------------------------------------------ 2. HiConE by hand
# rows: image 0 view 0, image 1 view 0, image 0 view 1, image 1 view 1; τ = 1
HAND_FEATURES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]], dtype=torch.float64)
HAND_LABELS = torch.tensor([[5], [5]])  # one label level, both images share it


def test_hicone_hand_worked():
    # dot products: s01 = 0, s02 = 0.6, s03 = 0.8, s12 = 0.8, s13 = 0.6, s23 = 0.96
    assert torch.allclose(HAND_FEATURES @ HAND_FEATURES.T, torch.tensor(
        [[1.0, 0.0, 0.6, 0.8], [0.0, 1.0, 0.8, 0.6], [0.6, 0.8, 1.0, 0.96], [0.8, 0.6, 0.96, 1.0]],
        dtype=torch.float64))
    ld0 = math.log(math.exp(0.0) + math.exp(0.6) + math.exp(0.8))  # log Σ_{a≠i} for anchors 0 and 1
    ld2 = math.log(math.exp(0.6) + math.exp(0.8) + math.exp(0.96))  # ... for anchors 2 and 3
    pair = pair_loss(HAND_FEATURES, 1.0)
    assert math.isclose(float(pair[0, 3]), 0.8 - ld0) and math.isclose(float(pair[2, 0]), 0.6 - ld2)

    # instance level: the other view; pair loss values ld0 - 0.6 (anchors 0, 1) and ld2 - 0.6 (anchors 2, 3)
    instance = (2 * (ld0 - 0.6) + 2 * (ld2 - 0.6)) / 4
    finest_max = ld2 - 0.6  # L^pair_max of the instance level, as a loss value
    # label level: every other sample is a positive; each pair loss is raised to at least finest_max
    anchor_values = {
        0: [ld0 - 0.0, ld0 - 0.6, ld0 - 0.8],
        1: [ld0 - 0.0, ld0 - 0.8, ld0 - 0.6],
        2: [ld2 - 0.6, ld2 - 0.8, ld2 - 0.96],
        3: [ld2 - 0.8, ld2 - 0.6, ld2 - 0.96],
    }
    clamped = {i: [max(v, finest_max) for v in vals] for i, vals in anchor_values.items()}
    assert clamped[0][0] == ld0 and clamped[0][1] == finest_max  # some pairs kept, some raised
    label_level = sum(sum(v) / 3 for v in clamped.values()) / 4
    expected_paper = (instance + label_level) / 2
    assert close(hicone_loss(HAND_FEATURES, HAND_LABELS, 1.0), expected_paper, 1e-12)

    # code form: the max is on the batch-mean level losses; here the raw label level mean is below the
    # instance level's, so it is raised to it
    raw_label_level = sum(sum(v) / 3 for v in anchor_values.values()) / 4
    assert raw_label_level < instance
    expected_code = (instance + max(raw_label_level, instance)) / 2
    assert close(hicone_loss(HAND_FEATURES, HAND_LABELS, 1.0, constraint="code"), expected_code, 1e-12)
    assert not close(expected_paper, expected_code, 1e-6)

    # HiMulConE: λ after the max; unconstrained HiMulCon for contrast
    assert close(himulcone_loss(HAND_FEATURES, HAND_LABELS, 1.0, lambdas=[2.0, 0.5]),
                 (2.0 * instance + 0.5 * label_level) / 2, 1e-12)
    assert close(himulcon_loss(HAND_FEATURES, HAND_LABELS, 1.0, lambdas=[2.0, 0.5]),
                 (2.0 * instance + 0.5 * raw_label_level) / 2, 1e-12)


# ------------------------------------------------------------------ 3. masks
# images: 0 = (0, 0, 1), 1 = (0, 0, 0), 2 = (0, 1, 0), 3 = (0, 1, 0)
MASK_LABELS = torch.tensor([[0, 0, 1], [0, 0, 0], [0, 1, 0], [0, 1, 0]])


def as_lists(masks):
    return [(m.level, m.active.int().tolist(), m.image_positive.int().tolist()) for m in masks]


def test_masks_paper():
    assert as_lists(level_masks(MASK_LABELS)) == [
        ("instance", [1, 1, 1, 1], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
        (2, [1, 1, 1, 1], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]),
        (1, [1, 1, 1, 1], [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]),
        (0, [1, 1, 1, 1], [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]),
    ]
    level1 = level_masks(MASK_LABELS)[2].positive  # view level, rows k and 4 + k
    assert level1.shape == (8, 8) and not level1.diagonal().any()
    assert level1[0, 4] and level1[4, 0] and level1[0, 1] and level1[0, 5] and not level1[0, 2]
    assert level1[6, 3] and not level1[6, 1]
    assert as_lists(level_masks(MASK_LABELS, include_instance=False)) == as_lists(level_masks(MASK_LABELS))[1:]


def test_masks_code_dedupe():
    # after level 2: one image per full prefix -> {1, 0, 2} (image 3 duplicates image 2), re-sorted by prefix
    # (1 = (0,0,0) before 0 = (0,0,1)); after level 1: first per 2-prefix in that order -> {1, 2}
    assert as_lists(level_masks(MASK_LABELS, dedupe="code")) == [
        ("instance", [1, 1, 1, 1], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
        (2, [1, 1, 1, 1], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]),
        (1, [1, 1, 1, 0], [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]),
        (0, [0, 1, 1, 0], [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]),
    ]


def test_code_dedupe_drops_samples_from_the_denominator():
    features, _ = random_batch(n=4, seed=5)
    # weight only the coarsest level: with dedupe it is SupCon on images {1, 2} alone
    only_coarsest = himulcon_loss(features, MASK_LABELS, TAU, dedupe="code", lambdas=[0, 0, 0, 1])
    subset = features[[1, 2, 5, 6]]
    assert close(only_coarsest * 4, supcon_loss(subset, torch.tensor([0, 0]), TAU))
    # without dedupe it is SupCon on all images with one shared label
    only_coarsest_paper = himulcon_loss(features, MASK_LABELS, TAU, lambdas=[0, 0, 0, 1])
    assert close(only_coarsest_paper * 4, supcon_loss(features, torch.zeros(4, dtype=torch.long), TAU))
    assert set(CODE_CONVENTIONS) == {"include_instance", "dedupe", "constraint", "normalization"}
    assert torch.isfinite(himulcone_loss(features, MASK_LABELS, 0.07, **CODE_CONVENTIONS))


# ------------------------------------------------------------------ 4. gradients, permutation invariance
@pytest.mark.parametrize("fn", HIERARCHICAL + [supcon_loss, simclr_loss])
@pytest.mark.parametrize("variant", [{}, {"dedupe": "code", "constraint": "code", "normalization": "code"}])
def test_gradients_finite(fn, variant):
    _, labels = random_batch(n=6, seed=6)
    raw = torch.randn(12, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    raw[3] = raw[2]  # identical samples: ties in the max
    raw[9] = raw[8]
    raw.requires_grad_(True)
    features = torch.nn.functional.normalize(raw, dim=1)
    if fn is simclr_loss:
        loss = fn(features, TAU)
    elif fn is supcon_loss:
        loss = fn(features, labels[:, 1], TAU)
    else:
        kw = dict(variant)
        if fn is himulcon_loss:
            kw.pop("constraint", None)
        loss = fn(features, labels, TAU, **kw)
    loss.backward()
    assert torch.isfinite(loss) and float(loss.detach()) > 0
    assert torch.isfinite(raw.grad).all() and raw.grad.abs().sum() > 0


@pytest.mark.parametrize("fn", HIERARCHICAL)
def test_batch_permutation_invariance(fn):
    features, labels = random_batch(n=9, seed=8)
    n = 9
    base = fn(features, labels, TAU)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(9))
    permuted = torch.cat([features[:n][perm], features[n:][perm]])
    assert close(fn(permuted, labels[perm], TAU), base)
    swapped = torch.cat([features[n:], features[:n]])  # swapping the two views
    assert close(fn(swapped, labels, TAU), base)
    # relabelling ids within a column changes nothing
    assert close(fn(features, labels * 7 + 100, TAU), base)


def test_anchors_without_positives_are_skipped():
    features, _ = random_batch(n=3, seed=10)
    positive = torch.zeros(6, 6, dtype=torch.bool)
    positive[0, 3] = positive[1, 4] = True
    pair = pair_loss(features, TAU)
    expected = -(pair[0, 3] + pair[1, 4]) / 2
    assert close(masked_contrastive_loss(features, positive, TAU), expected)


# ------------------------------------------------------------------ 5. bad input
def test_bad_input():
    features, labels = random_batch(n=4)
    with pytest.raises(ValueError, match="two views"):
        himulcon_loss(features[:4], labels, TAU)  # one view only
    with pytest.raises(ValueError, match="two views"):
        hicone_loss(features[:7], labels, TAU)
    with pytest.raises(ValueError, match="two views"):
        simclr_loss(features[:5], TAU)
    with pytest.raises(ValueError, match="two views"):
        supcon_loss(features[:4], labels[:, 0], TAU)
    with pytest.raises(ValueError, match="2-D"):
        himulcone_loss(features, labels[:, 0], TAU)
    with pytest.raises(ValueError, match="2-D"):
        himulcon_loss(features, labels[:, :, None], TAU)
    with pytest.raises(ValueError, match="1-D"):
        supcon_loss(features, labels, TAU)
    with pytest.raises(ValueError, match="integer"):
        himulcon_loss(features, labels.double(), TAU)
    with pytest.raises(ValueError, match="2-D"):
        simclr_loss(features[0], TAU)
    with pytest.raises(ValueError, match="temperature"):
        simclr_loss(features, 0.0)
    with pytest.raises(ValueError, match="one weight per level"):
        himulcon_loss(features, labels, TAU, lambdas=[1.0, 1.0])
    with pytest.raises(ValueError, match="dedupe"):
        himulcon_loss(features, labels, TAU, dedupe="yes")
    with pytest.raises(ValueError, match="constraint"):
        hicone_loss(features, labels, TAU, constraint="strict")
    with pytest.raises(ValueError, match="normalization"):
        himulcone_loss(features, labels, TAU, normalization="batch")
    with pytest.raises(ValueError, match="no levels"):
        himulcon_loss(features, labels[:, :0], TAU, include_instance=False)
    # a level with no positive pair anywhere in the batch
    with pytest.raises(ValueError, match=r"level 1 \(labels\[:, 1\]\): no anchor"):
        masked_contrastive_loss(features, torch.zeros(8, 8, dtype=torch.bool), TAU, level=1)
    with pytest.raises(ValueError, match="no anchor"):
        masked_contrastive_loss(features, torch.eye(8, dtype=torch.bool), TAU)  # only self-pairs
    with pytest.raises(TaxonbenchError):
        himulcon_loss(features[:4], labels, TAU)
    assert issubclass(ContrastiveInputError, ValueError)
