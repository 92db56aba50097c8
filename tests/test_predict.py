"""ferbench predict end to end: train a tiny model on face-cropped photos, then predict on a folder of
photos with one face, two faces, no face and a corrupt file."""

import csv
import io
import json

import cv2
import pytest
from typer.testing import CliRunner

from ferbench.cli import app
from ferbench.errors import ConfigError
from face_fixtures import draw_face, photo, write_corrupt, write_image

runner = CliRunner()


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    """example-tinycnn trained on an image folder of photos, face-cropped to 32 px by the loader."""
    tmp_path = tmp_path_factory.mktemp("predict")
    with pytest.MonkeyPatch.context() as monkeypatch:
        (tmp_path / "registry.yaml").write_text("version: 1\n")
        monkeypatch.setenv("FERBENCH_REGISTRY", str(tmp_path / "registry.yaml"))
        monkeypatch.setenv("FERBENCH_PLUGINS", "ferbench_example")
        monkeypatch.setenv("FERBENCH_CACHE", str(tmp_path / "cache"))
        yield train(tmp_path)


def train(tmp_path):
    data = tmp_path / "photos"
    for split, count in (("train", 6), ("test", 2)):
        for i in range(count):
            at = (20 + 7 * i, 15 + 5 * i)
            write_image(data / split / "happy" / f"h{i}.png", photo(200, 180, 100, at=at, smile=1.0))
            write_image(data / split / "neutral" / f"n{i}.png", photo(200, 180, 100, at=at, smile=0.0))
    done = runner.invoke(app, ["run", "--method", "example-tinycnn", "--dataset", str(data), "--epochs", "2",
                               "--batch-size", "4", "--device", "cpu", "--out", str(tmp_path / "results"),
                               "--data-option", "detect=haar", "--data-option", "size=32"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    (model,) = (tmp_path / "results").rglob("model.json")
    return model.parent


def make_inputs(folder):
    write_image(folder / "one.jpg", photo(240, 200, 90, colour=True))
    two = photo(420, 220, face=False)
    two[20:140, 10:130] = draw_face(120, smile=1.0)
    two[60:150, 300:390] = draw_face(90)
    write_image(folder / "group" / "two.png", two)
    write_image(folder / "wall.png", photo(240, 200, face=False))
    write_corrupt(folder / "broken.jpg")
    (folder / "notes.txt").write_text("not an image, and not named like one: ignored")
    return folder


def test_predict_writes_one_row_per_face_and_names_what_it_skipped(trained_model, tmp_path):
    model_record = json.loads((trained_model / "model.json").read_text())
    assert model_record["trained_by"]["image_size"] == [32, 32]
    assert model_record["trained_by"]["face_pipeline"]["detect"] == "haar"
    inputs = make_inputs(tmp_path / "new")
    out = tmp_path / "predictions.csv"
    done = runner.invoke(app, ["predict", "--model", str(trained_model), str(inputs), "-o", str(out), "--annotate",
                               str(tmp_path / "annotated"), "--device", "cpu"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    faces = [r for r in rows if r["status"] == "face"]
    assert sorted((r["file"], r["face"]) for r in faces) == [("new/group/two.png", "0"), ("new/group/two.png", "1"),
                                                            ("new/one.jpg", "0")]
    assert {(r["file"], r["status"]) for r in rows if r["status"] != "face"} == {("new/wall.png", "no_face"),
                                                                              ("new/broken.jpg", "unreadable")}
    for row in faces:
        probabilities = {c: float(row[f"p_{c}"]) for c in ("happiness", "neutral")}
        assert sum(probabilities.values()) == pytest.approx(1, abs=1e-4)
        assert row["predicted"] == max(probabilities, key=probabilities.get)
        assert int(row["w"]) > 60 and int(row["x"]) >= 0
    assert "no face found (1): new/wall.png" in done.output and "unreadable (1): new/broken.jpg" in done.output
    annotated = cv2.imread(str(tmp_path / "annotated" / "new" / "group" / "two.png"))
    original = cv2.imread(str(inputs / "group" / "two.png"))
    assert annotated.shape == original.shape and (annotated != original).any()
    assert not (tmp_path / "annotated" / "new" / "wall.png").exists()


def test_predict_json_to_standard_output_for_one_file(trained_model, tmp_path):
    image = write_image(tmp_path / "face.png", photo(240, 200, 90))
    done = runner.invoke(app, ["predict", "--model", str(trained_model), str(image), "--format", "json",
                               "--device", "cpu"], catch_exceptions=False)
    assert done.exit_code == 0
    result = json.loads(done.stdout)
    assert result["classes"] == ["happiness", "neutral"] and result["face_pipeline"]["size"] == 32
    (face,) = result["faces"]
    assert face["file"] == str(image) and len(face["box"]) == 4 and set(face["probabilities"]) == {"happiness", "neutral"}
    assert result["no_face"] == [] and result["unreadable"] == []


def test_predict_bad_inputs(trained_model, tmp_path):
    with pytest.raises(ConfigError, match="missing.png: no such file or folder"):
        runner.invoke(app, ["predict", "--model", str(trained_model), str(tmp_path / "missing.png")],
                      catch_exceptions=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no image or video files"):
        runner.invoke(app, ["predict", "--model", str(trained_model), str(tmp_path / "empty")], catch_exceptions=False)
    with pytest.raises(ConfigError, match="--format must be csv or json"):
        runner.invoke(app, ["predict", "--model", str(trained_model), str(make_inputs(tmp_path / "in")),
                            "--format", "xml", "--device", "cpu"], catch_exceptions=False)


def test_photos_searched_in_worker_processes_give_the_same_rows(trained_model, tmp_path):
    """--workers 2 (forked processes read, detect and crop; this one classifies) gives exactly the rows,
    in the same order, and the same skipped files as one process; a bad count is refused by name."""
    inputs = make_inputs(tmp_path / "new")
    for i in range(5):  # enough photos that each worker gets several
        write_image(inputs / "more" / f"face{i}.png", photo(240, 200, 90, at=(20 + 9 * i, 30), smile=i / 4))
    tables = {}
    for workers in ("1", "2"):
        done = runner.invoke(app, ["predict", "--model", str(trained_model), str(inputs), "--format", "json",
                                   "--workers", workers, "--device", "cpu"], catch_exceptions=False)
        assert done.exit_code == 0, done.output
        tables[workers] = json.loads(done.stdout)
    assert tables["2"]["workers"] == 2 and tables["1"]["workers"] == 1
    assert len(tables["1"]["faces"]) == 8
    for key in ("faces", "no_face", "unreadable"):
        assert tables["2"][key] == tables["1"][key]
    with pytest.raises(ConfigError, match="--workers must be a positive integer, got 0"):
        runner.invoke(app, ["predict", "--model", str(trained_model), str(inputs), "--workers", "0",
                            "--device", "cpu"], catch_exceptions=False)


def test_default_workers_follow_the_photo_count(monkeypatch):
    from ferbench import predict, threads

    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    assert predict.photo_workers(None, 10) == 1  # too few photos to repay a process
    assert predict.photo_workers(None, 2 * predict.PHOTOS_PER_WORKER) == 2
    assert predict.photo_workers(None, 100 * predict.PHOTOS_PER_WORKER) == 4  # at most one per core
    assert predict.photo_workers(3, 1) == 3


def write_clip(path, frames=12, fps=10):
    """A clip of two faces drifting right, written with OpenCV (MJPG .avi works in every build)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (420, 220))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG .avi")
    for i in range(frames):
        frame = photo(420, 220, face=False)
        frame[20:140, 10 + 2 * i:130 + 2 * i] = draw_face(120, smile=1.0)
        frame[60:150, 300 - i:390 - i] = draw_face(90)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def test_predict_on_a_video_tracks_each_face_and_smooths(trained_model, tmp_path):
    clip = write_clip(tmp_path / "clip.avi")
    out = tmp_path / "video.json"
    done = runner.invoke(app, ["predict", "--model", str(trained_model), str(clip), "-o", str(out), "--fps", "5",
                               "--annotate", str(tmp_path / "annotated"), "--device", "cpu"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    result = json.loads(out.read_text())
    (video,) = result["videos"]
    assert video["sampled_frames"] == 6 and video["faces"] == 12 and "frames/s" in done.output
    frames = sorted({row["frame"] for row in result["faces"]})
    assert frames == [0, 2, 4, 6, 8, 10]
    tracks = {row["track"] for row in result["faces"]}
    assert len(tracks) == 2  # each face keeps its id across the frames
    for track in tracks:
        rows = [r for r in result["faces"] if r["track"] == track]
        assert len(rows) == 6 and len({r["box"][0] < 200 for r in rows}) == 1  # a track stays on its side
    annotated = cv2.VideoCapture(str(tmp_path / "annotated" / "clip.mp4"))
    assert annotated.isOpened() and int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 6


def test_export_checks_the_fp32_graph_against_fp32_torch_under_bf16(trained_model, tmp_path, monkeypatch):
    """`ferbench bench --precision bf16 --pipeline` exports too: its reference must not be bf16 PyTorch,
    which differs from the fp32 graph by more than the tolerance and refused every export."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from ferbench import export, precision
    from ferbench.cli import load_zoo

    seen = []
    reference = export.predict_proba
    monkeypatch.setattr(export, "predict_proba", lambda *a, **k: seen.append(precision.setting()) or reference(*a, **k))
    with precision.using("bf16"):
        report = export.export_onnx(trained_model, load_zoo(None).catalog.build, tmp_path / "model.onnx")
        assert precision.setting() == "bf16"  # restored after the check
    assert seen == ["fp32"] and report["max_abs_difference"] < 1e-5


def test_export_onnx_and_predict_with_onnxruntime_match_torch(trained_model, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    with pytest.raises(ConfigError, match="has no model.onnx; write it with `ferbench export"):
        runner.invoke(app, ["predict", "--model", str(model), str(tmp_path), "--backend", "onnxruntime"],
                      catch_exceptions=False)
    done = runner.invoke(app, ["export", "--model", str(model)], catch_exceptions=False)
    assert done.exit_code == 0 and "largest difference from PyTorch" in done.output, done.output
    inputs = make_inputs(tmp_path / "new")
    tables = {}
    for name, options in (("torch", []), ("onnxruntime", ["--backend", "onnxruntime"]),
                          ("file", ["--model", str(model / "model.onnx")])):
        base = ["predict", "--model", str(model)] if name != "file" else ["predict"]
        done = runner.invoke(app, [*base, *options, str(inputs), "--format", "json", "--device", "cpu"],
                             catch_exceptions=False)
        assert done.exit_code == 0, done.output
        tables[name] = json.loads(done.stdout)
    assert tables["onnxruntime"]["backend"] == tables["file"]["backend"] == "onnxruntime"
    for other in ("onnxruntime", "file"):
        assert [r["box"] for r in tables[other]["faces"]] == [r["box"] for r in tables["torch"]["faces"]]
        for ours, theirs in zip(tables[other]["faces"], tables["torch"]["faces"]):
            assert ours["probabilities"] == pytest.approx(theirs["probabilities"], abs=1e-4)
    # A model.onnx left from another model is refused, not silently used.
    record = json.loads((model / "model.json").read_text())
    record["classes"] = list(reversed(record["classes"]))
    (model / "model.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="exported from another model"):
        runner.invoke(app, ["predict", "--model", str(model), str(inputs), "--backend", "onnxruntime"],
                      catch_exceptions=False)


def test_export_int8_calibrates_on_training_faces_and_eval_scores_the_file(trained_model, tmp_path):
    """`ferbench export --int8`: an int8 graph (QDQ around the convolutions), calibrated and checked on real
    faces, named in its metadata; `ferbench eval` scores it (and the fp32 file) like a saved model, TTA too."""
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    import shutil

    import numpy as np
    import torch

    from ferbench.cli import load_zoo
    from ferbench.export import OnnxClassifier
    from ferbench.predict import load_classifier
    from ferbench.runner import evaluate

    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    faces = tmp_path / "faces"
    for split, count in (("train", 12), ("test", 4)):
        for i in range(count):
            for label, smile in (("happy", 1.0), ("neutral", 0.0)):
                write_image(faces / split / label / f"{i}.png", draw_face(36, smile=smile, skin=150 + 7 * i))
    with pytest.raises(ConfigError, match="--min-agreement must be between 0 and 1"):
        runner.invoke(app, ["export", "--model", str(model), "--int8", "--min-agreement", "2"], catch_exceptions=False)
    done = runner.invoke(app, ["export", "--model", str(model), "--int8", "--calibration-dataset", str(faces),
                               "--calibration-images", "20", "--min-agreement", "0.5"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "int8: calibrated on 10 " in done.output and "ferbench eval --model" in done.output
    int8_file = model / "model-int8.onnx"
    ops = {node.op_type for node in onnx.load(str(int8_file)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    quantized = OnnxClassifier(int8_file).metadata["int8"]
    assert quantized["calibration_faces"] == quantized["checked_faces"] == 10 and quantized["split"] == "train"
    assert quantized["argmax_agreement"] >= 0.5 and quantized["min_agreement"] == 0.5
    assert not (model / "model.onnx").exists()  # --int8 writes only the int8 file

    # Scored by eval: labelled int8, with what ran it; the fp32 file scores as the PyTorch model does.
    (record,) = evaluate(load_zoo(None), [int8_file], str(faces), split="test", device="cpu", out_dir=tmp_path / "r")
    assert record["method"] == "int8:example-tinycnn" and record["model"]["backend"] == "onnxruntime"
    assert record["model"]["int8"]["calibration_faces"] == 10 and record["metrics"]["accuracy"] is not None
    runner.invoke(app, ["export", "--model", str(model)], catch_exceptions=False)
    images = np.stack([draw_face(32, smile=smile) for smile in (0.0, 0.5, 1.0)])  # at the model's size
    torch_scorer = load_classifier(model, load_zoo(None).catalog.build, torch.device("cpu"), batch_size=2)
    onnx_scorer = load_classifier(model / "model.onnx", None, torch.device("cpu"), batch_size=2)
    assert (onnx_scorer.backend, onnx_scorer.int8) == ("onnxruntime", None)
    for tta in ("none", "flip", "flip-shift", "flip-shift-zoom"):
        assert onnx_scorer.probabilities(images, tta) == pytest.approx(torch_scorer.probabilities(images, tta), abs=1e-4)
    assert not np.allclose(onnx_scorer.probabilities(images), onnx_scorer.probabilities(images, "flip-shift"))
