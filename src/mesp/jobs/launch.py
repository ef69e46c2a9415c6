"""Launch the training jobs on SageMaker: boto3 ``CreateTrainingJob`` by default, the SDK v3 optionally.

One training run = one cluster job, then (once its output says which clusters exist) one expert job
per K-Shape cluster plus one for the dense model, all in parallel, then a publish::

    <work>/runs/<run>/data/...                                  the traces (uploaded by ``mesp train``)
    <work>/runs/<run>/output/<prefix>-<run>-cluster/output/model.tar.gz
    <work>/runs/<run>/output/<prefix>-<run>-expert-<id>/output/model.tar.gz
    <work>/runs/<run>/output/<prefix>-<run>-dense/output/model.tar.gz

Job names carry the run and the part, so an event about one job (the retrain Lambda listens to
"SageMaker Training Job State Change") is enough to advance the run: :meth:`SageMakerRun.advance`.

The image is the BYOC image of ``training_jobs/Dockerfile``; the code travels inside it, and the
``job`` hyperparameter tells its entry point which job to run. Configuration comes from flags, then a
JSON/TOML file, then ``MESP_SM_*`` environment variables (:meth:`SageMakerConfig.resolve`).

Light on purpose (boto3 + stdlib): the Lambda retrain function imports it.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mesp.errors import MespError
from mesp.jobs.contract import CLUSTER_METRICS, EXPERT_METRICS, metric_definitions, to_strings

ENV = {
    "role_arn": "MESP_SM_ROLE",
    "image_uri": "MESP_SM_IMAGE",
    "work_uri": "MESP_SM_WORK_URI",
    "instance_type": "MESP_SM_INSTANCE",
    "expert_instance_type": "MESP_SM_EXPERT_INSTANCE",
    "volume_gb": "MESP_SM_VOLUME_GB",
    "max_runtime_s": "MESP_SM_MAX_RUNTIME",
    "job_prefix": "MESP_SM_JOB_PREFIX",
}
FLAGS = {"role_arn": "--sm-role", "image_uri": "--sm-image", "work_uri": "--sm-work-uri",
         "instance_type": "--sm-instance", "expert_instance_type": "--sm-expert-instance"}
_ROLE_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_PREFIX_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,19}$")


@dataclass(frozen=True)
class SageMakerConfig:
    """Where and how the jobs run. ``work_uri`` (s3://bucket/prefix) receives data uploads and outputs."""

    role_arn: str | None = None
    image_uri: str | None = None
    work_uri: str | None = None
    instance_type: str = "ml.m5.xlarge"
    expert_instance_type: str | None = None
    volume_gb: int = 30
    max_runtime_s: int = 4 * 3600
    job_prefix: str = "mesp"
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(cls, flags: Mapping[str, Any] | None = None, config_file: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> "SageMakerConfig":
        """Flags (None = not given) beat the config file, which beats ``MESP_SM_*`` variables."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {name: env[var] for name, var in ENV.items() if env.get(var)}
        if config_file:
            values.update(_read_config(Path(config_file)))
        values.update({k: v for k, v in (flags or {}).items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise MespError(f"unknown SageMaker setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for name in ("volume_gb", "max_runtime_s"):
            if name in values:
                try:
                    values[name] = int(values[name])
                except (TypeError, ValueError):
                    raise MespError(f"SageMaker setting {name}={values[name]!r} must be a whole number") from None
        return cls(**values)

    def require(self) -> "SageMakerConfig":
        """Raise one clear error naming every missing or malformed setting and how to give it."""
        problems = []
        for name in ("role_arn", "image_uri", "work_uri"):
            if not getattr(self, name):
                problems.append(f"{name} (flag {FLAGS[name]} or env {ENV[name]})")
        if problems:
            raise MespError("SageMaker training needs " + "; ".join(problems))
        if not _ROLE_RE.match(self.role_arn or ""):
            raise MespError(f"role {self.role_arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        if not str(self.work_uri).startswith("s3://") or not str(self.work_uri)[5:].split("/")[0]:
            raise MespError(f"work location {self.work_uri!r} must be s3://bucket[/prefix]")
        if not _PREFIX_RE.match(self.job_prefix):
            raise MespError(f"job prefix {self.job_prefix!r}: up to 20 letters, digits and dashes")
        if self.volume_gb < 1 or self.max_runtime_s < 60:
            raise MespError(f"volume_gb={self.volume_gb} must be >= 1 and max_runtime_s={self.max_runtime_s} >= 60")
        return self

    @property
    def work(self) -> str:
        return str(self.work_uri).rstrip("/")


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as err:
        raise MespError(f"cannot read SageMaker config {path}: {err.strerror or err}") from None
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
            data = data.get("sagemaker", data)
        else:
            data = json.loads(text)
    except (ValueError, json.JSONDecodeError) as err:
        raise MespError(f"SageMaker config {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {err}") from None
    if not isinstance(data, dict):
        raise MespError(f"SageMaker config {path} must hold a table/object of settings")
    return data


# ---------------------------------------------------------------------------------------------- requests


def new_run_id(now: datetime | None = None) -> str:
    return f"{(now or datetime.now(UTC)):%Y%m%d%H%M%S}"


def job_name(cfg: SageMakerConfig, run_id: str, part: str) -> str:
    """``<prefix>-<run>-<part>`` (part: cluster, dense, expert-<id>); SageMaker allows 63 characters."""
    name = f"{cfg.job_prefix}-{run_id}-{part}"
    if len(name) > 63:
        raise MespError(f"training job name {name!r} is longer than 63 characters; shorten the job prefix")
    return name


def parse_job_name(cfg: SageMakerConfig, name: str) -> tuple[str, str] | None:
    """(run_id, part) for one of our job names, None for anyone else's."""
    match = re.match(rf"^{re.escape(cfg.job_prefix)}-(\d{{14}})-(cluster|dense|expert-\d+)$", name)
    return (match.group(1), match.group(2)) if match else None


def output_path(cfg: SageMakerConfig, run_id: str) -> str:
    return f"{cfg.work}/runs/{run_id}/output"


def artifact_uri(cfg: SageMakerConfig, run_id: str, part: str) -> str:
    """Where SageMaker puts a job's model.tar.gz (``<S3OutputPath>/<job>/output/model.tar.gz``)."""
    return f"{output_path(cfg, run_id)}/{job_name(cfg, run_id, part)}/output/model.tar.gz"


def _channel(name: str, uri: str) -> dict:
    return {"ChannelName": name, "InputMode": "File", "CompressionType": "None",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                            "S3DataDistributionType": "FullyReplicated"}}}


def training_job_request(cfg: SageMakerConfig, run_id: str, part: str, channels: Mapping[str, str],
                         hyperparameters: Mapping[str, Any], metrics: Sequence[str],
                         instance_type: str | None = None) -> dict:
    """The keyword arguments of ``sagemaker.create_training_job`` for one job."""
    cfg.require()
    tags = {"mesp:run": run_id, "mesp:part": part, **cfg.tags}
    return {
        "TrainingJobName": job_name(cfg, run_id, part),
        "RoleArn": cfg.role_arn,
        "AlgorithmSpecification": {"TrainingImage": cfg.image_uri, "TrainingInputMode": "File",
                                   "MetricDefinitions": metric_definitions(list(metrics))},
        "HyperParameters": to_strings(hyperparameters),
        "InputDataConfig": [_channel(name, uri) for name, uri in channels.items()],
        "OutputDataConfig": {"S3OutputPath": output_path(cfg, run_id)},
        "ResourceConfig": {"InstanceType": instance_type or cfg.instance_type, "InstanceCount": 1,
                           "VolumeSizeInGB": cfg.volume_gb},
        "StoppingCondition": {"MaxRuntimeInSeconds": cfg.max_runtime_s},
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }


def cluster_job_request(cfg: SageMakerConfig, run_id: str, data_uri: str,
                        hyperparameters: Mapping[str, Any]) -> dict:
    return training_job_request(cfg, run_id, "cluster", {"data": data_uri},
                                {**hyperparameters, "job": "cluster", "run_id": run_id}, CLUSTER_METRICS)


def expert_job_request(cfg: SageMakerConfig, run_id: str, cluster: int | str, data_uri: str,
                       cluster_artifact: str, hyperparameters: Mapping[str, Any]) -> dict:
    part = "dense" if str(cluster) == "dense" else f"expert-{int(cluster)}"
    return training_job_request(cfg, run_id, part, {"data": data_uri, "cluster": cluster_artifact},
                                {**hyperparameters, "job": "expert", "cluster": str(cluster)}, EXPERT_METRICS,
                                cfg.expert_instance_type)


# ------------------------------------------------------------------------------------------------ running


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def _client(service: str) -> Any:
    import boto3

    return boto3.client(service)


def upload_data(paths: Sequence[str | os.PathLike[str]], cfg: SageMakerConfig, run_id: str,
                s3: Any = None) -> str:
    """Copy local trace files under ``<work>/runs/<run>/data/``; returns that prefix (the data channel)."""
    s3 = s3 or _client("s3")
    prefix = f"{cfg.work}/runs/{run_id}/data/"
    bucket, key_prefix = _split_s3(prefix)
    names = [Path(p).name for p in paths]
    if len(set(names)) != len(names):
        raise MespError(f"data files must have distinct names to share one channel: {names}")
    for path in paths:
        if not Path(path).is_file():
            raise MespError(f"data file {path} does not exist")
        s3.upload_file(str(path), bucket, key_prefix + Path(path).name)
    return prefix


def read_cluster_summary(artifact: str, s3: Any = None) -> dict:
    """``cluster.json`` from a cluster job's model.tar.gz on S3, without unpacking the rest."""
    s3 = s3 or _client("s3")
    bucket, key = _split_s3(artifact)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        member = tar.extractfile("cluster.json")
        if member is None:
            raise MespError(f"{artifact} has no cluster.json: not a cluster job output")
        return json.loads(member.read())


class TrainingJobFailed(MespError):
    pass


@dataclass
class SageMakerRun:
    """One training run on SageMaker, driven either in one process (:meth:`run`) or by events (:meth:`advance`)."""

    cfg: SageMakerConfig
    run_id: str
    data_uri: str
    cluster_hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    expert_hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    sm: Any = None
    s3: Any = None
    use_sdk: bool = False

    def __post_init__(self) -> None:
        self.cfg.require()
        self.sm = self.sm or _client("sagemaker")
        self.s3 = self.s3 or _client("s3")
        self.names: dict[str, str] = {}  # part -> job name (the SDK picks its own names)

    # -- steps -------------------------------------------------------------------------------------
    def submit(self, part: str, request: dict) -> str:
        if self.use_sdk:
            name = launch_with_sdk(self.cfg, request)
        else:
            self.sm.create_training_job(**request)
            name = request["TrainingJobName"]
        self.names[part] = name
        return name

    def artifact(self, part: str) -> str:
        """A job's model.tar.gz URI, as SageMaker reports it once the job has completed."""
        name = self.names.get(part, job_name(self.cfg, self.run_id, part))
        desc = self.sm.describe_training_job(TrainingJobName=name)
        return desc.get("ModelArtifacts", {}).get("S3ModelArtifacts") or artifact_uri(self.cfg, self.run_id, part)

    def start_cluster(self) -> str:
        return self.submit("cluster", cluster_job_request(self.cfg, self.run_id, self.data_uri,
                                                          self.cluster_hyperparameters))

    def expert_parts(self) -> list[str]:
        """The expert jobs this run needs: ``expert-<id>`` for every K-Shape cluster, plus ``dense``."""
        summary = read_cluster_summary(self.artifact("cluster"), self.s3)
        return [f"expert-{int(c['id'])}" for c in summary["clusters"] if int(c["id"]) >= 0] + ["dense"]

    def start_experts(self) -> list[str]:
        cluster_artifact = self.artifact("cluster")
        names = []
        for part in self.expert_parts():
            cluster = "dense" if part == "dense" else part.split("-", 1)[1]
            names.append(self.submit(part, expert_job_request(
                self.cfg, self.run_id, cluster, self.data_uri, cluster_artifact, self.expert_hyperparameters)))
        return names

    def wait(self, names: Sequence[str], poll_seconds: int = 30, max_hours: float = 24) -> dict[str, dict]:
        """Block until every job ends; raises TrainingJobFailed with SageMaker's FailureReason."""
        waiter = self.sm.get_waiter("training_job_completed_or_stopped")
        config = {"Delay": poll_seconds, "MaxAttempts": max(1, int(max_hours * 3600 / poll_seconds))}
        out = {}
        for name in names:
            waiter.wait(TrainingJobName=name, WaiterConfig=config)
            desc = self.sm.describe_training_job(TrainingJobName=name)
            if desc["TrainingJobStatus"] != "Completed":
                raise TrainingJobFailed(f"training job {name} {desc['TrainingJobStatus'].lower()}: "
                                        f"{desc.get('FailureReason', 'no reason given')}")
            out[name] = desc
        return out

    def artifacts(self) -> dict[str, Any]:
        """The job outputs to publish: cluster, experts (list) and dense."""
        parts = self.expert_parts()
        return {"cluster": self.artifact("cluster"),
                "experts": [self.artifact(p) for p in parts if p != "dense"],
                "dense": self.artifact("dense")}

    def run(self, poll_seconds: int = 30) -> dict[str, Any]:
        """cluster -> experts in parallel -> artifacts, waiting in this process."""
        self.wait([self.start_cluster()], poll_seconds)
        self.wait(self.start_experts(), poll_seconds)
        return self.artifacts()

    def advance(self, finished_job: str) -> str:
        """React to one of this run's jobs completing: start experts, or report the run complete.

        Returns ``"experts-started"``, ``"waiting"`` (other experts still running) or ``"complete"``.
        """
        parsed = parse_job_name(self.cfg, finished_job)
        if parsed is None or parsed[0] != self.run_id:
            raise MespError(f"{finished_job} is not a job of run {self.run_id}")
        if parsed[1] == "cluster":
            self.start_experts()
            return "experts-started"
        for part in self.expert_parts():
            name = self.names.get(part, job_name(self.cfg, self.run_id, part))
            status = self.sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
            if status in {"Failed", "Stopped"}:
                raise TrainingJobFailed(f"training job {name} {status.lower()}; run {self.run_id} cannot publish")
            if status != "Completed":
                return "waiting"
        return "complete"


# --------------------------------------------------------------------------------------------- SDK path


def launch_with_sdk(cfg: SageMakerConfig, request: Mapping[str, Any]) -> str:
    """Start the same job through the SageMaker Python SDK v3 ``ModelTrainer`` (extra ``mesp[sagemaker]``).

    The BYOC image keeps its own entry point, so no ``SourceCode`` is given (with one, the SDK would replace
    the entry point by its driver). Returns the job name the SDK chose (``<base>-<timestamp>``).
    """
    try:
        from sagemaker.train import ModelTrainer

        try:  # where SDK 3.x keeps them now; sagemaker.train.configs is a deprecated shim
            from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig, StoppingCondition
        except ImportError:
            from sagemaker.train.configs import Compute, InputData, OutputDataConfig, StoppingCondition
    except ImportError:
        raise MespError("the SageMaker SDK path needs the 'sagemaker' extra: pip install 'mesp[sagemaker]'") from None
    from sagemaker.core.shapes import MetricDefinition

    spec = request["AlgorithmSpecification"]
    resources = request["ResourceConfig"]
    trainer = ModelTrainer(
        training_image=spec["TrainingImage"],
        role=request["RoleArn"],
        base_job_name=request["TrainingJobName"],
        compute=Compute(instance_type=resources["InstanceType"], instance_count=resources["InstanceCount"],
                        volume_size_in_gb=resources["VolumeSizeInGB"]),
        stopping_condition=StoppingCondition(
            max_runtime_in_seconds=request["StoppingCondition"]["MaxRuntimeInSeconds"]),
        output_data_config=OutputDataConfig(s3_output_path=request["OutputDataConfig"]["S3OutputPath"]),
        hyperparameters=dict(request["HyperParameters"]),
    ).with_metric_definitions([MetricDefinition(name=m["Name"], regex=m["Regex"])
                               for m in spec["MetricDefinitions"]])
    trainer.train(input_data_config=[
        InputData(channel_name=c["ChannelName"], data_source=c["DataSource"]["S3DataSource"]["S3Uri"])
        for c in request["InputDataConfig"]], wait=False)
    job = getattr(trainer, "_latest_training_job", None)
    return getattr(job, "training_job_name", None) or request["TrainingJobName"]


def config_summary(cfg: SageMakerConfig) -> dict[str, Any]:
    """What to record in the manifest about where training ran (no secrets live in the config)."""
    return {k: v for k, v in vars(replace(cfg)).items() if k != "tags"}
