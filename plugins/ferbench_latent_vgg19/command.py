"""``ferbench latent-stages RUN...``: where a latent-vgg19 run loses accuracy, stage by stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ferbench.errors import ConfigError

from .quality import STAGE_COLUMNS, stage_rows


def stage_table(run_dirs: list[Path]) -> Table:
    """The stage table of the result records under ``run_dirs`` (each a results/<run_id> folder)."""
    records = []
    for run_dir in run_dirs:
        paths = sorted(Path(run_dir).glob("*/result-*.json"))
        if not paths:
            raise ConfigError(f"{run_dir}: no result records (result-*.json) in its fold folders")
        records += [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    rows = stage_rows(records)
    if not rows:
        raise ConfigError(f"{', '.join(map(str, run_dirs))}: no latent-vgg19 results (method_plugin latent_vgg19)")
    table = Table(title="latent-vgg19, stage by stage (mean ± SD over folds)", title_justify="left")
    for column in STAGE_COLUMNS:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def register(app: typer.Typer) -> None:
    @app.command("latent-stages")
    def latent_stages(
        runs: Annotated[list[Path], typer.Argument(help="Run folders (results/<run_id>) of latent-vgg19 or latent-fer-resnet.")],
    ) -> None:
        """Where accuracy is lost, stage by stage: w alone, the lens on real faces and on G(w), the generator's
        Fréchet distance, the reconstruction PSNR, and the method itself, per run and split."""
        Console(width=200).print(stage_table(runs))
