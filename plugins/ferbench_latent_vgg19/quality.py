"""Reconstruction quality: PSNR and SSIM (scikit-image) between each query and G(w), and a picture of it; the
stage-by-stage table of a run (leaderboard section and ``ferbench latent-stages``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tabulate import tabulate

from ferbench.plots import pyplot, save_figure


def _scores(queries: np.ndarray, reconstructions: np.ndarray) -> tuple[list[float], list[float]]:
    channel_axis = -1 if queries.ndim == 4 else None
    psnr, ssim = [], []
    for query, reconstruction in zip(queries, reconstructions):
        # An exact reconstruction has infinite PSNR; cap it at 100 dB so means stay finite.
        psnr.append(100.0 if np.array_equal(query, reconstruction) else
                    min(100.0, float(peak_signal_noise_ratio(query, reconstruction, data_range=255))))
        ssim.append(float(structural_similarity(query, reconstruction, data_range=255, channel_axis=channel_axis)))
    return psnr, ssim


def reconstruction_quality(queries: np.ndarray, encoder_estimates: np.ndarray,
                           optimised: np.ndarray) -> dict[str, float | int]:
    """Mean PSNR (dB) and SSIM over images, for the encoder's estimate and after optimisation (uint8 inputs
    of one shape: the generator's size and channels)."""
    out: dict[str, float | int] = {"images": len(queries)}
    for name, reconstructions in (("encoder", encoder_estimates), ("optimised", optimised)):
        psnr, ssim = _scores(queries, reconstructions)
        out[f"psnr_{name}"] = float(np.mean(psnr)) if psnr else float("nan")
        out[f"ssim_{name}"] = float(np.mean(ssim)) if ssim else float("nan")
    return out


def reconstruction_grid_png(path: str | Path, queries: np.ndarray, encoder_estimates: np.ndarray,
                            optimised: np.ndarray, title: str, rows: int = 8) -> Path:
    """Up to ``rows`` faces spread evenly over the set (test sets are often sorted by class), one per row:
    query | encoder estimate | optimised."""
    plt = pyplot()
    rows = max(1, min(rows, len(queries)))
    picks = np.linspace(0, len(queries) - 1, rows).round().astype(int) if len(queries) else []
    fig, axes = plt.subplots(rows, 3, figsize=(4.5, 1.5 * rows + 0.4), squeeze=False)
    for row, pick in enumerate(picks):
        for column, (name, images) in enumerate((("query", queries), ("encoder", encoder_estimates),
                                                 ("optimised", optimised))):
            ax = axes[row, column]
            ax.imshow(images[pick], cmap="gray" if images.ndim == 3 else None, vmin=0, vmax=255,
                      interpolation="nearest")  # smoothed pixels made each FER2013 grid ~370 KB
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=7)
    return save_figure(fig, path, dpi=100)


STAGE_COLUMNS = ["Method", "Dataset", "Protocol", "Split", "Folds",
                 "Image network on branch / inversion / latent dropout / training", "Generator trained on",
                 "PSNR enc / opt", "w enc %", "w opt %", "Lens real %", "Lens G(w) %", "Fréchet G / real",
                 "Without w %", "Best w weight on test %", "Accuracy %", "Run"]


def stage_rows(records: list[dict]) -> list[list[str]]:
    """One row per run and test split of this plugin's methods: the mean ± SD over folds of every stage of
    ``extra.stages`` (what w alone, the lens on real faces and on G(w) read; the generator's Fréchet
    distance beside the real-vs-real floor; the classifier with w hidden; for a stacked mix, its accuracy under
    the one weight of w that is best over the folds' test faces, a bound and not a result), the reconstruction
    PSNR, and the method's accuracy."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get("method_plugin") != "latent_vgg19" or r.get("status", "ok") != "ok":
            continue
        groups.setdefault((r["run_id"], r["test_split"]), []).append(r)

    def mean_sd(values, scale=1.0, digits=2):
        values = [scale * v for v in values if isinstance(v, (int, float))]
        if not values:
            return "-"
        if len(values) == 1:
            return f"{values[0]:.{digits}f}"
        return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"

    rows = []
    for (run_id, split), group in sorted(groups.items()):
        first, extras = group[0], [r.get("extra") or {} for r in group]
        stages = [e.get("stages") or {} for e in extras]
        quality = [e.get("reconstruction") or {} for e in extras]
        config, generator = first.get("config") or {}, extras[0].get("generator") or {}
        trained_on, gan_steps = generator.get("trained_on") or {}, (generator.get("config") or {}).get("gan_steps")
        frechet = [s.get("generator_frechet") or {} for s in stages]
        inversion = "pixel only" if not config.get("feature_weight") else f"{config.get('invert_steps', '?')} steps"
        image_network = (first.get("components") or {}).get("classifier", "?")
        training = config.get("latent_training", "joint")
        # Stacking trains nothing on w jointly, so latent dropout does not apply: where its mix is fitted does.
        stacked_on = ("validation" if config.get("stack_on") == "validation"
                      else f"{config.get('stack_folds', '?')} folds")
        if config.get("identity_dims"):
            stacked_on += f", {config['identity_dims']} identity directions out of w"
        combiner = (f"- / stacked on {stacked_on}" if training == "stacked"
                    else f"{config.get('latent_dropout', 0):g} / {training}")
        rows.append([first["method"], first["dataset"], first["protocol"], split, str(len(group)),
                     f"{image_network} on {config.get('image_branch', '?')} / {inversion} / {combiner}",
                     f"{trained_on.get('dataset', '?')} ({trained_on.get('images', '?')} images"
                     + (f", {gan_steps} steps)" if gan_steps is not None else ")"),
                     f"{mean_sd([q.get('psnr_encoder') for q in quality], digits=1)} / "
                     f"{mean_sd([q.get('psnr_optimised') for q in quality], digits=1)}",
                     mean_sd([s.get("latent_encoder") for s in stages], 100),
                     mean_sd([s.get("latent_optimised") for s in stages], 100),
                     mean_sd([s.get("lens_real") for s in stages], 100),
                     mean_sd([s.get("lens_reconstruction") for s in stages], 100),
                     f"{mean_sd([f.get('generator') for f in frechet], digits=1)} / "
                     f"{mean_sd([f.get('real_train') for f in frechet], digits=1)}",
                     mean_sd([s.get("classifier_without_w") for s in stages], 100),
                     best_weight([s.get("latent_weight_sweep") for s in stages]),
                     mean_sd([r["metrics"]["accuracy"] for r in group], 100), run_id])
    return rows


def best_weight(sweeps: list[dict | None]) -> str:
    """The best mean accuracy over a run's folds of the stacked mix at one weight ratio of w for all of them
    (chosen on the test faces: a bound, not a result), and that ratio; "-" unless every fold was swept."""
    if not sweeps or any(s is None or s["ratios"] != sweeps[0]["ratios"] for s in sweeps):
        return "-"
    means = np.mean([s["accuracy"] for s in sweeps], axis=0)
    best = int(np.argmax(means))
    return f"{100 * means[best]:.2f} (w x {sweeps[0]['ratios'][best]:g})"


def leaderboard_section(records: list[dict]) -> list[str]:
    """A LEADERBOARD.md table of latent-vgg19's stages per run: where accuracy is lost."""
    rows = stage_rows(records)
    if not rows:
        return []
    return ["\n".join([
        "## latent-vgg19: stage by stage",
        "",
        "Per run and test split, mean ± SD over its folds (`ferbench latent-stages RUN` prints the same): PSNR (dB)",
        "of G(w) for the encoder's estimate / after optimisation; the accuracy a logistic regression reads from",
        "w alone (encoder / optimised), the lens (a face classifier trained on the real training faces) on the",
        "real test faces and on G(w); the Fréchet distance of generator samples to the test faces in the lens's",
        "feature space beside that of real training faces (the floor); the method's classifier with every test",
        "face's w hidden (its image branch alone; runs before this column existed show -; under image-first",
        "training, the image network trained alone: the no-latent baseline measured in the same run); and the",
        "method's accuracy. The generator never saw a test face.",
        "",
        tabulate(rows, headers=STAGE_COLUMNS, tablefmt="github", disable_numparse=True),
    ])]
