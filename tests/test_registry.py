"""registry.yaml: the project's file validates, and every kind of mistake is reported with file and key."""

import pytest

from ferbench.errors import ConfigError, DatasetError
from ferbench.plugins import PluginManager
from ferbench.registry import Registry, Zoo, remap_classes
from conftest import ROOT


def zoo_for(registry_path, modules=()):
    return Zoo(PluginManager(modules=modules), registry_path)


def test_project_registry_is_valid_and_lists_paper_numbers():
    zoo = zoo_for(ROOT / "registry.yaml")
    assert "timm:resnet18" in zoo.method_names() and "fer2013" in zoo.dataset_names()
    numbers = {(r["method"], r["dataset"]): r["value"] for r in zoo.paper_numbers()}
    assert numbers[("timm:resnet18", "ckplus48")] == 95.94
    assert zoo.method("timm:resnet18").defaults["epochs"] == 7
    assert zoo.suite("smoke")[0]["method"] == "timm:resnet18"


@pytest.mark.parametrize("content, message", [
    ({"version": 1, "methods": {"timm:resnet18": {"plugin": "timm", "sumary": "x"}}},
     "methods.timm:resnet18.sumary: unknown key; did you mean 'summary'?"),
    ({"version": 1, "datasets": {"fer": {"loader": "ferbench-npz"}}}, "datasets.fer.plugin: missing required field"),
    ({"version": 1, "datasets": {"fer": {"plugin": "datasets", "loader": "ferbench-npz", "paths": "data/"}}},
     "datasets.fer.paths: must be list, got str"),
    ({"version": 1, "methods": {"timm:resnet18": {"plugin": "nosuchplugin"}}},
     "methods.timm:resnet18.plugin: names plugin 'nosuchplugin', which is not installed"),
    ({"version": 1, "methods": {"resnet-99": {"plugin": "timm"}}},
     "methods.resnet-99: plugin 'timm' provides no method or classifier named 'resnet-99'"),
    ({"version": 1, "methods": {"timm:resnet18": {"plugin": "timm", "defaults": {"epoch": 3}}}},
     "methods.timm:resnet18.defaults.epoch: timm:resnet18 has no hyperparameter 'epoch'"),
    ({"version": 1, "datasets": {"fer": {"plugin": "datasets", "loader": "ferbench-csv"}}},
     "datasets.fer.loader: plugin 'datasets' provides no dataset or loader named 'ferbench-csv'"),
    ({"version": 1, "datasets": {"fer": {"plugin": "datasets", "loader": "ferbench-npz", "options": {"colour": 1}}}},
     "datasets.fer.options.colour: loader 'ferbench-npz' takes no option 'colour'"),
    ({"version": 1, "datasets": {"fer": {"plugin": "datasets", "loader": "ferbench-npz", "classes": {"happy": "joy"}}}},
     "datasets.fer.classes.happy: 'joy' is not a canonical class"),
    ({"version": 1, "suites": {"s": {"runs": [{"method": "timm:resnet18", "dataset": "nowhere"}]}}},
     "suites.s.runs[0].dataset: unknown dataset 'nowhere'"),
    ({"version": 1, "protocols": {"leave-one-out": {"plugin": "ferbench"}}},
     "protocols.leave-one-out: plugin 'ferbench' provides no protocol named 'leave-one-out'"),
    ({"version": 1, "methods": {"timm:resnet18": {"plugin": "timm", "paper": {"title": "t", "reported": [
        {"dataset": "fer2013", "protocol": "holdout", "metric": "top5", "value": 1}]}}}},
     "methods.timm:resnet18.paper.reported[0].metric: must be one of accuracy, macro_f1, mean_tpr"),
    ({"methods": {}}, "version: missing required field"),
    ({"version": 1, "method": {}}, "method: unknown key; did you mean 'methods'?"),
])
def test_mistakes_are_reported_with_file_and_key(write_registry, content, message):
    path = write_registry(content)
    with pytest.raises(ConfigError) as error:
        zoo_for(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_all_problems_are_reported_at_once(write_registry):
    path = write_registry({"version": 1, "datasets": {"a": {"plugin": "datasets", "bogus": 1}, "b": {}}})
    with pytest.raises(ConfigError, match="2 problem") as error:
        zoo_for(path)
    assert "datasets.a.bogus" in str(error.value) and "datasets.b.plugin" in str(error.value)


def test_malformed_and_duplicate_yaml_name_the_file(write_registry):
    path = write_registry("version: 1\nmethods: {timm:resnet18: [\n")
    with pytest.raises(ConfigError, match=f"{path} is not valid YAML"):
        Registry.load(path)
    path = write_registry("version: 1\ndatasets:\n  a: {plugin: x}\n  a: {plugin: y}\n")
    with pytest.raises(ConfigError, match="key 'a' appears twice"):
        Registry.load(path)


def test_yaml_cannot_construct_python_objects(write_registry):
    path = write_registry("version: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Registry.load(path)


def test_missing_registry_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="registry file .*nope.yaml does not exist"):
        Registry.load(tmp_path / "nope.yaml")


def test_entries_of_a_plugin_that_failed_to_load_are_unavailable_not_fatal(write_registry):
    path = write_registry({"version": 1, "datasets": {
        "broken-set": {"plugin": "plugin_fixtures.broken_import"},
        "fer": {"plugin": "datasets", "loader": "ferbench-npz"}}})
    zoo = zoo_for(path, modules=["plugin_fixtures.broken_import"])
    assert "fer" in zoo.dataset_names()
    with pytest.raises(ConfigError, match="unavailable: plugin 'plugin_fixtures.broken_import' failed to load"):
        zoo.dataset("broken-set")


def test_dataset_paths_resolve_relative_to_the_registry_and_report_where_they_looked(write_registry, tmp_path):
    (tmp_path / "here").mkdir()
    path = write_registry({"version": 1, "datasets": {
        "found": {"plugin": "datasets", "loader": "ferbench-npz", "paths": ["$FERBENCH_TEST_UNSET/x", "here"]},
        "lost": {"plugin": "datasets", "loader": "ferbench-npz", "paths": ["nowhere"]}}})
    zoo = zoo_for(path)
    assert zoo.dataset("found").options["root"] == str((tmp_path / "here").resolve())
    with pytest.raises(DatasetError, match="no copy found; looked in:\n  .*nowhere"):
        zoo.dataset("lost")


def test_unknown_names_suggest_close_ones(zoo):
    with pytest.raises(ConfigError, match="did you mean 'squares'"):
        zoo.dataset("squaers")
    with pytest.raises(ConfigError, match="did you mean 'kfold'"):
        zoo.protocol("kfodl")
    with pytest.raises(ConfigError, match="did you mean timm:resnet18"):
        zoo.method("timm:resnet81")


def test_remap_classes_merges_and_drops(squares):
    d = squares(classes=("anger", "happiness", "surprise"))
    merged = remap_classes(d, {"anger": "disgust", "surprise": None})
    assert merged.classes == ("disgust", "happiness")
    assert len(merged) == len(d) * 2 // 3
    assert merged.class_counts() == {"disgust": 12, "happiness": 12}


def test_paper_rows_can_name_a_stage_and_per_class_values(write_registry):
    row = {"dataset": "FACES+JAFFE", "target": "OULU-CASIA", "protocol": "cross-dataset", "metric": "mean_tpr",
           "stage": "after", "value": 49.39, "sd": 1.84, "per_class": {"anger": 72.41}, "per_class_sd": {"anger": 10.27}}
    path = write_registry({"version": 1, "methods": {"timm:resnet18": {"plugin": "timm", "paper": {
        "title": "t", "reported": [row]}}}})
    (number,) = zoo_for(path).paper_numbers()
    assert number["stage"] == "after" and number["per_class_sd"] == {"anger": 10.27}
    bad = write_registry({"version": 1, "methods": {"timm:resnet18": {"plugin": "timm", "paper": {
        "title": "t", "reported": [{**row, "stage": 2}]}}}}, name="bad.yaml")
    with pytest.raises(ConfigError, match=r"reported\[0\].stage: must be str"):
        zoo_for(bad)
