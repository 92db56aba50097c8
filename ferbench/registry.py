"""registry.yaml, the zoo: methods, datasets, protocols and suites, checked against what plugins provide.

Plugins say what *can* be built; the registry says how the zoo uses it: a method's default
hyperparameters and components and the numbers its paper reports, where a dataset's files are looked
for, and which runs make up a suite. Every entry names the plugin that provides it. Loading validates
the file completely (unknown keys, missing fields, wrong types, names no plugin provides) and reports
every problem with the file and key at fault.

:class:`Zoo` joins the plugin catalog and the registry and answers "what is method X, dataset Y".
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from ferbench.data import CANONICAL_CLASSES, Dataset
from ferbench.errors import ConfigError, DatasetError, unknown_name
from ferbench.interfaces import DatasetSpec, MethodSpec, ProtocolSpec
from ferbench.plugins import PluginManager
from ferbench.training import supervised_spec

REGISTRY_VERSION = 1
REGISTRY_ENV = "FERBENCH_REGISTRY"
DEFAULT_REGISTRY = Path(__file__).resolve().parent.parent / "registry.yaml"
PROTOCOL_OPTIONS = {"folds"}

# field -> (accepted types, required)
Schema = Mapping[str, tuple[tuple[type, ...], bool]]
STR, INT, NUM, DICT, LIST = (str,), (int,), (int, float), (dict,), (list,)
TOP: Schema = {"version": (INT, True), "methods": (DICT, False), "datasets": (DICT, False),
               "protocols": (DICT, False), "suites": (DICT, False), "robustness_references": (DICT, False)}
METHOD: Schema = {"plugin": (STR, True), "summary": (STR, False), "components": (DICT, False),
                  "defaults": (DICT, False), "paper": (DICT, False), "notes": (STR, False)}
PAPER: Schema = {"title": (STR, True), "authors": (STR, False), "year": (INT, False), "source": (STR, False),
                 "reported": (LIST, True)}
# A paper's numbers are about the paper's own datasets, which ferbench may not be able to load (the Arabian
# GAN's FACES+JAFFE -> OULU-CASIA), so `dataset` and `target` are names as the paper gives them. `stage` says
# which of a method's measurements a number is when the paper reports several (the Arabian GAN's before and
# after restyling); `per_class` and `per_class_sd` hold a table's per-class rows.
REPORTED: Schema = {"dataset": (STR, True), "target": (STR, False), "protocol": (STR, True), "metric": (STR, True),
                    "value": (NUM, True), "sd": (NUM, False), "split": (STR, False), "note": (STR, False),
                    "per_class": (DICT, False), "per_class_sd": (DICT, False), "stage": (STR, False)}
DATASET: Schema = {"plugin": (STR, True), "loader": (STR, False), "summary": (STR, False), "paths": (LIST, False),
                   "options": (DICT, False), "classes": (DICT, False), "protocol": (STR, False),
                   "notes": (STR, False)}
PROTOCOL: Schema = {"plugin": (STR, True), "summary": (STR, False), "options": (DICT, False)}
SUITE: Schema = {"summary": (STR, False), "runs": (LIST, True)}
RUN: Schema = {"method": (STR, True), "dataset": (STR, True), "protocol": (STR, False), "target": (STR, False),
               "seeds": (LIST, False), "config": (DICT, False), "components": (DICT, False)}
METRICS = ("accuracy", "macro_f1", "mean_tpr")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader (no arbitrary objects) that also rejects a key given twice in one mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain value, not a {type(key).__name__}", key_node.start_mark) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read registry file {path}: {error}") from error
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    except RecursionError as error:
        raise ConfigError(f"{path} is not a usable registry: it nests lists or mappings too deeply") from error


@dataclass
class Registry:
    """The parsed, structurally valid contents of a registry file (``path`` None: no registry)."""

    path: Path | None
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)
    suites: dict[str, dict[str, Any]] = field(default_factory=dict)
    # dataset -> the robustness record (a path, relative to the registry file) that corruption errors on
    # that dataset are normalised to, as ImageNet-C's mCE is to AlexNet's.
    robustness_references: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> "Registry":
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"registry file {path} does not exist")
        data = read_yaml(path)
        problems = Problems(path)
        if not isinstance(data, dict):
            problems.add("", "the file must hold a mapping with 'version', 'methods', 'datasets', ...")
            problems.raise_if_any()
        problems.fields(data, TOP, "")
        if data.get("version") not in (None, REGISTRY_VERSION) and isinstance(data.get("version"), int):
            problems.add("version", f"this ferbench reads registry version {REGISTRY_VERSION}, not {data['version']}")
        # Wrong types were reported by fields(); look inside only what has the right type.
        for section, schema in (("methods", METHOD), ("datasets", DATASET), ("protocols", PROTOCOL), ("suites", SUITE)):
            for name, entry in _mapping(data.get(section)).items():
                where = f"{section}.{name}"
                if problems.fields(entry, schema, where):
                    if section == "methods" and isinstance(entry.get("paper"), dict):
                        paper = entry["paper"]
                        problems.fields(paper, PAPER, f"{where}.paper")
                        for i, row in enumerate(_list(paper.get("reported"))):
                            if problems.fields(row, REPORTED, f"{where}.paper.reported[{i}]") \
                                    and row.get("metric") not in METRICS:
                                problems.add(f"{where}.paper.reported[{i}].metric",
                                             f"must be one of {', '.join(METRICS)}")
                    if section == "suites":
                        for i, run in enumerate(_list(entry.get("runs"))):
                            problems.fields(run, RUN, f"{where}.runs[{i}]")
                    if section == "datasets":
                        for key, value in _mapping(entry.get("classes")).items():
                            if value is not None and value not in CANONICAL_CLASSES:
                                problems.add(f"{where}.classes.{key}",
                                             f"{value!r} is not a canonical class ({', '.join(CANONICAL_CLASSES)}) or null")
                        if not all(isinstance(p, str) for p in _list(entry.get("paths"))):
                            problems.add(f"{where}.paths", "must be a list of strings")
                    if section == "protocols":
                        for key in set(_mapping(entry.get("options"))) - PROTOCOL_OPTIONS:
                            problems.add(f"{where}.options.{key}", f"unknown protocol option (known: {', '.join(PROTOCOL_OPTIONS)})")
        for dataset, reference in _mapping(data.get("robustness_references")).items():
            if not isinstance(reference, str):
                problems.add(f"robustness_references.{dataset}", "must be the path of a robustness record")
        problems.raise_if_any()
        return cls(path=path, **{s: dict(data.get(s) or {}) for s in ("methods", "datasets", "protocols", "suites",
                                                                     "robustness_references")})


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


class Problems:
    """Collects every problem in a file so one load reports them all."""

    def __init__(self, path: Path | None):
        self.path = path
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{key or '(top level)'}: {message}")

    def fields(self, entry: Any, schema: Schema, where: str) -> bool:
        """Check ``entry`` against ``schema``; True when it is a mapping worth checking further."""
        if not isinstance(entry, dict):
            self.add(where, f"must be a mapping, got {type(entry).__name__}")
            return False
        for key, value in entry.items():
            if key not in schema:
                close = [k for k in schema if k.startswith(str(key)[:3])]
                hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(schema)})"
                self.add(f"{where}.{key}".lstrip("."), f"unknown key{hint}")
            elif not isinstance(value, schema[key][0]) or isinstance(value, bool) and bool not in schema[key][0]:
                expected = " or ".join(t.__name__ for t in schema[key][0])
                self.add(f"{where}.{key}".lstrip("."), f"must be {expected}, got {type(value).__name__}")
        for key, (_, required) in schema.items():
            if required and key not in entry:
                self.add(f"{where}.{key}".lstrip("."), "missing required field")
        return True

    def raise_if_any(self) -> None:
        if self.lines:
            where = str(self.path) if self.path else "registry"
            raise ConfigError(f"{where} has {len(self.lines)} problem(s):\n  " + "\n  ".join(self.lines))


@dataclass(frozen=True)
class ResolvedMethod:
    name: str
    spec: MethodSpec
    defaults: dict[str, Any]
    components: dict[str, str]
    paper: dict[str, Any] | None
    plugin: str


@dataclass(frozen=True)
class ResolvedDataset:
    name: str
    spec: DatasetSpec
    options: dict[str, Any]
    protocol: str
    classes: dict[str, str | None]
    plugin: str

    def with_options(self, options: Mapping[str, Any]) -> "ResolvedDataset":
        """The same dataset with extra loader options (``--data-option``), checked against the loader."""
        if not options:
            return self
        accepted = accepted_keywords(self.spec.load)
        unknown = sorted(set(options) - accepted) if accepted is not None else []
        if unknown:
            raise unknown_name(f"option of dataset loader {self.spec.name!r}", unknown[0], accepted or ())
        return ResolvedDataset(self.name, self.spec, {**self.options, **options}, self.protocol, self.classes,
                               self.plugin)

    def load(self) -> Dataset:
        """Load the dataset and apply the registry's class mapping (merge or drop classes)."""
        try:
            dataset = self.spec.load(**self.options)
        except (DatasetError, ConfigError):
            raise
        except Exception as error:
            raise DatasetError(f"loading dataset {self.name!r} with {self.spec.name} failed: "
                               f"{type(error).__name__}: {error}") from error
        if not isinstance(dataset, Dataset):
            raise DatasetError(f"loader {self.spec.name!r} returned {type(dataset).__name__}, not a Dataset")
        if dataset.name != self.name:
            dataset = replace(dataset, name=self.name)
        return remap_classes(dataset, self.classes) if self.classes else dataset


def remap_classes(dataset: Dataset, mapping: Mapping[str, str | None]) -> Dataset:
    """Rename classes per ``mapping`` (several may merge into one; ``None`` drops a class)."""
    names = [mapping.get(c, c) for c in dataset.classes]
    kept = tuple(dict.fromkeys(n for n in names if n is not None))
    index = {c: i for i, c in enumerate(kept)}
    relabel = [index[n] if n is not None else -1 for n in names]
    import numpy as np

    new_labels = np.asarray(relabel, dtype=np.int64)[dataset.labels]
    keep = new_labels >= 0
    return replace(dataset.select(keep), labels=new_labels[keep], classes=kept)


def default_registry_path() -> Path | None:
    """``$FERBENCH_REGISTRY``, else the registry.yaml of the ferbench source tree when there is one."""
    if os.environ.get(REGISTRY_ENV):
        return Path(os.environ[REGISTRY_ENV])
    return DEFAULT_REGISTRY if DEFAULT_REGISTRY.is_file() else None


class Zoo:
    """The plugin catalog and the registry together, validated against each other."""

    def __init__(self, plugins: PluginManager, registry: Registry | str | Path | None = None):
        self.plugins = plugins
        self.catalog = plugins.catalog
        if registry is None:
            path = default_registry_path()
            registry = Registry.load(path) if path else Registry(path=None)
        elif not isinstance(registry, Registry):
            registry = Registry.load(registry)
        self.registry = registry
        self.unavailable: dict[str, str] = {}  # "section.name" -> why (its plugin failed to load)
        self._validate()

    # --- validation against the plugins -----------------------------------------------------------
    def _plugin_ok(self, problems: Problems, where: str, plugin: str) -> bool:
        info = self.plugins.plugins.get(plugin)
        if info is None:
            problems.add(f"{where}.plugin", f"names plugin {plugin!r}, which is not installed "
                                            f"(installed: {', '.join(sorted(self.plugins.plugins))})")
            return False
        if any(e.startswith("failed to load") for e in info.errors):
            self.unavailable[where] = f"plugin {plugin!r} failed to load: {info.errors[0]}"
            return False
        return True

    def _validate(self) -> None:
        reg, cat = self.registry, self.catalog
        problems = Problems(reg.path)
        for name, entry in reg.methods.items():
            where = f"methods.{name}"
            if not self._plugin_ok(problems, where, entry["plugin"]):
                continue
            spec = self._plugin_method(name)
            if spec is None or self._method_owner(name) != entry["plugin"]:
                problems.add(where, f"plugin {entry['plugin']!r} provides no method or classifier named {name!r}")
                continue
            for role, component in (entry.get("components") or {}).items():
                if not isinstance(component, str) or not self._resolves(lambda: cat.component(component)):
                    problems.add(f"{where}.components.{role}", f"no plugin provides component {component!r}")
            for key in set(entry.get("defaults") or {}) - set(spec.defaults):
                problems.add(f"{where}.defaults.{key}", f"{name} has no hyperparameter {key!r} "
                                                        f"(it has: {', '.join(sorted(spec.defaults))})")
        for name, entry in reg.datasets.items():
            where = f"datasets.{name}"
            if not self._plugin_ok(problems, where, entry["plugin"]):
                continue
            loader = entry.get("loader", name)
            if cat.owner.get(("datasets", loader)) != entry["plugin"]:
                problems.add(f"{where}.loader" if "loader" in entry else where,
                             f"plugin {entry['plugin']!r} provides no dataset or loader named {loader!r}")
                continue
            accepted = accepted_keywords(cat.datasets[loader].load)
            given = set(entry.get("options") or {}) | ({"root"} if entry.get("paths") else set())
            for key in sorted(given - accepted) if accepted is not None else []:
                problems.add(f"{where}.options.{key}", f"loader {loader!r} takes no option {key!r} "
                                                       f"(it takes: {', '.join(sorted(accepted)) or 'none'})")
            if entry.get("protocol") and entry["protocol"] not in self.protocol_names():
                problems.add(f"{where}.protocol", f"unknown protocol {entry['protocol']!r}")
        for name, entry in reg.protocols.items():
            where = f"protocols.{name}"
            if self._plugin_ok(problems, where, entry["plugin"]) and cat.owner.get(("protocols", name)) != entry["plugin"]:
                problems.add(where, f"plugin {entry['plugin']!r} provides no protocol named {name!r}")
        for name, entry in reg.methods.items():
            for i, row in enumerate((entry.get("paper") or {}).get("reported") or []):
                where = f"methods.{name}.paper.reported[{i}]"
                if row["protocol"] not in self.protocol_names():
                    problems.add(f"{where}.protocol", f"unknown protocol {row['protocol']!r}")
        for name, entry in reg.suites.items():
            for i, run in enumerate(entry["runs"]):
                where = f"suites.{name}.runs[{i}]"
                if not self._resolves(lambda: self.method(run["method"])):
                    problems.add(f"{where}.method", f"unknown method {run['method']!r}")
                for key in ("dataset", "target"):
                    if key in run and run[key] not in self.dataset_names():
                        problems.add(f"{where}.{key}", f"unknown dataset {run[key]!r}")
                if "protocol" in run and run["protocol"] not in self.protocol_names():
                    problems.add(f"{where}.protocol", f"unknown protocol {run['protocol']!r}")
                if not all(isinstance(s, int) and not isinstance(s, bool) for s in run.get("seeds", [])):
                    problems.add(f"{where}.seeds", "must be a list of integers")
        problems.raise_if_any()

    @staticmethod
    def _resolves(lookup: Callable[[], Any]) -> bool:
        try:
            lookup()
        except ConfigError:
            return False
        return True

    def _plugin_method(self, name: str) -> MethodSpec | None:
        if name in self.catalog.methods:
            return self.catalog.methods[name]
        if self.catalog.is_component(name, "classifier"):
            return supervised_spec(name)
        return None

    def _method_owner(self, name: str) -> str | None:
        if name in self.catalog.methods:
            return self.catalog.owner[("methods", name)]
        spec, _ = self.catalog.component(name, "classifier")
        return self.catalog.owner[("components", spec.name)]

    # --- lookups ----------------------------------------------------------------------------------
    def method_names(self) -> list[str]:
        return sorted(set(self.catalog.methods) | set(self.registry.methods))

    def dataset_names(self) -> list[str]:
        return sorted(set(self.catalog.datasets) | set(self.registry.datasets))

    def protocol_names(self) -> list[str]:
        return sorted(self.catalog.protocols)

    def _check_available(self, section: str, name: str) -> None:
        why = self.unavailable.get(f"{section}.{name}")
        if why:
            raise ConfigError(f"{section[:-1]} {name!r} is unavailable: {why}")

    def method(self, name: str) -> ResolvedMethod:
        self._check_available("methods", name)
        spec = self._plugin_method(name)
        if spec is None:
            if ":" in name and self.catalog.components.get(name.split(":", 1)[0] + ":"):
                self.catalog.component(name, "classifier")  # raises with the family's suggestions
            classifiers = [n + "<name>" if s.members else n
                           for n, s in self.catalog.components.items() if s.kind == "classifier"]
            raise unknown_name("method", name, self.method_names() + classifiers)
        entry = self.registry.methods.get(name, {})
        return ResolvedMethod(
            name=name, spec=spec,
            defaults={**spec.defaults, **(entry.get("defaults") or {})},
            components={**spec.components, **(entry.get("components") or {})},
            paper=entry.get("paper"), plugin=self._method_owner(name),
        )

    def dataset(self, name: str) -> ResolvedDataset:
        """A registered dataset name, or a path to a folder in a format some loader recognises."""
        self._check_available("datasets", name)
        entry = self.registry.datasets.get(name)
        if entry is not None:
            spec = self.catalog.datasets[entry.get("loader", name)]
            options = {**spec.options, **(entry.get("options") or {})}
            if entry.get("paths"):
                options["root"] = self._find_path(name, entry["paths"])
            return ResolvedDataset(name, spec, options, entry.get("protocol", spec.protocol),
                                   dict(entry.get("classes") or {}), entry["plugin"])
        if name in self.catalog.datasets:
            spec = self.catalog.datasets[name]
            return ResolvedDataset(name, spec, dict(spec.options), spec.protocol, {},
                                   self.catalog.owner[("datasets", name)])
        path = Path(name).expanduser()
        if path.exists():
            for spec in self.catalog.datasets.values():
                if spec.sniff is not None and _safe_sniff(spec, path):
                    return ResolvedDataset(path.name or str(path), spec, {**spec.options, "root": str(path)},
                                           spec.protocol, {}, self.catalog.owner[("datasets", spec.name)])
            formats = [s.name for s in self.catalog.datasets.values() if s.sniff is not None]
            raise DatasetError(f"{path} is not in a dataset format ferbench can read "
                               f"(formats: {', '.join(formats) or 'none installed'})")
        raise unknown_name("dataset", name, self.dataset_names())

    def _find_path(self, name: str, paths: list[str]) -> str:
        base = self.registry.path.parent if self.registry.path else Path.cwd()
        tried = []
        for raw in paths:
            expanded = os.path.expandvars(os.path.expanduser(raw))
            if "$" in expanded:  # an unset variable
                tried.append(f"{raw} (variable not set)")
                continue
            candidate = (base / expanded).resolve()
            if candidate.exists():
                return str(candidate)
            tried.append(str(candidate))
        raise DatasetError(f"dataset {name!r}: no copy found; looked in:\n  " + "\n  ".join(tried)
                           + f"\n(registry: {self.registry.path}; set FERBENCH_DATA or edit datasets.{name}.paths)")

    def protocol(self, name: str) -> tuple[ProtocolSpec, dict[str, Any]]:
        self._check_available("protocols", name)
        if name not in self.catalog.protocols:
            raise unknown_name("protocol", name, self.protocol_names())
        return self.catalog.protocols[name], dict((self.registry.protocols.get(name) or {}).get("options") or {})

    def suite(self, name: str) -> list[dict[str, Any]]:
        if name not in self.registry.suites:
            raise unknown_name("suite", name, self.registry.suites)
        return list(self.registry.suites[name]["runs"])

    def paper_numbers(self) -> list[dict[str, Any]]:
        """Every number a paper reports, one row per (method, dataset, protocol, metric, split)."""
        rows = []
        for method, entry in self.registry.methods.items():
            paper = entry.get("paper") or {}
            for row in paper.get("reported") or []:
                rows.append({"method": method, "paper": paper.get("title", ""), **row})
        return rows


def accepted_keywords(function: Callable[..., Any]) -> set[str] | None:
    """Keyword arguments ``function`` takes (None when it takes any): a loader's options, a builder's sizes."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _safe_sniff(spec: DatasetSpec, path: Path) -> bool:
    try:
        return bool(spec.sniff(path))
    except Exception:
        return False
