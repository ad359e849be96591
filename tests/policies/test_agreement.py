"""wow-gym agreement: evaluate runs of several tasks, ranked together."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from wow_gym.policies.agreement import pool_agreement, read_evaluation
from wow_gym.policies.evaluation import EvaluateResults, PolicyResult, correlation
from wow_gym.policies.evaluation_report import write_report


def _evaluate_run(folder, task, rates):
    """A results.json as `wow-gym evaluate` writes it (its own writer), one policy per (sim, imagined)."""
    policies = [PolicyResult(f"p{i}", "random", None, 0.0, [], imagined, sim, 0.0, 0.0, 0.0, 0.0, 1.0)
                for i, (sim, imagined) in enumerate(rates)]
    sims, imagined = np.array([r[0] for r in rates]), np.array([r[1] for r in rates])
    agreement = correlation(sims, imagined)
    write_report(EvaluateResults(task, f"world_models/checkpoints/{task.lower()}", "critic", 16, 100, 960000,
                                 "none", policies, agreement, agreement, 1.0), folder)
    return folder


def test_points_of_every_task_are_ranked_per_task_and_pooled(tmp_path):
    lift = _evaluate_run(tmp_path / "lift", "Lift", [(0.0, 0.0), (0.5, 0.25), (0.75, 0.5), (1.0, 1.0)])
    # Stack's imagination ranks its three policies backwards
    stack = _evaluate_run(tmp_path / "stack", "Stack", [(0.0, 0.5), (0.25, 0.25), (0.5, 0.0)])
    assert read_evaluation(stack).imagined == [0.5, 0.25, 0.0]
    figures = pool_agreement([lift, stack], tmp_path / "out")

    assert list(figures) == ["Lift", "Stack", "pooled"]
    assert figures["Lift"].spearman == pytest.approx(1.0) and figures["Lift"].mmrv == 0.0
    assert figures["Stack"].pearson == pytest.approx(-1.0)
    assert figures["Stack"].mmrv == pytest.approx((0.5 + 0.25 + 0.5) / 3)  # every pair ranked backwards
    sim = [0.0, 0.5, 0.75, 1.0, 0.0, 0.25, 0.5]
    imagined = [0.0, 0.25, 0.5, 1.0, 0.5, 0.25, 0.0]
    assert figures["pooled"].pearson == pytest.approx(np.corrcoef(sim, imagined)[0, 1])

    saved = json.loads((tmp_path / "out" / "agreement.json").read_text())
    assert saved["points"] == 7 and saved["correlations"]["Stack"]["pearson"] == pytest.approx(-1.0)
    table = (tmp_path / "out" / "agreement.md").read_text()
    assert "| pooled over Lift, Stack | 7 |" in table and "| Stack | p0 | 0.50 | 0.00 |" in table
    plot = np.asarray(Image.open(tmp_path / "out" / "agreement.png").convert("RGB"))
    colours = {tuple(c) for c in plot.reshape(-1, 3)} - {(255, 255, 255), (0, 0, 0)}
    assert len(colours) > 3  # the grid, the diagonal and a colour per task


def test_bad_runs_are_refused_with_what_was_expected(tmp_path):
    lift = _evaluate_run(tmp_path / "lift", "Lift", [(0.0, 0.0), (1.0, 1.0)])
    again = _evaluate_run(tmp_path / "lift-again", "Lift", [(0.0, 0.0), (1.0, 1.0)])
    with pytest.raises(ValueError, match="given twice"):
        pool_agreement([lift, tmp_path / "lift"], tmp_path / "out")
    with pytest.raises(ValueError, match="two runs of the same task"):
        pool_agreement([lift, again], tmp_path / "out")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text('{"task": "Lift", "policies": [{"name": "a"}]}')
    with pytest.raises(ValueError, match="sim_success_rate"):
        read_evaluation(tmp_path / "broken")
    done = subprocess.run([sys.executable, "-m", "wow_gym.cli", "agreement", f"runs=[{tmp_path / 'nothing'}]",
                           f"out={tmp_path / 'x'}"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr and "not an evaluate run" in done.stderr
