"""ferbench's built-in dataset: procedurally drawn faces showing the seven basic expressions.

Made by the package itself (no files, no downloads), identical for a seed, and quick to render, so every
method, protocol and the whole CLI can be tried out and tested without any real data.

* **People**: every subject has their own face (shape, skin tone, eyes, brows, nose, mouth, hair, sometimes
  glasses or a beard) and their own resting face. The "train" split and the "test" split hold different
  people (a subject-independent hold-out); each person shows every class ``per_class`` times, so the
  classes are exactly balanced.
* **Expressions**: anger, disgust, fear, happiness, neutral, sadness and surprise, drawn through the brows,
  eyes and mouth in a FACS-like way, at a per-image intensity (stored in ``meta["intensity"]``). Weak
  expressions are genuinely ambiguous, so a small CNN lands well above chance but well below 100%.
* **Two styles**, usable as two domains for cross-dataset protocols:

  - ``synthetic`` (style ``"studio"``): colour portraits, bright even light, plain backdrop, near-frontal;
    images ``(N, 48, 48, 3)``.
  - ``synthetic-snapshot`` (style ``"snapshot"``): grey, darker and lower in contrast, side light, a
    cluttered background, more head turn, blur and noise; images ``(N, 48, 48)``. Other people than in
    the studio set.

Options: ``style``, ``seed``, ``train_subjects``, ``test_subjects``, ``per_class``, ``image_size``. The
renderer is :func:`ferbench_synthetic.faces.make_synthetic`; ``python -m ferbench_synthetic.preview out.png``
draws a preview grid, and ``python -m ferbench_synthetic.learnability`` checks that a small CNN learns it.
"""

from __future__ import annotations

from typing import Any, Callable

from ferbench import hookimpl
from ferbench.data import Dataset
from ferbench.errors import DatasetError
from ferbench.interfaces import DatasetSpec

from .faces import (
    DEFAULT_IMAGE_SIZE, DEFAULT_PER_CLASS, DEFAULT_TEST_SUBJECTS, DEFAULT_TRAIN_SUBJECTS, make_synthetic,
)

__all__ = ["make_synthetic", "ferbench_register_datasets"]

OPTIONS: dict[str, Any] = {
    "style": "studio",
    "seed": 0,
    "train_subjects": DEFAULT_TRAIN_SUBJECTS,
    "test_subjects": DEFAULT_TEST_SUBJECTS,
    "per_class": DEFAULT_PER_CLASS,
    "image_size": DEFAULT_IMAGE_SIZE,
}


def _loader(name: str, style: str) -> Callable[..., Dataset]:
    """``load(**options)`` for one registered name: ``style`` is its default, and the dataset carries
    the registered name whatever the options."""

    def load(**options: Any) -> Dataset:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise DatasetError(
                f"dataset {name!r}: unknown option(s) {', '.join(map(repr, unknown))}; "
                f"options are {', '.join(OPTIONS)}"
            )
        data = make_synthetic(**{**OPTIONS, "style": style, **options})
        return Dataset(
            name=name, images=data.images, labels=data.labels, classes=data.classes, subjects=data.subjects,
            splits=data.splits, meta=data.meta, source=data.source,
        )

    load.__doc__ = f"Render the {name!r} dataset (style {style!r} unless ``style`` is given)."
    return load


@hookimpl
def ferbench_register_datasets() -> list[DatasetSpec]:
    sizes = (f"{DEFAULT_TRAIN_SUBJECTS} train / {DEFAULT_TEST_SUBJECTS} test people x 7 classes x "
             f"{DEFAULT_PER_CLASS}, {DEFAULT_IMAGE_SIZE}px")
    return [
        DatasetSpec(
            name="synthetic", load=_loader("synthetic", "studio"), protocol="holdout",
            summary=f"Built-in drawn faces, 7 basic expressions, colour studio portraits ({sizes})",
            options={**OPTIONS, "style": "studio"},
        ),
        DatasetSpec(
            name="synthetic-snapshot", load=_loader("synthetic-snapshot", "snapshot"), protocol="holdout",
            summary=f"Built-in drawn faces, 7 basic expressions, grey cluttered snapshots ({sizes}); "
                    "other people than 'synthetic', for cross-dataset runs",
            options={**OPTIONS, "style": "snapshot"},
        ),
    ]
