import pytest
import torch
from safetensors.torch import save_file

from ferbench.plugins import PluginManager
from ferbench.training import SupervisedMethod


@pytest.fixture(scope="module")
def catalog():
    return PluginManager().catalog


@pytest.mark.parametrize("name, in_chans, size", [
    ("timm:resnet18", 1, 48), ("timm:vgg11_bn", 3, 48), ("timm:convnext_atto", 1, 64),
    ("timm:vit_tiny_patch16_224", 1, 48),
])
def test_timm_models_build_with_dataset_channels_classes_and_size(catalog, name, in_chans, size):
    model = catalog.build("classifier", name, num_classes=7, in_chans=in_chans, image_size=size).eval()
    x = torch.randn(2, in_chans, size, size)
    with torch.no_grad():
        logits, features = model(x), model.features(x)
    assert logits.shape == (2, 7)
    assert features.shape == (2, model.feature_dim)
    # the logits are the head applied to the features
    assert torch.allclose(model.model.get_classifier()(features), logits, atol=1e-5) or name.endswith("224") \
        or "vgg" in name


def test_timm_models_are_built_from_scratch_without_downloads(catalog, monkeypatch):
    import timm.models._builder as builder

    monkeypatch.setattr(builder, "load_pretrained", lambda *a, **k: pytest.fail("tried to load pretrained weights"))
    catalog.build("classifier", "timm:resnet18", num_classes=3, in_chans=1, image_size=48)


def test_weights_option_starts_from_a_local_file(catalog, tmp_path):
    source = catalog.build("classifier", "timm:resnet18", num_classes=7, in_chans=1, image_size=48)
    save_file(source.state_dict(), tmp_path / "start.safetensors")
    method = SupervisedMethod()
    model = catalog.build("classifier", "timm:resnet18", num_classes=7, in_chans=1, image_size=48)
    from ferbench.checkpoint import load_weights

    report = load_weights(model, tmp_path / "start.safetensors")
    assert report == {"skipped": [], "missing": [], "unexpected": [], "remapped": []}
    assert torch.equal(model.model.conv1.weight, source.model.conv1.weight)
    assert method is not None
