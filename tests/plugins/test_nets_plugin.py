import torch

from ferbench.plugins import PluginManager


def test_fer_vgg8_shapes_size_and_features():
    model = PluginManager().catalog.build("classifier", "fer-vgg8", num_classes=7, in_chans=1, image_size=48).eval()
    assert 9.3e6 < sum(p.numel() for p in model.parameters()) < 9.5e6
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        features, logits = model.features(x), model(x)
    assert features.shape == (3, model.feature_dim) and logits.shape == (3, 7)
    assert torch.allclose(model.head(features), logits)


def test_fer_vgg8_takes_other_sizes_and_colour():
    model = PluginManager().catalog.build("classifier", "fer-vgg8", num_classes=5, in_chans=3, image_size=96).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 96, 96)).shape == (2, 5)
