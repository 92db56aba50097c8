"""CPU hot paths under pytest-benchmark: a training step and inference. They run once as plain tests in the
normal suite (addopts has --benchmark-disable); `python -m pytest tests/benchmarks --benchmark-enable`
times them. No assertion is about speed."""

import numpy as np
import pytest
import torch

from ferbench.data import InputSpec
from ferbench.augment import random_affine
from ferbench.training import predict_proba

SIZE, BATCH = 48, 64


@pytest.fixture(scope="module")
def resnet18():
    from ferbench.plugins import PluginManager

    return PluginManager().catalog.build("classifier", "timm:resnet18", num_classes=7, in_chans=1, image_size=SIZE)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (BATCH, SIZE, SIZE), dtype=np.uint8)


def test_training_step(benchmark, resnet18, images):
    model = resnet18.train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    spec = InputSpec(1, SIZE, (0.5,), (0.25,))
    batch = torch.from_numpy(images)
    labels = torch.randint(0, 7, (BATCH,))
    generator = torch.Generator().manual_seed(0)

    def step():
        x = random_affine(spec(batch), generator).contiguous(memory_format=torch.channels_last)
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    assert np.isfinite(benchmark(step))


def test_inference(benchmark, resnet18, images):
    spec = InputSpec(1, SIZE, (0.5,), (0.25,))
    probabilities = benchmark(predict_proba, resnet18, images, spec, torch.device("cpu"), BATCH)
    assert probabilities.shape == (BATCH, 7) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
