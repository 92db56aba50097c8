"""Draw a preview grid of the synthetic dataset: one row per expression, one column per person, the
studio style beside the snapshot style.

    python -m ferbench_synthetic.preview docs/synthetic.png [--subjects 6] [--seed 0]

Each cell shows the most intense of ``--renders`` images of that person and expression (the dataset's
intensities are random, and a weak one says little about what the class looks like).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402  (Pillow comes with matplotlib)

from .faces import STYLES, make_synthetic  # noqa: E402


def preview(path: Path, subjects: int = 6, seed: int = 0, renders: int = 3, dpi: int = 80) -> None:
    figure = plt.figure(figsize=(2 * subjects * 0.95 + 1.2, 7 * 0.95 + 0.7), dpi=dpi)
    panels = figure.subfigures(1, len(STYLES), wspace=0.02)
    for panel, style in zip(panels, STYLES):
        data = make_synthetic(style, seed=seed, train_subjects=subjects, test_subjects=1, per_class=renders)
        people = data.subjects[data.splits == "train"]
        people = list(dict.fromkeys(people.tolist()))
        axes = panel.subplots(len(data.classes), len(people), squeeze=False)
        for row, name in enumerate(data.classes):
            for column, person in enumerate(people):
                candidates = np.flatnonzero((data.labels == row) & (data.subjects == person))
                index = candidates[np.argmax(data.meta["intensity"][candidates])]
                ax = axes[row, column]
                ax.imshow(data.images[index], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if column == 0:
                    ax.set_ylabel(name, fontsize=9)
                if row == 0:
                    ax.set_title(person.split("-")[-1], fontsize=8)
        channels = "RGB" if data.channels == 3 else "grey"
        panel.suptitle(f"style={style!r} ({channels}, {data.image_size[0]}px)", fontsize=11)
        panel.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.01, wspace=0.05, hspace=0.08)
    # A 256-colour palette keeps the noisy snapshot images from bloating the PNG (it is committed).
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    buffer.seek(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Draw a preview grid of the ferbench synthetic dataset.")
    parser.add_argument("output", type=Path, help="PNG file to write")
    parser.add_argument("--subjects", type=int, default=6, help="people (columns) per style")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--renders", type=int, default=3, help="images per person and expression to pick from")
    args = parser.parse_args(argv)
    preview(args.output, subjects=args.subjects, seed=args.seed, renders=args.renders)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
