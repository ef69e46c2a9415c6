"""Bad input, data and training: the job entry points on bad data, and crashes in the middle of a publish.

* A training job on bad data follows the SageMaker contract: a one-line reason naming the file in
  ``/opt/ml/output/failure`` (what becomes the job's FailureReason), exit status 1, and no half-written
  model artifacts in ``/opt/ml/model`` (SageMaker would tar and upload whatever is there).
* The loaders turn unreadable bytes (not UTF-8, truncated gzip) into one-line errors naming the file; the
  per-format failure modes are already covered one by one in ``tests/unit/test_data_*.py``.
* Publishing is crash-safe: a crash at *every* write of a publish, on a local store and on (moto) S3,
  leaves ``LATEST`` on the previous version, every listed version complete and verifiable, and a cold
  serving container answering from the previous version, not degraded; the retried publish then goes live.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws

from harness import ROOT
from mesp import publish as pub
from mesp.cli import main as cli_main
from mesp.data import load
from mesp.errors import DataError
from mesp.jobs.__main__ import main as job_main
from mesp.jobs.contract import JobPaths, write_hyperparameters
from mesp.runtime import Predictor
from mesp.store import open_store, sha256_hex
from support.stores import CONTEXT, HORIZON, QUANTILES, centroid_shapes, onnx_model_bytes, sample_series

# ------------------------------------------------------------------------------------------- bad data


def long_csv(values: dict[str, np.ndarray]) -> bytes:
    rows = ["unique_id,ds,y"]
    for name, counts in values.items():
        rows += [f"{name},{60 * i},{int(v)}" for i, v in enumerate(counts)]
    return ("\n".join(rows) + "\n").encode()


BAD_DATA = {
    "binary garbage": ("traces.csv", b"\x00\x01PK\x03\x04\xff\xfe" * 64, "not UTF-8 text"),
    "truncated gzip": ("traces.csv.gz", gzip.compress(long_csv({"a": np.ones(500)}))[:60], "truncated or corrupt gzip"),
    "negative count": ("traces.csv", long_csv({"a": np.r_[np.ones(10), -3, np.ones(10)]}), "negative count"),
    "header only": ("traces.csv", b"unique_id,ds,y\n", "no data rows"),
    "empty file": ("traces.csv", b"", "empty file"),
    "nothing but idle series": ("traces.csv", long_csv({"a": np.zeros(2 * 1440), "b": np.zeros(2 * 1440)}),
                                "nothing to cluster"),
}


def job_root(tmp_path: Path, job: str, files: dict[str, bytes]) -> JobPaths:
    paths = JobPaths(tmp_path / "opt-ml")
    for name, data in files.items():
        target = paths.root / "input" / "data" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    write_hyperparameters(paths, {"job": job, "clusters": 2, "max_iter": 3})
    return paths


def assert_failed_cleanly(paths: JobPaths, rc: int, phrase: str, file_name: str | None = None) -> str:
    assert rc == 1
    reason = paths.failure.read_text()
    assert phrase in reason and "\n" not in reason.strip() and "Traceback" not in reason
    if file_name:
        assert file_name in reason
    # nothing half-written that SageMaker would tar and upload as a model
    assert not paths.model.exists() or list(paths.model.iterdir()) == []
    return reason


@pytest.mark.parametrize("case", list(BAD_DATA), ids=list(BAD_DATA))
def test_cluster_job_on_bad_data_fails_with_the_reason_and_no_artifacts(tmp_path, case, capsys):
    name, data, phrase = BAD_DATA[case]
    paths = job_root(tmp_path, "cluster", {f"data/{name}": data})
    rc = job_main(["--sm-root", str(paths.root), "train"])
    assert_failed_cleanly(paths, rc, phrase, None if case == "nothing but idle series" else name)
    assert "job failed" in capsys.readouterr().err


def test_expert_job_on_a_broken_cluster_channel_fails_with_the_contract(tmp_path):
    paths = job_root(tmp_path, "expert", {"data/traces.csv": long_csv({"a": np.ones(3000)}),
                                          "cluster/cluster.json": b'{"run_id": "r1", "clusters": ['})
    rc = job_main(["--sm-root", str(paths.root), "train"])
    assert rc == 1 and paths.failure.read_text().strip()
    assert not paths.model.exists() or list(paths.model.iterdir()) == []


def test_the_training_image_entry_point_exits_non_zero(tmp_path):
    """What SageMaker runs (``training_jobs/cluster.py train``), as a process: exit status and failure file."""
    paths = job_root(tmp_path, "cluster", {"data/traces.csv": BAD_DATA["binary garbage"][1]})
    out = subprocess.run([sys.executable, str(ROOT / "training_jobs" / "cluster.py"), "--sm-root",
                          str(paths.root), "train"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "not UTF-8 text" in paths.failure.read_text() and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("mesp cluster job failed: ")


@pytest.mark.parametrize("case", ["binary garbage", "truncated gzip"])
def test_unreadable_bytes_are_one_line_errors_in_the_loaders_and_the_cli(tmp_path, case, capsys):
    name, data, phrase = BAD_DATA[case]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DataError, match=phrase) as err:
        load(str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert cli_main(["data", "inspect", str(path)]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and phrase in captured.err and len(captured.err.strip().splitlines()) == 1


# -------------------------------------------------------------------------------- crashes in publish
class Crash(BaseException):
    """A process dying mid-write: not an Exception, so no ``except Exception`` gets to tidy up."""


def job_outputs(root: Path, run_id: str, offset: float) -> dict:
    """Job model folders with *real* ONNX graphs (so serving can load what publish wrote)."""
    cluster = root / "cluster"
    cluster.mkdir(parents=True)
    with open(cluster / "router.npz", "wb") as fh:
        np.savez(fh, centroids=centroid_shapes(2, CONTEXT))
    (cluster / "cluster.json").write_text(json.dumps({
        "run_id": run_id, "step_seconds": 1800, "context": CONTEXT, "horizon": HORIZON, "novelty_threshold": 0.5,
        "clusters": [{"id": -1, "label": "idle", "size": 3, "expert": "rule:idle"},
                     {"id": 0, "label": "shape 0", "size": 10}, {"id": 1, "label": "shape 1", "size": 11}],
        "training": {"seed": 0}}))
    folders = []
    for part in (0, 1, "dense"):
        folder = root / f"expert-{part}"
        folder.mkdir()
        onnx = onnx_model_bytes(offset=offset + (1000 if part == "dense" else 100 * (part + 1)))
        (folder / "model.onnx").write_bytes(onnx)
        (folder / "expert.json").write_text(json.dumps({
            "cluster": part, "cluster_run_id": run_id, "family": "mlp", "file": "model.onnx",
            "sha256": sha256_hex(onnx), "quantiles": list(QUANTILES), "context": CONTEXT, "horizon": HORIZON,
            "scaling": "none"}))
        folders.append(folder)
    return {"cluster_dir": cluster, "expert_dirs": folders[:2], "dense_dir": folders[2]}


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        yield open_store(tmp_path / "store")
        return
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="mesp-models")
        yield open_store("s3://mesp-models/prod")


def crash_at(monkeypatch, store, n: int) -> list[str]:
    """Make the n-th write (0-based) of the store die; returns the keys written before it."""
    real, written = store.put_bytes, []

    def put(key: str, data: bytes) -> None:
        if len(written) == n:
            raise Crash(f"killed while writing {key}")
        real(key, data)
        written.append(key)

    monkeypatch.setattr(store, "put_bytes", put)
    return written


def serve_one(store) -> tuple[str, bool]:
    built_like = type("B", (), {"manifest": store.read_manifest(store.latest_version()),
                                "centroids": centroid_shapes(2, CONTEXT)})
    pred = Predictor(open_store(store.uri), threads=1).predict(sample_series(built_like, "cluster1", 1))
    return pred.version, bool(pred.degraded.any())


WRITES_PER_PUBLISH = 6  # router, 2 experts, dense, manifest, LATEST


def test_a_crash_at_any_write_of_a_publish_leaves_the_previous_version_live(store, tmp_path, monkeypatch):
    first = pub.publish(store, pub.draft_from_jobs(**job_outputs(tmp_path / "a", "run-a", 0.0))).version
    draft = pub.draft_from_jobs(**job_outputs(tmp_path / "b", "run-b", 5.0))
    for n in range(WRITES_PER_PUBLISH):
        written = crash_at(monkeypatch, store, n)
        with pytest.raises(Crash):
            pub.publish(store, draft)
        monkeypatch.undo()
        assert store.latest_version() == first, f"crash at write {n} after {written}"
        for version in store.list_versions():      # whatever is listed is complete and verifies
            pub.verify_version(store, version)
        assert serve_one(store) == (first, False), f"crash at write {n}"
    # the retry (after the last crash point) completes the version and makes it live
    second = pub.publish(store, draft).version
    assert second != first and store.latest_version() == second
    assert serve_one(store) == (second, False)
    assert n == WRITES_PER_PUBLISH - 1 and written[-1].endswith("manifest.json")  # the last crash hit LATEST
