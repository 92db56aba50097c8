"""On-device augmentation: random crop and random erasing do exactly what they say, per image, and
the default configuration leaves training as it was."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferbench.augment import augment_batch, random_affine, random_crop, random_erasing
from ferbench.errors import ConfigError
from ferbench.training import SUPERVISED_DEFAULTS, check_config


def batch(n=6, channels=1, size=12):
    return torch.arange(n * channels * size * size, dtype=torch.float32).reshape(n, channels, size, size) + 1


@pytest.mark.parametrize("flip", [False, True])
def test_random_crop_is_a_window_of_the_padded_image(flip):
    x, padding = batch(), 3
    out = random_crop(x, torch.Generator().manual_seed(0), padding, flip=flip)
    padded = F.pad(x, (padding,) * 4, mode="reflect")
    assert out.shape == x.shape
    offsets = set()
    for image, source in zip(out, padded):
        windows = [(dy, dx, mirrored) for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)
                   for mirrored in ((False, True) if flip else (False,))
                   if torch.equal(image, (source[:, dy:dy + 12, dx:dx + 12].flip(-1) if mirrored
                                         else source[:, dy:dy + 12, dx:dx + 12]))]
        assert windows, "every output is one window of its own padded image"
        offsets.add(windows[0])
    assert len(offsets) > 1  # per image, not one offset for the batch


def test_random_erasing_blanks_one_rectangle_per_chosen_image():
    x = batch(n=64, channels=3, size=16)
    assert torch.equal(random_erasing(x, torch.Generator().manual_seed(0), 0.0), x)
    out = random_erasing(x, torch.Generator().manual_seed(0), 1.0)
    for image in out:
        erased = (image == 0).all(0)
        rows, cols = erased.any(1).nonzero().flatten(), erased.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert erased.sum() == h * w and rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w  # a rectangle
        assert 0.02 * 256 - 8 <= h * w <= 0.33 * 256 + 8
        assert (image == 0).all(0).equal((image == 0).any(0))  # every channel erased alike
    half = random_erasing(x, torch.Generator().manual_seed(1), 0.5)
    assert 16 < sum(bool((img == 0).any()) for img in half) < 48


def test_augment_batch_runs_only_what_the_config_asks_and_is_repeatable():
    x = batch()
    assert torch.equal(augment_batch(x, torch.Generator().manual_seed(0), {"augment": False}), x)
    # The default (augment on, crop and erasing off) is the affine alone, as before crop and erasing existed.
    defaults = {k: SUPERVISED_DEFAULTS[k] for k in ("augment", "crop_padding", "erasing")}
    assert torch.equal(augment_batch(x, torch.Generator().manual_seed(3), defaults),
                       random_affine(x, torch.Generator().manual_seed(3)))
    everything = {"augment": True, "crop_padding": 4, "erasing": 0.5}
    first = augment_batch(x, torch.Generator().manual_seed(5), everything)
    assert torch.equal(first, augment_batch(x, torch.Generator().manual_seed(5), everything))
    assert not torch.equal(first, augment_batch(x, torch.Generator().manual_seed(6), everything))


def test_crop_padding_larger_than_the_image_falls_back_to_repeating_the_edge():
    out = random_crop(batch(size=4), torch.Generator().manual_seed(0), 6)
    assert out.shape == (6, 1, 4, 4)


@pytest.mark.parametrize("key, value, message", [("crop_padding", -1, "crop_padding must be a non-negative integer"),
                                                 ("crop_padding", 2.5, "crop_padding must be"),
                                                 ("erasing", 1.5, "erasing must be a probability")])
def test_bad_augmentation_settings(key, value, message):
    with pytest.raises(ConfigError, match=message):
        check_config({**SUPERVISED_DEFAULTS, key: value})


def test_training_with_crop_and_erasing(squares):
    from ferbench.data import InputSpec
    from ferbench.training import train_classifier
    from ferbench_example import TinyCNN

    data = squares(per_class=8)
    model = TinyCNN(num_classes=3, image_size=16)
    config = {**SUPERVISED_DEFAULTS, "epochs": 2, "batch_size": 8, "crop_padding": 2, "erasing": 0.5}
    history = train_classifier(model, data, InputSpec.fit(data.images, 1, 16), config, torch.device("cpu"), seed=0)
    assert len(history) == 2 and np.isfinite(history[-1]["loss"])


def test_training_with_the_robustness_augmentations_is_repeatable(squares):
    from ferbench.data import InputSpec
    from ferbench.training import train_classifier
    from ferbench_example import TinyCNN

    data = squares(per_class=8)
    config = {**SUPERVISED_DEFAULTS, "epochs": 2, "batch_size": 8, "augmix": 1.0, "occlusion": 0.5}
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = TinyCNN(num_classes=3, image_size=16)
        history = train_classifier(model, data, InputSpec.fit(data.images, 1, 16), config, torch.device("cpu"), seed=0)
        losses.append(history[-1]["loss"])
    assert np.isfinite(losses[0]) and losses[0] == losses[1]


def test_augmix_chain_is_the_identity_when_off_stays_in_range_and_is_repeatable():
    from ferbench.augment import apply_augmix, draw_augmix

    x = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    off = draw_augmix(64, torch.Generator().manual_seed(0), 0.0)
    assert torch.allclose(apply_augmix(x, off, torch.Generator().manual_seed(0)), x, atol=1e-6)
    on = draw_augmix(64, torch.Generator().manual_seed(1), 1.0)
    first = apply_augmix(x, on, torch.Generator().manual_seed(2))
    assert torch.equal(first, apply_augmix(x, on, torch.Generator().manual_seed(2)))
    assert first.min() >= 0 and first.max() <= 1
    changed = (first - x).abs().flatten(1).amax(1) > 1e-3
    assert changed.float().mean() > 0.8  # nearly every chosen image is changed (all ops off: 1/32)


def test_occlusion_covers_one_grey_rectangle_or_full_width_band_per_chosen_image():
    from ferbench.augment import apply_pixel_augmentation, draw_occlusion

    x = torch.full((200, 1, 20, 20), -1.0)  # outside [0, 1], so every occluded pixel is visible
    boxes = draw_occlusion(200, 20, 20, torch.Generator().manual_seed(0), 1.0)
    out = apply_pixel_augmentation(x, {"occlusion": boxes}, None)
    bands = 0
    for image, box in zip(out[:, 0], boxes):
        covered = image != -1
        rows, cols = covered.any(1).nonzero().flatten(), covered.any(0).nonzero().flatten()
        assert covered.sum() == len(rows) * len(cols) and torch.allclose(image[covered], box[4].expand(int(covered.sum())))
        bands += len(cols) == 20
    assert 60 < bands < 140  # about half are bands
    none = draw_occlusion(200, 20, 20, torch.Generator().manual_seed(0), 0.0)
    assert torch.equal(apply_pixel_augmentation(x, {"occlusion": none}, None), x)


@pytest.mark.parametrize("key", ["augmix", "occlusion"])
def test_robustness_augmentations_take_a_probability(key):
    with pytest.raises(ConfigError, match=f"{key} must be a probability"):
        check_config({**SUPERVISED_DEFAULTS, key: 1.5})
