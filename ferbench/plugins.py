"""Finding plugins, collecting what they register, and keeping one broken plugin from breaking the rest.

Plugins come from two places only: the ``ferbench`` entry-point group of installed distributions, and
modules the user names explicitly (``FERBENCH_PLUGINS=my.module,other.module``). The core registers its
own protocols as the plugin ``ferbench``; it never imports a built-in plugin.

Each hook implementation is called on its own, so an import error or an exception inside one plugin's hook
is recorded against that plugin (``ferbench plugins`` shows it) and every other plugin keeps working.
"""

from __future__ import annotations

import difflib
import functools
import importlib
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
            self.hooks.register(plugin, name=name)
        except Exception as error:  # a broken plugin must not take the others down
            info.errors.append(f"failed to load: {_describe(error)}")

    @property
    def failures(self) -> dict[str, list[str]]:
        """Plugin name -> what went wrong, for every plugin with a problem."""
        self.catalog  # registration errors are found while collecting
        return {name: info.errors for name, info in self.plugins.items() if info.errors}

    @cached_property
    def catalog(self) -> Catalog:
        catalog = Catalog()
        for hook_name, (section, record_type) in REGISTRATIONS.items():
            registry: dict[str, Any] = getattr(catalog, section)
            for impl in getattr(self.hooks.hook, hook_name).get_hookimpls():
                info = self.plugins[impl.plugin_name]
                try:
                    records = list(impl.function() or [])
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
        """Call a hook on every plugin and return their results; an error is reported once per plugin
        and hook, and the others (and the run) go on."""
        results = []
        for impl in getattr(self.hooks.hook, hook_name).get_hookimpls():
            try:
                results.append(impl.function(**{arg: kwargs[arg] for arg in impl.argnames}))
            except Exception as error:
                key = (impl.plugin_name, hook_name)
                if key not in self._warned:
                    self._warned.add(key)
                    message = f"{hook_name} raised {_describe(error)}"
                    self.plugins[impl.plugin_name].errors.append(message)
                    warnings.warn(f"plugin {impl.plugin_name!r}: {message}", RuntimeWarning, stacklevel=2)
        return results

    def plugin_of(self, section: str, name: str) -> str | None:
        return self.catalog.owner.get((section, name))


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
