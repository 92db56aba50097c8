"""Weights load only through safetensors or weights_only torch.load; saved models round-trip exactly."""

import json
import os
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ferbench.checkpoint import load_model, load_state_dict, load_weights, read_model_record, save_model
from ferbench.data import InputSpec
from ferbench.errors import CheckpointError
from ferbench.training import predict_proba


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    Exploit.marker = marker
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"weight": Exploit()}, f)
    with pytest.raises(CheckpointError, match="refused to load .*evil.pt.*arbitrary code"):
        load_state_dict(path)
    assert not marker.exists()


def test_safetensors_and_plain_checkpoints_load(tmp_path):
    state = {"a.weight": torch.randn(3, 2)}
    save_file(state, tmp_path / "w.safetensors")
    torch.save({"state_dict": state}, tmp_path / "w.pt")
    assert torch.equal(load_state_dict(tmp_path / "w.safetensors")["a.weight"], state["a.weight"])
    assert torch.equal(load_state_dict(tmp_path / "w.pt")["a.weight"], state["a.weight"])


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_state_dict(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(os.urandom(64))
    with pytest.raises(CheckpointError, match="bad.safetensors is not a readable safetensors file"):
        load_state_dict(tmp_path / "bad.safetensors")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_state_dict(tmp_path / "list.pt")


def test_load_weights_adapts_rgb_stem_skips_mismatched_head_and_reconciles_prefixes(tmp_path):
    from ferbench_example import TinyCNN

    source = TinyCNN(num_classes=5, in_chans=3)
    save_file({f"module.{k}": v for k, v in source.state_dict().items()}, tmp_path / "src.safetensors")
    target = TinyCNN(num_classes=3, in_chans=1)
    report = load_weights(target, tmp_path / "src.safetensors")
    assert torch.allclose(target.body[0].weight, source.body[0].weight.sum(1, keepdim=True))
    assert torch.equal(target.body[4].weight, source.body[4].weight)
    assert any(s.startswith("head.1.weight") for s in report["skipped"])


def test_load_weights_matches_a_saved_models_head_rows_by_class_name(tmp_path):
    """FER2013 -> CK+48 fine-tuning: same head size, different classes in a different order."""
    from ferbench_example import TinyCNN

    source = TinyCNN(num_classes=3, in_chans=1)
    save_file(source.state_dict(), tmp_path / "model.safetensors")
    (tmp_path / "model.json").write_text(json.dumps({"classes": ["anger", "disgust", "happiness"]}))
    target = TinyCNN(num_classes=3, in_chans=1)
    fresh = target.state_dict()["head.1.weight"].clone()
    report = load_weights(target, tmp_path / "model.safetensors", ("happiness", "contempt", "anger"))
    weight, source_weight = target.head[1].weight, source.head[1].weight
    assert torch.equal(weight[0], source_weight[2]) and torch.equal(weight[2], source_weight[0])
    assert torch.equal(weight[1], fresh[1])  # contempt: not in the source, keeps its initialisation
    assert torch.equal(target.head[1].bias[0], source.head[1].bias[2])
    assert torch.equal(target.body[0].weight, source.body[0].weight)
    assert report["remapped"] == ["head.1.bias: 2 of 3 classes by name", "head.1.weight: 2 of 3 classes by name"]
    # without class names on either side, rows load by position as before
    plain = TinyCNN(num_classes=3, in_chans=1)
    assert load_weights(plain, tmp_path / "model.safetensors")["remapped"] == []
    assert torch.equal(plain.head[1].weight, source_weight)


def test_load_weights_refuses_a_file_for_another_architecture(tmp_path):
    from ferbench_example import TinyCNN

    save_file({"something.else": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="no tensor .* matches the model"):
        load_weights(TinyCNN(num_classes=3), tmp_path / "other.safetensors")


def test_saved_model_round_trips_predictions(tmp_path, zoo, squares):
    model = zoo.catalog.build("classifier", "example-tinycnn", num_classes=3, in_chans=1, image_size=16)
    data = squares()
    spec = InputSpec.fit(data.images, 1, 16)
    save_model(tmp_path / "m", model, kind="classifier", component="example-tinycnn",
               build={"num_classes": 3, "in_chans": 1, "image_size": 16}, classes=data.classes, input_spec=spec,
               trained_by={"run_id": "r1"})
    loaded, loaded_spec, record = load_model(tmp_path / "m" / "model.json", zoo.catalog.build)
    assert record["trained_by"] == {"run_id": "r1"} and loaded_spec == spec
    cpu = torch.device("cpu")
    np.testing.assert_array_equal(predict_proba(model, data.images, spec, cpu), predict_proba(loaded, data.images, spec, cpu))
    assert not list((tmp_path / "m").glob(".*tmp"))


def test_model_record_problems_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="not a saved ferbench model"):
        read_model_record(tmp_path)
    (tmp_path / "model.json").write_text('{"format": "something/9"}')
    with pytest.raises(CheckpointError, match="expected format 'ferbench.model/1'"):
        read_model_record(tmp_path)


def test_rng_states_keep_and_restore_the_local_gpu_only(tmp_path, monkeypatch):
    """Each rank saves and restores its own GPU's generator, so a checkpoint made with another number of
    GPUs resumes (CUDA is faked: these are the calls a GPU machine would see)."""
    from ferbench.checkpoint import TrainingCheckpoint

    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": torch.tensor([7, 7], dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": restored.append(state.tolist()))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("saved every GPU's state"))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: pytest.fail("restored every GPU's state"))
    model = torch.nn.Linear(2, 2)
    checkpoint = TrainingCheckpoint(tmp_path / "checkpoint.pt")
    checkpoint.save(1, {"model": model})
    assert TrainingCheckpoint(tmp_path / "checkpoint.pt").restore({"model": model}).epoch == 1
    assert restored == [[7, 7]]
    # An older checkpoint holds one state per GPU of the machine that wrote it: this rank takes its own.
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    for states, expected in (([torch.tensor([1], dtype=torch.uint8), torch.tensor([2], dtype=torch.uint8)], [[2]]),
                             ([torch.tensor([1], dtype=torch.uint8)], []), (None, [])):  # fewer GPUs, or none
        saved["rng"]["cuda"] = states
        torch.save(saved, tmp_path / "checkpoint.pt")
        restored.clear()
        assert TrainingCheckpoint(tmp_path / "checkpoint.pt").restore({"model": model}).epoch == 1
        assert restored == expected
