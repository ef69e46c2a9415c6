"""RetrainFunction: drives a SageMaker training run without waiting in Lambda.

Two kinds of events arrive here:

* the EventBridge Scheduler input ``{"action": "retrain"}`` (events/scheduler_retrain.json): start a run,
  i.e. the cluster job on the traces under ``MESP_DATA_URI``;
* "SageMaker Training Job State Change" events for our jobs (names ``<prefix>-<run>-<part>``,
  events/sagemaker_job_completed.json): when the cluster job completes, start one expert job per cluster
  plus the dense job; when the last of those completes, publish the run into ``MESP_MODEL_URI``
  (idempotent, so a duplicate event is harmless). Failed jobs are logged and counted, nothing is published.

Configuration (environment): ``MESP_MODEL_URI``, ``MESP_DATA_URI``, ``MESP_SM_ROLE``, ``MESP_SM_IMAGE``,
``MESP_SM_WORK_URI``, optional ``MESP_SM_INSTANCE``, ``MESP_SM_EXPERT_INSTANCE``, ``MESP_SM_JOB_PREFIX``,
``MESP_SM_MAX_RUNTIME``, ``MESP_SM_VOLUME_GB`` and ``MESP_TRAIN_HYPERPARAMETERS`` (JSON:
``{"cluster": {...}, "expert": {...}}``). The launch and publish logic lives in :mod:`mesp.jobs.launch`
and :mod:`mesp.publish`; this module only wires events to it.
"""

import json
import os
import tempfile
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mesp.errors import MespError
from mesp.jobs.launch import SageMakerConfig, SageMakerRun, new_run_id, parse_job_name
from mesp.publish import draft_from_sources, publish

logger = Logger()
metrics = Metrics()
STATE_CHANGE = "SageMaker Training Job State Change"


def _settings() -> tuple[SageMakerConfig, str, str, dict]:
    missing = [v for v in ("MESP_MODEL_URI", "MESP_DATA_URI") if not os.environ.get(v)]
    if missing:
        raise MespError(f"RetrainFunction needs {', '.join(missing)} in its environment")
    try:
        hps = json.loads(os.environ.get("MESP_TRAIN_HYPERPARAMETERS") or "{}")
    except json.JSONDecodeError as err:
        raise MespError(f"MESP_TRAIN_HYPERPARAMETERS is not JSON: {err.msg}") from None
    return SageMakerConfig.resolve().require(), os.environ["MESP_MODEL_URI"], os.environ["MESP_DATA_URI"], hps


def _run(cfg: SageMakerConfig, run_id: str, data_uri: str, hps: dict) -> SageMakerRun:
    return SageMakerRun(cfg, run_id, data_uri, hps.get("cluster", {}), hps.get("expert", {}))


def _on_state_change(detail: dict) -> dict[str, Any]:
    cfg, model_uri, data_uri, hps = _settings()
    name, status = detail.get("TrainingJobName", ""), detail.get("TrainingJobStatus", "")
    parsed = parse_job_name(cfg, name)
    if parsed is None:
        metrics.add_metric(name="ForeignJobEvents", unit=MetricUnit.Count, value=1)
        return {"action": "ignored", "job": name}
    run_id, part = parsed
    metrics.add_metric(name="TrainingJobEvents", unit=MetricUnit.Count, value=1)
    if status in {"Failed", "Stopped"}:
        logger.error("training job ended without a model", job=name, status=status,
                     reason=detail.get("FailureReason", ""))
        metrics.add_metric(name="TrainingJobsFailed", unit=MetricUnit.Count, value=1)
        return {"action": "failed", "job": name, "run_id": run_id}
    if status != "Completed":
        return {"action": "ignored", "job": name, "status": status}
    run = _run(cfg, run_id, data_uri, hps)
    state = run.advance(name)
    logger.info("run advanced", run_id=run_id, job=name, part=part, state=state)
    if state != "complete":
        return {"action": state, "run_id": run_id}
    arts = run.artifacts()
    with tempfile.TemporaryDirectory(prefix="mesp-publish-") as work:
        draft = draft_from_sources(arts["cluster"], arts["experts"], arts["dense"], work,
                                   {"mode": "sagemaker", "run_id": run_id})
        result = publish(model_uri, draft)
    metrics.add_metric(name="ModelVersionsPublished", unit=MetricUnit.Count, value=0 if result.reused else 1)
    logger.info("published", version=result.version, previous=result.previous, reused=result.reused)
    return {"action": "published", "run_id": run_id, "version": result.version, "reused": result.reused}


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    if event.get("detail-type") == STATE_CHANGE:
        return _on_state_change(event.get("detail", {}))
    if event.get("action") != "retrain":
        raise MespError(f"unexpected event: expected {{'action': 'retrain'}} or a {STATE_CHANGE!r} event")
    cfg, _, data_uri, hps = _settings()
    run_id = new_run_id()
    job = _run(cfg, run_id, data_uri, hps).start_cluster()
    metrics.add_metric(name="TrainingRunsStarted", unit=MetricUnit.Count, value=1)
    logger.info("training run started", run_id=run_id, job=job)
    return {"action": "started", "run_id": run_id, "job": job}
