"""Pareto fronts, matched-waste comparison, plots and the ``mesp simulate`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mesp.cli import main
from mesp.simulate.curves import compare, interpolate_at_cold, interpolate_at_waste, pareto_mask


def test_pareto_mask():
    x = np.array([1.0, 2.0, 3.0, 2.5])
    y = np.array([0.5, 0.3, 0.1, 0.4])
    assert pareto_mask(x, y).tolist() == [True, True, True, False]


def points(family_xy):
    return [{"policy": f"p{i}", "x": x, "y": y, "cold_rate_overall": y / 2, "pareto": True}
            for i, (x, y) in enumerate(family_xy)]


def test_interpolation_on_the_front():
    pts = points([(0.5, 0.4), (1.0, 0.2), (2.0, 0.1)])
    assert interpolate_at_waste(pts, 0.75) == pytest.approx(0.3)
    assert interpolate_at_waste(pts, 3.0) is None
    assert interpolate_at_cold(pts, 0.15) == pytest.approx(1.5)
    assert interpolate_at_cold(pts, 0.05) is None


def test_compare_against_the_hybrid_point():
    curve = {"hybrid": [{"policy": "hybrid-p5-p99", "x": 1.0, "y": 0.2, "cold_rate_overall": 0.1, "pareto": True}],
             "mesp": points([(0.5, 0.2), (1.0, 0.1), (2.0, 0.05)])}
    c = compare(curve)["families"]["mesp"]
    assert c["rate_change_at_ref_waste"] == pytest.approx(-0.5)
    assert c["waste_change_at_ref_rate"] == pytest.approx(-0.5)


@pytest.fixture
def tiny_patterns(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        counts = rng.poisson([0.05, 0.5, 5.0][i % 3], size=240)
        counts[::37] += i  # a timer-like component
        rows.append(f"{i:016x},1," + ",".join(str(int(c)) for c in counts))
    path = tmp_path / "patterns.csv"
    path.write_text("vec_id,n_source_files," + ",".join(str(m) for m in range(1, 241)) + "\n" + "\n".join(rows) + "\n")
    return path


def test_cli_simulate_writes_json_and_plot(tiny_patterns, tmp_path, capsys):
    out, png = tmp_path / "sim.json", tmp_path / "sim.png"
    rc = main(["simulate", "--data", str(tiny_patterns), "--json", str(out), "--plot", str(png),
               "--recent-forecast", "--replan", "30min", "--units"])
    assert rc == 0
    doc = json.loads(out.read_text())
    names = {r["policy"] for r in doc["results"]}
    assert {"fixed-10", "fixed-20", "hybrid-p5-p99", "oracle"} <= names
    assert any(n.startswith("recent-p") for n in names)
    assert doc["eval_start"] == 120 and doc["results"][0]["units"]
    assert set(doc["curves"]) >= {"cold_rate_p75", "cold_rate_mean"}
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "fixed-10" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--history", "300min"], "scored window must start inside"),
    (["--limit", "0"], "--limit 0"),
    (["--group", "app"], "no app identity")])
def test_cli_simulate_errors_are_one_line(tiny_patterns, capsys, argv, match):
    assert main(["simulate", "--data", str(tiny_patterns), "--no-sweep", *argv]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
