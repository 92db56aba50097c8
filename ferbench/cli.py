"""The ``ferbench`` command line: run, eval, leaderboard, list, plugins."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ferbench.errors import ConfigError, FerbenchError
from ferbench.plugins import PluginManager
from ferbench.registry import REGISTRY_ENV, Zoo

app = typer.Typer(
    help="ferbench: a plugin-based model zoo and benchmark harness for facial emotion recognition.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
# Logs and CI are not terminals; without a width rich would squeeze tables into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

RegistryOption = Annotated[Optional[Path], typer.Option(
    "--registry", envvar=REGISTRY_ENV, help="Registry file (default: the registry.yaml of the ferbench checkout).")]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
OutOption = Annotated[Path, typer.Option("--out", help="Folder results are written into.")]


def load_zoo(registry: Path | None) -> Zoo:
    plugins = PluginManager()
    for name, problems in plugins.failures.items():
        for problem in problems:
            errors.print(f"[yellow]warning:[/] plugin {name!r}: {problem}")
    return Zoo(plugins, registry)


def parse_value(text: str) -> Any:
    """``--set`` values: integers, floats, true/false, null/none, else the text itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_pairs(pairs: list[str], option: str) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} takes KEY=VALUE, got {pair!r}")
        parsed[key.strip()] = value.strip()
    return parsed


@app.command()
def run(
    method: Annotated[Optional[str], typer.Option(help="Method or classifier, e.g. timm:resnet18.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name, or a folder in a supported format.")] = None,
    protocol: Annotated[Optional[str], typer.Option(help="holdout, kfold (subject-independent), image-kfold, cross-dataset (default: the method's if it names one, else the dataset's).")] = None,
    target: Annotated[Optional[str], typer.Option(help="Cross-dataset: the dataset models are trained on.")] = None,
    suite: Annotated[Optional[str], typer.Option(help="Run every run of a registry suite instead.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Training batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Model input size (default: the dataset's).")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Local weights to start from (safetensors or a weights-only .pt).")] = None,
    seed: Annotated[Optional[list[int]], typer.Option(help="Seed; repeat for several runs.")] = None,
    folds: Annotated[Optional[int], typer.Option(help="Number of folds for k-fold protocols.")] = None,
    fold: Annotated[Optional[list[int]], typer.Option(help="Run only fold k (1-based); repeatable.")] = None,
    component: Annotated[Optional[list[str]], typer.Option(help="ROLE=NAME: swap a component, e.g. classifier=timm:vgg11.")] = None,
    data_option: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE: a dataset loader option, e.g. limit=2000.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="KEY=VALUE: any hyperparameter of the method.")] = None,
    device: DeviceOption = "auto",
    out: OutOption = Path("results"),
    save_model: Annotated[bool, typer.Option(help="Save the trained model beside the results.")] = True,
    registry: RegistryOption = None,
) -> None:
    """Train and evaluate a method on a dataset under a protocol; write one result JSON per fold and split."""
    from ferbench.runner import RunRequest, run as run_experiment

    zoo = load_zoo(registry)
    overrides = {k: parse_value(v) for k, v in parse_pairs(set_ or [], "--set").items()}
    data_options = {k: parse_value(v) for k, v in parse_pairs(data_option or [], "--data-option").items()}
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("image_size", image_size),
                       ("weights", str(weights) if weights else None)):
        if value is not None:
            overrides[key] = value
    if suite:
        if method or dataset:
            raise ConfigError("give either --suite or --method/--dataset, not both")
        requests = []
        for entry in zoo.suite(suite):
            for s in seed or entry.get("seeds") or [0]:
                requests.append(RunRequest(
                    method=entry["method"], dataset=entry["dataset"], protocol=protocol or entry.get("protocol"),
                    target=entry.get("target"), seed=s, folds=folds, only_folds=fold,
                    config={**(entry.get("config") or {}), **overrides},
                    components={**(entry.get("components") or {}), **parse_pairs(component or [], "--component")},
                    data_options=data_options, device=device, out_dir=out, save_model=save_model))
    else:
        if not method or not dataset:
            raise ConfigError("ferbench run needs --method and --dataset (or --suite)")
        requests = [RunRequest(method=method, dataset=dataset, protocol=protocol, target=target, seed=s, folds=folds,
                               only_folds=fold, config=overrides,
                               components=parse_pairs(component or [], "--component"), data_options=data_options,
                               device=device, out_dir=out, save_model=save_model) for s in seed or [0]]
    for request in requests:
        records = run_experiment(zoo, request, console)
        if records:
            console.print(f"results: [bold]{Path(records[0]['_path']).parent.parent}[/]")


@app.command("eval")
def eval_(
    model: Annotated[Path, typer.Option(help="A saved model folder (or its model.json) written by ferbench run.")],
    dataset: Annotated[str, typer.Option(help="Dataset name, or a folder in a supported format.")],
    split: Annotated[Optional[str], typer.Option(help="Split to score, or 'all' (default: every test split).")] = None,
    batch_size: Annotated[int, typer.Option(help="Inference batch size.")] = 256,
    device: DeviceOption = "auto",
    out: OutOption = Path("results"),
    registry: RegistryOption = None,
) -> None:
    """Score a saved model on any dataset, over the classes the two share."""
    from ferbench.runner import evaluate

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive integer, got {batch_size}")
    records = evaluate(load_zoo(registry), model, dataset, split=split, device=device, out_dir=out,
                       batch_size=batch_size, console=console)
    console.print(f"results: [bold]{Path(records[0]['_path']).parent.parent}[/]")


@app.command()
def leaderboard(
    results: Annotated[Path, typer.Option(help="Folder of result records.")] = Path("results"),
    output: Annotated[Optional[Path], typer.Option(help="Markdown file (default: RESULTS/LEADERBOARD.md).")] = None,
    registry: RegistryOption = None,
) -> None:
    """Aggregate every result into a table (mean ± SD over seeds and folds) beside the papers' numbers."""
    from ferbench.leaderboard import write_leaderboard

    if not results.is_dir():
        raise ConfigError(f"--results {results}: no such folder")
    zoo = load_zoo(registry)
    table, skipped, path = write_leaderboard(results, zoo.paper_numbers(), output, plugins=zoo.plugins)
    rich_table = Table(title=f"ferbench leaderboard ({path})", title_justify="left")
    for column in table.columns:
        rich_table.add_column(column, justify="right" if "%" in column or column == "Runs" else "left")
    for row in table.itertuples(index=False):
        rich_table.add_row(*map(str, row))
    console.print(rich_table)
    for file, reason in skipped:
        errors.print(f"[yellow]skipped[/] {file}: {reason}")


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help="methods, components, datasets, protocols, suites or all.")] = "all",
    registry: RegistryOption = None,
) -> None:
    """Show the methods, components, datasets, protocols and suites ferbench knows."""
    sections = ("methods", "components", "datasets", "protocols", "suites")
    if what != "all" and what not in sections:
        raise ConfigError(f"ferbench list {what}: choose one of {', '.join(sections)} or all")
    zoo = load_zoo(registry)
    cat, reg = zoo.catalog, zoo.registry
    show = sections if what == "all" else (what,)
    if "methods" in show:
        table = _table("Methods", "name", "plugin", "components", "paper", "summary")
        for name in zoo.method_names():
            if f"methods.{name}" in zoo.unavailable:
                table.add_row(name, reg.methods[name]["plugin"], "", "", f"[red]{zoo.unavailable[f'methods.{name}']}")
                continue
            method = zoo.method(name)
            paper = (method.paper or {}).get("title", "")
            table.add_row(name, method.plugin, ", ".join(f"{r}={c}" for r, c in method.components.items()),
                          paper[:40], reg.methods.get(name, {}).get("summary") or method.spec.summary)
        table.caption = "Any classifier (below) is also a method: supervised training, e.g. --method timm:resnet18."
        console.print(table)
    if "components" in show:
        table = _table("Components", "kind", "name", "plugin", "summary")
        for name, spec in sorted(cat.components.items(), key=lambda item: (item[1].kind, item[0])):
            label = f"{name}<name> ({len(cat._members(name)):,} names)" if spec.members else name
            table.add_row(spec.kind, label, cat.owner[("components", name)], spec.summary)
        console.print(table)
    if "datasets" in show:
        table = _table("Datasets", "name", "loader", "plugin", "protocol", "summary")
        for name in zoo.dataset_names():
            entry = reg.datasets.get(name)
            if f"datasets.{name}" in zoo.unavailable:
                table.add_row(name, "", entry["plugin"], "", f"[red]{zoo.unavailable[f'datasets.{name}']}")
                continue
            spec = cat.datasets[entry.get("loader", name)] if entry else cat.datasets[name]
            plugin = entry["plugin"] if entry else cat.owner[("datasets", name)]
            table.add_row(name, spec.name, plugin, (entry or {}).get("protocol", spec.protocol),
                          (entry or {}).get("summary") or spec.summary)
        console.print(table)
    if "protocols" in show:
        table = _table("Protocols", "name", "plugin", "summary")
        for name, spec in sorted(cat.protocols.items()):
            table.add_row(name, cat.owner[("protocols", name)], spec.summary)
        console.print(table)
    if "suites" in show:
        table = _table("Suites", "name", "runs", "summary")
        for name, entry in sorted(reg.suites.items()):
            runs = "; ".join(f"{r['method']} on {r['dataset']}" + (f" ({r['protocol']})" if "protocol" in r else "")
                             for r in entry["runs"])
            table.add_row(name, runs, entry.get("summary", ""))
        console.print(table)


@app.command()
def plugins() -> None:
    """List every plugin: version, where it came from, what it registers, and any error."""
    manager = PluginManager()
    manager.catalog  # noqa: B018 - collecting registrations records hook errors
    table = _table("Plugins", "name", "version", "source", "registers", "status")
    for info in manager.plugins.values():
        provides = "\n".join(f"{section}: {', '.join(names)}" for section, names in info.provides.items())
        status = "[red]" + "\n".join(info.errors) if info.errors else "[green]ok"
        table.add_row(info.name, info.version, info.source, provides or "-", status)
    console.print(table)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def register_plugin_commands() -> None:
    """Let plugins add subcommands; one that fails is reported and the rest of the CLI works."""
    manager = PluginManager()
    manager.notify("ferbench_register_commands", app=app)


def main() -> None:
    try:
        register_plugin_commands()
        app()
    except FerbenchError as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
