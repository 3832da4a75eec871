"""mia report and mia demo end to end at tiny size, and the report's ranking helper."""

import json

import pytest
import torch

from mia.cli.main import main
from tests.conftest import TINY


def test_first_hit_rank_equals_sorting_every_query():
    from mia.evaluation.evaluate import EvalInputs
    from mia.viz.analysis import Analysis

    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (40, 30), generator=gen).float()  # many ties
    q_pids = torch.randint(0, 6, (40,), generator=gen)
    g_pids = torch.randint(0, 6, (30,), generator=gen)
    inputs = EvalInputs([], [""] * 40, q_pids, g_pids, [None] * 40)
    analysis = Analysis(None, None, inputs, None, None, {"sG": scores})
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    hits = g_pids[order] == q_pids[:, None]
    want = torch.where(hits.any(1), hits.float().argmax(1), torch.tensor(30))
    torch.testing.assert_close(analysis.first_hit_rank("GC"), want)


@pytest.mark.slow
def test_report_writes_a_self_contained_page_with_the_papers_figures(trained_run, synth_dir,
                                                                     tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--run", str(trained_run[0]), "--data", str(synth_dir),
                 "--out", str(out), "--no-progress"]) == 0
    page = (out / "report.html").read_text()
    for caption in ("Results per granularity", "Fig. 7a", "Fig. 7b", "Fig. 8", "Training losses"):
        assert caption in page
    assert page.count("data:image/png;base64,") >= 4 and "http" not in page.split("<body>")[1]
    assert {p.name for p in (out / "figures").glob("*.png")} >= {
        "fig7a_rga.png", "fig7b_bfm.png", "fig8_rankings.png", "training.png"}


@pytest.mark.slow
def test_demo_runs_end_to_end_at_tiny_size(tmp_path, capsys):
    both = [s for s in TINY if not s.startswith("steps.step3")]  # GC has no step 3
    sets = [a for s in both for a in ("--set", s)]
    assert main(["demo", "--out", str(tmp_path / "demo"), "--ids", "24", "--no-progress",
                 "--json", *sets]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["table"]) == {"GC(G)", "MIA(G)", "MIA(R)", "MIA(L)", "MIA(F)"}
    # each row is its run's granularity, as mia evaluate gives it on the test split
    import mia

    for label, run, gran in (("GC(G)", "gc", "sG"), ("MIA(G)", "mia", "sG"),
                             ("MIA(R)", "mia", "sR"), ("MIA(L)", "mia", "sL"),
                             ("MIA(F)", "mia", "sF")):
        want = mia.evaluate(tmp_path / "demo" / run, tmp_path / "demo" / "data", "test",
                            save=False)[gran]
        row = summary["table"][label]
        assert {k: row[k] for k in ("R1", "R5", "R10", "mAP")} == pytest.approx(
            {k: want[k] for k in ("R1", "R5", "R10", "mAP")}), label
        assert row["total"] == pytest.approx(row["R1"] + row["R5"] + row["R10"])
    saved = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert saved["table"] == summary["table"]
    for run in ("gc", "mia"):
        assert (tmp_path / "demo" / run / "checkpoints" / "last.pt").is_file()
