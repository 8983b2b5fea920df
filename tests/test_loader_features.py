"""The training loader's features: batch samplers, two views, fine-tuning regimes, grayscale, a train subset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from taxonbench import training
from taxonbench.batches import DecodedBatches, LoaderBatches, epoch_generator, subset_rows, to_grayscale
from taxonbench.errors import TaxonbenchError
from taxonbench.finetune import backbone_layers, freeze_backbone
from taxonbench.models.backbones import Preprocess, build_backbone
from taxonbench.registries import METHODS, SAMPLERS
from taxonbench.samplers import make_sampler
from taxonbench.samplers.frequency import frequency_weights
from taxonbench.taxonomy import Taxonomy
from conftest import TOY_PARENTS
from test_training import toy_settings

TOY = Taxonomy.from_parents(TOY_PARENTS)
CPU = torch.device("cpu")


class Rows:
    """A batch source as the samplers see it: leaves, a length and a uniform shuffle."""

    def __init__(self, leaves) -> None:
        self.leaves = np.asarray(leaves)

    def __len__(self) -> int:
        return len(self.leaves)

    def shuffled(self, gen):
        return torch.randperm(len(self), generator=gen)


def order(name, leaves, batch_size=8, seed=0, taxonomy=TOY, **options):
    sampler = make_sampler({"name": name, **options}, taxonomy, batch_size)
    return np.asarray(sampler.order(Rows(leaves), epoch_generator(seed, 0)))


# ------------------------------------------------------------------ samplers
def test_every_sampler_is_registered_and_reproducible():
    leaves = np.array([0] * 20 + [1] * 6 + [2] * 3 + [3] * 3)
    assert set(SAMPLERS.names()) == {"shuffle", "class_balanced", "inverse_frequency", "inverse_sqrt_frequency",
                                     "hierarchical"}
    for name in SAMPLERS.names():
        a, b = order(name, leaves), order(name, leaves)
        assert np.array_equal(a, b), name  # a function of (seed, epoch)
        assert len(a) == len(leaves) and a.min() >= 0 and a.max() < len(leaves), name
        assert not np.array_equal(a, order(name, leaves, seed=1)), name


def test_shuffle_is_the_permutation_the_default_always_drew():
    leaves = np.arange(50) % 4
    assert np.array_equal(order("shuffle", leaves), torch.randperm(50, generator=epoch_generator(0, 0)).numpy())


def test_frequency_weights_by_hand():
    leaves = np.array([0, 0, 0, 1, 2, 2, 2, 2])
    np.testing.assert_allclose(frequency_weights(leaves, 1.0), [1 / 3] * 3 + [1] + [1 / 4] * 4)
    np.testing.assert_allclose(frequency_weights(leaves, 0.5), [3 ** -0.5] * 3 + [1] + [0.5] * 4)


@pytest.mark.parametrize("name, power", [("inverse_frequency", 1.0), ("inverse_sqrt_frequency", 0.5)])
def test_frequency_resampling_is_torch_weighted_random_sampler(name, power):
    """The same draws as torch's WeightedRandomSampler with the thesis's weights and the same generator."""
    from torch.utils.data import WeightedRandomSampler

    leaves = np.array([0] * 40 + [1] * 10 + [2] * 2 + [3] * 1)
    weights = torch.tensor([{0: 40, 1: 10, 2: 2, 3: 1}[c] ** -power for c in leaves], dtype=torch.double)
    reference = list(WeightedRandomSampler(weights, len(leaves), replacement=True, generator=epoch_generator(0, 0)))
    assert order(name, leaves).tolist() == reference


def test_resampling_refuses_a_leaf_without_training_rows():
    with pytest.raises(TaxonbenchError, match=r"train.sampler: inverse_frequency re-sampling needs a training image "
                                              r"of every leaf; 1 have none"):
        order("inverse_frequency", np.array([0, 1, 1, 3]))


def test_inverse_frequency_balances_the_classes_in_expectation():
    leaves = np.array([0] * 900 + [1] * 90 + [2] * 9 + [3] * 1)
    drawn = np.concatenate([leaves[order("inverse_frequency", leaves, seed=s)] for s in range(20)])
    share = np.bincount(drawn, minlength=4) / len(drawn)
    np.testing.assert_allclose(share, 0.25, atol=0.02)  # 20,000 draws: sd of a share ~ 0.003


def test_class_balanced_batches_hold_per_class_rows_of_distinct_classes():
    leaves = np.array([0] * 30 + [1] * 7 + [2] * 2 + [3] * 5)
    positions = order("class_balanced", leaves, batch_size=6, per_class=3)
    assert len(positions) == len(leaves)
    for start in range(0, len(positions) - 6 + 1, 6):
        counts = np.bincount(leaves[positions[start:start + 6]], minlength=4)
        assert sorted(counts[counts > 0]) == [3, 3], counts  # 2 distinct classes, 3 rows each
    # a class with 2 rows repeats them within its cycle; the others are drawn without repeats per cycle
    with pytest.raises(TaxonbenchError, match=r"train.sampler.per_class: 4 does not divide train.batch_size 6"):
        make_sampler({"name": "class_balanced", "per_class": 4}, TOY, 6)
    with pytest.raises(TaxonbenchError, match="needs 5 classes; the training split has 4"):
        order("class_balanced", leaves, batch_size=10, per_class=2)


def test_hierarchical_sampler_pairs_every_anchor_at_every_level():
    """HiMulCon §3.5: after each anchor, one unused row of its leaf, then one of its kingdom; each row once."""
    # toy tree: kingdoms A (leaves 0, 1) and B (leaves 2, 3)
    leaves = np.array([0] * 6 + [1] * 6 + [2] * 6 + [3] * 6)
    positions = order("hierarchical", leaves)
    assert sorted(positions.tolist()) == list(range(len(leaves)))
    kingdom = np.array([0, 0, 1, 1])
    a, same_leaf, same_kingdom = leaves[positions[0::3]], leaves[positions[1::3]], leaves[positions[2::3]]
    # while the pools last the groups are (anchor, same leaf, same kingdom); count the groups that are
    whole = (a == same_leaf) & (kingdom[a] == kingdom[same_kingdom])
    assert whole[:4].all() and whole.mean() >= 0.5


# ------------------------------------------------------------------ views, grayscale, subset
def test_two_views_are_independent_augmentations_of_the_same_rows(toy_shards):
    augment = {"random_crop_padding": 2, "hflip": True}
    shuffle = make_sampler({"name": "shuffle"}, TOY, 8)
    one = DecodedBatches(toy_shards, "train", Preprocess(), augment, CPU)
    two = DecodedBatches(toy_shards, "train", Preprocess(), augment, CPU, views=2)
    plain = DecodedBatches(toy_shards, "train", Preprocess(), None, CPU, views=2)
    (x1, y1), = [next(iter(one.epoch(8, shuffle, epoch_generator(0, 0))))]
    (x2, y2), = [next(iter(two.epoch(8, shuffle, epoch_generator(0, 0))))]
    (xp, _), = [next(iter(plain.epoch(8, shuffle, epoch_generator(0, 0))))]
    assert x2.shape == (8, 2, 3, 16, 16) and y2.tolist() == y1.tolist()
    torch.testing.assert_close(x2[:, 0], x1, rtol=0, atol=0)  # the first view is what one view would be
    assert not torch.equal(x2[:, 0], x2[:, 1])
    torch.testing.assert_close(xp[:, 0], xp[:, 1], rtol=0, atol=0)  # no augmentation: identical views
    loader = LoaderBatches(toy_shards, "train", Preprocess(), 16, augment, CPU, 0, views=2)
    (xl, yl), = [next(iter(loader.epoch(8, shuffle, epoch_generator(0, 0))))]
    assert xl.shape == (8, 2, 3, 16, 16) and not torch.equal(xl[:, 0], xl[:, 1]) and len(yl) == 8


SUPCON_AUGMENT = {"random_crop_padding": 2, "hflip": True, "resized_crop_scale": [0.2, 1.0],
                  "color_jitter": [0.4, 0.4, 0.4, 0.1], "color_jitter_p": 0.8, "grayscale_p": 0.2}


def test_supcon_augmentations_are_torchvisions_and_take_the_loader_path(toy_shards):
    from torchvision import transforms as T

    from taxonbench.batches import image_transform, make_batches

    steps = image_transform(Preprocess(), 16, SUPCON_AUGMENT).transforms
    assert [type(t) for t in steps] == [T.RandomResizedCrop, T.RandomHorizontalFlip, T.RandomApply,
                                        T.RandomGrayscale, T.PILToTensor]  # the resized crop replaces the padded one
    assert steps[0].scale == (0.2, 1.0) and steps[2].p == 0.8 and steps[3].p == 0.2
    assert isinstance(steps[2].transforms[0], T.ColorJitter) and steps[2].transforms[0].hue == (-0.1, 0.1)
    small = {"random_crop_padding": 2, "hflip": True, "resized_crop_scale": None, "color_jitter": None,
             "grayscale_p": 0.0}
    kind = lambda augment: type(make_batches(toy_shards, "train", Preprocess(), 16, augment, CPU, 0,  # noqa: E731
                                             cache_decoded_mb=100, n_rows=48, views=2)).__name__
    assert kind(small) == "DecodedBatches" and kind(SUPCON_AUGMENT) == "LoaderBatches"
    shuffle = make_sampler({"name": "shuffle"}, TOY, 8)
    batches = make_batches(toy_shards, "train", Preprocess(), 16, SUPCON_AUGMENT, CPU, 0, 100, 48, views=2)
    (x, _), = [next(iter(batches.epoch(8, shuffle, epoch_generator(0, 0))))]
    (again, _), = [next(iter(batches.epoch(8, shuffle, epoch_generator(0, 0))))]
    assert x.shape == (8, 2, 3, 16, 16) and not torch.equal(x[:, 0], x[:, 1])
    torch.testing.assert_close(x, again, rtol=0, atol=0)  # seeded per image: the same epoch twice


@pytest.mark.parametrize("augment,pattern", [
    ({"color_jitter": [0.4, 0.4, 0.4, 0.6]}, r"train\.augment\.color_jitter\.3: 0\.6 is greater than the maximum of 0\.5"),
    ({"color_jitter": [0.4, 0.4]}, r"train\.augment\.color_jitter: \[0\.4, 0\.4\] is too short"),
    ({"resized_crop_scale": [0.0, 1.0]}, r"train\.augment\.resized_crop_scale\.0: 0\.0 is less than or equal"),
])
def test_bad_augment_values_stop_at_start_naming_the_key(tmp_path, augment, pattern):
    import yaml

    from taxonbench.params import load_params

    cfg = yaml.safe_load(open("params.yaml"))
    cfg["train"]["augment"] = augment
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(TaxonbenchError, match=pattern):
        load_params(tmp_path / "p.yaml")


def test_grayscale_is_torchvisions_luma():
    from torchvision.transforms.functional import rgb_to_grayscale

    x = torch.randint(0, 256, (5, 2, 3, 7, 9), dtype=torch.uint8)
    torch.testing.assert_close(to_grayscale(x), rgb_to_grayscale(x.flatten(0, 1), 3).view_as(x), rtol=0, atol=0)


def test_subset_rows_are_a_fixed_sample():
    rows = subset_rows(100, 10, seed=3)
    assert len(set(rows.tolist())) == 10 and list(rows) == sorted(rows) and rows.max() < 100
    assert np.array_equal(rows, subset_rows(100, 10, seed=3)) and not np.array_equal(rows, subset_rows(100, 10, 4))
    assert subset_rows(100, None, 3) is None


def test_a_train_subset_trains_on_that_many_rows(toy_shards, tmp_path):
    training.train(toy_settings(epochs=1, train_subset=8), toy_shards, tmp_path / "m", progress=False)
    log = (tmp_path / "m" / "train_log.csv").read_text().splitlines()
    assert len(log) == 2
    loader = LoaderBatches(toy_shards, "train", Preprocess(), 16, None, CPU, 0, rows=subset_rows(32, 8, 0))
    decoded = DecodedBatches(toy_shards, "train", Preprocess(), None, CPU, rows=subset_rows(32, 8, 0))
    (xl, yl), = list(loader.epoch(8, None, epoch_generator(0, 0)))
    (xd, yd), = list(decoded.epoch(8, None, epoch_generator(0, 0)))
    torch.testing.assert_close(xl, xd, rtol=0, atol=1e-6)
    assert yl.tolist() == yd.tolist() == loader.leaves.tolist()
    with pytest.raises(TaxonbenchError, match="train.train_subset 64 exceeds the 32 rows of the train split"):
        training.train(toy_settings(epochs=1, train_subset=64), toy_shards, tmp_path / "n", progress=False)


def test_grayscale_training_is_remembered_by_the_model(toy_shards, tmp_path):
    training.train(toy_settings(epochs=1, grayscale=True), toy_shards, tmp_path / "m", progress=False)
    _, preprocess, meta = training.load_model(tmp_path / "m" / "model.pt", TOY, CPU)
    assert preprocess.grayscale and meta["preprocess"]["grayscale"]


def test_grayscale_on_a_one_channel_dataset_is_refused(tmp_path):
    from conftest import ToyAdapter

    from taxonbench.datasets.base import prepare_dataset

    class GreyToy(ToyAdapter):
        def info(self):
            return {**super().info(), "channels": 1}

    shards = tmp_path / "grey"
    prepare_dataset(GreyToy(), shards, rows_per_shard=16)
    with pytest.raises(TaxonbenchError, match=r"train.grayscale is set, but .*grey.* holds one-channel"):
        training.train(toy_settings(epochs=1, grayscale=True), shards, tmp_path / "m", progress=False)
    assert not (tmp_path / "m" / "model.pt").exists()


# ------------------------------------------------------------------ fine-tuning regimes
def test_backbone_layers():
    assert [n for n, _ in backbone_layers(build_backbone("resnet18").module)] == \
        ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]
    assert [n for n, _ in backbone_layers(build_backbone("tiny_cnn").module)] == \
        ["features.0", "features.1", "features.4", "features.5", "features.8", "features.9", "features.12",
         "features.13"]


@pytest.mark.parametrize("regime, last_k, trained", [
    ("all", 1, {"features.0", "features.1", "features.4", "features.5", "features.8", "features.9", "features.12",
                "features.13"}),
    ("head", 1, set()),
    ("last_k", 2, {"features.12", "features.13"}),
    ("first_last", 1, {"features.0"}),
])
def test_only_the_regimes_layers_and_the_head_change(toy_shards, tmp_path, regime, last_k, trained):
    torch.manual_seed(0)  # what training seeds before building the method
    before = training.build_method({"method": "flat_softmax", "backbone": "tiny_cnn", "pretrained": None,
                                    "hparams": {}}, TOY)[0]
    before = {k: v.clone() for k, v in before.state_dict().items()}
    path = training.train(toy_settings(epochs=1, finetune=regime, finetune_last_k=last_k), toy_shards,
                          tmp_path / "m", progress=False)
    after = torch.load(path, weights_only=True)["state_dict"]
    changed = {k for k in after if k.startswith("backbone.") and not torch.equal(after[k], before[k])
               and not k.endswith("num_batches_tracked")}
    layers = {".".join(k.split(".")[1:3]) for k in changed}
    assert layers == trained  # weights and BatchNorm statistics alike
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith("head."))


def test_a_last_k_beyond_the_backbone_is_refused(toy_shards, tmp_path):
    with pytest.raises(TaxonbenchError, match=r"train.finetune_last_k: 9 exceeds the backbone's 8 layers"):
        training.train(toy_settings(epochs=1, finetune="last_k", finetune_last_k=9), toy_shards, tmp_path / "m",
                       progress=False)
    with pytest.raises(TaxonbenchError, match="train.finetune: unknown regime 'some'"):
        freeze_backbone(build_backbone("tiny_cnn").module, "some")


# ------------------------------------------------------------------ a two-view method trains
def test_a_two_view_method_gets_both_views(toy_shards, tmp_path, monkeypatch):
    base = METHODS.get("flat_softmax")
    seen = []

    class TwoViews(base):
        views = 2
        label_set_forward = True

        def training_forward(self, images, leaf):
            seen.append(tuple(images.shape))
            b = len(images)
            return self(images.flatten(0, 1)).view(b, 2, -1).mean(1)

    monkeypatch.setitem(METHODS._items, "two_view_test", TwoViews)
    TwoViews.name = "two_view_test"
    settings = toy_settings(epochs=1, augment={"random_crop_padding": 2, "hflip": True})
    settings["method"] = settings["experiment"] = "two_view_test"
    training.train(settings, toy_shards, tmp_path / "m", progress=False)
    assert seen and all(s[1:] == (2, 3, 16, 16) for s in seen)
    row = (tmp_path / "m" / "train_log.csv").read_text().splitlines()[1].split(",")
    assert row[2] == "nan" and row[3] == "nan"  # no top-1 of two-view training outputs


def test_train_image_size_resizes_inputs_and_is_kept_with_the_model(toy_shards, tmp_path):
    """AlexNet needs 63 px; the toy set stores 16 px: train.image_size 64 resizes every input (the thesis: 224)."""
    from taxonbench.logits import dump_logits

    model = training.train(toy_settings(epochs=1, backbone="alexnet", image_size=64, finetune="head"), toy_shards,
                           tmp_path / "m", progress=False)
    assert torch.load(model, weights_only=True)["meta"]["preprocess"]["image_size"] == 64
    assert dump_logits(model, toy_shards, "test", tmp_path / "test.parquet", device="cpu") == 12
