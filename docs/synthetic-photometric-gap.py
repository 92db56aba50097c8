"""How much of the synthetic pair's domain gap is exposure, contrast and colour?

Trains classifiers on the studio faces (10 epochs, lr 3e-3, no augmentation: the Arabian GAN's classifier
recipe, here on the whole studio training split), then scores them on the studio test faces, on the raw
snapshot test faces, and on the snapshot faces after two fixes by hand that an image-wide photometric
change can make: each face's grey levels given the studio test faces' mean and spread ("contrast"), and
then tinted with the studio faces' mean colour ("colour"). Its numbers are quoted in docs/arabian-gan.md (Arabian
GAN); they motivated the restyler's photometric stage. Usage:

    python docs/synthetic-photometric-gap.py timm:resnet18 timm:resnet10t timm:convnext_atto
"""

import json
import sys
import time

import numpy as np
import torch

from ferbench.data import InputSpec
from ferbench.plugins import PluginManager
from ferbench.training import SUPERVISED_DEFAULTS, predict_proba, train_classifier
from ferbench_synthetic.faces import make_synthetic

studio, snapshot = make_synthetic("studio"), make_synthetic("snapshot")
train, studio_test, snapshot_test = studio.split("train"), studio.split("test"), snapshot.split("test")
reference = studio_test.images.astype(np.float32)


def matched_contrast(images: np.ndarray) -> np.ndarray:
    grey = images.astype(np.float32)
    spread = grey.std(axis=(1, 2), keepdims=True) + 1e-6
    grey = (grey - grey.mean(axis=(1, 2), keepdims=True)) / spread * reference.mean(-1).std() + reference.mean()
    return np.clip(grey, 0, 255).astype(np.uint8)


def tinted(images: np.ndarray) -> np.ndarray:
    colour = reference.reshape(-1, 3).mean(0)
    return np.clip(matched_contrast(images)[..., None].astype(np.float32) * colour / colour.mean(), 0, 255).astype(np.uint8)


catalog, device = PluginManager().catalog, torch.device("cpu")
recipe = {**SUPERVISED_DEFAULTS, "epochs": 10, "batch_size": 64, "lr": 3e-3, "augment": False}
for name in sys.argv[1:] or ["timm:resnet18"]:
    torch.manual_seed(0)
    model = catalog.build("classifier", name, num_classes=len(studio.classes), in_chans=3, image_size=48)
    spec = InputSpec.fit(train.images, 3, 48)
    started = time.perf_counter()
    train_classifier(model, train, spec, recipe, device, seed=0)
    model.eval()

    def accuracy(images: np.ndarray, labels: np.ndarray) -> float:
        return round(100 * float((predict_proba(model, images, spec, device, 256).argmax(1) == labels).mean()), 2)

    print(json.dumps({"classifier": name, "train_s": round(time.perf_counter() - started, 1),
                      "studio": accuracy(studio_test.images, studio_test.labels),
                      "snapshot": accuracy(snapshot_test.images, snapshot_test.labels),
                      "snapshot, contrast matched": accuracy(matched_contrast(snapshot_test.images), snapshot_test.labels),
                      "snapshot, contrast and colour": accuracy(tinted(snapshot_test.images), snapshot_test.labels)}),
          flush=True)
