"""``mesp train --add-cluster``: a novel shape becomes cluster K+1; every old file stays byte for byte."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from mesp.cli import main
from mesp.runtime import Predictor
from mesp.store import open_store

TINY = ["--budget-minutes", "0.2", "--trials", "1", "--max-epochs", "2", "--families", "linear",
        "--workers", "1", "--no-progress", "--seed", "1"]


def write_patterns(path: Path, rows: np.ndarray, prefix: str) -> Path:
    """Rows in the shared daily-pattern format (vec_id, n_source_files, 1..1440)."""
    with gzip.open(path, "wt") as fh:
        fh.write("vec_id,n_source_files," + ",".join(str(i) for i in range(1, 1441)) + "\n")
        for i, row in enumerate(rows):
            fh.write(f"{prefix}{i:014d},1," + ",".join(str(int(v)) for v in row) + "\n")
    return path


def diurnal(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(1440)
    rows = [200 + 150 * np.sin(2 * np.pi * (t - rng.integers(0, 30)) / 1440) + rng.normal(0, 5, 1440)
            for _ in range(n)]
    return np.clip(np.rint(rows), 0, None)


def timers(rng: np.random.Generator, n: int) -> np.ndarray:
    """A shape the diurnal router has never seen: sharp bursts every 30 minutes."""
    rows = np.zeros((n, 1440))
    for r in rows:
        r[rng.integers(0, 30)::30] = rng.integers(400, 600)
    return rows


@pytest.mark.slow
def test_add_cluster_reuses_old_files_and_routes_to_the_new_expert(tmp_path):
    rng = np.random.default_rng(0)
    base_data = write_patterns(tmp_path / "base.csv.gz", diurnal(rng, 30), "a")
    store_uri = str(tmp_path / "store")
    assert main(["train", "--data", str(base_data), "--model", store_uri, "--clusters", "1", *TINY]) == 0
    store = open_store(store_uri)
    v1 = store.latest_version()
    m1 = store.read_manifest(v1)
    assert [c.id for c in m1.clusters if c.id >= 0] == [0]

    novel_rows = timers(rng, 12)
    new_data = write_patterns(tmp_path / "new.csv.gz", novel_rows, "b")
    before = Predictor(store_uri, ttl_seconds=0).predict(novel_rows[:, :m1.context].astype(np.float32))
    assert before.novel.all()  # the current router flags the new shape as novel (dense answers it)

    assert main(["train", "--add-cluster", "--data", str(base_data), str(new_data), "--model", store_uri,
                 *TINY]) == 0
    v2 = store.latest_version()
    m2 = store.read_manifest(v2)
    assert v2 != v1 and m2.training["base_version"] == v1
    old = {c.id: c.expert for c in m1.clusters}
    for c in m2.clusters:
        if c.id in old:
            assert c.expert == old[c.id]  # same family, params, file and sha256
    assert m2.dense == m1.dense
    for file, sha in m1.files().items():
        if file != m1.router.file:
            assert m2.files()[file] == sha
            assert store.read_verified(v2, file, sha) == store.read_verified(v1, file, sha)
    [new] = [c for c in m2.clusters if c.id not in old]
    assert new.id == 1 and new.expert.file == "experts/1.onnx" and new.size > 0
    assert m2.router.sha256 != m1.router.sha256 and m2.router.novelty_threshold >= m1.router.novelty_threshold

    after = Predictor(store_uri, ttl_seconds=0).predict(novel_rows[:, :m2.context].astype(np.float32))
    assert after.version == v2
    assert after.cluster_ids == [1] * len(novel_rows) and not after.novel.any()
    assert set(after.families) == {new.expert.family} and not after.degraded.any()
    # the old shape is still answered by the old expert
    again = Predictor(store_uri, ttl_seconds=0).predict(diurnal(rng, 3)[:, :m2.context].astype(np.float32))
    assert again.cluster_ids == [0, 0, 0]


def test_add_cluster_without_novel_patterns_is_a_clear_error(tmp_path, capsys):
    rng = np.random.default_rng(0)
    store = tmp_path / "store"
    data = write_patterns(tmp_path / "base.csv.gz", diurnal(rng, 4), "a")
    assert main(["train", "--add-cluster", "--data", str(data), "--model", str(store), *TINY]) == 2
    assert "no published model" in capsys.readouterr().err
