"""Figures: written whole, as the smallest PNG of the same pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ferbench.plots import pyplot, save_figure, write_compact_png


@pytest.mark.parametrize("kind, mode", [("grey", "L"), ("colour", "RGB"), ("translucent", "RGBA")])
def test_a_png_keeps_its_pixels_and_drops_the_channels_it_does_not_use(tmp_path, kind, mode):
    rng = np.random.default_rng(0)
    pixels = np.full((30, 40, 4), 255, np.uint8)
    pixels[..., :3] = rng.integers(0, 256, (30, 40, 1)) if kind == "grey" else rng.integers(0, 256, (30, 40, 3))
    if kind == "translucent":
        pixels[0, 0, 3] = 128
    write_compact_png(Image.fromarray(pixels), tmp_path / "figure.png")
    written = Image.open(tmp_path / "figure.png")
    assert written.mode == mode
    assert np.array_equal(np.asarray(written.convert("RGBA")), pixels)


def test_a_grid_of_grey_faces_is_saved_in_one_channel(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(np.random.default_rng(0).integers(0, 256, (24, 24)), cmap="gray", vmin=0, vmax=255)
    ax.set_title("faces")
    path = save_figure(fig, tmp_path / "grid.png", dpi=50)
    assert Image.open(path).mode == "L" and [p.name for p in tmp_path.iterdir()] == ["grid.png"]
