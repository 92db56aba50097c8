"""Finding plugins, collecting what they register, and keeping one broken plugin from breaking the rest.

Plugins come from two places only: the ``ferbench`` entry-point group of installed distributions, and
modules the user names explicitly (``FERBENCH_PLUGINS=my.module,other.module``). The core registers its
own protocols as the plugin ``ferbench``; it never imports a built-in plugin.

Hooks are called through pluggy (``pm.hook.<name>()``), so ``tryfirst``/``trylast`` and hook wrappers work
as pluggy documents them. What pluggy registers for a plugin is a stand-in holding the plugin's own hook
implementations, each guarded: an import error or an exception inside one plugin's hook is recorded
against that plugin (``ferbench plugins`` shows it) and every other plugin keeps working, and each result
comes back as ``(plugin name, result)`` so that it stays attributable to the plugin that returned it.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import os
import traceback
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy
from torch import nn

import ferbench
from ferbench import hookspecs
from ferbench.errors import ConfigError, PluginError, unknown_name
from ferbench.interfaces import (
    COMPONENT_KINDS,
    ComponentSpec,
    CorruptionSpec,
    DatasetSpec,
    DetectorSpec,
    MethodSpec,
    ProtocolSpec,
    TrackerSpec,
)

ENTRY_POINT_GROUP = "ferbench"
PLUGINS_ENV = "FERBENCH_PLUGINS"

# registration hook -> (catalog section, record type)
REGISTRATIONS: dict[str, tuple[str, type]] = {
    "ferbench_register_methods": ("methods", MethodSpec),
    "ferbench_register_components": ("components", ComponentSpec),
    "ferbench_register_datasets": ("datasets", DatasetSpec),
    "ferbench_register_protocols": ("protocols", ProtocolSpec),
    "ferbench_register_corruptions": ("corruptions", CorruptionSpec),
    "ferbench_register_detectors": ("detectors", DetectorSpec),
    "ferbench_register_trackers": ("trackers", TrackerSpec),
}


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin, as ``ferbench plugins`` shows it."""

    name: str
    module: str
    version: str
    source: str
    provides: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass
class Catalog:
    """Everything the loaded plugins registered, by name, with the plugin that registered each."""

    methods: dict[str, MethodSpec] = field(default_factory=dict)
    components: dict[str, ComponentSpec] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    protocols: dict[str, ProtocolSpec] = field(default_factory=dict)
    corruptions: dict[str, CorruptionSpec] = field(default_factory=dict)
    detectors: dict[str, DetectorSpec] = field(default_factory=dict)
    trackers: dict[str, TrackerSpec] = field(default_factory=dict)
    owner: dict[tuple[str, str], str] = field(default_factory=dict)

    def component(self, name: str, kind: str | None = None) -> tuple[ComponentSpec, str | None]:
        """The spec that builds ``name`` and, for a family member (``timm:resnet18``), the member name."""
        spec = self.components.get(name)
        member = None
        if spec is None and ":" in name:
            prefix, member = name.split(":", 1)
            spec = self.components.get(prefix + ":")
            if spec is not None and member not in self._members(spec.name):
                close = difflib.get_close_matches(member, self._members(spec.name), n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(prefix + ':' + c for c in close)}?" if close else ""
                raise ConfigError(f"unknown {spec.kind} {name!r}: {spec.name}* has no member {member!r}{hint}")
        if spec is None or spec.name.endswith(":") and member is None:
            choices = [n for n, s in self.components.items() if kind in (None, s.kind)]
            raise unknown_name(kind or "component", name, choices)
        if kind is not None and spec.kind != kind:
            raise ConfigError(f"{name!r} is a {spec.kind}, not a {kind}")
        return spec, member

    def build(self, kind: str, name: str, **kwargs: Any) -> nn.Module:
        """Build the ``kind`` component registered as ``name`` (family members included)."""
        spec, member = self.component(name, kind)
        return spec.build(member, **kwargs) if member is not None else spec.build(**kwargs)

    def is_component(self, name: str, kind: str) -> bool:
        try:
            self.component(name, kind)
        except ConfigError:
            return False
        return True

    def _members(self, family: str) -> frozenset[str]:
        cache = self.__dict__.setdefault("_member_cache", {})
        if family not in cache:
            cache[family] = frozenset(self.components[family].members())
        return cache[family]


class PluginManager:
    """Loads plugins and collects their registrations into a :class:`Catalog`."""

    def __init__(self, entry_points: bool = True, modules: Iterable[str] = ()):
        self.hooks = pluggy.PluginManager("ferbench")
        self.hooks.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._warned: set[tuple[str, str]] = set()
        self._unwarned: list[str] = []  # lifecycle hook errors found during a call, warned after it
        self._stand_ins: dict[Any, _StandIn] = {}

        from ferbench import protocols  # the core's own registrations

        self._register("ferbench", lambda: protocols, version=ferbench.__version__, source="core")
        if entry_points:
            self._load_entry_points()
        explicit = [m for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
        for module in [*modules, *explicit]:
            module = module.strip()
            self._register(module, lambda m=module: importlib.import_module(m),
                           version=_module_version(module), source=f"named explicitly ({PLUGINS_ENV})")

    def _load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist
            version = dist.version if dist else "?"
            where = f"entry point {ep.name} = {ep.value}"
            if dist is not None:
                where += f" (distribution {dist.metadata['Name']} {version})"
            self._register(ep.name, ep.load, version=version, source=where, module=ep.value)

    def _register(self, name: str, load: Callable[[], ModuleType], version: str, source: str,
                  module: str | None = None) -> None:
        if name in self.plugins:
            self.plugins[name].errors.append(f"a second plugin named {name!r} ({source}) was ignored")
            return
        info = PluginInfo(name=name, module=module or name, version=version, source=source)
        self.plugins[name] = info
        try:
            plugin = load()
            info.module = plugin.__name__
            # one stand-in per module, so that pluggy still refuses a module registered under two names
            if plugin not in self._stand_ins:
                self._stand_ins[plugin] = self._stand_in(plugin, name)
            self.hooks.register(self._stand_ins[plugin], name=name)
        except Exception as error:  # a broken plugin must not take the others down
            info.errors.append(f"failed to load: {_describe(error)}")

    def _stand_in(self, plugin: Any, name: str) -> _StandIn:
        """The plugin's hook implementations, each guarded, under the same markers (so pluggy orders and
        validates them as the plugin wrote them)."""
        stand_in = _StandIn(plugin)
        for attr in dir(plugin):
            opts = self.hooks.parse_hookimpl_opts(plugin, attr)
            if opts is None:
                continue
            function = getattr(plugin, attr)
            if (opts.get("wrapper") or opts.get("hookwrapper")) and not inspect.isgeneratorfunction(function):
                guarded = function  # not a generator: leave it to pluggy to refuse the plugin, as it always has
            else:
                guard = self._guard_wrapper if opts.get("wrapper") else \
                    self._guard_hookwrapper if opts.get("hookwrapper") else self._guard
                guarded = functools.wraps(function)(guard(name, opts.get("specname") or attr, function))
            setattr(guarded, f"{self.hooks.project_name}_impl", opts)
            setattr(stand_in, attr, guarded)
        return stand_in

    def _guard(self, plugin: str, hook: str, function: Callable) -> Callable:
        def guarded(*args: Any) -> Any:
            try:
                return plugin, function(*args)
            except Exception as error:
                self._failed(plugin, hook, error)
                return None  # pluggy leaves None out of the results
        return guarded

    # A wrapper that raises (before its yield, after it, or by not yielding) is recorded against its plugin
    # and the call goes on as if that wrapper were not there: the inner implementations still run and the
    # results they returned are kept. So is one that replaces the results with something else than the
    # ``(plugin, result)`` pairs it was given (a new-style wrapper must ``return (yield)``), or an old-style
    # one that forces an exception. Errors from outside the plugins (a KeyboardInterrupt) pass through.

    def _started(self, plugin: str, hook: str, function: Callable, args: tuple) -> Any:
        """A wrapper run up to its yield, or None (recorded) when it raises or never yields."""
        try:
            wrapper = function(*args)
            next(wrapper)
            return wrapper
        except Exception as error:
            self._failed(plugin, hook, _not_yielded(error))
            return None

    def _guard_hookwrapper(self, plugin: str, hook: str, function: Callable) -> Callable:
        def guarded(*args: Any) -> Any:
            wrapper = self._started(plugin, hook, function, args)
            if wrapper is None:
                yield
                return
            outcome = yield
            intact = outcome.exception is None  # else an error from outside the plugins, left as it is
            inner = outcome.get_result() if intact else None
            try:
                wrapper.send(outcome)
            except StopIteration:
                pass
            except Exception as error:
                self._failed(plugin, hook, error)
            else:
                wrapper.close()
                self._failed(plugin, hook, RuntimeError("hookwrapper has a second yield"))
            if intact and (outcome.exception is not None or not self._tagged(outcome.get_result())):
                self._failed(plugin, hook, outcome.exception or _replaced(outcome.get_result()))
                outcome.force_result(inner)
        return guarded

    def _guard_wrapper(self, plugin: str, hook: str, function: Callable) -> Callable:
        def guarded(*args: Any) -> Any:
            wrapper = self._started(plugin, hook, function, args)
            if wrapper is None:
                return (yield)
            try:
                inner = yield
            except BaseException:
                wrapper.close()
                raise
            try:
                wrapper.send(inner)
            except StopIteration as stop:
                if self._tagged(stop.value):
                    return stop.value
                self._failed(plugin, hook, _replaced(stop.value))
            except Exception as error:
                self._failed(plugin, hook, error)
            else:
                wrapper.close()
                self._failed(plugin, hook, RuntimeError("wrapper has a second yield"))
            return inner
        return guarded

    def _tagged(self, results: Any) -> bool:
        return isinstance(results, list) and all(
            isinstance(r, tuple) and len(r) == 2 and r[0] in self.plugins for r in results)

    def _failed(self, plugin: str, hook: str, error: BaseException) -> None:
        """Record an error once per plugin and hook; lifecycle hook errors are also warned (by notify)."""
        if (plugin, hook) in self._warned:
            return
        self._warned.add((plugin, hook))
        message = f"{hook} raised {_describe(error)}"
        self.plugins[plugin].errors.append(message)
        if hook not in REGISTRATIONS:
            self._unwarned.append(f"plugin {plugin!r}: {message}")

    @property
    def failures(self) -> dict[str, list[str]]:
        """Plugin name -> what went wrong, for every plugin with a problem."""
        self.catalog  # registration errors are found while collecting
        return {name: info.errors for name, info in self.plugins.items() if info.errors}

    @cached_property
    def catalog(self) -> Catalog:
        catalog = Catalog()
        registered = list(self.plugins)
        for hook_name, (section, record_type) in REGISTRATIONS.items():
            registry: dict[str, Any] = getattr(catalog, section)
            returned = getattr(self.hooks.hook, hook_name)()
            # pluggy calls the last registered first (tryfirst/trylast aside); of two records with one name,
            # the plugin registered first keeps it, as it always has: the core's own before any plugin.
            for plugin, records in sorted(returned, key=lambda pair: registered.index(pair[0])):
                info = self.plugins[plugin]
                try:
                    records = list(records or [])
                    bad = [r for r in records if not isinstance(r, record_type)]
                    if bad:
                        raise TypeError(f"returned {type(bad[0]).__name__}, expected {record_type.__name__}")
                except Exception as error:
                    info.errors.append(f"{hook_name} raised {_describe(error)}")
                    continue
                for record in records:
                    existing = catalog.owner.get((section, record.name))
                    if existing is not None:
                        info.errors.append(
                            f"{section[:-1]} {record.name!r} is already registered by plugin {existing!r}; ignored")
                        continue
                    registry[record.name] = record
                    catalog.owner[(section, record.name)] = info.name
                    info.provides.setdefault(section, []).append(record.name)
        clashes = set(catalog.methods) & {n for n, s in catalog.components.items() if s.kind == "classifier"}
        for name in clashes:
            self.plugins[catalog.owner[("methods", name)]].errors.append(
                f"method {name!r} has the name of a classifier; `--method {name}` runs the method")
        return catalog

    def notify(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a hook on every plugin and return their results, in pluggy's call order; an error is
        reported once per plugin and hook, and the others (and the run) go on."""
        returned = getattr(self.hooks.hook, hook_name)(**kwargs)
        # warned after the call, so that a warning turned into an error cannot stop the other plugins
        while self._unwarned:
            warnings.warn(self._unwarned.pop(0), RuntimeWarning, stacklevel=2)
        return [result for _, result in returned]

    def plugin_of(self, section: str, name: str) -> str | None:
        return self.catalog.owner.get((section, name))


class _StandIn:
    """What pluggy registers for a plugin: the plugin's hook implementations, guarded."""

    def __init__(self, plugin: Any):
        self._plugin = plugin

    def __repr__(self) -> str:
        return f"<guarded {self._plugin!r}>"


def _not_yielded(error: Exception) -> Exception:
    return RuntimeError("wrapper did not yield") if isinstance(error, StopIteration) else error


def _replaced(results: Any) -> TypeError:
    return TypeError(f"wrapper returned {type(results).__name__}, not the (plugin, result) pairs it was given")


def _describe(error: BaseException) -> str:
    frame = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    where = f" at {frame[0].filename}:{frame[0].lineno}" if frame else ""
    return f"{type(error).__name__}: {error}{where}"


def _module_version(module: str) -> str:
    try:
        return str(getattr(importlib.import_module(module.split(".")[0]), "__version__", "?"))
    except Exception:
        return "?"


__all__ = ["COMPONENT_KINDS", "Catalog", "PluginInfo", "PluginManager", "PluginError"]


@functools.lru_cache(maxsize=1)
def installed() -> PluginManager:
    """The plugins installed here (entry points and ``FERBENCH_PLUGINS``), loaded once per process: for
    code that has no :class:`~ferbench.registry.Zoo` at hand, such as a dataset loader's face pipeline."""
    return PluginManager()
