"""mesp.clustering.catalogue and ``mesp clusters STORE``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pytest

from mesp.clustering.catalogue import describe_clusters, dominant_period, plot_catalogue
from mesp.sbd import znorm

M = 1440
T = np.arange(M)


def _z(x):
    return znorm(np.asarray(x, dtype=float)[None])[0]


def test_labels_from_centroid_shapes():
    timer = (T % 15 == 0) * 10.0 + 1
    midnight = np.exp(-0.5 * (np.minimum(T, M - T) / 4) ** 2)
    afternoon = np.exp(-0.5 * ((T - 14 * 60) / 120) ** 2)
    night = np.exp(-0.5 * ((T - 3 * 60) / 3) ** 2)
    labels = describe_clusters(np.stack([_z(timer), _z(midnight), _z(afternoon), _z(night)]), None, None, 60)
    assert labels[0] == "timer every 15min"
    assert labels[1] == "midnight spike"
    assert labels[2] == "peak 14:00 (afternoon)"
    assert labels[3] == "spike 03:00 (night)"


def test_flat_members_weekday_and_relative_times():
    rng = np.random.default_rng(0)
    X = 500 + rng.normal(0, 10, (14, M))
    c = _z(X.mean(0))
    start = [dt.datetime(2024, 1, 1) + dt.timedelta(days=int(d)) for d in (0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 14,
                                                                          15, 16, 17)]
    labels = describe_clusters(c[None], X, np.zeros(14, int), 60, start=start)
    assert labels == ["flat (steady load), weekday"]
    half = _z(np.exp(-0.5 * ((np.arange(720) - 300) / 60) ** 2))
    assert describe_clusters(half[None], None, None, 60) == ["peak +5h"]  # 12h window, no clock known


def test_dominant_period_ignores_smooth_daily_curves():
    assert dominant_period(np.sin(2 * np.pi * T / M)) is None
    assert dominant_period((T % 60 < 2).astype(float)) == 60


def test_plot_catalogue_writes_png(tmp_path):
    rng = np.random.default_rng(1)
    C = np.stack([_z(np.sin(2 * np.pi * T / M)), _z((T % 60 == 0) * 1.0)])
    X = np.abs(np.vstack([C[0] * 3 + 10 + rng.normal(0, 1, (20, M)), (T % 60 == 0) * 5.0 + rng.random((20, M))]))
    out = plot_catalogue(C, X, np.repeat([0, 1], 20), tmp_path / "cat.png", titles=["a", "b"], n_idle=3)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _store(tmp_path, centroids):
    from mesp.manifest import ClusterInfo, ExpertInfo, Manifest, RouterInfo
    from mesp.router import Router

    vdir = tmp_path / "store" / "versions" / "v1"
    vdir.mkdir(parents=True)
    Router(centroids, 0.4).save_npz(vdir / "router.npz")
    sha = hashlib.sha256((vdir / "router.npz").read_bytes()).hexdigest()
    rule = ExpertInfo(family="rule:idle")
    man = Manifest(version="v1", created="2024-01-01T00:00:00Z", step_seconds=60, context=M, horizon=60,
                   quantiles=[0.5], scaling="none",
                   router=RouterInfo(file="router.npz", sha256=sha, novelty_threshold=0.4, idle_rule={}),
                   clusters=[ClusterInfo(id=0, label="peak 14:00 (afternoon)", size=10, expert=rule),
                             ClusterInfo(id=1, label="timer every 1h", size=5, expert=rule),
                             ClusterInfo(id=-1, label="idle/sparse (rule)", size=2, expert=rule)],
                   dense=ExpertInfo(family="rule:seasonal_naive"))
    (vdir / "manifest.json").write_text(man.model_dump_json())
    (tmp_path / "store" / "LATEST").write_text(json.dumps({"version": "v1"}))
    return tmp_path / "store", vdir


def test_clusters_command(tmp_path, capsys):
    from mesp.cli import main

    C = np.stack([_z(np.exp(-0.5 * ((T - 840) / 120) ** 2)), _z((T % 60 == 0) * 1.0)])
    store, _ = _store(tmp_path, C)
    data = tmp_path / "p.csv"
    rows = [np.exp(-0.5 * ((T - 840) / 120) ** 2) * 50, (T % 60 == 0) * 7.0, np.zeros(M)]
    with open(data, "w") as fh:
        fh.write("vec_id,n_source_files," + ",".join(str(i) for i in range(1, M + 1)) + "\n")
        for i, r in enumerate(rows):
            fh.write(f"{i:016x},1," + ",".join(str(int(v)) for v in r) + "\n")
    png = tmp_path / "out.png"
    assert main(["clusters", str(store), "--png", str(png), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "timer every 1h" in out and "idle/sparse (rule)" in out and png.exists()


def test_clusters_command_damaged_router(tmp_path, capsys):
    from mesp.cli import main

    store, vdir = _store(tmp_path, np.stack([_z(np.sin(T / 50.0))]))
    (vdir / "router.npz").write_bytes(b"garbage")
    assert main(["clusters", str(store)]) == 2
    err = capsys.readouterr().err
    assert "fails verification" in err and len(err.strip().splitlines()) == 1
