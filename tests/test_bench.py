"""ferbench bench: every mode measured side by side, failures recorded, records readable, joined onto the
leaderboard. No assertion here is about speed: these check the measurement, not the machine."""

import importlib.util
import json

import numpy as np
import pytest
import torch

from ferbench.bench import (MODES, BenchConfig, bench_module, bench_target, check_config, example_input,
                            forward_flops, load_bench, write_bench)
from ferbench.errors import ConfigError
from ferbench.leaderboard import write_leaderboard
from test_leaderboard import result, write


def tiny_config(**kwargs):
    return BenchConfig(**{"models": ["example-tinycnn"], "device": torch.device("cpu"),
                          "modes": ["eager-fp32", "fp32-cl", "int8-dynamic"], "batch_sizes": [4], "image_sizes": [16],
                          "warmup": 0, "reps": 2, **kwargs})


def test_every_mode_and_phase_is_measured_with_flops_and_ratio(zoo):
    config = tiny_config()
    rows = bench_module("example-tinycnn", bench_target(zoo, "example-tinycnn", config), config, peak={"fp32": 1.0})
    assert [(r.mode, r.phase) for r in rows] == [("eager-fp32", "inference"), ("fp32-cl", "inference"),
                                                 ("int8-dynamic", "inference"), ("eager-fp32", "training"),
                                                 ("fp32-cl", "training")]
    for r in rows:
        assert r.error is None and r.images_per_s > 0 and r.median_ms > 0 and r.params > 0
        assert r.forward_gflops_per_image > 0 and r.achieved_tflops == pytest.approx(
            r.forward_gflops_per_image * (3 if r.phase == "training" else 1) * r.images_per_s / 1e3)
    assert all(r.speedup_vs_eager == 1.0 for r in rows if r.mode == "eager-fp32")


def test_each_mode_is_set_against_the_peak_of_its_own_arithmetic(zoo, monkeypatch):
    import ferbench.bench as bench

    config = tiny_config(modes=["eager-fp32", "bf16-cl"], phases=("inference",))
    rows = bench_module("example-tinycnn", bench_target(zoo, "example-tinycnn", config), config,
                        peak={"fp32": 2.0, "bf16": 8.0})
    fp32, bf16 = rows
    assert fp32.fraction_of_peak == pytest.approx(fp32.achieved_tflops / 2.0)
    assert bf16.fraction_of_peak == pytest.approx(bf16.achieved_tflops / 8.0)
    measured = []
    monkeypatch.setattr(bench, "measure_matmul_peak", lambda device, dtype: measured.append(dtype) or 1.0)
    assert bench.measure_matmul_peaks(torch.device("cpu"), ["eager-fp32", "fp32-cl", "bf16-cl"]) == \
        {"bf16": 1.0, "fp32": 1.0} and sorted(measured) == ["bf16", "fp32"]


def test_every_compiled_case_starts_from_a_fresh_dynamo(zoo, monkeypatch):
    resets = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(1))
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: model)  # no compiler needed to count
    config = tiny_config(modes=["eager-fp32", "fp32-cl-compile"], batch_sizes=[2, 4])
    rows = bench_module("example-tinycnn", bench_target(zoo, "example-tinycnn", config), config, peak=None)
    assert all(r.error is None for r in rows)
    assert len(resets) == sum(r.mode == "fp32-cl-compile" for r in rows) == 4  # 2 batch sizes x 2 phases


def test_forward_flops_counts_a_known_layer():
    layer = torch.nn.Linear(10, 3, bias=False)
    assert forward_flops(layer, torch.randn(5, 10)) == pytest.approx(2 * 10 * 3 / 1e9)


def test_a_failing_mode_is_recorded_not_raised(zoo, monkeypatch):
    import ferbench.bench as bench

    monkeypatch.setitem(MODES, "broken", bench.Mode("broken", "always fails", compile="no-such-mode"))
    config = tiny_config(modes=["eager-fp32", "broken"], phases=("inference",))
    rows = bench_module("example-tinycnn", bench_target(zoo, "example-tinycnn", config), config, peak=None)
    broken = [r for r in rows if r.mode == "broken"][0]
    assert broken.images_per_s is None and broken.error
    assert rows[0].images_per_s > 0


@pytest.mark.parametrize("change, message", [
    ({"modes": ["warp-speed"]}, "unknown --mode 'warp-speed'"),
    ({"modes": ["bf16-cl-cudagraphs"]}, "runs on cuda, not cpu"),
    ({"batch_sizes": [0]}, "--batch-size must be positive"),
    ({"reps": 0}, "--reps >= 1"),
    ({"phases": ("testing",)}, "--phase must be"),
])
def test_bad_bench_options_are_named(change, message):
    with pytest.raises(ConfigError, match=message):
        check_config(tiny_config(**change))


def test_targets_saved_models_and_unknown_names(zoo, tmp_path):
    from ferbench.checkpoint import save_model
    from ferbench.data import InputSpec

    model = zoo.catalog.build("classifier", "example-tinycnn", num_classes=3, in_chans=1, image_size=16)
    save_model(tmp_path, model, kind="classifier", component="example-tinycnn",
               build={"num_classes": 3, "in_chans": 1, "image_size": 16}, classes=("anger", "fear", "surprise"),
               input_spec=InputSpec(1, 16, (0.5,), (0.2,)), trained_by={})
    built = bench_target(zoo, str(tmp_path), tiny_config())(16)
    assert built.num_classes == 3
    with pytest.raises(ConfigError, match="did you mean 'example-tinycnn'"):
        bench_target(zoo, "example-tinycnm", tiny_config())
    assert example_input(built, 2, 16, 1).shape == (2, 1, 16, 16)


def test_record_round_trip_and_leaderboard_join(zoo, tmp_path):
    config = tiny_config(modes=["eager-fp32", "fp32-cl"])
    rows = bench_module("m1", bench_target(zoo, "example-tinycnn", config), config, peak={"fp32": 1.0})
    path = write_bench(tmp_path / "bench", config, rows, {"fp32": 1.0}, "given", ["ferbench", "bench"])
    assert json.loads(path.read_text())["schema"] == "ferbench.bench/1"
    loaded = load_bench(tmp_path / "bench")
    assert len(loaded) == 4 and {r["device"] for r in loaded} == {"cpu"}
    write(tmp_path, "run/result.json", result(method="m1", accuracy=0.8))
    table, skipped, board = write_leaderboard(tmp_path, [])
    best = max(r.images_per_s for r in rows if r.phase == "inference")
    row = table[table["Method"] == "m1"].iloc[0]
    assert row["Infer img/s"] == f"{best:,.0f}" and row["Bench"].startswith("cpu, ")
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert "Infer img/s" in board.read_text() and not skipped


def test_onnxruntime_mode_when_installed(zoo):
    pytest.importorskip("onnxruntime")
    config = tiny_config(modes=["eager-fp32", "onnxruntime", "onnxruntime-int8"], phases=("inference",))
    rows = bench_module("example-tinycnn", bench_target(zoo, "example-tinycnn", config), config, peak=None)
    assert [r.error for r in rows] == [None, None, None] and all(r.images_per_s > 0 for r in rows[1:])


def test_int8_quantisation_quantises_the_convolutions_and_keeps_the_outputs_close(zoo):
    pytest.importorskip("onnxruntime")
    import onnx

    from ferbench.export import inference_session, quantize_int8, to_onnx

    model = zoo.catalog.build("classifier", "example-tinycnn", num_classes=7, in_chans=1, image_size=16).eval()
    images = torch.rand(32, 1, 16, 16)
    graph = to_onnx(model, images[:2], "images", "logits")
    int8 = quantize_int8(graph, [{"images": images[i:i + 8].numpy()} for i in range(0, 32, 8)])
    operators = {node.op_type for node in onnx.load_from_string(int8).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= operators
    assert "QuantizeLinear" not in {node.op_type for node in onnx.load_from_string(graph).graph.node}
    expected = model(images).detach().numpy()
    got = inference_session(int8).run(None, {"images": images.numpy()})[0]
    scale = np.abs(expected).max()
    assert 0 < np.abs(got - expected).max() < 0.2 * scale  # quantised: close, not equal


def saved_tinycnn(zoo, folder, in_chans=3, size=48):
    from ferbench.checkpoint import save_model
    from ferbench.data import InputSpec

    build = {"num_classes": 7, "in_chans": in_chans, "image_size": size}
    model = zoo.catalog.build("classifier", "example-tinycnn", **build)
    classes = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
    save_model(folder, model, kind="classifier", component="example-tinycnn", build=build, classes=classes,
               input_spec=InputSpec(in_chans, size, (0.5,) * in_chans, (0.2,) * in_chans), trained_by={})
    return folder


def test_pipeline_rows_per_backend_photos_and_video(zoo, tmp_path):
    from ferbench.bench import bench_pipeline, pipeline_faces, pipeline_photo
    from ferbench.predict import predict

    model = saved_tinycnn(zoo, tmp_path / "model")
    options = {"train_subjects": 1, "test_subjects": 2, "per_class": 2}
    backends = ["torch"]
    if importlib.util.find_spec("onnxruntime"):  # and the folder's int8 graph, as `ferbench export --int8` writes it
        from ferbench.export import export_onnx

        export_onnx(model, zoo.catalog.build, int8_faces=pipeline_faces(zoo, "synthetic", 16, options)[0],
                    min_agreement=0)
        backends += ["onnxruntime", "onnxruntime-int8"]
    rows = bench_pipeline(zoo, model, "synthetic", 12, [96], tiny_config(reps=1), detector="haar", video_frames=6,
                          data_options=options, workers=[2, 1])
    assert [(r.mode, r.phase, r.workers) for r in rows if r.error is None] == [
        *((b, "classifier", None) for b in backends),
        *((f"predict-{b}", "pipeline", w) for b in backends for w in (1, 2)),
        *((f"predict-{b}", "video", None) for b in backends)]
    for row in rows:
        assert row.error is None and row.images_per_s > 0 and row.params > 0 and row.in_chans == 3
        assert row.detector == (None if row.phase == "classifier" else "haar")
    pipeline = [r for r in rows if r.phase == "pipeline"]
    assert {r.image_size for r in pipeline} == {96} and len({r.faces_found for r in pipeline}) == 1
    # The same photos through predict directly find the same faces.
    import cv2

    photos = tmp_path / "photos"
    photos.mkdir()
    images, labels = pipeline_faces(zoo, "synthetic", 12, options)
    for index, image in enumerate(images):
        cv2.imwrite(str(photos / f"{index:05d}.png"), pipeline_photo(image, 96)[..., ::-1])
    direct = predict(model, [photos], zoo.catalog.build, torch.device("cpu"), detect="haar").faces
    assert pipeline[0].faces_found == len(direct)
    right = sum(r["predicted"] == labels[int(r["file"].split("/")[-1][:5])] for r in direct if r["face"] == 0)
    assert pipeline[0].accuracy == pytest.approx(right / 12)
    assert all(r.faces_found is not None for r in rows if r.phase == "video")


def test_bench_cli_pipeline_row_and_refusal(zoo, tmp_path):
    from typer.testing import CliRunner

    from ferbench.cli import app

    model = saved_tinycnn(zoo, tmp_path / "model", in_chans=1, size=16)
    runner = CliRunner()
    common = ["bench", "--device", "cpu", "--mode", "fp32-cl", "--phase", "inference", "--batch-size", "4",
              "--image-size", "16", "--warmup", "0", "--reps", "1", "--peak-tflops", "1", "--out", str(tmp_path / "b")]
    done = runner.invoke(app, [*common, "--model", str(model), "--pipeline-size", "32", "--pipeline-images", "4",
                               "--pipeline-dataset", "squares", "--detector", "haar", "--pipeline-workers", "1"])
    assert done.exit_code == 0, done.output
    (record_path,) = (tmp_path / "b").glob("*.json")
    record = json.loads(record_path.read_text())
    phases = [(r["mode"], r["phase"]) for r in record["rows"]]
    assert phases[0] == ("fp32-cl", "inference") and ("predict-torch", "pipeline") in phases
    (photos,) = [r for r in record["rows"] if r["mode"] == "predict-torch" and r["phase"] == "pipeline"]
    assert photos["faces_found"] == 0 and photos["images_per_s"] > 0 and photos["detector"] == "haar"  # squares are no faces
    assert record["config"]["pipeline"] == {"sizes": [32], "images": 4, "dataset": "squares", "detector": "haar",
                                            "workers": [1]}
    assert photos["workers"] == 1
    refused = runner.invoke(app, [*common, "--model", "example-tinycnn", "--pipeline"])
    assert refused.exit_code != 0 and "needs a trained model" in str(refused.exception or refused.output)


def test_the_harness_phase_times_the_training_engine_beside_the_bare_step(zoo):
    config = tiny_config(modes=["eager-fp32", "fp32-cl"], phases=("training", "harness"))
    rows = bench_module("example-tinycnn", bench_target(zoo, "example-tinycnn", config), config, peak=None)
    # Only the engine's own device policy (fp32 + channels_last on a CPU) has a harness row.
    assert [(r.mode, r.phase) for r in rows] == [("eager-fp32", "training"), ("fp32-cl", "training"),
                                                 ("fp32-cl", "harness")]
    harness, bare = rows[2], rows[1]
    assert harness.error is None and harness.fraction_of_bare == pytest.approx(harness.images_per_s / bare.images_per_s)


def test_busy_cores_spin_while_measuring_and_stop_after():
    from ferbench.bench import busy_cores

    with busy_cores(2) as spinners:
        assert len(spinners) == 2 and all(spinner.poll() is None for spinner in spinners)
    assert all(spinner.poll() is not None for spinner in spinners)
