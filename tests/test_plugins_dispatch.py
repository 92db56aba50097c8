"""Hooks go through pluggy: tryfirst/trylast order the calls, hook wrappers wrap them, and each plugin's
errors stay its own."""

import sys
import types
import warnings

import pytest

from ferbench import hookimpl
from ferbench.interfaces import CorruptionSpec
from ferbench.plugins import PluginManager


@pytest.fixture
def make_plugin(monkeypatch):
    """Put a plugin module made of ``functions`` (hook implementations) where ``PluginManager`` imports it."""
    monkeypatch.delenv("FERBENCH_PLUGINS", raising=False)

    def make(name, *functions):
        module = types.ModuleType(name)
        for i, function in enumerate(functions):
            setattr(module, f"hook{i}", function)  # the hook's name comes from specname
        monkeypatch.setitem(sys.modules, name, module)
        return name

    return make


def recorder(calls, label, hook="ferbench_run_start", **marks):
    @hookimpl(specname=hook, **marks)
    def record(run):
        calls.append(label)
        return label

    return record


def test_tryfirst_and_trylast_order_the_calls(make_plugin):
    calls = []
    manager = PluginManager(entry_points=False, modules=[
        make_plugin("first", recorder(calls, "first", tryfirst=True)),
        make_plugin("last", recorder(calls, "last", trylast=True)),
        make_plugin("plain_a", recorder(calls, "plain_a")),
        make_plugin("plain_b", recorder(calls, "plain_b")),
    ])
    results = manager.notify("ferbench_run_start", run={})
    assert calls == ["first", "plain_b", "plain_a", "last"]  # pluggy's order: the last registered first
    assert results == calls
    assert not manager.failures


def test_hook_wrappers_wrap_the_inner_calls(make_plugin):
    events = []

    @hookimpl(specname="ferbench_epoch_end", hookwrapper=True)
    def old_style(epoch):
        events.append(("old before", epoch))
        outcome = yield
        events.append(("old after", outcome.get_result()))

    @hookimpl(specname="ferbench_epoch_end", wrapper=True)
    def new_style(epoch):
        events.append(("new before", epoch))
        results = yield
        events.append(("new after", list(results)))
        return [*results, ("new_style", "added by the wrapper")]

    @hookimpl(specname="ferbench_epoch_end")
    def inner(epoch, metrics):
        events.append(("inner", metrics["loss"]))
        return f"epoch {epoch}"

    manager = PluginManager(entry_points=False, modules=[
        make_plugin("old_style", old_style), make_plugin("new_style", new_style), make_plugin("inner", inner)])
    results = manager.notify("ferbench_epoch_end", run={}, fold="f", epoch=3, metrics={"loss": 0.5})
    # wrappers see each implementation's result as (plugin name, result); the last registered is outermost
    assert events == [("new before", 3), ("old before", 3), ("inner", 0.5),
                      ("old after", [("inner", "epoch 3")]), ("new after", [("inner", "epoch 3")])]
    assert results == ["epoch 3", "added by the wrapper"]
    assert not manager.failures


def test_an_error_in_one_plugin_is_recorded_against_it_warned_once_and_the_others_run(make_plugin):
    calls = []

    @hookimpl(specname="ferbench_run_end", tryfirst=True)  # called first: the others must still run
    def broken(run, results):
        raise ValueError("tracking server unreachable")

    @hookimpl(specname="ferbench_run_end")
    def fine(results):
        calls.append(len(results))

    manager = PluginManager(entry_points=False, modules=[
        make_plugin("fine_a", fine), make_plugin("broken", broken), make_plugin("fine_b", fine)])
    with pytest.warns(RuntimeWarning) as warned:
        manager.notify("ferbench_run_end", run={}, results=[{}])
    assert [str(w.message) for w in warned] == [f"plugin 'broken': {manager.plugins['broken'].errors[0]}"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second failure is recorded, not warned again
        manager.notify("ferbench_run_end", run={}, results=[{}, {}])
    assert calls == [1, 1, 2, 2]
    (error,) = manager.plugins["broken"].errors
    assert error.startswith("ferbench_run_end raised ValueError: tracking server unreachable at ")
    assert __file__ in error
    assert list(manager.failures) == ["broken"]


def test_a_wrapper_that_fails_is_recorded_and_the_call_goes_on(make_plugin):
    @hookimpl(specname="ferbench_run_start", hookwrapper=True)
    def raises_before(run):
        raise RuntimeError("wrapper setup failed")
        yield

    @hookimpl(specname="ferbench_run_start", wrapper=True)
    def raises_after(run):
        yield
        raise KeyError("teardown failed")

    @hookimpl(specname="ferbench_run_start", wrapper=True)
    def forgets_to_return(run):
        yield

    @hookimpl(specname="ferbench_run_start", hookwrapper=True)
    def forces_an_exception(run):
        outcome = yield
        outcome.force_exception(OSError("no"))

    @hookimpl(specname="ferbench_run_start")
    def inner(run):
        return "ran"

    names = ["raises_before", "raises_after", "forgets_to_return", "forces_an_exception"]
    wrappers = [raises_before, raises_after, forgets_to_return, forces_an_exception]
    manager = PluginManager(entry_points=False, modules=[
        *(make_plugin(n, w) for n, w in zip(names, wrappers)), make_plugin("inner", inner)])
    with pytest.warns(RuntimeWarning):
        assert manager.notify("ferbench_run_start", run={}) == ["ran"]
    errors = {name: manager.plugins[name].errors for name in names}
    assert "ferbench_run_start raised RuntimeError: wrapper setup failed" in errors["raises_before"][0]
    assert "ferbench_run_start raised KeyError: 'teardown failed'" in errors["raises_after"][0]
    assert "wrapper returned NoneType, not the (plugin, result) pairs" in errors["forgets_to_return"][0]
    assert "ferbench_run_start raised OSError: no" in errors["forces_an_exception"][0]
    assert not manager.plugins["inner"].errors


def test_a_wrapper_that_is_not_a_generator_fails_to_load(make_plugin):
    @hookimpl(specname="ferbench_run_start", wrapper=True)
    def not_a_generator(run):
        return None

    manager = PluginManager(entry_points=False, modules=[make_plugin("bad_wrapper", not_a_generator)])
    assert "failed to load: PluginValidationError" in manager.plugins["bad_wrapper"].errors[0]


def corruptions(calls, label, *names, **marks):
    @hookimpl(specname="ferbench_register_corruptions", **marks)
    def register():
        calls.append(label)
        return [CorruptionSpec(name, apply=lambda images, severity, rng: images, family="noise") for name in names]

    return register


def test_registrations_are_owned_by_the_plugin_that_made_them(make_plugin):
    calls = []

    @hookimpl(specname="ferbench_register_corruptions")
    def broken():
        calls.append("broken")
        raise RuntimeError("corruption registration exploded")

    manager = PluginManager(entry_points=False, modules=[
        make_plugin("alpha", corruptions(calls, "alpha", "alpha-blur", "shared")),
        make_plugin("broken", broken),
        make_plugin("beta", corruptions(calls, "beta", "beta-noise", "shared", tryfirst=True)),
    ])
    catalog = manager.catalog
    assert calls == ["beta", "broken", "alpha"]  # pluggy's call order
    owner = {name: plugin for (section, name), plugin in catalog.owner.items() if section == "corruptions"}
    # of two records with one name the plugin registered first keeps it, whatever the call order
    assert owner == {"alpha-blur": "alpha", "shared": "alpha", "beta-noise": "beta"}
    assert manager.plugins["alpha"].provides == {"corruptions": ["alpha-blur", "shared"]}
    assert manager.plugins["beta"].provides == {"corruptions": ["beta-noise"]}
    assert manager.plugins["beta"].errors == ["corruption 'shared' is already registered by plugin 'alpha'; ignored"]
    (error,) = manager.plugins["broken"].errors
    assert error.startswith("ferbench_register_corruptions raised RuntimeError: corruption registration exploded")
    assert set(manager.failures) == {"beta", "broken"}


def test_a_module_registered_under_two_names_is_refused_the_second_time(make_plugin, monkeypatch):
    calls = []
    make_plugin("once", recorder(calls, "once"))
    manager = PluginManager(entry_points=False, modules=["once"])
    manager._register("again", lambda: sys.modules["once"], version="?", source="test")
    assert "Plugin already registered under a different name" in manager.plugins["again"].errors[0]
    manager.notify("ferbench_run_start", run={})
    assert calls == ["once"]
