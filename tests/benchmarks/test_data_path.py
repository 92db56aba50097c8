"""Benchmarks of the data path on the CPU, in images per second: loading a preprocessed dataset from the
cache, the face pipeline the cache saves, and the per-batch work of training (uint8 -> normalised
input -> augmentation).

In the normal suite each runs once as a plain test (``--benchmark-disable`` in pyproject's addopts);
time them with ``python -m pytest tests/benchmarks --benchmark-enable``. Each benchmark puts its
images per second in ``extra_info`` (shown with ``--benchmark-json``).
"""

import numpy as np
import pytest
import torch

from ferbench.augment import augment_batch
from ferbench.data import InputSpec
from ferbench.faces import FacePipeline
from ferbench_datasets import ckplus48
from face_fixtures import photo, write_image


def record_rate(benchmark, images: int) -> None:
    benchmark.extra_info["images"] = images
    if benchmark.stats is not None and benchmark.stats.stats.mean:
        benchmark.extra_info["images_per_s"] = round(images / benchmark.stats.stats.mean)


@pytest.fixture(scope="module")
def crops_folder(tmp_path_factory):
    """1,400 48 x 48 PNG crops in the CK+48 layout (7 classes x 20 people x 10 frames)."""
    root = tmp_path_factory.mktemp("ck48")
    rng = np.random.default_rng(0)
    for sequence, label in enumerate(("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")):
        for person in range(20):
            for frame in range(10):
                write_image(root / label / f"S{person:03d}_{sequence:03d}_{frame:08d}.png",
                            rng.integers(0, 256, (48, 48), dtype=np.uint8))
    return root


def test_load_from_preprocessing_cache(benchmark, crops_folder):
    first = ckplus48.load(str(crops_folder))
    assert first.load_report["cache"]["reused"] is False
    data = benchmark(ckplus48.load, str(crops_folder))
    assert data.load_report["cache"]["reused"] is True and len(data) == 1400
    record_rate(benchmark, len(data))


def test_face_pipeline_on_photos(benchmark):
    """What the cache saves: Haar detection, crop and resize of 640 x 490 photos (CK+'s size)."""
    photos = [photo(640, 490, 200, at=(120 + 20 * i, 80 + 10 * i), smile=i / 8) for i in range(8)]
    pipeline = FacePipeline(size=48)
    crops = benchmark(lambda: [pipeline(p) for p in photos])
    assert all(c is not None and c[0].shape == (48, 48) for c in crops)
    record_rate(benchmark, len(photos))


@pytest.mark.parametrize("augmentations", [{"augment": False}, {"augment": True},
                                           {"augment": True, "crop_padding": 4, "erasing": 0.5}],
                         ids=["none", "affine", "affine+crop+erasing"])
def test_training_batch_path(benchmark, augmentations):
    """One training batch: index the uint8 dataset, normalise, augment (on the CPU here; the same ops run
    on the GPU)."""
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4096, 48, 48), dtype=np.uint8))
    spec = InputSpec(1, 48, (0.5,), (0.25,))
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(images), generator=generator)

    def one_batch():
        return augment_batch(spec(images[order[:256]]), generator, augmentations)

    out = benchmark(one_batch)
    assert out.shape == (256, 1, 48, 48) and torch.isfinite(out).all()
    record_rate(benchmark, 256)
