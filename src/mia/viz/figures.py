"""The paper's figures, from an :class:`~mia.viz.analysis.Analysis` (PNG, matplotlib).

- :func:`fig7a_rga`: RGA I->T, stripes coloured by the sentence's weights (largest red,
  second yellow, the two smallest green and blue), caption beside (paper Fig. 7a).
- :func:`fig7b_bfm`: BFM P->N, for each noun phrase its best (red) and second (yellow)
  stripe (Fig. 7b).
- :func:`fig8_rankings`: top-10 images under GC, GC+RGA and MIA for a few queries, true
  matches framed green, others red (Fig. 8).
- :func:`fig9_failures`: queries whose true images are all outside the top 10 (Fig. 9).
- :func:`training_curves`, :func:`sweep_curves`: losses and validation R@1 per epoch with
  step boundaries; R@K against lambda1 and lambda2 (Tables XI, XII).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from mia.viz.analysis import RANKINGS, Analysis  # noqa: E402

RANK_COLOURS = {0: "red", 1: "yellow", -2: "green", -1: "blue"}  # by rank of the weight


def _image(analysis: Analysis, image: int) -> np.ndarray:
    with Image.open(analysis.image_path(image)) as img:
        return np.asarray(img.convert("RGB"))


def _shade_stripes(ax, pixels: np.ndarray, colours: dict[int, str], n: int,
                   alpha: float = 0.35) -> None:
    """Show an image with stripe ``i`` tinted ``colours[i]``."""
    h, w = pixels.shape[:2]
    ax.imshow(pixels)
    for i, colour in colours.items():
        ax.add_patch(Rectangle((-0.5, i * h / n - 0.5), w, h / n, color=colour, alpha=alpha,
                               linewidth=0))
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def pick_queries(analysis: Analysis, count: int, correct: bool = True) -> list[int]:
    """Queries whose MIA top-1 is (or is not) a true match, spread over the split."""
    hit = analysis.first_hit_rank("MIA") == 0
    pool = [q for q in range(len(analysis.inputs.query_texts)) if bool(hit[q]) == correct]
    if len(pool) <= count:
        return pool
    return [pool[i] for i in np.linspace(0, len(pool) - 1, count).astype(int)]


def fig7a_rga(analysis: Analysis, queries: list[int], path: Path) -> Path:
    fig, axes = plt.subplots(len(queries), 2, figsize=(8, 3.2 * len(queries)),
                             gridspec_kw={"width_ratios": [1, 3]}, squeeze=False)
    for row, q in zip(axes, queries):
        image = analysis.inputs.query_images[q]
        v = analysis.attention(q, image)["v"]
        order = v.argsort(descending=True).tolist()
        colours = {order[r]: c for r, c in RANK_COLOURS.items()}
        _shade_stripes(row[0], _image(analysis, image), colours, len(v))
        row[1].axis("off")
        weights = "  ".join(f"{i + 1}:{w:.2f}" for i, w in enumerate(v.tolist()))
        row[1].text(0, 0.9, "\n".join(textwrap.wrap(analysis.inputs.query_texts[q], 55)),
                    va="top", fontsize=9)
        row[1].text(0, 0.05, f"stripe weights v (top to bottom): {weights}", fontsize=8,
                    color="dimgray")
    fig.suptitle("RGA I->T: stripes weighted by the sentence (red > yellow; green, blue "
                 "smallest)", fontsize=10)
    return _save(fig, path)


def fig7b_bfm(analysis: Analysis, query: int, path: Path) -> Path:
    image = analysis.inputs.query_images[query]
    a = analysis.attention(query, image)["a"]  # [m, n]
    phrases = analysis.phrases(query)
    pixels = _image(analysis, image)
    fig, axes = plt.subplots(1, len(phrases), figsize=(1.6 * len(phrases), 3.6), squeeze=False)
    for ax, phrase, weights in zip(axes[0], phrases, a):
        order = weights.argsort(descending=True).tolist()
        _shade_stripes(ax, pixels, {order[0]: "red", order[1]: "yellow"}, len(weights), 0.45)
        ax.set_title("\n".join(textwrap.wrap(phrase, 14)), fontsize=8)
    fig.suptitle("BFM P->N: each noun phrase's best (red) and second (yellow) stripe",
                 fontsize=10)
    fig.subplots_adjust(top=0.78)  # two-line phrase titles stay clear of the title
    return _save(fig, path)


def _ranking_row(axes, analysis: Analysis, query: int, ranking: str, k: int) -> None:
    for ax, image in zip(axes, analysis.top(query, k, ranking)):
        ax.imshow(_image(analysis, image))
        colour = "limegreen" if analysis.is_match(query, image) else "red"
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(3)
        ax.set_xticks([])
        ax.set_yticks([])


def fig8_rankings(analysis: Analysis, queries: list[int], path: Path, k: int = 10) -> Path:
    rows = len(queries) * len(RANKINGS)
    fig, axes = plt.subplots(rows, k, figsize=(1.1 * k, 2.3 * rows), squeeze=False)
    for i, q in enumerate(queries):
        for j, ranking in enumerate(RANKINGS):
            row = axes[i * len(RANKINGS) + j]
            _ranking_row(row, analysis, q, ranking, k)
            row[0].set_ylabel(ranking, fontsize=9)
        title = "\n".join(textwrap.wrap(analysis.inputs.query_texts[q], 120))
        axes[i * len(RANKINGS)][0].set_title(title, fontsize=8, loc="left")
    fig.suptitle("Top-10 under GC (sG), GC+RGA (sG + l1 sR) and MIA (sF); green = true "
                 "match", fontsize=10)
    return _save(fig, path)


def fig9_failures(analysis: Analysis, queries: list[int], path: Path, k: int = 10) -> Path:
    fig, axes = plt.subplots(len(queries), k + 1, figsize=(1.1 * (k + 1), 2.6 * len(queries)),
                             squeeze=False)
    for row, q in zip(axes, queries):
        truth = analysis.inputs.query_images[q]
        row[0].imshow(_image(analysis, truth))
        row[0].set_xticks([])
        row[0].set_yticks([])
        row[0].set_ylabel("described", fontsize=8)
        _ranking_row(row[1:], analysis, q, "MIA", k)
        row[1].set_title("\n".join(textwrap.wrap(analysis.inputs.query_texts[q], 110)),
                         fontsize=8, loc="left")
    fig.suptitle("Failure cases: no true image in the MIA top-10 (left: the image the "
                 "caption describes)", fontsize=10)
    return _save(fig, path)


def training_curves(history: list[dict], path: Path) -> Path:
    """history: the epoch records of RUN/log.jsonl."""
    epochs = np.arange(1, len(history) + 1)
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 3.8))
    terms = sorted({k for h in history for k in h["losses"]})
    for term in terms:
        ax_loss.plot(epochs, [h["losses"].get(term, np.nan) for h in history], marker=".",
                     label=term)
    ax_loss.set_yscale("log")
    ax_loss.set_title("training losses (per epoch mean)")
    for gran in ("sG", "sR", "sL", "sF"):
        values = [h.get("val", {}).get(gran, {}).get("R1", np.nan) for h in history]
        ax_val.plot(epochs, values, marker=".", label=gran)
    ax_val.set_title("validation R@1 (%)")
    for ax in (ax_loss, ax_val):
        for e, (prev, cur) in enumerate(zip(history, history[1:]), 1):
            if prev["step"] != cur["step"]:
                ax.axvline(e + 0.5, color="gray", linestyle="--", linewidth=1)
        ax.set_xlabel("epoch (dashed: step boundary)")
        ax.legend(fontsize=7)
    return _save(fig, path)


def sweep_curves(sweep: dict, path: Path) -> Path:
    """sweep: the ``sweep`` object of ``mia evaluate --sweep``."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, other in zip(axes, ("lambda1", "lambda2"), ("lambda2", "lambda1")):
        rows = sweep[key]
        x = [r[key] for r in rows]
        for metric in ("R1", "R5", "R10"):
            ax.plot(x, [r[metric] for r in rows], marker="o", label=metric)
        ax.set_xlabel(f"{key} ({other} = 0)")
        ax.set_ylabel("sF recall (%)")
        ax.legend(fontsize=8)
    fig.suptitle("Fusion weights (paper Tables XI and XII)", fontsize=10)
    return _save(fig, path)
