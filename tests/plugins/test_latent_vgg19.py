"""latent-vgg19: generator shapes, AdaIN, latent optimisation, the classifier head, GAN folders, a tiny run."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ferbench import precision
from ferbench.errors import CheckpointError, ConfigError
from ferbench.plugins import PluginManager
from ferbench.runner import RunRequest, run
from ferbench_latent_vgg19.classifier import LatentCorrection, LatentVGG19, train_latent_classifier
from ferbench_latent_vgg19.encoder import StyleEncoder, train_encoder
from ferbench_latent_vgg19.inversion import FaceLens, invert
from ferbench_latent_vgg19.method import read_gan_folder, write_gan_folder
from ferbench_latent_vgg19.quality import reconstruction_quality
from ferbench_latent_vgg19.stylegan import AdaIN, StyleDiscriminator, StyleGenerator, resolution_plan, train_gan

TINY_G = {"latent_dim": 32, "mapping_layers": 2, "channels": 16}


@pytest.fixture(scope="module")
def catalog():
    return PluginManager().catalog


@pytest.mark.parametrize("size, chans, base, upsamplings", [(48, 1, 3, 4), (64, 3, 4, 4), (96, 1, 3, 5), (16, 1, 4, 2)])
def test_mapping_and_synthesis_shapes(size, chans, base, upsamplings):
    torch.manual_seed(0)
    generator = StyleGenerator(image_size=size, out_chans=chans, **TINY_G).eval()
    z = torch.randn(3, 32)
    w = generator.mapping(z)
    assert w.shape == (3, 32)
    assert generator.synthesis.constant.shape[-2:] == (base, base)
    assert len(generator.synthesis.blocks) == upsamplings + 1
    images = generator.synthesis(w, noise="fixed")
    assert images.shape == (3, chans, size, size)
    assert images.abs().max() <= 1
    assert torch.equal(generator(z, noise="fixed"), images)
    # Each image has its own style: different z, different images.
    assert not torch.allclose(images[0], images[1])
    discriminator = StyleDiscriminator(image_size=size, in_chans=chans, channels=16)
    assert discriminator(images).shape == (3,)


@pytest.mark.parametrize("size", [7, 10, 50, 80])
def test_sizes_that_are_not_3_or_4_times_a_power_of_two_are_refused(size):
    with pytest.raises(ConfigError, match="gan_image_size"):
        resolution_plan(size)


def test_noise_modes():
    generator = StyleGenerator(image_size=16, out_chans=1, **TINY_G)
    for layer in generator.synthesis.blocks[-1]:
        layer.noise.strength.data.fill_(0.5)
    w = generator.mapping(torch.randn(2, 32))
    with torch.no_grad():
        fixed = generator.synthesis(w, noise="fixed")
        assert torch.equal(fixed, generator.synthesis(w, noise="fixed"))
        assert not torch.equal(generator.synthesis(w, noise="random"), generator.synthesis(w, noise="random"))
        assert not torch.equal(fixed, generator.synthesis(w, noise="none"))


def test_adain_output_statistics_follow_the_style():
    torch.manual_seed(0)
    adain = AdaIN(channels=8, latent_dim=32)
    torch.nn.init.normal_(adain.style.weight)  # styles that differ clearly from the identity
    x = torch.randn(4, 8, 12, 12) * 3 + 5
    w = torch.randn(4, 32)
    out = adain(x, w)
    scale, shift = adain.styles(w)
    assert torch.allclose(out.mean(dim=(2, 3)), shift, atol=1e-4)
    assert torch.allclose(out.std(dim=(2, 3), unbiased=False), scale.abs(), rtol=1e-3, atol=1e-4)
    # The input's own statistics are gone: only the style sets them.
    assert torch.allclose(adain(x * 10 - 7, w), out, atol=1e-3)


def _lens(in_chans=1, size=16):
    from ferbench.data import InputSpec
    from ferbench_timm import TimmClassifier

    classifier = TimmClassifier("resnet10t", num_classes=3, in_chans=in_chans, image_size=size)
    return FaceLens(classifier, InputSpec(in_chans, size, (0.5,) * in_chans, (0.25,) * in_chans))


def test_latent_optimisation_lowers_the_loss_and_leaves_the_generator_alone():
    torch.manual_seed(0)
    generator = StyleGenerator(image_size=16, out_chans=1, **TINY_G).eval()
    encoder = StyleEncoder(latent_dim=32, in_chans=1, image_size=16, backbone="resnet10t").eval()
    with torch.no_grad():
        queries = generator.synthesis(generator.mapping(torch.randn(4, 32)), noise="fixed")
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    result = invert(generator, encoder, _lens(), queries, steps=25, lr=0.05, feature_weight=1.0, pixel_weight=1.0)
    assert result["w"].shape == result["w_encoder"].shape == (4, 32)
    assert (result["loss_after"] < result["loss_before"]).all()
    assert (result["loss_after"] < 0.8 * result["loss_before"]).any()
    after = generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in generator.parameters())  # trainable again afterwards
    assert all(p.grad is None for p in generator.parameters())


def test_pixel_only_optimisation_needs_no_lens():
    torch.manual_seed(1)
    generator = StyleGenerator(image_size=16, out_chans=3, **TINY_G).eval()
    encoder = StyleEncoder(latent_dim=32, in_chans=3, image_size=16, backbone="resnet10t").eval()
    queries = torch.rand(2, 3, 16, 16) * 2 - 1
    result = invert(generator, encoder, lambda x: [], queries, steps=10, lr=0.05, feature_weight=0.0,
                    pixel_weight=1.0)
    assert (result["loss_after"] < result["loss_before"]).all()


@pytest.mark.parametrize("fc_dim, latent_fc_dim, latent_dim", [(64, 16, 32), (128, 8, 512)])
def test_classifier_head_reads_image_and_latent_features_concatenated(fc_dim, latent_fc_dim, latent_dim):
    model = LatentVGG19(num_classes=7, in_chans=1, latent_dim=latent_dim, backbone="vgg11_bn", fc_dim=fc_dim,
                        latent_fc_dim=latent_fc_dim, drop_rate=0.5).eval()
    final = model.head[-1]
    assert final.in_features == fc_dim + latent_fc_dim == model.feature_dim
    assert final.out_features == 7
    assert isinstance(model.head[0], torch.nn.Dropout) and isinstance(model.image_fc[0], torch.nn.Dropout)
    x, w = torch.randn(2, 1, 32, 32), torch.randn(2, latent_dim)
    with torch.no_grad():
        features = model.features(x, w)
        assert features.shape == (2, fc_dim + latent_fc_dim)
        assert model(x, w).shape == (2, 7)
        # The latent really reaches the logits.
        assert not torch.allclose(model(x, w), model(x, w + 1))


def test_gan_folder_round_trip_gives_identical_outputs(tmp_path, catalog):
    torch.manual_seed(0)
    generator = catalog.build("generator", "stylegan", image_size=16, out_chans=1, **TINY_G)
    discriminator = catalog.build("discriminator", "stylegan-discriminator", image_size=16, in_chans=1, channels=16)
    encoder = catalog.build("encoder", "stylegan-encoder", latent_dim=32, in_chans=1, image_size=16,
                            backbone="resnet10t")
    images = torch.randint(0, 256, (8, 16, 16), dtype=torch.uint8)
    history = train_gan(generator, discriminator, images, steps=4, batch_size=4, lr=0.002, r1_gamma=0.1, seed=0,
                        device=torch.device("cpu"), r1_every=2)
    assert history["steps"] == 4 and history["history"][-1]["step"] == 4
    assert generator.w_avg.abs().sum() > 0  # the mean w was tracked
    train_encoder(encoder, generator, steps=2, batch_size=4, lr=1e-3, seed=0, device=torch.device("cpu"))
    record = {"generator": {"component": "stylegan", "build": {"image_size": 16, "out_chans": 1, **TINY_G}},
              "encoder": {"component": "stylegan-encoder",
                          "build": {"latent_dim": 32, "in_chans": 1, "image_size": 16, "backbone": "resnet10t"}},
              "trained_on": {"dataset": "random"}}
    write_gan_folder(tmp_path / "gan", generator, encoder, record)
    loaded_g, loaded_e, loaded_record = read_gan_folder(tmp_path / "gan", catalog.build)
    assert loaded_record["trained_on"] == {"dataset": "random"}
    z, queries = torch.randn(3, 32), torch.rand(3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded_g(z, noise="fixed"), generator.eval()(z, noise="fixed"))
        assert torch.equal(loaded_e(queries), encoder.eval()(queries))
        assert torch.equal(loaded_g.w_avg, generator.w_avg)


def test_broken_gan_folders_are_refused(tmp_path, catalog):
    (tmp_path / "gan.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(CheckpointError, match="expected format"):
        read_gan_folder(tmp_path, catalog.build)
    generator = StyleGenerator(image_size=16, out_chans=1, **TINY_G)
    encoder = StyleEncoder(latent_dim=32, in_chans=1, image_size=16, backbone="resnet10t")
    record = {"generator": {"component": "stylegan", "build": {"image_size": 16, "out_chans": 1, "latent_dim": 32,
                                                               "mapping_layers": 3, "channels": 16}},
              "encoder": {"component": "stylegan-encoder",
                          "build": {"latent_dim": 32, "in_chans": 1, "image_size": 16, "backbone": "resnet10t"}}}
    write_gan_folder(tmp_path / "other", generator, encoder, record)  # the record says 3 mapping layers, not 2
    with pytest.raises(CheckpointError, match="does not fit"):
        read_gan_folder(tmp_path / "other", catalog.build)


def test_reconstruction_quality_is_perfect_for_identical_images_and_lower_otherwise():
    rng = np.random.default_rng(0)
    queries = rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    noisy = np.clip(queries.astype(int) + rng.integers(-40, 40, queries.shape), 0, 255).astype(np.uint8)
    quality = reconstruction_quality(queries, noisy, queries)
    assert quality["psnr_optimised"] == 100.0 and quality["ssim_optimised"] == pytest.approx(1.0)
    assert quality["psnr_encoder"] < 30 and quality["ssim_encoder"] < 0.99


TINY_RUN = {"epochs": 1, "batch_size": 8, "image_size": 32, "fc_dim": 32, "latent_fc_dim": 8, "latent_dim": 32,
            "mapping_layers": 2, "gan_channels": 16, "gan_image_size": 16, "gan_steps": 3, "gan_batch_size": 8,
            "encoder_backbone": "resnet10t", "encoder_steps": 2, "encoder_batch_size": 8, "lens_epochs": 1,
            "invert_steps": 2, "invert_batch_size": 16}
TINY_COMPONENTS = {"classifier": "timm:vgg11_bn", "lens": "timm:resnet10t"}


def tiny_latent_run(zoo, out, **kwargs):
    request = RunRequest(**{"method": "latent-vgg19", "dataset": "squares", "config": dict(TINY_RUN),
                            "components": dict(TINY_COMPONENTS), "out_dir": out, "device": "cpu", **kwargs})
    return run(zoo, request)


def test_tiny_end_to_end_run_records_the_generator_reconstructions_and_reuses_the_cache(zoo, tmp_path, monkeypatch):
    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "cache"))
    (record,) = tiny_latent_run(zoo, tmp_path / "a")
    fold = Path(record["_path"]).parent
    extra = record["extra"]
    assert record["method"] == "latent-vgg19" and len(record["metrics"]["confusion_matrix"]) == 3
    trained_on = extra["generator"]["trained_on"]
    assert trained_on["gan_data"] == "train" and trained_on["dataset"] == "squares[train]"
    assert trained_on["images"] == record["data"]["train_images"]
    assert extra["generator"]["source"].startswith("trained in this run")
    quality = extra["reconstruction"]
    assert quality["images"] == record["data"]["scored_images"]
    assert {"psnr_encoder", "psnr_optimised", "ssim_encoder", "ssim_optimised"} <= set(quality)
    assert (fold / quality["png"]).read_bytes()[:4] == b"\x89PNG"
    assert extra["inversion"]["test"]["images"] == record["data"]["scored_images"]
    assert len(extra["history"]) == 1
    for name in ("generator.safetensors", "encoder.safetensors", "gan.json", "classifier.safetensors",
                 "lens.safetensors", "latent-vgg19.json"):
        assert (fold / "model" / name).is_file(), name
    assert len(list((tmp_path / "cache" / "latent-vgg19").iterdir())) == 1
    # Where accuracy is lost, stage by stage: every representation's accuracy, and the generator's distance.
    stages = extra["stages"]
    for name in ("latent_encoder", "latent_optimised", "lens_real", "lens_reconstruction", "classifier_without_w"):
        assert 0 <= stages[name] <= 1, name
    frechet = stages["generator_frechet"]
    assert frechet["samples"] == record["data"]["scored_images"]
    assert frechet["generator"] > 0 and frechet["real_train"] >= 0

    # Same data and generator settings: the cached generator is reused; the saved model's GAN folder loads too.
    (again,) = tiny_latent_run(zoo, tmp_path / "b", config={**TINY_RUN, "epochs": 2})
    assert again["extra"]["generator"]["source"].startswith("reused from the cache")
    assert again["extra"]["generator"]["key"] == extra["generator"]["key"]
    # Trained under bf16 autocast it is another generator: not reused, trained anew under its own key. Read
    # from the cache, which is written before the classifier trains: timm's VGG can diverge in bf16 on these
    # 16-pixel squares (ferbench.precision), and the fold's record then holds the failure, not the generator.
    with precision.using("bf16"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a CPU without native bf16 emulates it (slowly)
        tiny_latent_run(zoo, tmp_path / "d")
    assert extra["generator"]["autocast"] == "fp32"
    folders = {json.loads((f / "gan.json").read_text())["autocast"]: f.name
               for f in (tmp_path / "cache" / "latent-vgg19").iterdir()}
    assert set(folders) == {"fp32", "bf16"} and folders["fp32"] == extra["generator"]["key"]
    (loaded,) = tiny_latent_run(zoo, tmp_path / "c", config={**TINY_RUN, "gan_checkpoint": str(fold / "model")})
    assert loaded["extra"]["generator"]["source"].startswith("loaded from")
    assert loaded["extra"]["generator"]["trained_on"] == trained_on


def test_any_ferbench_classifier_can_be_the_image_network(zoo, tmp_path, monkeypatch):
    """latent-fer-resnet: the compact net's penultimate features replace VGG19's pooled convolutions."""
    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "cache"))
    (record,) = tiny_latent_run(zoo, tmp_path / "a", method="latent-fer-resnet",
                                config={**TINY_RUN, "image_branch": "query", "tta": "none"},
                                components={"classifier": "fer-resnet-s", "lens": "fer-resnet-s"})
    build = json.loads((Path(record["_path"]).parent / "model" / "latent-vgg19.json").read_text())["classifier"]
    assert build["build"]["image_net"]["component"] == "fer-resnet-s" and "backbone" not in build["build"]
    assert record["config"]["image_branch"] == "query" and len(record["metrics"]["confusion_matrix"]) == 3

    from ferbench_nets import FerResNet

    net = FerResNet(num_classes=3, in_chans=1, widths=(8, 16), depths=(1, 1))
    model = LatentVGG19(num_classes=3, in_chans=1, latent_dim=16, fc_dim=8, latent_fc_dim=4, image_net=net).eval()
    assert model.image_net is net and model.feature_dim == net.feature_dim + 4 == 20
    x, w = torch.randn(2, 1, 24, 24), torch.randn(2, 16)
    with torch.no_grad():  # the image network's own features reach the final layer untouched (fc_dim is VGG's)
        assert torch.equal(model.features(x, w)[:, :16], net.features(x))
        assert model.features(x, w).shape == (2, 20)
        assert not torch.allclose(model(x, w), model(x, w + 1))


def test_a_time_to_accuracy_curve_inverts_each_test_face_once(zoo, tmp_path, monkeypatch):
    from ferbench_latent_vgg19.method import LatentVGG19Method

    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "cache"))
    inverted = []
    original = LatentVGG19Method._invert
    monkeypatch.setattr(LatentVGG19Method, "_invert",
                        lambda self, images, description: inverted.append(len(images)) or original(self, images, description))
    (record,) = tiny_latent_run(zoo, tmp_path, method="latent-fer-resnet",
                                config={**TINY_RUN, "epochs": 2, "eval_every": 1, "tta": "none"},
                                components={"classifier": "fer-resnet-s", "lens": "fer-resnet-s"})
    assert [point["epoch"] for point in record["time_to_accuracy"]] == [1, 2]
    # The last point is the final model on the same inversion: the record's own accuracy.
    assert record["time_to_accuracy"][-1]["accuracy"] == record["metrics"]["accuracy"]
    assert inverted == [record["data"]["train_images"], record["data"]["scored_images"]]


def test_latent_dropout_hides_w_from_a_share_of_training_faces_only():
    torch.manual_seed(0)
    model = LatentVGG19(num_classes=3, in_chans=1, latent_dim=8, backbone="vgg11_bn", fc_dim=8, latent_fc_dim=4,
                        drop_rate=0.0, latent_dropout=0.5)
    x, w = torch.randn(64, 1, 32, 32), torch.randn(64, 8) * 3
    hidden = model.latent_fc(torch.zeros(1, 8))  # what the branch gives for w at the training mean
    with torch.no_grad():
        model.train()
        latent_part = model.features(x, w)[:, 8:]
        blind = (latent_part == hidden).all(1)
        assert 0.3 < blind.float().mean() < 0.7  # about half of the batch saw no w
        model.eval()
        assert not (model.features(x, w)[:, 8:] == hidden).all(1).any()  # at test time every face has its w


def test_the_image_first_correction_leaves_the_trained_image_network_as_it_was():
    from ferbench.data import InputSpec
    from ferbench_nets import FerResNet

    torch.manual_seed(0)
    net = FerResNet(num_classes=3, in_chans=1, widths=(8, 16), depths=(1, 1))
    model = LatentCorrection(net, num_classes=3, latent_dim=16, latent_fc_dim=8)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    images = np.random.default_rng(0).integers(0, 256, (32, 24, 24), dtype=np.uint8)
    x, w = InputSpec.fit(images, 1, 24)(torch.from_numpy(images)), torch.randn(32, 16) * 3 + 5
    labels = np.arange(32) % 3
    with torch.no_grad():
        net.eval()
        assert torch.equal(model.eval()(x, w), net(x))  # the correction starts at zero
    config = {"epochs": 3, "batch_size": 8, "lr": 0.01, "weight_decay": 0.0, "label_smoothing": 0.0,
              "augment": False}
    train_latent_classifier(model, images, w, labels, InputSpec.fit(images, 1, 24), config, torch.device("cpu"), 0)
    for key, value in net.state_dict().items():  # weights and batch-norm statistics alike
        assert torch.equal(value, before[key]), key
    with torch.no_grad():
        model.eval()
        x = x.contiguous(memory_format=torch.channels_last)
        assert not torch.allclose(model(x, w), net(x))  # w now moves the logits ...
        assert torch.equal(model(x, model.latent_mean.expand(32, -1)), net(x))  # ... and hidden, adds nothing


def test_the_stacked_mix_follows_the_out_of_fold_evidence_and_hidden_w_leaves_the_image_network():
    from ferbench_latent_vgg19.classifier import LatentStack, fit_mix
    from ferbench_nets import FerResNet

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    one_hot = np.eye(3)[labels]
    noise = rng.normal(size=(300, 3))
    informative, useless = np.log(np.full((300, 3), 0.1) + 0.7 * one_hot), noise
    # w's shifts carry the label, the image's do not: the mix trusts w and all but ignores the image ...
    image_weight, latent_weight = fit_mix(labels, useless, informative * 3)
    assert latent_weight > 5 * image_weight
    # ... and the other way round.
    image_weight, latent_weight = fit_mix(labels, informative, noise)
    assert image_weight > 5 * latent_weight
    torch.manual_seed(0)
    net = FerResNet(num_classes=3, in_chans=1, widths=(8, 16), depths=(1, 1)).eval()
    model = LatentStack(net, num_classes=3, latent_dim=16).eval()
    model.fit_latent_scale(torch.randn(50, 16) * 3 + 5)
    model.mix.copy_(torch.tensor([0.7, 2.0]))
    torch.nn.init.normal_(model.latent.weight)
    torch.nn.init.normal_(model.latent.bias)
    x = torch.randn(8, 1, 24, 24).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        hidden = model(x, model.latent_mean.expand(8, -1))
        assert torch.allclose(hidden, 0.7 * net(x).log_softmax(1), atol=1e-5)  # w at the mean adds nothing
        assert not torch.allclose(model(x, torch.randn(8, 16) * 3 + 5), hidden)


def test_identity_directions_find_who_the_face_is_and_the_regression_no_longer_reads_it():
    from ferbench_latent_vgg19.classifier import identity_directions
    from ferbench_latent_vgg19.method import _latent_regression

    rng = np.random.default_rng(0)
    people, labels = rng.integers(0, 20, 400), rng.integers(0, 3, 400)
    # Dimension 0 carries the expression, dimension 1 the person (widely), the rest noise.
    z = rng.normal(size=(400, 8)) * 0.3
    z[:, 0] += labels * 1.0
    z[:, 1] += rng.normal(size=20)[people] * 3
    z = torch.from_numpy(z).float()
    subjects = np.array([f"p{k}" for k in people])
    axes = identity_directions(z, labels, subjects, 1)
    assert axes.shape == (8, 1) and abs(float(axes[1, 0])) > 0.99  # the person's direction, not the label's
    assert identity_directions(z, labels, subjects, 50).shape == (8, 8)  # at most D (here < people) axes
    regression = _latent_regression(z, labels, 3, axes)
    assert torch.allclose(regression.weight @ axes, torch.zeros(3, 1), atol=1e-5)  # blind to the person ...
    assert (regression(z).argmax(1).numpy() == labels).mean() > 0.9  # ... and still reads the expression


@pytest.mark.parametrize("latent_training, stack_on, validation, identity_dims", [
    ("image-first", "out-of-fold", None, 0), ("stacked", "out-of-fold", None, 0),
    ("stacked", "validation", 0.25, 0), ("stacked", "out-of-fold", None, 2)])
def test_image_first_measures_the_no_latent_baseline_inside_the_run(zoo, tmp_path, monkeypatch, latent_training,
                                                                   stack_on, validation, identity_dims):
    """With w hidden the image-first and the stacked model are the image network trained exactly as
    ``--method`` trains it alone (same seed, same recipe, same validation split carved off): its accuracy
    is the baseline run's, whatever the faces the stacked mix is fitted on."""
    from ferbench_latent_vgg19.method import LatentVGG19Method

    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "cache"))
    trained = []
    train_image_net = LatentVGG19Method._train_image_net
    monkeypatch.setattr(LatentVGG19Method, "_train_image_net",
                        lambda self, *a, **k: trained.append(a[3]) or train_image_net(self, *a, **k))
    config = {**TINY_RUN, "image_branch": "query", "tta": "flip", "epochs": 2, "latent_epochs": 2,
              "latent_training": latent_training, "latent_dropout": 0.5, "stack_folds": 2, "stack_on": stack_on,
              "identity_dims": identity_dims}
    (record,) = tiny_latent_run(zoo, tmp_path / "latent", method="latent-fer-resnet", config=config,
                                components={"classifier": "fer-resnet-s", "lens": "fer-resnet-s"},
                                validation=validation)
    extra = record["extra"]
    assert len(extra["image_net_history"]) == 2
    if latent_training == "stacked":
        stack = extra["stack"]
        if stack_on == "validation":  # the finished networks score the carved-off faces: no more networks
            validation_faces = record["metrics"]["temperature_scaled"]["validation_images"]
            assert stack == {**stack, "on": "validation", "faces": validation_faces} and trained == ["image network"]
            assert record["validation"] == validation  # the leaderboard keeps the run apart from one without
        else:  # the squares name 4 people: the inner split keeps each on one side
            assert stack == {**stack, "on": "out-of-fold", "folds": 2, "split": "people"}
            assert trained == ["image network", "out-of-fold image network 1/2", "out-of-fold image network 2/2"]
        assert not extra["history"] and stack["image_weight"] >= 0 and stack["latent_weight"] >= 0
        if identity_dims:  # the squares name 4 people, 2 of them removable as directions of w
            assert stack["identity"]["dims"] == 2 and 0 < stack["identity"]["variance_share"] < 1
        else:
            assert "identity" not in stack
        assert all(0 <= a <= 1 for a in stack["held_out_accuracy"].values())
        assert {"image_net_s", "stack_s"} <= set(extra["timings"])
        # The weight sweep's ratio 0 is the image network alone (its TTA-averaged probabilities), as
        # classifier_without_w is when the fitted image weight is 1 or the views agree.
        sweep = extra["stages"]["latent_weight_sweep"]
        assert sweep["ratios"][0] == 0 and len(sweep["accuracy"]) == len(sweep["ratios"])
        assert sweep["fitted_ratio"] == pytest.approx(stack["latent_weight"] / stack["image_weight"])
        assert abs(sweep["accuracy"][0] - extra["stages"]["classifier_without_w"]) <= 2 / record["data"]["scored_images"]
    else:
        assert len(extra["history"]) == 2 and "stack" not in extra and "latent_weight_sweep" not in extra["stages"]
        assert {"image_net_s", "classifier_s"} <= set(extra["timings"])
    supervised = {k: record["config"][k] for k in ("epochs", "batch_size", "lr", "weight_decay",
                                                   "label_smoothing", "augment", "erasing", "drop_rate",
                                                   "image_size", "tta")}
    (alone,) = run(zoo, RunRequest(method="fer-resnet-s", dataset="squares", config=supervised,
                                   out_dir=tmp_path / "alone", device="cpu", validation=validation))
    assert extra["stages"]["classifier_without_w"] == alone["metrics"]["accuracy"]
    assert extra["image_net_history"][-1]["loss"] == alone["extra"]["history"][-1]["loss"]


@pytest.mark.parametrize("override, message", [
    ({"image_branch": "both"}, "image_branch"),
    ({"latent_training": "both"}, "latent_training"),
    ({"latent_epochs": 0}, "latent_epochs"),
    ({"tta": "rotate"}, "tta"),
    ({"latent_dropout": 1.0}, "latent_dropout"),
    ({"stack_folds": 1}, "stack_folds"),
    ({"stack_on": "test"}, "stack_on"),
    ({"latent_training": "stacked", "stack_on": "validation"}, "--validation"),
    ({"identity_dims": -1}, "identity_dims"),
    ({"identity_dims": 4}, "latent_training=stacked"),
    ({"gan_image_size": 50}, "gan_image_size"),
    ({"feature_weight": 0, "pixel_weight": 0}, "both 0"),
    ({"gan_checkpoint": "/nonexistent"}, "gan_checkpoint"),
])
def test_bad_hyperparameters_fail_before_training(zoo, tmp_path, monkeypatch, override, message):
    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match=message):
        tiny_latent_run(zoo, tmp_path, config={**TINY_RUN, **override})
    assert not (tmp_path / "cache").exists()


def test_identity_directions_need_the_people_of_the_training_faces(squares):
    from ferbench.interfaces import RunContext
    from ferbench_latent_vgg19.method import DEFAULTS, LatentVGG19Method

    nameless = squares()
    nameless.subjects[:] = ""
    ctx = RunContext(config={**DEFAULTS, "latent_training": "stacked", "identity_dims": 4}, components={}, seed=0,
                     device=torch.device("cpu"), out_dir=Path("."), build=None, track=None, epoch_end=None)
    with pytest.raises(ConfigError, match="identity_dims=0"):
        LatentVGG19Method().check(nameless, ctx)


def test_compile_on_a_cpu_without_a_compiler_is_refused_before_the_generator_trains(zoo, tmp_path, monkeypatch,
                                                                                  no_cpp_compiler):
    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="C\\+\\+ compiler"):
        tiny_latent_run(zoo, tmp_path, config={**TINY_RUN, "compile": True})
    assert not (tmp_path / "cache").exists()


def test_a_generator_trained_on_the_test_faces_is_refused(zoo, tmp_path, monkeypatch):
    monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="test faces"):
        tiny_latent_run(zoo, tmp_path / "out", dataset="squares-all", folds=3, only_folds=[1],
                        config={**TINY_RUN, "gan_data": "squares-all"})
    # Found inside the method's fit, before anything trained: no empty run folder is left behind.
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def stage_record(fold, accuracy, w_optimised, method="latent-fer-resnet"):
    return {"run_id": "r1", "method": method, "method_plugin": "latent_vgg19", "dataset": "ckplus48",
            "protocol": "kfold", "fold": fold, "test_split": "test", "metrics": {"accuracy": accuracy},
            "components": {"classifier": "fer-resnet", "lens": "fer-resnet-s"},
            "config": {"image_branch": "query", "feature_weight": 1.0, "invert_steps": 4, "latent_dropout": 0.5},
            "extra": {"reconstruction": {"psnr_encoder": 12.0, "psnr_optimised": 14.0},
                      "generator": {"trained_on": {"dataset": "fer2013[train]", "images": 28709}},
                      "stages": {"latent_encoder": 0.5, "latent_optimised": w_optimised, "lens_real": 0.8,
                                 "lens_reconstruction": 0.7, "classifier_without_w": accuracy - 0.1,
                                 "generator_frechet": {"samples": 9, "generator": 20.0, "real_train": 4.0}}}}


def test_the_stage_table_averages_each_stage_over_a_runs_folds(tmp_path):
    from ferbench_latent_vgg19.quality import leaderboard_section

    records = [stage_record("fold-01", 0.8, 0.7), stage_record("fold-02", 0.9, 0.9),
               {"method": "timm:resnet18", "method_plugin": "timm", "extra": {}}]
    (section,) = leaderboard_section(records)
    section = " ".join(section.split())  # tabulate pads the columns
    assert ("| latent-fer-resnet | ckplus48 | kfold | test | 2 | fer-resnet on query / 4 steps / 0.5 / joint "
            "| fer2013[train] (28709 images) | 12.0 ± 0.0 / 14.0 ± 0.0 | 50.00 ± 0.00 | 80.00 ± 14.14 "
            "| 80.00 ± 0.00 | 70.00 ± 0.00 | 20.0 ± 0.0 / 4.0 ± 0.0 | 75.00 ± 7.07 | - | 85.00 ± 7.07 | r1 |") in section
    assert leaderboard_section(records[2:]) == []
    stacked = stage_record("fold-01", 0.8, 0.7)
    stacked["config"].update(latent_training="stacked", stack_folds=3)  # latent dropout does not apply
    assert "| fer-resnet on query / 4 steps / - / stacked on 3 folds |" in " ".join(
        leaderboard_section([stacked])[0].split())
    stacked["config"].update(stack_on="validation")
    stacked["extra"]["generator"]["config"] = {"gan_steps": 6000}
    stacked["extra"]["stages"]["latent_weight_sweep"] = {"ratios": [0, 0.5, 1], "accuracy": [0.7, 0.75, 0.6]}
    other = json.loads(json.dumps(stacked))
    other["fold"], other["extra"]["stages"]["latent_weight_sweep"]["accuracy"] = "fold-02", [0.7, 0.6, 0.85]
    row = " ".join(leaderboard_section([stacked, other])[0].split())
    assert "| fer-resnet on query / 4 steps / - / stacked on validation | fer2013[train] (28709 images, 6000 steps) |" in row
    # Without w; the one weight of w best over both folds (not each fold's best); the mix.
    assert "| 70.00 ± 0.00 | 72.50 (w x 1) | 80.00 ± 0.00 | r1 |" in row
    stacked["config"].update(identity_dims=32)
    assert "| fer-resnet on query / 4 steps / - / stacked on validation, 32 identity directions out of w |" in " ".join(
        leaderboard_section([stacked])[0].split())
    del other["extra"]["stages"]["latent_weight_sweep"]  # a fold without a sweep: no bound
    assert "| 70.00 ± 0.00 | - | 80.00 ± 0.00 | r1 |" in " ".join(leaderboard_section([stacked, other])[0].split())

    # The same table from the command line, read from a run folder.
    run_dir = tmp_path / "r1"
    for record in records[:2]:
        (run_dir / record["fold"]).mkdir(parents=True)
        (run_dir / record["fold"] / "result-test.json").write_text(json.dumps(record))
    from ferbench_latent_vgg19.command import stage_table

    table = stage_table([run_dir])
    assert table.row_count == 1 and table.columns[-2].header == "Accuracy %"


def test_classifier_learns_from_a_latent_whose_signal_is_small_beside_its_mean():
    """The first CPU runs sat at chance: w's per-image spread was ~1% of its norm, and the unscaled latent
    branch could not see it. With w standardised, a label carried only by a small offset of w is learnt."""
    from ferbench.data import InputSpec
    from ferbench_latent_vgg19.classifier import train_latent_classifier

    rng = np.random.default_rng(0)
    labels = np.arange(32) % 4
    images = rng.integers(0, 256, (32, 32, 32), dtype=np.uint8)  # noise: the images carry no label
    directions = torch.from_numpy(rng.standard_normal((4, 16))).float()
    w = 17.0 + 0.15 * directions[labels] + 0.02 * torch.randn(32, 16, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = LatentVGG19(num_classes=4, in_chans=1, latent_dim=16, backbone="vgg11_bn", fc_dim=16, latent_fc_dim=16,
                        drop_rate=0.0)
    config = {"epochs": 8, "batch_size": 16, "lr": 1e-2, "weight_decay": 0.0, "label_smoothing": 0.0,
              "augment": False}
    history = train_latent_classifier(model, images, w, labels, InputSpec(1, 32, (0.5,), (0.25,)), config,
                                      torch.device("cpu"), seed=0)
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["train_accuracy"] >= 0.9
    assert torch.allclose(model.latent_mean, w.mean(0))


def test_nan_stops_the_gan_and_the_classifier_as_diverged_naming_what_broke(catalog):
    from ferbench.data import InputSpec
    from ferbench.errors import TrainingDiverged
    from ferbench_latent_vgg19.classifier import train_latent_classifier

    torch.manual_seed(0)
    generator = catalog.build("generator", "stylegan", image_size=16, out_chans=1, **TINY_G)
    discriminator = catalog.build("discriminator", "stylegan-discriminator", image_size=16, in_chans=1, channels=16)
    with torch.no_grad():
        next(discriminator.parameters()).fill_(float("nan"))
    images = torch.randint(0, 256, (8, 16, 16), dtype=torch.uint8)
    with pytest.raises(TrainingDiverged, match="the discriminator loss became nan"):
        train_gan(generator, discriminator, images, steps=2, batch_size=4, lr=0.002, r1_gamma=0.1, seed=0,
                  device=torch.device("cpu"), r1_every=2)

    model = LatentVGG19(num_classes=2, in_chans=1, latent_dim=16, backbone="vgg11_bn", fc_dim=8, latent_fc_dim=8)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    config = {"epochs": 1, "batch_size": 4, "lr": 1e-3, "weight_decay": 0.0, "label_smoothing": 0.0, "augment": False}
    with pytest.raises(TrainingDiverged, match="epoch 1, step 1: the classifier loss became nan"):
        train_latent_classifier(model, np.zeros((8, 32, 32), np.uint8), torch.randn(8, 16), np.arange(8) % 2,
                                InputSpec(1, 32, (0.5,), (0.25,)), config, torch.device("cpu"), seed=0)


def test_gan_and_encoder_steps_never_read_losses_back_to_the_host(catalog, monkeypatch):
    from host_reads import counting_host_reads

    images = torch.randint(0, 256, (8, 16, 16), dtype=torch.uint8)
    reads = {}
    for steps in (10, 20):  # both log 10 history points; per-step reads would double the count
        torch.manual_seed(0)
        generator = catalog.build("generator", "stylegan", image_size=16, out_chans=1, **TINY_G)
        discriminator = catalog.build("discriminator", "stylegan-discriminator", image_size=16, in_chans=1, channels=16)
        encoder = catalog.build("encoder", "stylegan-encoder", latent_dim=32, in_chans=1, image_size=16,
                                backbone="resnet10t")
        with counting_host_reads(monkeypatch) as counts:
            train_gan(generator, discriminator, images, steps=steps, batch_size=4, lr=0.002, r1_gamma=0.1, seed=0,
                      device=torch.device("cpu"), r1_every=2)
            train_encoder(encoder, generator, steps=steps, batch_size=4, lr=1e-3, seed=0, device=torch.device("cpu"))
        reads[steps] = dict(counts)
    assert reads[10] == reads[20] and sum(reads[10].values()) > 0  # the spy sees the history reads


def test_interrupted_gan_and_encoder_loops_resume_to_the_same_weights(catalog, tmp_path):
    from ferbench.checkpoint import TrainingCheckpoint

    images = torch.randint(0, 256, (8, 16, 16), dtype=torch.uint8)

    def fresh():
        torch.manual_seed(0)
        return (catalog.build("generator", "stylegan", image_size=16, out_chans=1, **TINY_G),
                catalog.build("discriminator", "stylegan-discriminator", image_size=16, in_chans=1, channels=16),
                catalog.build("encoder", "stylegan-encoder", latent_dim=32, in_chans=1, image_size=16,
                              backbone="resnet10t"))

    def stop_after(count):
        def track(iterable, *args, **kwargs):
            for index, item in enumerate(iterable):
                if index == count:
                    raise KeyboardInterrupt
                yield item
        return track

    def train(generator, discriminator, encoder, gan_track=lambda it, *a, **k: it, encoder_track=lambda it, *a, **k: it):
        gan = train_gan(generator, discriminator, images, steps=20, batch_size=4, lr=0.002, r1_gamma=0.1, seed=0,
                        device=torch.device("cpu"), r1_every=2, track=gan_track,
                        checkpoint=TrainingCheckpoint(tmp_path / "checkpoint.gan.pt"))
        coder = train_encoder(encoder, generator, steps=20, batch_size=4, lr=1e-3, seed=1, device=torch.device("cpu"),
                              track=encoder_track, checkpoint=TrainingCheckpoint(tmp_path / "checkpoint.encoder.pt"))
        return gan, coder

    reference = fresh()
    expected = train(*reference)
    for name in ("checkpoint.gan.pt", "checkpoint.encoder.pt"):
        (tmp_path / name).unlink()
    with pytest.raises(KeyboardInterrupt):
        train(*fresh(), gan_track=stop_after(13))  # killed in step 14: steps 1-12 are on disk
    assert torch.load(tmp_path / "checkpoint.gan.pt", weights_only=True)["epoch"] == 12
    with pytest.raises(KeyboardInterrupt):
        train(*fresh(), encoder_track=stop_after(5))  # the GAN resumes and finishes, the encoder stops
    resumed, counted = fresh(), {"gan": 0, "encoder": 0}

    def counting(name):
        def track(iterable, *args, **kwargs):
            for item in iterable:
                counted[name] += 1
                yield item
        return track

    got = train(*resumed, gan_track=counting("gan"), encoder_track=counting("encoder"))
    assert counted == {"gan": 0, "encoder": 16}  # the finished GAN is restored; the encoder goes on after step 4
    assert [h["d_loss"] for h in got[0]["history"]] == [h["d_loss"] for h in expected[0]["history"]]
    assert [h["w_mse"] for h in got[1]["history"]] == [h["w_mse"] for h in expected[1]["history"]]
    for ours, theirs in zip(resumed, reference):
        assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
