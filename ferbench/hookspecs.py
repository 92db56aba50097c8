"""Hook specifications: everything a ferbench plugin can provide or observe.

A plugin is a plain module with ``@ferbench.hookimpl`` functions named after these specs, made known
through an entry point in the ``ferbench`` group::

    [project.entry-points.ferbench]
    myplugin = "my_package.ferbench_plugin"

Registration hooks return lists of spec records (:mod:`ferbench.interfaces`). Lifecycle hooks observe a
run. Hooks are called through pluggy, so ``@ferbench.hookimpl(tryfirst=True)`` / ``trylast`` order an
implementation among the others (by default the plugin loaded last is called first), and
``hookwrapper=True`` / ``wrapper=True`` implementations wrap the calls; a wrapper sees (and a new-style one
must ``return``) the list of ``(plugin name, result)`` pairs. An error in one plugin, wrappers included,
is reported by name and never stops the others or the run. Of two records with one name, the plugin
loaded first keeps it.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("ferbench")


@hookspec
def ferbench_register_methods() -> list:
    """Return :class:`~ferbench.interfaces.MethodSpec` s: methods ``ferbench run --method`` can run."""


@hookspec
def ferbench_register_components() -> list:
    """Return :class:`~ferbench.interfaces.ComponentSpec` s: encoders, generators, discriminators and
    classifiers (backbones), single ones or whole families such as ``timm:*``."""


@hookspec
def ferbench_register_datasets() -> list:
    """Return :class:`~ferbench.interfaces.DatasetSpec` s: datasets and dataset formats."""


@hookspec
def ferbench_register_protocols() -> list:
    """Return :class:`~ferbench.interfaces.ProtocolSpec` s: how a dataset is cut into train and test."""


@hookspec
def ferbench_register_corruptions() -> list:
    """Return :class:`~ferbench.interfaces.CorruptionSpec` s: image corruptions ``ferbench robustness``
    scores models under, each at five severities."""


@hookspec
def ferbench_register_detectors() -> list:
    """Return :class:`~ferbench.interfaces.DetectorSpec` s: face detectors for ``ferbench predict``
    (``--detector``) and the photo loaders (option ``detect``)."""


@hookspec
def ferbench_register_trackers() -> list:
    """Return :class:`~ferbench.interfaces.TrackerSpec` s: experiment trackers for ``ferbench run --track``."""


@hookspec
def ferbench_run_start(run: dict[str, Any]) -> None:
    """A run is starting. ``run`` holds its id, method, components, dataset, protocol, seed, config and
    output folder."""


@hookspec
def ferbench_epoch_end(run: dict[str, Any], fold: str, epoch: int, metrics: dict[str, float]) -> None:
    """A training epoch of ``fold`` ended with these ``metrics`` (loss, train accuracy, lr, ...; with
    ``eval_every``, ``test_accuracy`` maps each test split to its accuracy on the epochs evaluated)."""


@hookspec
def ferbench_run_end(run: dict[str, Any], results: list[dict[str, Any]]) -> None:
    """A run ended; ``results`` are the result records written (one per fold and test split)."""


@hookspec
def ferbench_register_commands(app: Any) -> None:
    """Add subcommands to the ``ferbench`` command line: ``app`` is its ``typer.Typer``
    (``@app.command()``). For tools that belong to one method, such as restyling a folder of images with a
    trained GAN."""


@hookspec
def ferbench_leaderboard_sections(records: list[dict[str, Any]], paper: list[dict[str, Any]]) -> list[str]:
    """Return Markdown sections to append to LEADERBOARD.md, for results the main table cannot show (a
    method's own table format). ``records`` are every valid result under ``results/``; ``paper`` the
    numbers registry.yaml reports. Return ``[]`` when none of the records are yours."""
