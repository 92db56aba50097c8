"""Is the synthetic dataset learnable but not trivial? Train a small CNN and look at test accuracy.

    python -m ferbench_synthetic.learnability            # default sizes, both styles and cross-style
    python -m ferbench_synthetic.learnability --epochs 8 --seed 1

Prints within-style accuracy on the subject-independent test split for each style, and the accuracy of
a grey-scale model trained on studio and tested on snapshot (the cross-domain gap). Chance is 1/7.
The test suite uses :func:`train_and_score` with a tiny dataset as a quick learnability check.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from ferbench.data import Dataset, InputSpec

from .faces import make_synthetic


def small_cnn(in_chans: int, num_classes: int, width: int = 32) -> nn.Module:
    """Four 3x3 conv blocks (the first three halve the resolution), global average pool, linear."""
    def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        return layers + [nn.MaxPool2d(2)] if pool else layers

    return nn.Sequential(
        *block(in_chans, width, True), *block(width, 2 * width, True), *block(2 * width, 4 * width, True),
        *block(4 * width, 4 * width, False), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4 * width, num_classes),
    )


def train_and_score(train: Dataset, tests: dict[str, Dataset], in_chans: int, epochs: int = 8,
                    width: int = 32, batch_size: int = 64, lr: float = 2e-3, seed: int = 0) -> dict[str, float]:
    """Train :func:`small_cnn` on ``train`` (Adam, random horizontal flips); accuracy on each test set."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    size = train.image_size[0]
    spec = InputSpec.fit(train.images, in_chans, size)
    x = spec(torch.from_numpy(np.ascontiguousarray(train.images)))
    y = torch.from_numpy(train.labels.astype(np.int64))
    model = small_cnn(in_chans, len(train.classes), width)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            index = order[start:start + batch_size]
            batch = x[index]
            flip = torch.rand(len(batch), generator=generator) < 0.5
            batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
            loss = nn.functional.cross_entropy(model(batch), y[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval()
    scores = {}
    with torch.no_grad():
        for name, test in tests.items():
            test = test.restricted_to(train.classes)
            logits = torch.cat([model(spec(torch.from_numpy(np.ascontiguousarray(test.images[i:i + 256]))))
                                for i in range(0, len(test), 256)])
            scores[name] = float((logits.argmax(1).numpy() == test.labels).mean())
    return scores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (the network uses the same)")
    args = parser.parse_args(argv)

    started = time.time()
    studio = make_synthetic("studio", seed=args.seed)
    snapshot = make_synthetic("snapshot", seed=args.seed)
    print(f"rendered {len(studio)} studio + {len(snapshot)} snapshot images in {time.time() - started:.1f}s")
    runs = [
        ("studio -> studio (RGB)", studio, {"studio": studio.split("test")}, 3),
        ("snapshot -> snapshot", snapshot, {"snapshot": snapshot.split("test")}, 1),
        ("studio -> studio, snapshot (grey)", studio,
         {"studio": studio.split("test"), "snapshot": snapshot.split("test")}, 1),
    ]
    for title, data, tests, in_chans in runs:
        started = time.time()
        scores = train_and_score(data.split("train"), tests, in_chans, epochs=args.epochs, seed=args.seed)
        shown = ", ".join(f"{name} {accuracy:.3f}" for name, accuracy in scores.items())
        print(f"{title}: test accuracy {shown}  ({time.time() - started:.0f}s)")


if __name__ == "__main__":
    main()
