"""``ferbench restyle``: apply a saved restyler to a folder of images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("restyle")
    def restyle(
        folder: Annotated[Path, typer.Argument(help="Folder of images (searched recursively).")],
        model: Annotated[Path, typer.Option(help="A saved restyler: <run>/cross/model of an arabian-gan run.")],
        out: Annotated[Path, typer.Option(help="Folder the restyled images are written into (same names, PNG).")],
        device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    ) -> None:
        """Restyle a folder of face images with a trained Arabian GAN (Enet -> Gnet) into the target's style."""
        from ferbench.plugins import PluginManager
        from ferbench.runner import resolve_device

        from .restyler import load_restyler, restyle_folder

        restyler, record = load_restyler(model, PluginManager().catalog.build)
        written = restyle_folder(restyler, folder, out, resolve_device(device))
        print(f"restyled {len(written)} image(s) from {folder} into {out} "
              f"({record.get('source', '?')} -> {record.get('target', '?')} style, {restyler.image_size}px)")
