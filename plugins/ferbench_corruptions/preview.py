"""Draw the corruption grid: one row per corruption, the clean face and severities 1-5 across.

    python -m ferbench_corruptions.preview docs/corruptions.jpg [--dataset synthetic] [--index 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from ferbench.robustness import corrupt

CELL, LABEL, HEADER = 96, 130, 22  # pixels: a face (2x a 48 px crop), the name column, the title row


def grid(face: np.ndarray, specs: dict, seed: int = 0) -> np.ndarray:
    """The grid as one grey uint8 image, faces scaled with nearest neighbours so every pixel stays visible."""
    grey = face if face.ndim == 2 else cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    names = sorted(specs, key=lambda n: (specs[n].family, n))
    canvas = np.full((HEADER + CELL * len(names), LABEL + 6 * CELL), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for column, title in enumerate(["clean"] + [f"severity {s}" for s in range(1, 6)]):
        cv2.putText(canvas, title, (LABEL + column * CELL + 8, 15), font, 0.4, 0, 1, cv2.LINE_AA)
    for row, name in enumerate(names):
        top = HEADER + row * CELL
        cv2.putText(canvas, name.replace("_", " "), (6, top + CELL // 2 - 2), font, 0.42, 0, 1, cv2.LINE_AA)
        cv2.putText(canvas, f"({specs[name].family})", (6, top + CELL // 2 + 14), font, 0.36, 90, 1, cv2.LINE_AA)
        for column in range(6):
            image = grey if column == 0 else corrupt(specs[name], face[None], column, seed)[0]
            if image.ndim == 3:
                image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            canvas[top:top + CELL, LABEL + column * CELL:LABEL + (column + 1) * CELL] = cv2.resize(
                image, (CELL, CELL), interpolation=cv2.INTER_NEAREST)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a .jpg (small) or .png file")
    parser.add_argument("--dataset", default="synthetic", help="a dataset name (default: synthetic)")
    parser.add_argument("--index", type=int, default=0, help="which image of the dataset's last test split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from ferbench.plugins import PluginManager
    from ferbench.registry import Zoo

    zoo = Zoo(PluginManager())
    data = zoo.dataset(args.dataset).load()
    tests = [s for s in data.split_names if s != "train"] or data.split_names
    face = data.split(tests[-1]).images[args.index]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), grid(face, zoo.catalog.corruptions, args.seed), [cv2.IMWRITE_JPEG_QUALITY, 88]):
        raise SystemExit(f"cannot write {args.out}")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
