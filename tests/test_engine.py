"""The training engine's CPU-recipe features: no host sync in the steady state, time budgets on a fake clock,
EMA, test-time augmentation, MixUp/CutMix label mixing, ensembles, and the thread choice."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferbench import threads
from ferbench.augment import draw_mixing, mix
from ferbench.data import InputSpec
from ferbench.errors import ConfigError
from ferbench.runner import ensemble_proba
from ferbench.training import (SUPERVISED_DEFAULTS, WeightAverage, check_config, mixed_cross_entropy,
                               parse_duration, plan_epochs, predict_proba, replan_epochs, train_classifier, tta_views,
                               zoomed)

ROOT = Path(__file__).resolve().parent.parent
TINY = {**SUPERVISED_DEFAULTS, "epochs": 2, "batch_size": 4, "lr": 0.01}


def tiny_model(classes=3, size=16):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * size * size, classes))


# --- no host-device synchronisation per step ----------------------------------------------------------

SYNCING = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


def count_syncs(monkeypatch, run) -> int:
    """How often ``run()`` reads a tensor's value on the host (the calls that synchronise with a GPU)."""
    calls = {"n": 0}
    for name in SYNCING:
        original = getattr(torch.Tensor, name)

        def spy(self, *args, __original=original, **kwargs):
            calls["n"] += 1
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    run()
    monkeypatch.undo()
    return calls["n"]


@pytest.mark.parametrize("options", [{}, {"ema": 0.9, "mixup": 0.2, "cutmix": 1.0, "erasing": 0.5, "crop_padding": 2}])
def test_the_steady_state_reads_nothing_back_from_the_device(squares, monkeypatch, options):
    """Host reads per epoch are the same for 3 steps and for 12: none of them is per step."""

    def syncs(per_class):
        data = squares(per_class=per_class)
        spec = InputSpec.fit(data.images, 1, 16)
        config = {**TINY, **options}
        return count_syncs(monkeypatch, lambda: train_classifier(tiny_model(), data, spec, config,
                                                                 torch.device("cpu"), 0))

    few, many = syncs(4), syncs(16)  # 12 and 48 images: 3 and 12 steps of 4 per epoch
    assert few == many


# --- time budgets ---------------------------------------------------------------------------------------


def test_plan_epochs_fits_whole_epochs_into_the_budget():
    assert plan_epochs(100.0, 10, 2.0)["epochs"] == 19  # 100 s x 0.97 x 2 steps/s / 10 steps
    assert plan_epochs(1.0, 1000, 2.0)["epochs"] == 1  # never fewer than one


def test_a_replan_moves_only_when_the_plan_overruns_or_two_more_epochs_fit():
    # 10 of 30 planned epochs done in 300 s of a 1,000 s budget (990 s usable, so 690 s left).
    assert replan_epochs(1000.0, 10, 300.0, 32.0, planned=30) == 30  # 21 more fit: one spare, no change
    assert replan_epochs(1000.0, 10, 300.0, 34.0, planned=30) == 30  # 20 more fit: exactly on time
    assert replan_epochs(1000.0, 10, 300.0, 36.0, planned=30) == 29  # 19 more fit: it would overrun
    assert replan_epochs(1000.0, 10, 300.0, 27.0, planned=30) == 34  # 25 more fit: grow, one in hand
    assert replan_epochs(1000.0, 10, 980.0, 30.0, planned=30) == 10  # none fits: end after this epoch


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("1.5h", 5400), ("1h30m", 5400),
                                           (45, 45), ("120", 120)])
def test_durations(text, seconds):
    assert parse_duration(text, "time_budget") == seconds


@pytest.mark.parametrize("text", ["soon", "-5", 0, "", "3x"])
def test_a_bad_duration_is_refused_by_name(text):
    with pytest.raises(ConfigError, match="time_budget"):
        check_config({"time_budget": text})


class FakeClock:
    """Every reading advances the clock by ``tick`` seconds (so time is proportional to work done)."""

    def __init__(self, tick=0.5):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


def test_a_time_budget_sizes_the_schedule_from_the_measured_rate(squares):
    data = squares(per_class=40)  # 120 images: 30 steps of 4 per epoch
    clock = FakeClock()
    history = train_classifier(tiny_model(), data, InputSpec.fit(data.images, 1, 16),
                               {**TINY, "time_budget": 100, "epochs": 1}, torch.device("cpu"), 0, clock=clock)
    plan = history[-1]["time_budget"]
    # One clock reading per step (the budget check) at 0.5 s each: 2 steps/s measured over steps 5-25.
    assert plan["steps_per_second"] == pytest.approx(2.0)
    assert plan["epochs"] == 6  # 100 s x 0.97 x 2 steps/s / 30 steps per epoch = 6.5
    assert len(history) == plan["epochs"] and not plan.get("stopped_on_time")
    assert history[-1]["train_seconds"] <= 100


def test_a_one_time_cost_in_the_first_epoch_is_not_taken_for_the_pace(squares):
    data = squares(per_class=40)  # 30 steps of 4 per epoch

    class CompilingClock(FakeClock):
        def __call__(self):  # the first step costs 20 s more (torch.compile), before the calibration window
            self.now += self.tick + (20 if self.now == self.tick else 0)
            return self.now

    history = train_classifier(tiny_model(), data, InputSpec.fit(data.images, 1, 16),
                               {**TINY, "time_budget": 100}, torch.device("cpu"), 0, clock=CompilingClock())
    plan = history[-1]["time_budget"]
    # Planned 6 epochs at 2 steps/s; the 20 s spent leave room for 5, not for the 2 that a 35 s epoch pace gives.
    assert history[0]["seconds"] > 30 and plan["replanned"] == [{"after_epoch": 1, "epochs": 5}]
    assert len(history) == 5 and history[-1]["train_seconds"] <= 100 and not plan.get("stopped_on_time")


@pytest.mark.parametrize("slowdown", [1.5, 200])
def test_a_slower_machine_gets_a_shorter_schedule_or_is_stopped_on_time(squares, slowdown):
    data = squares(per_class=40)

    class SlowingClock(FakeClock):
        def __call__(self):  # from 20 s on (after the calibration) the machine is `slowdown` times slower
            self.now += self.tick if self.now < 20 else slowdown * self.tick
            return self.now

    history = train_classifier(tiny_model(), data, InputSpec.fit(data.images, 1, 16),
                               {**TINY, "time_budget": 100}, torch.device("cpu"), 0, clock=SlowingClock())
    plan = history[-1]["time_budget"]
    if slowdown == 1.5:  # re-planned at an epoch's end: fewer epochs, the schedule still ends annealed
        assert plan["replanned"] and plan["epochs"] < 6 and len(history) == plan["epochs"]
        assert not plan.get("stopped_on_time") and history[-1]["lr"] < 1e-4
        assert history[-1]["train_seconds"] <= 100
    else:  # one step takes most of the budget: stopped inside the epoch
        assert plan["stopped_on_time"] and history[-1]["train_seconds"] <= 100 + slowdown * 0.5 * 2


# --- EMA, TTA, mixing, ensembles -------------------------------------------------------------------------


def test_ema_averages_with_warmup_and_is_what_training_leaves_in_the_model(squares):
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # first update: warm-up decay 0 -> a copy
    assert ema.module.weight.item() == pytest.approx(1.0)
    with torch.no_grad():
        model.weight.fill_(3.0)
    for _ in range(50):  # long past warm-up the decay is 0.5: 1 -> 2 -> 2.5 -> ... -> 3
        ema.update(model)
    assert ema.module.weight.item() == pytest.approx(3.0, abs=1e-3)

    data = squares()
    spec = InputSpec.fit(data.images, 1, 16)
    plain, averaged = tiny_model(), tiny_model()
    train_classifier(plain, data, spec, TINY, torch.device("cpu"), 0)
    train_classifier(averaged, data, spec, {**TINY, "ema": 0.9}, torch.device("cpu"), 0)
    # The same training (same seed) with and without EMA: the averaged weights differ from the last ones.
    assert not torch.allclose(plain[0].weight, averaged[0].weight)


@pytest.fixture
def fp32(monkeypatch):
    """Exact comparisons: no bf16 autocast, whatever the CPU can do."""
    monkeypatch.setenv("FERBENCH_PRECISION", "fp32")


def test_flip_tta_is_the_mean_of_the_image_and_its_mirror(fp32):
    model = tiny_model().eval()
    images = np.random.default_rng(0).integers(0, 256, (5, 16, 16), dtype=np.uint8)
    spec = InputSpec(1, 16, (0.5,), (0.25,))
    x = spec(torch.from_numpy(images))
    expected = (model(x).softmax(1) + model(x.flip(3)).softmax(1)) / 2
    flipped = predict_proba(model, images, spec, torch.device("cpu"), tta="flip")
    assert np.allclose(flipped, expected.detach().numpy(), atol=1e-6)
    assert not np.allclose(flipped, predict_proba(model, images, spec, torch.device("cpu"), tta="none"))
    # A mirror-symmetric face looks the same both ways: flip TTA changes nothing.
    symmetric = np.concatenate([images[:, :, :8], images[:, :, :8][:, :, ::-1]], axis=2)
    assert np.allclose(predict_proba(model, symmetric, spec, torch.device("cpu"), tta="flip"),
                       predict_proba(model, symmetric, spec, torch.device("cpu"), tta="none"), atol=1e-6)
    assert len(tta_views(x, "flip-shift")) == 10
    # flip-shift-zoom adds the image and its mirror zoomed in and out: a flat image stays flat, and
    # zooming in on a centred bright square widens it.
    assert len(tta_views(x, "flip-shift-zoom")) == 14
    flat = torch.full((1, 1, 20, 20), 0.3)
    assert all(torch.allclose(view, flat) for view in tta_views(flat, "flip-shift-zoom"))
    square = torch.zeros(1, 1, 40, 40)
    square[..., 10:30, 10:30] = 1
    assert [(zoomed(square, factor) > 0.5).sum().item() for factor in (0.9, 1.0, 1.1)] == [18**2, 20**2, 22**2]
    with pytest.raises(ConfigError, match="tta"):
        predict_proba(model, images, spec, torch.device("cpu"), tta="rotate")


def test_mixup_blends_images_and_cutmix_pastes_a_box_with_the_kept_share_as_label_weight():
    generator = torch.Generator().manual_seed(0)
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 1, 8, 8).contiguous()
    mixup = draw_mixing(1, 4, (8, 8), generator, {"mixup": 0.4})
    row = {k: v[0] for k, v in mixup.items()}
    mixed, _ = mix(x, (), row)
    lam = row["weight"]
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[row["partner"]])

    cutmix = draw_mixing(8, 4, (8, 8), generator, {"cutmix": 1.0})
    for b in range(8):
        row = {k: v[b] for k, v in cutmix.items()}
        mixed, _ = mix(x, (), row)
        from_partner = (mixed != x).float().mean(dim=(1, 2, 3))  # images differ from their partner everywhere
        moved = row["partner"] != torch.arange(4)
        assert torch.allclose(from_partner[moved], 1 - row["weight"].expand(int(moved.sum())))

    logits = torch.randn(4, 3)
    own, partner, weight = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0, 2]), torch.tensor(0.7)
    soft = weight * F.one_hot(own, 3) + (1 - weight) * F.one_hot(partner, 3)
    assert torch.allclose(mixed_cross_entropy(logits, own, partner, weight), F.cross_entropy(logits, soft.float()))


def test_an_ensemble_is_the_mean_of_its_members_probabilities(fp32):
    images = np.random.default_rng(1).integers(0, 256, (6, 16, 16), dtype=np.uint8)
    spec = InputSpec(1, 16, (0.5,), (0.25,))
    first, second = tiny_model(), tiny_model()
    torch.nn.init.normal_(second[3].weight)
    device = torch.device("cpu")
    members = [lambda batch, tta, model=model: predict_proba(model, batch, spec, device, 4, tta) for model in (first, second)]
    mean = ensemble_proba(members, images, ["none", "flip"])
    expected = (predict_proba(first, images, spec, device) + predict_proba(second, images, spec, device, tta="flip")) / 2
    assert np.allclose(mean, expected)


def test_ferbench_eval_scores_an_ensemble(zoo, tmp_path):
    from ferbench.runner import RunRequest, evaluate, run

    models = []
    for seed in (0, 1):
        (record,) = run(zoo, RunRequest(method="example-tinycnn", dataset="squares", seed=seed,
                                        config={"epochs": 2, "batch_size": 8}, out_dir=tmp_path, device="cpu"))
        models.append(Path(record["_path"]).parent / "model")
    (scored,) = evaluate(zoo, models, "squares", split="test", device="cpu", out_dir=tmp_path / "eval")
    assert scored["method"] == "ensemble[2]:example-tinycnn"
    assert [member["path"] for member in scored["ensemble"]] == [str(m) for m in models]


# --- threads --------------------------------------------------------------------------------------------


def python(code: str, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS",
                                                                    threads.THREADS_ENV)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**environment, **env}, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_cli_chooses_threads_and_wait_policy_before_torch_loads():
    code = ("import sys; sys.argv = ['ferbench', 'run', '--threads', '1']; import json, os, ferbench.cli; "
            "from ferbench import threads; d = threads.describe(); "
            "print(json.dumps({**d, 'env': os.environ['OMP_WAIT_POLICY']}))")
    described = python(code)
    assert described["wait_policy_source"] == "ferbench" and described["env"] == "PASSIVE"
    assert described["threads"] == described["torch_threads"] == 1 and described["source"] == "--threads"
    assert described["available_cores"] == len(os.sched_getaffinity(0))
    # The user's own OpenMP setting is kept and said to be theirs.
    mine = python(code, OMP_WAIT_POLICY="active")
    assert mine["wait_policy_source"] == "environment" and mine["omp_wait_policy"] == "ACTIVE"


def test_threads_from_the_environment_and_bad_values():
    default = python("import json; from ferbench import threads; threads.configure([]); "
                     "print(json.dumps(threads.describe()))", FERBENCH_THREADS="1")
    assert default["source"] == "FERBENCH_THREADS" and default["torch_threads"] == 1
    with pytest.raises(ValueError, match="--threads"):
        threads.configure(["--threads", "zero"])
    # Once torch is loaded the wait policy can no longer change, and the record says so.
    assert threads.configure(["--threads=1"]).wait_policy_source == "too late"
    threads.configure([])  # back to the default for the rest of the session


@pytest.mark.parametrize("busy, expected, source", [(0.3, 4, "available cores"), (1.2, 3, "available cores less 1 busy"),
                                                   (3.9, 1, "available cores less 3 busy"), (None, 4, "available cores")])
def test_the_default_leaves_the_cores_other_processes_keep_busy(monkeypatch, busy, expected, source):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    monkeypatch.setattr(threads, "busy_cores", lambda: busy)
    try:
        choice = threads.configure([])
        assert (choice.threads, choice.source, choice.busy_cores) == (expected, source, busy)
        assert threads.configure(["--threads", "2"]).busy_cores is None  # an explicit count samples nothing
    finally:
        monkeypatch.undo()
        threads.configure([])


def test_busy_cores_reads_proc_stat(monkeypatch):
    samples = iter([(100.0, 400.0), (250.0, 600.0)])  # 150 of 200 jiffies busy, over this process's cores
    monkeypatch.setattr(threads, "_cpu_times", lambda cores: next(samples))
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: None)
    assert threads.busy_cores() == pytest.approx(len(os.sched_getaffinity(0)) * 0.75)


def test_every_result_records_the_thread_choice(zoo, tmp_path):
    from ferbench.runner import RunRequest, run

    (record,) = run(zoo, RunRequest(method="example-tinycnn", dataset="squares", config={"epochs": 1, "batch_size": 8},
                                    out_dir=tmp_path, device="cpu"))
    chosen = record["device"]["threads"]
    assert chosen["torch_threads"] == torch.get_num_threads() and chosen["available_cores"] >= 1
    manifest = json.loads((Path(record["_path"]).parents[1] / "run.json").read_text())
    assert manifest["threads"] == torch.get_num_threads()  # what --resume runs with again


def test_a_resumed_run_takes_the_thread_count_it_started_with(monkeypatch, tmp_path):
    """Another thread count sums in another order: `run --resume` uses the run's recorded count unless
    one is given; an explicit --threads or FERBENCH_THREADS still wins, and other commands ignore it."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    (tmp_path / "run.json").write_text(json.dumps({"threads": 3}))
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "run.json").write_text(json.dumps({"run_id": "before threads were recorded"}))
    try:
        resumed = threads.configure(["run", "--resume", str(tmp_path)])
        assert (resumed.threads, resumed.source) == (3, "the resumed run")
        assert threads.configure(["run", f"--resume={tmp_path}"]).threads == 3
        assert threads.configure(["run", "--resume", str(tmp_path), "--threads", "1"]).threads == 1
        assert threads.configure(["robustness", "--resume", str(tmp_path)]).threads == 4
        for folder in (tmp_path / "old", tmp_path / "missing"):  # the default; `run` reports a missing folder
            assert threads.configure(["run", "--resume", str(folder)]).source == "available cores"
        monkeypatch.setenv(threads.THREADS_ENV, "2")
        assert threads.configure(["run", "--resume", str(tmp_path)]).threads == 2
    finally:
        monkeypatch.undo()
        threads.configure([])


# --- precision ------------------------------------------------------------------------------------------


def test_the_precision_policy_is_one_setting_recorded_with_the_device(monkeypatch):
    from ferbench import precision
    from ferbench.results import device_info

    cpu = torch.device("cpu")
    monkeypatch.setenv("FERBENCH_PRECISION", "fp32")
    assert not precision.uses_bf16(cpu) and device_info(cpu)["precision"]["autocast"] == "fp32"
    monkeypatch.setenv("FERBENCH_PRECISION", "bf16")
    with precision.autocast(cpu):
        assert torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    monkeypatch.setenv("FERBENCH_PRECISION", "auto")
    assert not precision.uses_bf16(cpu)  # on a CPU bf16 is opt-in (see ferbench.precision)
    with pytest.raises(ConfigError, match="--precision"):
        precision.choose("fp16")


def test_bf16_on_a_cpu_without_it_warns_that_it_is_emulated(monkeypatch):
    from ferbench import precision

    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "bf16_native", lambda device: False)
    monkeypatch.setenv("FERBENCH_PRECISION", "bf16")
    with pytest.warns(RuntimeWarning, match="emulated"):
        assert precision.describe(cpu) == {"setting": "bf16", "autocast": "bf16", "bf16_native": False,
                                           "channels_last": True}
    monkeypatch.setenv("FERBENCH_PRECISION", "fp32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        precision.describe(cpu)
