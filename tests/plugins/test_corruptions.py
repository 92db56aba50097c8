"""The built-in corruptions: deterministic for a seed, shape and dtype kept, severities monotone."""

import numpy as np
import pytest

from ferbench.interfaces import CorruptionSpec
from ferbench.robustness import SEVERITIES, corrupt
from ferbench_corruptions import BUILT_IN, ferbench_register_corruptions

SPECS = {spec.name: spec for spec in ferbench_register_corruptions()}


def faces(channels: int = 1, n: int = 12, size: int = 48) -> np.ndarray:
    """Structured test images (smooth shading, edges, texture), so blur and compression have work to do."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:size, :size] / size
    images = []
    for _ in range(n):
        base = 100 + 80 * np.sin(6 * rows + rng.uniform(0, 6)) * np.cos(5 * cols) + rng.normal(0, 12, (size, size))
        base[size // 3: size // 2, size // 4: 3 * size // 4] = rng.uniform(0, 60)  # a dark "eye" band
        images.append(np.clip(base, 0, 255))
    images = np.stack(images).astype(np.uint8)
    return np.repeat(images[..., None], 3, axis=-1) if channels == 3 else images


def test_every_built_in_corruption_is_registered_with_a_family_and_a_summary():
    assert set(SPECS) == set(BUILT_IN) and len(SPECS) >= 15
    assert {s.family for s in SPECS.values()} == {"noise", "blur", "digital", "lighting", "occlusion", "geometric"}
    assert all(isinstance(s, CorruptionSpec) and s.summary for s in SPECS.values())


@pytest.mark.parametrize("name", sorted(BUILT_IN))
@pytest.mark.parametrize("channels", [1, 3])
def test_a_corruption_keeps_shape_and_dtype_and_is_deterministic_for_a_seed(name, channels):
    images = faces(channels)
    spec = SPECS[name]
    first = corrupt(spec, images, 3, seed=0)
    assert first.shape == images.shape and first.dtype == np.uint8
    assert np.array_equal(first, corrupt(spec, images, 3, seed=0))
    assert not np.array_equal(first, images)
    if name not in ("dark", "overexposed", "low_contrast", "jpeg", "defocus_blur", "pixelate"):  # no randomness
        assert not np.array_equal(first, corrupt(spec, images, 3, seed=1))


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_severity_1_to_5_is_monotone_in_distance_from_the_clean_image(name):
    images = faces()
    distance = [np.abs(corrupt(SPECS[name], images, s).astype(float) - images).mean() for s in SEVERITIES]
    assert all(a < b for a, b in zip(distance, distance[1:])), f"{name}: {np.round(distance, 2)}"


def test_a_corruption_that_breaks_the_contract_is_named():
    from ferbench.errors import PluginError

    bad = CorruptionSpec("halver", lambda images, severity, rng: images[:, ::2], "digital")
    with pytest.raises(PluginError, match="corruption 'halver' returned uint8"):
        corrupt(bad, faces(), 1)
