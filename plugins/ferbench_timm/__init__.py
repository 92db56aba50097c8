"""Every timm model as a ferbench classifier: ``timm:<model_name>`` (``timm:resnet18``, ``timm:vgg19_bn``,
``timm:convnext_atto``, ...).

Models are built from scratch (``pretrained=False``: nothing is downloaded) with the dataset's channels
and classes; ``--weights PATH`` starts from a local weights file instead (see ``ferbench.checkpoint``).
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import torch
from torch import nn

from ferbench import hookimpl
from ferbench.interfaces import Classifier, ComponentSpec

# timm is imported where a model is built or listed, not here: importing it costs seconds, and every
# ferbench command loads this plugin.


class TimmClassifier(Classifier):
    """A timm model behind the :class:`~ferbench.interfaces.Classifier` interface."""

    def __init__(self, model_name: str, num_classes: int, in_chans: int = 3, image_size: int = 224,
                 drop_rate: float = 0.0, **kwargs):
        super().__init__()
        kwargs = {"num_classes": num_classes, "in_chans": in_chans, "drop_rate": drop_rate, **kwargs}
        # Transformers fix their patch grid at build time; CNNs take any size and reject the argument.
        if _accepts_img_size(model_name):
            kwargs.setdefault("img_size", image_size)
        import timm

        self.model = timm.create_model(model_name, pretrained=False, **kwargs)
        self.model_name = model_name
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.feature_dim = int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(images), pre_logits=True)


def _accepts_img_size(model_name: str) -> bool:
    import timm

    entry = timm.models.model_entrypoint(model_name)
    source_module = inspect.getmodule(entry)
    # timm's transformer families expose img_size on their model classes; checking the module keeps
    # this cheap (no model is built twice).
    return source_module is not None and any(
        "img_size" in inspect.signature(obj.__init__).parameters
        for obj in vars(source_module).values()
        if inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__ == source_module.__name__
    )


def build(model_name: str, **kwargs) -> TimmClassifier:
    return TimmClassifier(model_name, **kwargs)


def list_models() -> list[str]:
    import timm

    return timm.list_models()


@hookimpl
def ferbench_register_components():
    return [ComponentSpec(kind="classifier", name="timm:", build=build, members=list_models,
                          summary=f"any timm {version('timm')} model, from scratch or local weights")]
