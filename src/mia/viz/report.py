"""A self-contained HTML report of a trained run: results per granularity, the ablation
runs found next to it, the paper's figures and the dataset statistics. Figures are
embedded as data URIs and the style is inline, so the file opens offline anywhere."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import torch

from mia.data.stats import dataset_stats
from mia.evaluation.evaluate import evaluate_scores, lambda_sweeps, per_subset
from mia.utils.io import atomic_write_text
from mia.viz import figures
from mia.viz.analysis import Analysis

COLUMNS = (("R1", "R@1"), ("R5", "R@5"), ("R10", "R@10"), ("total", "Total"), ("mAP", "mAP"),
           ("mINP", "mINP"))
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;
text-align:right}th:first-child,td:first-child{text-align:left}img{max-width:100%}
.note{color:#666;font-size:90%}h2{border-bottom:1px solid #ddd;padding-bottom:4px}"""


def _table(rows: list[tuple[str, dict]], columns=COLUMNS) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{m[key]:.2f}</td>" for key, _ in columns) + "</tr>"
        for name, m in rows)
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption class=note>{html.escape(caption)}</figcaption></figure>")


def _history(run: Path) -> list[dict]:
    log_file = run / "log.jsonl"
    if not log_file.is_file():
        return []
    records = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:  # a line torn by a stopped run: the epochs are still read
            continue
    return [r for r in records if isinstance(r, dict) and r.get("type") == "epoch"]


def sibling_results(run: Path, split: str) -> list[tuple[str, dict]]:
    """(run name, sF/sG metrics) of runs next to ``run`` that have saved evaluations."""
    rows = []
    for other in sorted(p for p in run.resolve().parent.iterdir() if p.is_dir()):
        saved = sorted((other / "eval").glob(f"{split}-*.json")) if (other / "eval").is_dir() \
            else []
        if not saved:
            continue
        result = json.loads(saved[-1].read_text())
        name = result.get("meta", {}).get("config", other.name)
        rows.append((f"{other.name} ({name}) sG", result["sG"]))
        rows.append((f"{other.name} ({name}) sF", result["sF"]))
    return rows


def write_report(run: str | Path, data_dir: str | Path, out: str | Path | None = None,
                 split: str = "test", progress: bool = True) -> Path:
    run = Path(run)
    out = Path(out) if out else run / "report"
    fig_dir = out / "figures"
    analysis = Analysis.from_run(run, data_dir, split, progress=progress)
    l1, l2 = analysis.lambdas
    results = evaluate_scores(analysis.scores, analysis.inputs, l1, l2)
    sweep = lambda_sweeps(analysis.scores, analysis.inputs)
    subsets = per_subset(analysis.scores, analysis.inputs, l1, l2)
    parts = [f"<h1>MIA report: {html.escape(run.name)}</h1>",
             f"<p class=note>config <b>{html.escape(analysis.trained.config.name)}</b> "
             f"({html.escape(analysis.trained.config.description)}); checkpoint "
             f"{html.escape(str(analysis.trained.checkpoint))}; data "
             f"{html.escape(str(data_dir))}, split {html.escape(split)}: "
             f"{len(analysis.inputs.query_texts)} caption queries x "
             f"{len(analysis.inputs.gallery)} images. lambda1 = {l1}, lambda2 = {l2}.</p>",
             "<h2>Results per granularity</h2>",
             _table([(f"{g} ({name})", results[g]) for g, name in
                     (("sG", "GC"), ("sR", "RGA"), ("sL", "BFM"), ("sF", "fusion"))])]
    if subsets:
        parts.append("<h3>Per CUHK-PEDES sub-dataset (queries of the sub-dataset, whole "
                     "gallery), sF</h3>")
        parts.append(_table([(name, sub["sF"]) for name, sub in subsets.items()]))
    siblings = sibling_results(run, split)
    if siblings:
        parts += ["<h2>Runs next to this one (saved evaluations)</h2>", _table(siblings)]
    parts.append("<h2>Figures</h2>")
    parts += [_figure(p, c) for p, c in _figures(analysis, _history(run), sweep, fig_dir)]
    stats = dataset_stats(analysis.data.dataset, analysis.data.parsed)
    parts += ["<h2>Dataset</h2>", _stats_table(stats)]
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>MIA report "
            f"{html.escape(run.name)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
    atomic_write_text(out / "report.html", page)
    return out / "report.html"


def _figures(analysis: Analysis, history: list[dict], sweep: dict, fig_dir: Path):
    good = figures.pick_queries(analysis, 4, correct=True)
    bad = torch.nonzero(analysis.first_hit_rank("MIA") >= 10).squeeze(1)[:3].tolist()
    out = []
    if history:
        out.append((figures.training_curves(history, fig_dir / "training.png"),
                    "Training losses and validation R@1 per epoch; dashed lines separate "
                    "the training steps."))
    out.append((figures.sweep_curves(sweep, fig_dir / "sweeps.png"),
                "R@K of sF against lambda1 (lambda2 = 0) and lambda2 (lambda1 = 0)."))
    if good:
        out.append((figures.fig7a_rga(analysis, good[:3], fig_dir / "fig7a_rga.png"),
                    "Fig. 7a: RGA I->T stripe weights for the caption (red largest, yellow "
                    "second, green and blue smallest)."))
        out.append((figures.fig7b_bfm(analysis, good[0], fig_dir / "fig7b_bfm.png"),
                    "Fig. 7b: BFM P->N, each noun phrase's best (red) and second (yellow) "
                    "stripe."))
        out.append((figures.fig8_rankings(analysis, good[:2], fig_dir / "fig8_rankings.png"),
                    "Fig. 8: top-10 under GC, GC+RGA and MIA; green frames are true "
                    "matches."))
    if bad:
        out.append((figures.fig9_failures(analysis, bad, fig_dir / "fig9_failures.png"),
                    "Fig. 9: failure cases, no true image in the top 10."))
    return out


def _stats_table(stats: dict) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{s['images']}</td><td>{s['ids']}</td>"
        f"<td>{s['captions']}</td><td>{s['vocabulary']}</td>"
        f"<td>{s['caption_length']['mean']:.1f} / {s['caption_length']['max']}</td>"
        f"<td>{s['noun_phrases']['mean']:.2f} / {s['noun_phrases']['min']} / "
        f"{s['noun_phrases']['max']}</td><td>{s['captions_without_noun_phrase']}</td></tr>"
        for name, s in stats["splits"].items())
    return ("<table><tr><th>split</th><th>images</th><th>ids</th><th>captions</th>"
            "<th>vocabulary</th><th>words mean / max</th><th>noun phrases mean / min / max"
            "</th><th>no noun phrase</th></tr>" + rows + "</table>")
