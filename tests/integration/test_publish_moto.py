"""Publishing job outputs into a versioned store on (moto) S3 and on disk: flip, rollback, idempotence, crashes."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws

from mesp import publish as pub
from mesp.errors import ModelStoreError
from mesp.jobs.launch import SageMakerConfig, artifact_uri
from mesp.store import open_store, sha256_hex

BUCKET = "mesp-models"
RUN = "20261120101500"
CTX, HOR = 24, 4


def fake_outputs(root: Path, run_id: str = RUN, seed: int = 0, k: int = 2) -> dict:
    """Job model folders shaped like the real jobs' (publish does not look inside the ONNX bytes)."""
    rng = np.random.default_rng(seed)
    cluster = root / "cluster"
    cluster.mkdir(parents=True)
    with open(cluster / "router.npz", "wb") as fh:
        np.savez(fh, centroids=rng.standard_normal((k, CTX)).astype(np.float32))
    (cluster / "cluster.json").write_text(json.dumps({
        "run_id": run_id, "step_seconds": 60, "context": CTX, "horizon": HOR, "novelty_threshold": 0.4,
        "idle_rule": {"min_active": 3, "rel_std": 1e-3},
        "clusters": [{"id": -1, "label": "idle", "size": 3, "expert": "rule:idle"}]
        + [{"id": i, "label": f"shape {i}", "size": 10 + i} for i in range(k)],
        "training": {"seed": seed, "data": {"n_series": 5}}}))
    experts = []
    for part in [*range(k), "dense"]:
        folder = root / f"expert-{part}"
        folder.mkdir()
        onnx = f"onnx-{part}-{seed}".encode()
        (folder / "model.onnx").write_bytes(onnx)
        (folder / "expert.json").write_text(json.dumps({
            "cluster": part, "cluster_run_id": run_id, "family": "dlinear", "params": {"kernel": 5},
            "file": "model.onnx", "sha256": sha256_hex(onnx), "quantiles": [0.5, 0.9], "context": CTX,
            "horizon": HOR, "scaling": "log1p-mean", "val_metrics": {"wape": 0.3}, "training": {"trials": 1}}))
        experts.append(folder)
    return {"cluster": cluster, "experts": experts[:-1], "dense": experts[-1]}


def put_as_sagemaker(s3, root: Path, outputs: dict, cfg: SageMakerConfig) -> dict:
    """Tar each folder and put it where SageMaker would (``<output>/<job>/output/model.tar.gz``)."""
    uris = {}
    parts = {"cluster": outputs["cluster"], "dense": outputs["dense"],
             **{f"expert-{i}": d for i, d in enumerate(outputs["experts"])}}
    for part, folder in parts.items():
        uri = artifact_uri(cfg, RUN, part)
        tarball = pub.write_tarball(folder, root / "tars" / f"{part}.tar.gz")
        s3.put_object(Bucket=BUCKET, Key=uri[len(f"s3://{BUCKET}/"):], Body=tarball.read_bytes())
        uris[part] = uri
    return {"cluster": uris["cluster"], "dense": uris["dense"],
            "experts": [uris[f"expert-{i}"] for i in range(len(outputs["experts"]))]}


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_publish_from_sagemaker_tarballs(s3, tmp_path):
    cfg = SageMakerConfig(role_arn="arn:aws:iam::123456789012:role/r", image_uri="i", work_uri=f"s3://{BUCKET}/work")
    uris = put_as_sagemaker(s3, tmp_path, fake_outputs(tmp_path / "jobs"), cfg)
    store = open_store(f"s3://{BUCKET}/models")
    draft = pub.draft_from_sources(uris["cluster"], uris["experts"], uris["dense"], tmp_path / "work")
    result = pub.publish(store, draft)
    assert result.previous is None and not result.reused
    assert store.latest_version() == result.version
    manifest = pub.verify_version(store, result.version)
    assert [c.id for c in manifest.clusters] == [-1, 0, 1]
    assert manifest.clusters[0].expert.family == "rule:idle" and manifest.clusters[0].expert.file is None
    assert manifest.clusters[1].expert.file == "experts/0.onnx"
    assert manifest.dense.file == "dense.onnx"
    assert store.read_verified(result.version, "experts/1.onnx", manifest.clusters[2].expert.sha256) == b"onnx-1-0"
    assert manifest.training["seed"] == 0 and set(manifest.training["experts"]) == {"0", "1", "dense"}
    assert sorted(store.list(f"versions/{result.version}/")) == sorted(
        f"versions/{result.version}/{f}" for f in ["manifest.json", "router.npz", "experts/0.onnx",
                                                    "experts/1.onnx", "dense.onnx"])


def test_republish_is_idempotent_and_rollback_works(s3, tmp_path, monkeypatch):
    store = open_store(f"s3://{BUCKET}/models")
    a = fake_outputs(tmp_path / "a", seed=1)
    first = pub.publish(store, pub.draft_from_jobs(a["cluster"], a["experts"], a["dense"]))
    # a later clock must not matter: same inputs, same version, nothing uploaded
    monkeypatch.setattr(pub, "_now", lambda: pub.datetime(2030, 1, 1, tzinfo=pub.UTC))
    again = pub.publish(store, pub.draft_from_jobs(a["cluster"], a["experts"], a["dense"]))
    assert again.version == first.version and again.reused
    assert len(store.list_versions()) == 1

    b = fake_outputs(tmp_path / "b", run_id="20261121000000", seed=2)
    second = pub.publish(store, pub.draft_from_jobs(b["cluster"], b["experts"], b["dense"]))
    assert second.version != first.version and second.previous == first.version
    assert store.latest_version() == second.version
    rows = pub.list_versions(store)
    assert [(r.version, r.latest) for r in rows] == [(first.version, False), (second.version, True)]

    back = pub.promote(store, first.version)
    assert back.previous == second.version and store.latest_version() == first.version
    with pytest.raises(ModelStoreError, match="not in"):
        pub.promote(store, "20000101T000000Z-000000000000")


def test_crash_between_upload_and_flip_leaves_latest(s3, tmp_path, monkeypatch):
    store = open_store(f"s3://{BUCKET}/models")
    a = fake_outputs(tmp_path / "a", seed=1)
    first = pub.publish(store, pub.draft_from_jobs(a["cluster"], a["experts"], a["dense"]))
    b = fake_outputs(tmp_path / "b", run_id="20261121000000", seed=2)
    draft = pub.draft_from_jobs(b["cluster"], b["experts"], b["dense"])

    def crash(*_a, **_k):
        raise RuntimeError("power cut")

    monkeypatch.setattr(pub, "flip_latest", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        pub.publish(store, draft)
    assert store.latest_version() == first.version  # every file of the new version is up, LATEST is not
    assert len(store.list_versions()) == 2
    monkeypatch.undo()
    done = pub.publish(store, draft)  # the retry finds the complete upload and only flips
    assert done.reused and store.latest_version() == done.version != first.version


def test_crash_during_upload_and_gc(tmp_path, monkeypatch):
    store = open_store(tmp_path / "store")
    versions = []
    for i in range(3):
        o = fake_outputs(tmp_path / f"o{i}", run_id=f"2026112{i}000000", seed=i)
        monkeypatch.setattr(pub, "_now", lambda i=i: pub.datetime(2026, 11, 20 + i, tzinfo=pub.UTC))
        versions.append(pub.publish(store, pub.draft_from_jobs(o["cluster"], o["experts"], o["dense"])).version)
    pub.promote(store, versions[0])
    # a crash in the middle of the uploads: no manifest, so no version, and LATEST untouched
    o = fake_outputs(tmp_path / "o9", run_id="20261119000000", seed=9)
    real_put = store.put_bytes
    monkeypatch.setattr(pub, "_now", lambda: pub.datetime(2026, 11, 19, 12, tzinfo=pub.UTC))
    monkeypatch.setattr(store, "put_bytes", lambda key, data: real_put(key, data) if "dense" in key
                        else (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        pub.publish(store, pub.draft_from_jobs(o["cluster"], o["experts"], o["dense"]))
    monkeypatch.setattr(store, "put_bytes", real_put)
    assert store.latest_version() == versions[0] and store.list_versions() == versions
    orphan = {k.split("/")[1] for k in store.list("versions/")} - set(versions)
    assert len(orphan) == 1  # the crashed upload's folder, older than LATEST's version
    removed = pub.gc(store, keep=1)
    # the newest and LATEST's target stay; the other version and the crashed folder go
    assert store.list_versions() == [versions[0], versions[2]]
    assert sorted(removed) == sorted([versions[1], *orphan])
    assert {k.split("/")[1] for k in store.list("versions/")} == {versions[0], versions[2]}
    assert store.latest_version() == versions[0]
    with pytest.raises(ModelStoreError, match="at least 1"):
        pub.gc(store, keep=0)


def test_mismatched_outputs_are_refused(tmp_path):
    a = fake_outputs(tmp_path / "a", seed=1)
    b = fake_outputs(tmp_path / "b", run_id="20261121000000", seed=2)
    with pytest.raises(ModelStoreError, match="cluster run"):
        pub.draft_from_jobs(a["cluster"], [a["experts"][0], b["experts"][1]], a["dense"])
    with pytest.raises(ModelStoreError, match="no expert output for cluster 1"):
        pub.draft_from_jobs(a["cluster"], a["experts"][:1], a["dense"])
    (a["experts"][0] / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelStoreError, match="corrupted"):
        pub.draft_from_jobs(a["cluster"], a["experts"], a["dense"])
