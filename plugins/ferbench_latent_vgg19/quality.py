"""Reconstruction quality: PSNR and SSIM (scikit-image) between each query and G(w), and a picture of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

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
            ax.imshow(images[pick], cmap="gray" if images.ndim == 3 else None, vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=7)
    return save_figure(fig, path, dpi=100)


def leaderboard_section(records: list[dict]) -> list[str]:
    """A LEADERBOARD.md table of latent-vgg19's reconstruction quality and what each generator learnt from."""
    rows = []
    for r in records:
        extra = r.get("extra") or {}
        quality, generator = extra.get("reconstruction"), extra.get("generator") or {}
        if r.get("method") != "latent-vgg19" or not isinstance(quality, dict):
            continue
        trained_on = generator.get("trained_on") or {}
        gan = (generator.get("config") or {})
        rows.append("| " + " | ".join([
            r.get("dataset", "?"), r.get("protocol", "?"), r.get("fold", "?"), r.get("test_split", "?"),
            f"{trained_on.get('dataset', '?')} ({trained_on.get('images', '?')} images)",
            str(gan.get("gan_steps", "?")), str((extra.get("inversion") or {}).get("steps", "?")),
            f"{quality.get('psnr_encoder', float('nan')):.2f} / {quality.get('psnr_optimised', float('nan')):.2f}",
            f"{quality.get('ssim_encoder', float('nan')):.3f} / {quality.get('ssim_optimised', float('nan')):.3f}",
            f"{100 * r['metrics']['accuracy']:.2f}",
        ]) + " |")
    if not rows:
        return []
    return ["\n".join([
        "## latent-vgg19: reconstruction quality",
        "",
        "PSNR (dB) and SSIM between each test face and G(w), for the encoder's estimate / after latent "
        "optimisation, with what the generator was trained on (never the test faces).",
        "",
        "| Dataset | Protocol | Fold | Split | Generator trained on | GAN steps | Inversion steps | PSNR enc / opt "
        "| SSIM enc / opt | Accuracy % |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *sorted(rows),
    ])]
