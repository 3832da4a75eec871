"""One picture of a search answer: the query, the top-k images in rank order with their
fused score sF, each image's six stripes shaded by the sentence's RGA weights, and, at the
height of its best stripe under BFM, a numbered marker for each noun phrase.

It draws the JSON answer of ``mia search --json`` (``Retriever.search``), so it needs no
model: ``search_figure(answer, image_root, "search.png")``. ``mia search ... --figure PNG``
calls it.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from mia.utils.io import atomic_open  # noqa: E402

PHRASE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
                  "#17becf", "#bcbd22", "#7f7f7f", "#d62728")
STRIPE_COLOUR = "#d62728"


def _pixels(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError):
        return None


def search_figure(answer: dict, image_root: str | Path, out_png: str | Path, k: int = 5,
                  target_id=None, dpi: int = 110) -> Path:
    """Render ``answer`` (the dict of ``mia search --json``) to ``out_png``.

    ``image_root``: the folder the answer's ``image`` paths are relative to (the index's
    image root). ``k``: how many of the top results to draw. ``target_id``: a person id;
    when given, results of that person are framed green and others red. The PNG is written
    atomically (a temporary file, then ``os.replace``). Returns ``out_png``.
    """
    results = list(answer.get("results", []))[:max(int(k), 1)]
    phrases = list(answer.get("phrases", []))
    if not phrases and results:
        phrases = list(results[0].get("phrase_to_stripe", {}))
    colour_of = {p: PHRASE_COLOURS[i % len(PHRASE_COLOURS)] for i, p in enumerate(phrases)}
    cols = max(len(results), 1)
    width = max(1.9 * cols, 6.0)
    title = "\n".join(textwrap.wrap(f"\u201c{answer.get('query', '')}\u201d",
                                    int(width * 12)))
    title_in = 0.15 + 0.2 * (title.count("\n") + 1)  # inches, top to bottom
    label_in, image_in, note_in = 0.45, 2.9, 0.3
    per_row = max(1, min(3, int(width // 3)))
    legend_in = 0.24 * -(-max(len(phrases), 1) // per_row) + 0.1
    height = title_in + label_in + image_in + note_in + legend_in
    fig = plt.figure(figsize=(width, height))
    fig.suptitle(title, fontsize=11, y=1 - 0.12 / height, va="top")
    image_bottom = 1 - (title_in + label_in + image_in) / height
    for c, result in enumerate(results):
        ax = fig.add_axes((c / cols + 0.005, image_bottom, 1 / cols - 0.01, image_in / height))
        _draw_result(ax, result, Path(image_root), colour_of, target_id)
    if not results:
        fig.text(0.5, 0.5, "no results", ha="center", fontsize=12)
    _legend(fig, phrases, colour_of, image_bottom - 0.08 / height, height, per_row, target_id)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    out_png = Path(out_png)
    with atomic_open(out_png, "wb") as handle:
        handle.write(buffer.getvalue())
    return out_png


def _draw_result(ax, result: dict, root: Path, colour_of: dict, target_id) -> None:
    pixels = _pixels(root / str(result.get("image", "")))
    stripes = [float(v) for v in result.get("stripes", [])] or [1.0]
    n = len(stripes)
    h, w = (pixels.shape[:2] if pixels is not None else (192, 64))
    if pixels is not None:
        ax.imshow(pixels, extent=(0, w, h, 0), interpolation="bilinear")
    else:
        ax.add_patch(Rectangle((0, 0), w, h, color="#dddddd"))
        ax.text(w / 2, h / 2, "image\nmissing", ha="center", va="center", fontsize=8)
    low, span = min(stripes), max(stripes) - min(stripes)
    for i, v in enumerate(stripes):  # stripe i, top to bottom, shaded by its RGA weight
        shade = (v - low) / span if span > 1e-6 else 0.5  # lightest to darkest stripe
        ax.add_patch(Rectangle((0, i * h / n), w, h / n, color=STRIPE_COLOUR,
                               alpha=0.05 + 0.5 * shade, linewidth=0))
        if i:
            ax.plot([0, w], [i * h / n, i * h / n], color="white", lw=0.6, alpha=0.8)
        ax.text(-0.04 * w, (i + 0.5) * h / n, f"{v:.2f}", ha="right", va="center",
                fontsize=6.5, color="dimgray")
    # each phrase's best stripe: a numbered marker right of the image, at that stripe
    per_stripe: dict[int, int] = {}
    for j, (phrase, stripe) in enumerate(result.get("phrase_to_stripe", {}).items()):
        stripe = int(stripe)
        slot = per_stripe.get(stripe, 0)
        per_stripe[stripe] = slot + 1
        x = w * (1.12 + 0.22 * slot)
        y = (stripe + 0.5) * h / n
        colour = colour_of.get(phrase, PHRASE_COLOURS[j % len(PHRASE_COLOURS)])
        ax.plot([w * 1.02, w * 1.02], [stripe * h / n + 1, (stripe + 1) * h / n - 1],
                color=colour, lw=2, solid_capstyle="butt")
        ax.text(x, y, str(list(colour_of).index(phrase) + 1 if phrase in colour_of else j + 1),
                ha="center", va="center", fontsize=7, color="white", fontweight="bold",
                bbox={"boxstyle": "circle,pad=0.25", "fc": colour, "ec": "none"})
    ax.set_xlim(-0.3 * w, w * 1.75)
    ax.set_ylim(h, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    frame = None
    if target_id is not None and result.get("person_id") is not None:
        frame = "limegreen" if result["person_id"] == target_id else "red"
    ax.add_patch(Rectangle((0, 0), w, h, fill=False, lw=3 if frame else 0.8,
                           ec=frame or "black"))
    label = f"#{result.get('rank', '?')}  sF {float(result.get('score', 0.0)):.3f}"
    if result.get("person_id") is not None:
        label += f"\nid {result['person_id']}"
    ax.set_title(label, fontsize=9, loc="left", x=0.15)


def _legend(fig, phrases: list[str], colour_of: dict, top: float, height: float,
            per_row: int, target_id) -> None:
    note = ("red shading: the sentence's RGA weight of each stripe (value at its left; the "
            "darker, the larger);  numbered markers: each noun phrase's best stripe under BFM")
    if target_id is not None:
        note += f";  frame: green = person {target_id}, red = another person"
    fig.text(0.01, top, note, fontsize=7.5, color="dimgray", va="top")
    step = 0.24 / height
    for i, phrase in enumerate(phrases):
        row, col = divmod(i, per_row)
        fig.text(0.02 + col / per_row, top - 0.3 / height - row * step,
                 f"{i + 1}  {textwrap.shorten(phrase, 48)}", fontsize=8.5,
                 color=colour_of[phrase], va="top", fontweight="bold")
