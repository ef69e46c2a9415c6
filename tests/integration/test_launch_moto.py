"""The SageMaker launcher against moto: the exact requests, the run's steps, the SDK path."""

from __future__ import annotations

import io
import json
import re
import tarfile

import boto3
import pytest
from moto import mock_aws

from mesp.errors import MespError
from mesp.jobs.contract import CLUSTER_METRICS, EXPERT_METRICS, format_metric
from mesp.jobs.launch import (SageMakerConfig, SageMakerRun, artifact_uri, cluster_job_request, expert_job_request,
                              job_name, parse_job_name, upload_data)

ROLE = "arn:aws:iam::123456789012:role/mesp-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mesp-train:latest"
BUCKET = "mesp-work"
RUN = "20261120101500"


@pytest.fixture
def cfg() -> SageMakerConfig:
    return SageMakerConfig(role_arn=ROLE, image_uri=IMAGE, work_uri=f"s3://{BUCKET}/training",
                           instance_type="ml.c5.xlarge", expert_instance_type="ml.c5.2xlarge")


@pytest.fixture
def aws():
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield boto3.client("sagemaker"), boto3.client("s3")


def _tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_cluster_request_shape(cfg):
    req = cluster_job_request(cfg, RUN, f"s3://{BUCKET}/training/runs/{RUN}/data/",
                              {"context": "12h", "horizon": "1h", "clusters": "auto", "seed": 3})
    assert req["TrainingJobName"] == f"mesp-{RUN}-cluster"
    assert req["HyperParameters"] == {"context": "12h", "horizon": "1h", "clusters": "auto", "seed": "3",
                                      "job": "cluster", "run_id": RUN}
    assert all(isinstance(v, str) for v in req["HyperParameters"].values())
    [channel] = req["InputDataConfig"]
    assert channel["ChannelName"] == "data"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/training/runs/{RUN}/data/"
    assert req["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/training/runs/{RUN}/output"}
    assert req["ResourceConfig"]["InstanceType"] == "ml.c5.xlarge"
    names = [m["Name"] for m in req["AlgorithmSpecification"]["MetricDefinitions"]]
    assert names == list(CLUSTER_METRICS)


def test_metric_regexes_match_the_job_lines(cfg):
    req = expert_job_request(cfg, RUN, 3, "s3://b/d/", "s3://b/c/model.tar.gz", {"trials": 2})
    line = format_metric({"cluster": 3}, fit_wape=0.1234, fit_mae=12.5, n_trials=2, parity_max_rel_err=3.2e-7)
    found = {}
    for m in req["AlgorithmSpecification"]["MetricDefinitions"]:
        match = re.search(m["Regex"], line)
        if match:
            found[m["Name"]] = float(match.group(1))
    assert found == {"fit_wape": 0.1234, "fit_mae": 12.5, "n_trials": 2.0, "parity_max_rel_err": 3.2e-7}
    # a line that is not ours never matches
    assert not any(re.search(m["Regex"], "epoch 3 fit_wape=0.5") for m in req["AlgorithmSpecification"]["MetricDefinitions"])


def test_expert_request_has_both_channels(cfg):
    art = artifact_uri(cfg, RUN, "cluster")
    req = expert_job_request(cfg, RUN, "dense", "s3://b/data/", art, {"trials": 2, "budget_minutes": 1.5})
    assert req["TrainingJobName"] == f"mesp-{RUN}-dense"
    assert {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in req["InputDataConfig"]} == {
        "data": "s3://b/data/", "cluster": art}
    assert req["HyperParameters"] == {"trials": "2", "budget_minutes": "1.5", "job": "expert", "cluster": "dense"}
    assert req["ResourceConfig"]["InstanceType"] == "ml.c5.2xlarge"
    assert [m["Name"] for m in req["AlgorithmSpecification"]["MetricDefinitions"]] == list(EXPERT_METRICS)


def test_job_names_round_trip(cfg):
    for part in ["cluster", "dense", "expert-0", "expert-12"]:
        assert parse_job_name(cfg, job_name(cfg, RUN, part)) == (RUN, part)
    assert parse_job_name(cfg, "someone-elses-job") is None


@pytest.mark.parametrize("missing, flag", [("role_arn", "--sm-role"), ("image_uri", "--sm-image"),
                                           ("work_uri", "--sm-work-uri")])
def test_missing_settings_are_named(cfg, missing, flag):
    broken = SageMakerConfig(**{**vars(cfg), missing: None})
    with pytest.raises(MespError, match=re.escape(flag)):
        broken.require()


def test_config_precedence(tmp_path):
    conf = tmp_path / "sm.toml"
    conf.write_text('[sagemaker]\nimage_uri = "from-file"\ninstance_type = "ml.m5.large"\nvolume_gb = 50\n')
    env = {"MESP_SM_ROLE": ROLE, "MESP_SM_IMAGE": "from-env", "MESP_SM_WORK_URI": "s3://b/p"}
    cfg = SageMakerConfig.resolve({"instance_type": "ml.c5.xlarge", "role_arn": None}, conf, env)
    assert (cfg.role_arn, cfg.image_uri, cfg.instance_type, cfg.volume_gb) == (ROLE, "from-file", "ml.c5.xlarge", 50)
    with pytest.raises(MespError, match="not an IAM role ARN"):
        SageMakerConfig.resolve({"role_arn": "mesp-role"}, None, env).require()
    with pytest.raises(MespError, match="unknown SageMaker setting"):
        SageMakerConfig.resolve({"colour": "red"}, None, env)


def test_run_under_moto(cfg, aws, tmp_path):
    sm, s3 = aws
    data = tmp_path / "traces.csv"
    data.write_text("unique_id,ds,y\n")
    data_uri = upload_data([data], cfg, RUN, s3)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=f"training/runs/{RUN}/data/")["KeyCount"] == 1

    run = SageMakerRun(cfg, RUN, data_uri, {"clusters": 2}, {"trials": 1}, sm=sm, s3=s3)
    name = run.start_cluster()
    desc = sm.describe_training_job(TrainingJobName=name)
    assert desc["HyperParameters"]["clusters"] == "2"
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == artifact_uri(cfg, RUN, "cluster")
    run.wait([name], poll_seconds=1)

    # moto runs no code: put what the cluster job would have written where SageMaker puts it
    summary = {"clusters": [{"id": -1}, {"id": 0}, {"id": 1}]}
    key = artifact_uri(cfg, RUN, "cluster")[len(f"s3://{BUCKET}/"):]
    s3.put_object(Bucket=BUCKET, Key=key, Body=_tarball({"cluster.json": json.dumps(summary).encode()}))
    assert run.advance(name) == "experts-started"
    jobs = {j["TrainingJobName"] for j in sm.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]}
    assert jobs == {f"mesp-{RUN}-{p}" for p in ["cluster", "expert-0", "expert-1", "dense"]}
    expert = sm.describe_training_job(TrainingJobName=f"mesp-{RUN}-expert-1")
    assert expert["HyperParameters"]["cluster"] == "1"
    assert run.advance(f"mesp-{RUN}-dense") == "complete"
    arts = run.artifacts()
    assert arts["experts"] == [artifact_uri(cfg, RUN, "expert-0"), artifact_uri(cfg, RUN, "expert-1")]
    with pytest.raises(MespError, match="not a job of run"):
        run.advance("mesp-20000101000000-dense")


def test_sdk_path(cfg, aws, monkeypatch):
    pytest.importorskip("sagemaker.train", reason="the optional 'sagemaker' extra is not installed")
    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")
    sm, s3 = aws
    run = SageMakerRun(cfg, RUN, f"s3://{BUCKET}/training/runs/{RUN}/data/", {"clusters": 2}, sm=sm, s3=s3,
                       use_sdk=True)
    name = run.start_cluster()
    desc = sm.describe_training_job(TrainingJobName=name)
    assert name.startswith(f"mesp-{RUN}-cluster")
    assert desc["HyperParameters"]["job"] == "cluster"
    assert desc["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert desc["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/training/runs/{RUN}/output"


def _handler():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "functions" / "retrain" / "app.py"
    spec = importlib.util.spec_from_file_location("retrain_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_retrain_function_drives_a_run(cfg, aws, monkeypatch, lambda_context, tmp_path):
    from pathlib import Path

    from test_publish_moto import fake_outputs  # the sibling module (pytest puts this folder on sys.path)

    sm, s3 = aws
    events = Path(__file__).resolve().parents[2] / "events"
    for var, value in {"MESP_SM_ROLE": ROLE, "MESP_SM_IMAGE": IMAGE, "MESP_SM_WORK_URI": f"s3://{BUCKET}/training",
                       "MESP_DATA_URI": f"s3://{BUCKET}/traces/", "MESP_MODEL_URI": f"s3://{BUCKET}/models",
                       "MESP_TRAIN_HYPERPARAMETERS": json.dumps({"cluster": {"clusters": "2"}})}.items():
        monkeypatch.setenv(var, value)
    app = _handler()
    started = app.lambda_handler(json.loads((events / "scheduler_retrain.json").read_text()), lambda_context)
    run_id = started["run_id"]
    assert started["action"] == "started"
    assert sm.describe_training_job(TrainingJobName=started["job"])["HyperParameters"]["clusters"] == "2"

    # moto runs no container: put the jobs' outputs where SageMaker would, then replay the completion events
    outputs = fake_outputs(tmp_path, run_id=run_id)
    from mesp.publish import write_tarball

    def put(part, folder):
        key = artifact_uri(cfg, run_id, part)[len(f"s3://{BUCKET}/"):]
        s3.put_object(Bucket=BUCKET, Key=key, Body=write_tarball(folder, tmp_path / f"{part}.tgz").read_bytes())

    put("cluster", outputs["cluster"])
    event = json.loads((events / "sagemaker_job_completed.json").read_text())
    event["detail"]["TrainingJobName"] = started["job"]
    assert app.lambda_handler(event, lambda_context)["action"] == "experts-started"
    for i, folder in enumerate(outputs["experts"]):
        put(f"expert-{i}", folder)
    put("dense", outputs["dense"])
    event["detail"]["TrainingJobName"] = f"mesp-{run_id}-dense"
    done = app.lambda_handler(event, lambda_context)
    assert done["action"] == "published"
    from mesp.store import open_store

    assert open_store(f"s3://{BUCKET}/models").latest_version() == done["version"]
    assert app.lambda_handler(event, lambda_context)["reused"]  # a duplicate event changes nothing
    event["detail"].update(TrainingJobName="other-team-job")
    assert app.lambda_handler(event, lambda_context)["action"] == "ignored"
    event["detail"].update(TrainingJobName=f"mesp-{run_id}-expert-0", TrainingJobStatus="Failed",
                           FailureReason="AlgorithmError: boom")
    assert app.lambda_handler(event, lambda_context)["action"] == "failed"
