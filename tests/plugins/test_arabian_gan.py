"""The Arabian GAN plugin: network shapes, one training step, frozen classifiers, the collapse detector,
the Frechet distance, the restyle command and a tiny end-to-end run through the runner."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from ferbench.data import InputSpec
from ferbench.errors import ConfigError, TrainingDiverged
from ferbench.interfaces import RunContext
from ferbench.metrics import frechet_distance
from ferbench.plugins import PluginManager
from ferbench_arabian_gan import COMPONENTS, METHODS
from ferbench_arabian_gan.dnet import ArabianDnet
from ferbench_arabian_gan.enet import ArabianEnet
from ferbench_arabian_gan.gnet import ArabianGnet
from ferbench_arabian_gan.leaderboard import table2_sections
from ferbench_arabian_gan.method import (
    DEFAULTS, PAPER_SETTING, FrozenClassifier, generator_loss, generator_terms, train_restyler,
)
from ferbench_arabian_gan.report import collapse_report, tpr_table
from ferbench_arabian_gan.restyler import Restyler, load_restyler, save_restyler

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ("anger", "happiness", "surprise")
# Small enough for two shared CPU cores: 16px images, 4-channel networks, a 64-d code, tiny classifiers.
TINY = {"epochs": 2, "warmup_epochs": 0, "batch_size": 8, "image_size": 16, "width": 4, "latent_dim": 64, "classifier_epochs": 2,
        "classifier_batch_size": 8, "classifiers": "timm:test_byobnet,timm:test_efficientnet,timm:test_resnet",
        "guide_classifiers": "timm:test_byobnet", "grid_examples": 2}


@pytest.fixture(scope="module")
def catalog():
    return PluginManager().catalog


# --- the networks ----------------------------------------------------------------------------------

def test_networks_have_the_papers_shapes_at_96px():
    images = torch.rand(2, 3, 96, 96) * 2 - 1
    labels = torch.tensor([0, 5])
    enet, gnet, dnet = ArabianEnet(96, width=8), ArabianGnet(96, width=8), ArabianDnet(96, num_classes=6, width=8)
    code = enet(images)
    assert code.shape == (2, 4096)
    generated = gnet(code)
    assert generated.shape == (2, 3, 96, 96) and generated.min() >= -1 and generated.max() <= 1
    assert dnet.with_label_channel(generated, labels).shape == (2, 4, 96, 96)
    assert dnet(generated, labels).shape == (2,)
    # the label channel is what the label changes
    channels = dnet.with_label_channel(generated, torch.tensor([1, 1]))
    assert torch.equal(channels[:, :3], generated) and not torch.equal(channels[:, 3], dnet.with_label_channel(
        generated, labels)[:, 3])


def test_networks_are_registered_components_and_check_their_sizes(catalog):
    assert isinstance(catalog.build("encoder", COMPONENTS["encoder"], image_size=48), ArabianEnet)
    assert isinstance(catalog.build("generator", COMPONENTS["generator"], image_size=48), ArabianGnet)
    assert isinstance(catalog.build("discriminator", COMPONENTS["discriminator"], image_size=48), ArabianDnet)
    with pytest.raises(ValueError, match="multiple of 16"):
        ArabianGnet(40)
    with pytest.raises(ValueError, match="needs the images' labels"):
        ArabianDnet(16, width=4)(torch.zeros(1, 3, 16, 16))


# --- training ----------------------------------------------------------------------------------------

def tiny_classifier(catalog, seed=0) -> FrozenClassifier:
    torch.manual_seed(seed)
    model = catalog.build("classifier", "timm:test_byobnet", num_classes=3, in_chans=1, image_size=16).eval()
    model.requires_grad_(False)
    return FrozenClassifier("timm:test_byobnet", "guide", model, InputSpec(1, 16, (0.5,), (0.25,)),
                            torch.arange(3), "trained")


def tiny_gan(residual=False, photometric=False):
    torch.manual_seed(0)
    restyler = Restyler(ArabianEnet(16, width=4, latent_dim=64),
                        ArabianGnet(16, width=4, latent_dim=64, photometric=photometric), 16, 1, residual)
    return restyler, ArabianDnet(16, num_classes=3, width=4)


def context(tmp_path, config, adaptation=None) -> RunContext:
    return RunContext(config=config, components=dict(COMPONENTS), seed=0, device=torch.device("cpu"),
                      out_dir=tmp_path, build=PluginManager().catalog.build, track=lambda it, *a, **k: it,
                      epoch_end=lambda e, m: None, adaptation=adaptation)


@pytest.mark.parametrize("setting", [PAPER_SETTING, DEFAULTS], ids=["paper", "improved"])
def test_one_generator_step_lowers_the_generator_loss_on_a_fixed_batch(catalog, setting):
    config = {**setting, "guide_augment": False}  # each setting's own lr
    restyler, dnet = tiny_gan(config["residual"], config["photometric"])
    guide = tiny_classifier(catalog)
    source, target = torch.rand(8, 3, 16, 16) * 2 - 1, torch.rand(8, 3, 16, 16) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    sampler = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(restyler.parameters(), lr=config["lr"], betas=(config["beta1"], config["beta2"]))

    before = generator_loss(generator_terms(restyler, dnet, [guide], source, labels, target, target, config, sampler), config)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    after = generator_loss(generator_terms(restyler, dnet, [guide], source, labels, target, target, config, sampler), config)
    assert set(generator_terms(restyler, dnet, [guide], source, labels, target, target, config, sampler)) == (
        {"adversarial", "classifier", "reconstruction"} if config["reconstruction_weight"] else {"adversarial", "classifier"})
    assert after.item() < before.item()


def test_the_photometric_stage_undoes_exposure_and_learns_the_targets_look():
    restyler, _ = tiny_gan(residual=True, photometric=True)
    images = torch.rand(8, 3, 16, 16) * 2 - 1
    underexposed = images * 0.5 - 0.3  # darker and flatter: what a per-image gain and offset fix exactly
    latent = restyler.encoder(images).detach()
    assert torch.allclose(restyler.generator.adjust(underexposed, latent), restyler.generator.adjust(images, latent),
                          atol=1e-2)
    # the target's mean and spread per channel (a warm, bright, contrasty look) are learned
    look_mean, look_std = torch.tensor([0.3, 0.1, -0.1]).view(1, 3, 1, 1), 0.7
    target = (images - images.mean((2, 3), keepdim=True)) / images.std((2, 3), keepdim=True) * look_std + look_mean
    optimizer = torch.optim.Adam(restyler.generator.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = (restyler.generator.adjust(underexposed, latent) - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


def test_training_never_changes_the_frozen_classifiers(catalog, squares, tmp_path):
    guide = tiny_classifier(catalog)
    frozen = {k: v.clone() for k, v in guide.model.state_dict().items()}
    restyler, dnet = tiny_gan(residual=True)
    enet_before = restyler.encoder.project.weight.clone()
    source = squares(classes=CLASSES, channels=3, seed=1)
    target = squares(classes=CLASSES)
    history = train_restyler(restyler, dnet, [guide], source, target, {**DEFAULTS, **TINY, "epochs": 2, "warmup_epochs": 1},
                             context(tmp_path, {}))
    assert [h["epoch"] for h in history] == [1, 2] and all(np.isfinite(h["loss_g"]) for h in history)
    assert "loss_adversarial" not in history[0]  # the warm-up epoch trains the reconstruction term alone
    assert {"loss_adversarial", "loss_classifier", "loss_reconstruction", "guide_rarest_class_share"} <= set(history[1])
    assert all(torch.equal(frozen[k], v) for k, v in guide.model.state_dict().items())
    assert not any(p.requires_grad for p in guide.model.parameters())
    assert not torch.equal(enet_before, restyler.encoder.project.weight)  # while the restyler did learn


def test_a_gan_that_turns_nan_stops_as_diverged_naming_the_network(catalog, squares, tmp_path):
    restyler, dnet = tiny_gan()
    with torch.no_grad():
        next(dnet.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="epoch 1, step 1: the discriminator loss became nan") as caught:
        train_restyler(restyler, dnet, [tiny_classifier(catalog)], squares(classes=CLASSES, channels=3, seed=1),
                       squares(classes=CLASSES), {**DEFAULTS, **TINY, "epochs": 1}, context(tmp_path, {}))
    assert caught.value.component == "discriminator loss"


# --- reporting ---------------------------------------------------------------------------------------

def test_collapse_detector_flags_classes_that_vanish():
    classes = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
    labels = np.repeat(np.arange(6), 20)
    # the paper's collapse: everything restyled is seen as anger, disgust or fear
    collapsed = np.array([0, 1, 2] * 40)
    report = collapse_report(labels, collapsed, classes)
    assert report["vanished"] == ["happiness", "sadness", "surprise"] and report["collapsed"]
    assert report["predicted_distribution"]["anger"] == 40 and report["predicted_distribution"]["surprise"] == 0
    healthy = labels.copy()
    healthy[::7] = 0  # some mistakes, but every class is still predicted
    assert collapse_report(labels, healthy, classes)["vanished"] == []
    # a class predicted only once for 20 true images is below a tenth of its frequency
    nearly = labels.copy()
    nearly[labels == 5] = 4
    nearly[-1] = 5
    assert collapse_report(labels, nearly, classes)["vanished"] == ["surprise"]


def test_tpr_table_is_mean_and_sample_sd_over_classifiers():
    first = {"name": "a", "before": {"accuracy": 0.5, "per_class_tpr": {"anger": 0.2, "fear": 0.8}},
             "after": {"accuracy": 0.6, "per_class_tpr": {"anger": 0.4, "fear": 0.8}}}
    second = {"name": "b", "before": {"accuracy": 0.3, "per_class_tpr": {"anger": 0.4, "fear": 0.2}},
              "after": {"accuracy": 0.6, "per_class_tpr": {"anger": 0.0, "fear": 1.0}}}
    table = tpr_table([first, second], ["anger", "fear"])
    assert table["before"]["anger"]["mean"] == pytest.approx(30.0)
    assert table["before"]["anger"]["sd"] == pytest.approx(np.std([20, 40], ddof=1))
    assert table["after"]["fear"]["mean"] == pytest.approx(90.0)
    assert table["mean_tpr_before"]["mean"] == pytest.approx(np.mean([50, 30]))
    assert table["accuracy_after"] == {"mean": pytest.approx(60.0), "sd": 0.0, "n": 2}


def test_frechet_distance_is_zero_for_one_set_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 8))
    assert frechet_distance(features, features) == pytest.approx(0, abs=1e-6)
    shifted = features + 3.0  # the same covariance, the mean moved by 3 in each of 8 dimensions
    assert frechet_distance(shifted, features) == pytest.approx(8 * 9.0, rel=1e-6)
    wider = features * 2
    assert frechet_distance(wider, features) > 1.0


# --- the method through the runner ------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny arabian-gan run: squares-rgb (source) restyled towards squares (target)."""
    from ferbench.registry import Zoo
    from ferbench.runner import RunRequest, run

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("FERBENCH_PLUGINS", "plugin_fixtures.squares_plugin")
    out = tmp_path_factory.mktemp("runs")
    zoo = Zoo(PluginManager(), ROOT / "registry.yaml")
    # no --protocol: the method's own default (cross-dataset) applies
    console = Console(record=True, width=200)
    records = run(zoo, RunRequest(method="arabian-gan", dataset="squares-rgb", target="squares", config=dict(TINY),
                                  out_dir=out, device="cpu"), console)
    records[0]["_log"] = console.export_text()
    yield zoo, records
    monkeypatch.undo()


def test_tiny_end_to_end_run_reports_table2_collapse_frechet_and_a_grid(tiny_run):
    zoo, (record,) = tiny_run
    folder = Path(record["_path"]).parent
    assert record["protocol"] == "cross-dataset" and record["train_dataset"] == "squares"
    extra = record["extra"]
    table = extra["table2"]
    assert table["classes"] == list(CLASSES) and len(table["classifiers"]) == 3
    assert set(table["before"]) == set(CLASSES) and table["accuracy_after"]["n"] == 3
    assert extra["guide_table2"]["classifiers"] == ["timm:test_byobnet"]
    assert [c["role"] for c in extra["classifiers"]] == ["evaluator"] * 3 + ["guide"]
    assert all(c["validation"]["accuracy"] is not None for c in extra["classifiers"])
    assert set(extra["collapse"]["predicted_distribution"]) == set(CLASSES)
    assert extra["frechet"]["before"] >= 0 and extra["frechet"]["after"] >= 0
    assert (folder / extra["restyle_grid_png"]).read_bytes()[:4] == b"\x89PNG"
    assert len(extra["history"]) == TINY["epochs"]
    # every frozen classifier's epochs are in the log, not only the restyler's
    for role, name in [("evaluator", "timm:test_efficientnet"), ("guide", "timm:test_byobnet")]:
        assert f"{role} {name} epoch {TINY['classifier_epochs']}, loss " in record["_log"]
    # the record's accuracy is the evaluators' mean prediction on restyled images
    predicted = record["metrics"]["predicted_distribution"]
    assert predicted == extra["collapse"]["predicted_distribution"]
    model = folder / "model"
    restyler_json = json.loads((model / "restyler.json").read_text())
    assert restyler_json["format"] == "ferbench.restyler/1" and restyler_json["residual"] is True
    assert {p.name for p in model.glob("*.safetensors")} == {"enet.safetensors", "gnet.safetensors", "dnet.safetensors"}
    assert len(list((model / "classifiers").glob("*/model.json"))) == 4


def test_a_saved_classifier_can_be_the_guide_of_another_run(tiny_run, tmp_path):
    from ferbench.runner import RunRequest, run

    zoo, (record,) = tiny_run
    saved = sorted((Path(record["_path"]).parent / "model" / "classifiers").glob("*evaluator*"))
    config = {**TINY, "classifiers": ",".join(map(str, saved)), "guide_classifiers": str(saved[0]), "epochs": 1}
    (again,) = run(zoo, RunRequest(method="arabian-gan-paper", dataset="squares-rgb", target="squares",
                                   config=config, out_dir=tmp_path, device="cpu"))
    assert all(c["origin"] == "loaded" for c in again["extra"]["classifiers"])
    assert again["extra"]["history"][0].get("loss_reconstruction") is None  # the paper's setting has no identity term
    # a saved evaluator is named by the method and run that trained it, not by its folder
    (section,) = table2_sections([again], zoo.paper_numbers(), METHODS)
    for entry in again["extra"]["classifiers"][:3]:
        assert f"| {entry['validation']['component']} (saved, run {record['run_id']}) " in section
    assert str(saved[0]) not in section


def record_evaluators(records):
    return [c["name"] for r in records for c in r["extra"]["classifiers"] if c["role"] == "evaluator"]


def test_leaderboard_section_shows_table2_beside_the_papers_numbers(tiny_run):
    zoo, records = tiny_run
    (section,) = table2_sections(records, zoo.paper_numbers(), METHODS)
    assert "the paper's Table 2" in section and "The datasets differ" in section
    assert "### arabian-gan: squares-rgb restyled towards squares [test], cpu" in section
    assert "| happiness " in section and "57.87 ± 13.05" in section  # the paper's before-GAN happiness
    assert "| **Accuracy** " in section and "48.81 ± 4.31" in section and "49.39 ± 1.84" in section
    # one row per evaluator, with the runs in which restyling raised its mean TPR
    for name in record_evaluators(records):
        assert re.search(rf"\| {re.escape(name)} +\|.*\| [01] of 1 +\|", section), name
    assert table2_sections([], zoo.paper_numbers(), METHODS) == []
    # a run of another setting gets its own section instead of being averaged in
    other = [{**r, "config": {**r["config"], "epochs": r["config"]["epochs"] + 1}} for r in records]
    (both,) = table2_sections(records + other, zoo.paper_numbers(), METHODS)
    assert both.count("### arabian-gan: squares-rgb restyled towards squares [test], cpu, setting ") == 2


def test_restyle_command_restyles_a_folder(tiny_run, tmp_path):
    import cv2

    _, (record,) = tiny_run
    model = Path(record["_path"]).parent / "model"
    images = tmp_path / "faces"
    (images / "sub").mkdir(parents=True)
    cv2.imwrite(str(images / "a.png"), np.full((16, 16), 120, np.uint8))
    cv2.imwrite(str(images / "sub" / "b.jpg"), np.full((30, 20, 3), 200, np.uint8))
    out = tmp_path / "restyled"
    command = [sys.executable, "-m", "ferbench.cli", "restyle", str(images), "--model", str(model), "--out", str(out),
               "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "restyled 2 image(s)" in done.stdout
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a.png", "sub/b.png"]
    assert cv2.imread(str(out / "sub" / "b.png"), cv2.IMREAD_UNCHANGED).shape == (16, 16)  # the target is grey
    # the command gives the restyler's own output
    restyler, _ = load_restyler(model, PluginManager().catalog.build)
    expected = restyler.restyle(np.full((1, 16, 16), 120, np.uint8), torch.device("cpu"))[0]
    assert np.array_equal(cv2.imread(str(out / "a.png"), cv2.IMREAD_UNCHANGED), expected)

    missing = subprocess.run([*command[:6], str(tmp_path), *command[7:]], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "is not a saved restyler" in missing.stderr
    inside = subprocess.run([*command[:8], str(images / "out"), *command[9:]], capture_output=True, text=True,
                            timeout=120)
    assert inside.returncode == 2 and "must not be the input folder" in inside.stderr


def test_the_evaluators_train_with_the_classifier_recipe(squares, tmp_path, monkeypatch):
    from ferbench_arabian_gan import method

    recipes = []

    def record_recipe(model, train, input_spec, recipe, *args, **kwargs):
        recipes.append(recipe)
        raise KeyboardInterrupt  # enough: the recipe is what this test reads

    monkeypatch.setattr(method, "train_classifier", record_recipe)
    target, source = squares(classes=CLASSES), squares(classes=CLASSES, channels=3, seed=1)
    recipe = {"classifier_epochs": 3, "classifier_lr": 0.01, "classifier_augment": True,
              "classifier_weight_decay": 0.05, "classifier_erasing": 0.25}
    with pytest.raises(KeyboardInterrupt):
        method.ArabianGAN().fit(target, context(tmp_path, {**DEFAULTS, **TINY, **recipe}, adaptation=source))
    (seen,) = recipes
    assert {k: seen[k] for k in ("epochs", "lr", "augment", "weight_decay", "erasing")} == \
        {"epochs": 3, "lr": 0.01, "augment": True, "weight_decay": 0.05, "erasing": 0.25}


# --- bad input ----------------------------------------------------------------------------------------

def test_bad_settings_fail_before_training(squares, tmp_path, monkeypatch):
    from ferbench import training
    from ferbench_arabian_gan.method import ArabianGAN

    monkeypatch.setattr(training, "train_classifier", lambda *a, **k: pytest.fail("training started"))
    target, source = squares(classes=CLASSES), squares(classes=CLASSES, channels=3, seed=1)
    with pytest.raises(ConfigError, match="run it with --protocol cross-dataset"):
        ArabianGAN().fit(target, context(tmp_path, {**DEFAULTS, **TINY}))
    for change, message in [({"image_size": 40}, "image_size must be a multiple of 16"),
                            ({"reconstruction_weight": -1}, "reconstruction_weight must be a non-negative number"),
                            ({"classifiers": []}, "classifiers must name at least one"),
                            ({"classifiers": "timm:no_such_net"}, "unknown classifier 'timm:no_such_net'"),
                            ({"guide_classifiers": str(tmp_path)}, "is not a saved ferbench model"),
                            ({"residual": "yes"}, "residual must be true or false"),
                            ({"residual": False}, "photometric .* needs residual=true"),
                            ({"classifier_erasing": 1.5}, "classifier_erasing must be below 1"),
                            ({"classifier_weight_decay": -0.1}, "classifier_weight_decay must be a non-negative")]:
        with pytest.raises(ConfigError, match=message):
            ArabianGAN().fit(target, context(tmp_path, {**DEFAULTS, **TINY, **change}, adaptation=source))
    with pytest.raises(ConfigError, match="share fewer than two classes"):
        ArabianGAN().fit(target, context(tmp_path, {**DEFAULTS, **TINY},
                                         adaptation=squares(classes=("anger", "fear"), channels=3)))


def test_restyler_round_trips_through_its_folder(tmp_path, catalog):
    restyler, dnet = tiny_gan(residual=True, photometric=True)
    torch.nn.init.normal_(restyler.generator.photometric.weight, std=0.01)  # a head that does something
    restyler.correction_scale = 0.5
    names = {"source": "s", "target": "t"}
    build = {"encoder": {"image_size": 16, "latent_dim": 64, "width": 4},
             "generator": {"image_size": 16, "latent_dim": 64, "width": 4, "photometric": True},
             "discriminator": {"image_size": 16, "num_classes": 3, "width": 4}}
    save_restyler(tmp_path, {"encoder": restyler.encoder, "generator": restyler.generator, "discriminator": dnet},
                  COMPONENTS, build, image_size=16, target_channels=1, residual=True, correction_scale=0.5,
                  classes=CLASSES, names=names, trained_by={})
    loaded, record = load_restyler(tmp_path / "restyler.json", catalog.build)
    images = np.random.default_rng(0).integers(0, 255, (3, 20, 20, 3), dtype=np.uint8)
    assert np.array_equal(loaded.restyle(images, torch.device("cpu")), restyler.restyle(images, torch.device("cpu")))
    assert loaded.restyle(images, torch.device("cpu")).shape == (3, 16, 16) and record["classes"] == list(CLASSES)


def test_bench_times_the_restyler_as_the_methods_inference_path(zoo):
    from ferbench.bench import BenchConfig, bench_module, bench_target

    config = BenchConfig(models=["arabian-gan"], device=torch.device("cpu"), modes=["eager-fp32"], batch_sizes=[2],
                         image_sizes=[16], warmup=0, reps=1, in_chans=1)
    (inference, training) = bench_module("arabian-gan", bench_target(zoo, "arabian-gan", config), config, peak=None)
    assert inference.error is None and training.error is None and inference.images_per_s > 0
    assert inference.params == sum(p.numel() for p in bench_target(zoo, "arabian-gan", config)(16).parameters())


def test_a_restyler_step_never_reads_back_to_the_host(catalog, squares, tmp_path, monkeypatch):
    from host_reads import counting_host_reads

    source, target = squares(classes=CLASSES, channels=3, seed=1), squares(classes=CLASSES)
    reads = {}
    for batch_size in (8, 4):  # twice the steps in one epoch at batch 4
        restyler, dnet = tiny_gan(residual=True)
        guide = tiny_classifier(catalog)
        with counting_host_reads(monkeypatch) as counts:
            history = train_restyler(restyler, dnet, [guide], source, target,
                                     {**DEFAULTS, **TINY, "epochs": 1, "batch_size": batch_size}, context(tmp_path, {}))
        reads[batch_size] = dict(counts)
        assert np.isfinite(history[0]["loss_g"]) and 0 <= history[0]["guide_rarest_class_share"] <= 1
    assert len(source) // 4 > len(source) // 8 and reads[8] == reads[4], reads


def test_an_interrupted_fold_resumes_its_restyler_to_the_same_numbers(tmp_path, monkeypatch):
    from ferbench.errors import RunInterrupted
    from ferbench.registry import Zoo
    from ferbench.runner import RunRequest, resume_request, run

    monkeypatch.setenv("FERBENCH_PLUGINS", "plugin_fixtures.squares_plugin,plugin_fixtures.interrupt_plugin")
    zoo = Zoo(PluginManager(), ROOT / "registry.yaml")

    def request(out):
        return RunRequest(method="arabian-gan", dataset="squares-rgb", target="squares", device="cpu",
                          config={**TINY, "epochs": 3}, out_dir=out)

    (reference,) = run(zoo, request(tmp_path / "reference"))
    monkeypatch.setenv("FERBENCH_TEST_INTERRUPT", "loss_g:2")
    with pytest.raises(RunInterrupted):
        run(zoo, request(tmp_path / "cut"))
    (run_dir,) = (tmp_path / "cut").iterdir()
    stages = sorted(p.name for p in run_dir.rglob("checkpoint*.pt"))
    assert "checkpoint.restyler.pt" in stages and "checkpoint.classifier-0.pt" in stages, stages
    assert torch.load(next(run_dir.rglob("checkpoint.restyler.pt")), weights_only=True)["epoch"] == 2
    monkeypatch.delenv("FERBENCH_TEST_INTERRUPT")
    from plugin_fixtures import interrupt_plugin

    interrupt_plugin.seen.clear()
    (resumed,) = run(zoo, resume_request(run_dir, {}))
    assert [epoch for epoch, names in interrupt_plugin.seen if "loss_g" in names] == [3]  # only the missing epoch
    assert resumed["metrics"] == reference["metrics"]
    assert [h["loss_g"] for h in resumed["extra"]["history"]] == [h["loss_g"] for h in reference["extra"]["history"]]
    assert resumed["extra"]["table2"] == reference["extra"]["table2"]
    assert not list(run_dir.rglob("checkpoint*.pt"))  # the fold finished: its stages' checkpoints are gone
