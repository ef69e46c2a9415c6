"""One function holdout for train/evaluate/simulate (``mesp.evaluation.holdout``) and per-cluster search seeds."""

from __future__ import annotations

import numpy as np
import pytest

from mesp.data import Dataset, Series
from mesp.errors import MespError
from mesp.evaluation import holdout, split_by_series
from mesp.jobs.common import load_data
from mesp.jobs.contract import JobError
from mesp.jobs.expert import search_seed


def dataset(n: int) -> Dataset:
    return Dataset([Series(f"s{i}", np.full(10, i, dtype=np.float32), 60) for i in range(n)], 60, "wide")


def test_holdout_parts_follow_split_by_series():
    ds = dataset(23)
    train_idx, test_idx = split_by_series(23, 0.2, 7)
    train, test = holdout(ds, 0.2, 7, "train"), holdout(ds, 0.2, 7, "test")
    assert [s.id for s in train] == [f"s{i}" for i in train_idx]
    assert [s.id for s in test] == [f"s{i}" for i in test_idx]
    assert len(test) == 5 and not {s.id for s in train} & {s.id for s in test}
    assert len(ds) == 23  # the input is not modified
    assert [s.id for s in holdout(ds, 0.2, 8, "test")] != [s.id for s in test]  # the seed matters
    assert len(holdout(ds, 0.0, 7, "train")) == 23 and len(holdout(ds, 0.0, 7, "test")) == 0
    with pytest.raises(MespError, match="part"):
        holdout(ds, 0.2, 7, "validation")


def test_job_data_channel_keeps_the_training_part(tmp_path):
    rows = [f"{i:016x},1," + ",".join(str(i) for _ in range(1440)) for i in range(10)]
    (tmp_path / "p.csv").write_text("vec_id,n_source_files," + ",".join(str(m) for m in range(1, 1441)) + "\n"
                                    + "\n".join(rows) + "\n")
    full, _ = load_data(tmp_path)
    part, files = load_data(tmp_path, test_fraction=0.3, split_seed=1)
    train_idx, _ = split_by_series(10, 0.3, 1)
    assert [s.id for s in part] == [full.series[i].id for i in train_idx] and len(part) == 7
    assert [f.name for f in files] == ["p.csv"]
    with pytest.raises(JobError, match="test fraction"):
        load_data(tmp_path, test_fraction=1.5)


def test_search_seeds_differ_per_cluster_and_are_stable():
    seeds = [search_seed(0, str(c)) for c in range(8)]
    assert len(set(seeds)) == 8 and all(0 <= s < 2**31 for s in seeds)
    assert seeds == [search_seed(0, str(c)) for c in range(8)]  # reproducible
    assert search_seed(0, "dense") == 0 and search_seed(5, "dense") == 5
    assert search_seed(1, "0") != search_seed(0, "0")
