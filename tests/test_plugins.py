"""Hook registration, the broken-plugin cases, and the core's independence from the built-in plugins."""

import ast
import warnings
from pathlib import Path

import pytest

from ferbench.errors import ConfigError
from ferbench.interfaces import ComponentSpec
from ferbench.plugins import PluginManager

ROOT = Path(__file__).resolve().parent.parent


def test_entry_point_plugins_are_loaded_and_report_what_they_register():
    manager = PluginManager()
    assert {"ferbench", "timm", "synthetic", "datasets"} <= set(manager.plugins)
    catalog = manager.catalog
    assert manager.plugins["timm"].provides["components"] == ["timm:"]
    assert {"holdout", "kfold", "image-kfold", "cross-dataset"} <= set(catalog.protocols)
    assert catalog.owner[("protocols", "holdout")] == "ferbench"
    assert "entry point timm = ferbench_timm" in manager.plugins["timm"].source
    assert not manager.failures


def test_explicitly_named_plugin_registers_components_and_datasets(test_plugins):
    manager = PluginManager()
    assert manager.catalog.owner[("components", "example-tinycnn")] == "ferbench_example"
    assert "squares" in manager.catalog.datasets
    assert "FERBENCH_PLUGINS" in manager.plugins["ferbench_example"].source


def test_plugin_that_fails_to_import_is_reported_and_others_work():
    manager = PluginManager(modules=["plugin_fixtures.broken_import"])
    errors = manager.failures["plugin_fixtures.broken_import"]
    assert "failed to load: ImportError: this plugin needs a library that is not installed" in errors[0]
    assert manager.catalog.is_component("timm:resnet18", "classifier")


def test_plugin_raising_in_a_registration_hook_is_reported_by_name():
    manager = PluginManager(modules=["plugin_fixtures.broken_hooks"])
    errors = " | ".join(manager.failures["plugin_fixtures.broken_hooks"])
    assert "ferbench_register_components raised RuntimeError: component registration exploded" in errors
    assert "ferbench_register_datasets raised TypeError: returned str, expected DatasetSpec" in errors
    assert "holdout" in manager.catalog.protocols and "timm:" in manager.catalog.components


def test_lifecycle_hook_errors_warn_once_and_do_not_stop_other_plugins(test_plugins):
    from plugin_fixtures import squares_plugin

    manager = PluginManager(modules=["plugin_fixtures.broken_hooks"])
    squares_plugin.EVENTS.clear()
    with pytest.warns(RuntimeWarning, match="tracking server unreachable"):
        manager.notify("ferbench_epoch_end", run={}, fold="f", epoch=1, metrics={"loss": 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second failure is recorded, not warned again
        manager.notify("ferbench_epoch_end", run={}, fold="f", epoch=2, metrics={"loss": 0.25})
    assert squares_plugin.EVENTS == [("epoch", "f", 1, 0.5), ("epoch", "f", 2, 0.25)]


def test_duplicate_names_keep_the_first_registration():
    manager = PluginManager(modules=["ferbench_example", "plugin_fixtures.copycat"])
    assert manager.catalog.owner[("components", "example-tinycnn")] == "ferbench_example"
    assert any("already registered by plugin 'ferbench_example'" in e
               for e in manager.plugins["plugin_fixtures.copycat"].errors)


def test_family_lookup_suggests_close_members():
    catalog = PluginManager().catalog
    spec, member = catalog.component("timm:resnet18", "classifier")
    assert spec.name == "timm:" and member == "resnet18"
    with pytest.raises(ConfigError, match="did you mean timm:resnet18"):
        catalog.component("timm:resnt18", "classifier")
    with pytest.raises(ConfigError, match="unknown classifier 'resnet18'"):
        catalog.component("resnet18", "classifier")


def test_component_spec_validates_kind_and_family_name():
    with pytest.raises(ValueError, match="kind must be one of"):
        ComponentSpec(kind="backbone", name="x", build=object)
    with pytest.raises(ValueError, match="must end with ':'"):
        ComponentSpec(kind="classifier", name="fam", build=object, members=list)


def test_core_works_without_any_entry_point_plugin():
    manager = PluginManager(entry_points=False)
    assert set(manager.plugins) == {"ferbench"}
    assert "holdout" in manager.catalog.protocols and not manager.catalog.components


def test_core_never_imports_a_builtin_plugin():
    builtin = {p.name for p in (ROOT / "plugins").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert builtin, "no built-in plugins found"
    for path in (ROOT / "ferbench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] not in builtin, f"{path} imports built-in plugin {name}"
