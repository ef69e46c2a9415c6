"""PlannerFunction: forecast the fleet's next hour from CloudWatch and provision concurrency ahead of it.

Invoked by EventBridge Scheduler (ScheduleV2 delivers the ``Input`` JSON verbatim, see
``events/scheduler_planner.json``). For each configured function alias:

1. read the last ``context`` minutes of ``Invocations`` (Sum), ``Duration`` (Average) and
   ``ConcurrentExecutions`` (Maximum) with one ``GetMetricData`` call (minutes without data are zero:
   Lambda publishes nothing for an idle minute);
2. forecast the next hour with the in-memory model store (:class:`mesp.runtime.Predictor`);
3. turn the forecast into provisioned concurrency per block with :func:`mesp.planner.plan_concurrency`
   (Little's law, floor, ceiling, cost cap, smoothing, degraded rule);
4. write the plan to S3 (always) and emit EMF metrics; unless dry-run, apply it through Application Auto
   Scaling on ``function:<name>:<alias>`` / ``lambda:function:ProvisionedConcurrency``: the current block by
   updating the scalable target's capacity, later blocks as one-shot scheduled actions (mode ``scheduled``),
   or the plan as MinCapacity under a target-tracking policy (mode ``target``).

Configuration (environment; the event may override ``dry_run``, ``functions`` and per-function bounds):
``MESP_MODEL_URI`` (required), ``PLAN_BUCKET`` (required), ``PLAN_PREFIX`` (``plans/``),
``PLANNER_FUNCTIONS`` (``name[:alias],...``; default ``FORECAST_FUNCTION_NAME``), ``PLANNER_ALIAS``
(``live``), ``PLANNER_DRY_RUN`` (``true``), ``PLANNER_MODE`` (``scheduled`` | ``target``),
``PLANNER_FLOOR`` / ``PLANNER_CEILING`` / ``PLANNER_QUANTILE`` / ``PLANNER_TARGET_UTILIZATION`` /
``PLANNER_BLOCK_MINUTES`` / ``PLANNER_COST_CAP_USD_PER_HOUR`` / ``PLANNER_DEFAULT_DURATION_MS``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os

import numpy as np
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from mesp.planner import Plan, PlannerConfig, plan_concurrency

logger = Logger()
tracer = Tracer()
metrics = Metrics()

NAMESPACE = "lambda"
DIMENSION = "lambda:function:ProvisionedConcurrency"
STEP_SECONDS = 60
TRUE = {"1", "true", "yes", "on"}


@functools.cache
def client(service: str):
    """boto3 clients are created on first use, so moto (and tests) can intercept them."""
    import boto3

    return boto3.client(service)


@functools.cache
def predictor(uri: str):
    from mesp.runtime import Predictor

    return Predictor(uri)


def _env_float(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from None


def settings(event: dict) -> dict:
    """Environment defaults, overridden by the schedule's Input where it says so."""
    uri, bucket = os.environ.get("MESP_MODEL_URI"), os.environ.get("PLAN_BUCKET")
    if not uri or not bucket:
        raise ValueError("MESP_MODEL_URI and PLAN_BUCKET must be set")
    alias = os.environ.get("PLANNER_ALIAS", "live")
    names = os.environ.get("PLANNER_FUNCTIONS") or os.environ.get("FORECAST_FUNCTION_NAME", "")
    functions = [{"name": n.split(":")[0], "alias": (n.split(":")[1] if ":" in n else alias)}
                 for n in (x.strip() for x in names.split(",")) if n]
    if event.get("functions"):
        functions = [{"alias": alias, **(f if isinstance(f, dict) else {"name": f})} for f in event["functions"]]
    if not functions:
        raise ValueError("no functions to plan: set PLANNER_FUNCTIONS or FORECAST_FUNCTION_NAME")
    mode = os.environ.get("PLANNER_MODE", "scheduled")
    if mode not in ("scheduled", "target"):
        raise ValueError(f"PLANNER_MODE={mode!r} must be 'scheduled' or 'target'")
    dry_run = event.get("dry_run")
    if dry_run is None:
        dry_run = os.environ.get("PLANNER_DRY_RUN", "true").lower() in TRUE
    return {"uri": uri, "bucket": bucket, "prefix": os.environ.get("PLAN_PREFIX", "plans/"),
            "functions": functions, "mode": mode, "dry_run": bool(dry_run),
            "default_duration_ms": _env_float("PLANNER_DEFAULT_DURATION_MS", 1000.0)}


def config_for(fn: dict) -> PlannerConfig:
    def pick(key: str, env: str, default):
        value = fn.get(key)
        return value if value is not None else _env_float(env, default)

    return PlannerConfig(floor=int(pick("floor", "PLANNER_FLOOR", 0)),
                         ceiling=int(pick("ceiling", "PLANNER_CEILING", 100)),
                         quantile=float(pick("quantile", "PLANNER_QUANTILE", 0.9)),
                         target_utilization=float(pick("target_utilization", "PLANNER_TARGET_UTILIZATION", 0.7)),
                         block_minutes=int(pick("block_minutes", "PLANNER_BLOCK_MINUTES", 15)),
                         cost_cap_usd_per_hour=pick("cost_cap_usd_per_hour", "PLANNER_COST_CAP_USD_PER_HOUR", None))


@tracer.capture_method
def read_metrics(name: str, end: dt.datetime, minutes: int) -> dict:
    """Per-minute invocations (zeros where CloudWatch has no point), mean duration, peak concurrency."""
    start = end - dt.timedelta(minutes=minutes)
    dims = [{"Name": "FunctionName", "Value": name}]

    def query(qid: str, metric: str, stat: str) -> dict:
        return {"Id": qid, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": dims},
            "Period": STEP_SECONDS, "Stat": stat}}

    queries = [query("inv", "Invocations", "Sum"), query("dur", "Duration", "Average"),
               query("conc", "ConcurrentExecutions", "Maximum")]
    found: dict[str, dict[dt.datetime, float]] = {"inv": {}, "dur": {}, "conc": {}}
    kwargs = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end, "ScanBy": "TimestampAscending"}
    while True:
        page = client("cloudwatch").get_metric_data(**kwargs)
        for result in page["MetricDataResults"]:
            for ts, value in zip(result["Timestamps"], result["Values"]):
                found[result["Id"]][ts.astimezone(dt.timezone.utc).replace(second=0, microsecond=0)] = value
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    counts = np.zeros(minutes, dtype=np.float32)
    for ts, value in found["inv"].items():
        i = int((ts - start).total_seconds() // STEP_SECONDS)
        if 0 <= i < minutes:
            counts[i] += value
    weights = [(found["inv"].get(ts, 0.0), d) for ts, d in found["dur"].items()]
    total = sum(w for w, _ in weights)
    duration_ms = (sum(w * d for w, d in weights) / total) if total > 0 else None
    peak = max(found["conc"].values()) if found["conc"] else None
    return {"counts": counts, "duration_ms": duration_ms, "peak_concurrency": peak, "points": len(found["inv"])}


def current_capacity(resource: str) -> int | None:
    targets = client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace=NAMESPACE, ResourceIds=[resource], ScalableDimension=DIMENSION)["ScalableTargets"]
    return int(targets[0]["MinCapacity"]) if targets else None


def memory_of(fn: dict) -> float:
    if fn.get("memory_mb"):
        return float(fn["memory_mb"])
    conf = client("lambda").get_function_configuration(FunctionName=fn["name"], Qualifier=fn["alias"])
    return float(conf["MemorySize"])


@tracer.capture_method
def apply_plan(resource: str, plan: Plan, config: PlannerConfig, mode: str, now: dt.datetime) -> list[str]:
    """Push the plan to Application Auto Scaling; returns what was done, for the record."""
    aas = client("application-autoscaling")
    first = plan.values[0]
    top = first if mode == "scheduled" else config.ceiling
    aas.register_scalable_target(ServiceNamespace=NAMESPACE, ResourceId=resource, ScalableDimension=DIMENSION,
                                 MinCapacity=first, MaxCapacity=top)
    done = [f"register {resource} min={first} max={top}"]
    if mode == "target":
        aas.put_scaling_policy(
            PolicyName="mesp-utilization", ServiceNamespace=NAMESPACE, ResourceId=resource,
            ScalableDimension=DIMENSION, PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": config.target_utilization,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"}})
        done.append(f"target tracking at {config.target_utilization}")
    for i, value in enumerate(plan.values[1:], start=1):
        at = now + dt.timedelta(minutes=i * plan.block_minutes)
        aas.put_scheduled_action(
            ServiceNamespace=NAMESPACE, ResourceId=resource, ScalableDimension=DIMENSION,
            ScheduledActionName=f"mesp-block-{i}", Schedule=f"at({at:%Y-%m-%dT%H:%M:%S})", Timezone="UTC",
            ScalableTargetAction={"MinCapacity": value, "MaxCapacity": value if mode == "scheduled" else
                                  max(value, config.ceiling)})
        done.append(f"at {at:%H:%M} min={value}")
    return done


def plan_one(fn: dict, opts: dict, now: dt.datetime) -> dict:
    config = config_for(fn)
    resource = f"function:{fn['name']}:{fn['alias']}"
    model = predictor(opts["uri"]).model()
    manifest = model.manifest
    if manifest.step_seconds != STEP_SECONDS:
        raise ValueError(f"model step {manifest.step_seconds}s; CloudWatch metrics are read per minute")
    observed = read_metrics(fn["name"], now, manifest.context)
    pred = predictor(opts["uri"]).predict(observed["counts"][None, :], model=model)
    duration_ms = observed["duration_ms"] or opts["default_duration_ms"]
    previous = current_capacity(resource)
    memory_mb = memory_of(fn)
    plan = plan_concurrency(pred.values[0], pred.quantiles, duration_s=duration_ms / 1000.0, memory_mb=memory_mb,
                            step_seconds=STEP_SECONDS, config=config, previous=previous,
                            degraded=bool(pred.degraded[0]))
    record = {"function": fn["name"], "alias": fn["alias"], "resource": resource, "created": now.isoformat(),
              "dry_run": opts["dry_run"], "mode": opts["mode"], "model_version": pred.version,
              "expert": pred.families[0], "cluster": pred.cluster_ids[0], "previous": previous,
              "duration_ms": duration_ms, "duration_source": "cloudwatch" if observed["duration_ms"] else "default",
              "memory_mb": memory_mb, "observed_peak_concurrency": observed["peak_concurrency"],
              "history_invocations": float(observed["counts"].sum()),
              "forecast_invocations_p50": float(pred.forecast[0].sum()),
              "config": {k: getattr(config, k) for k in config.__dataclass_fields__}, "plan": plan.to_dict()}
    if not opts["dry_run"]:
        record["applied"] = apply_plan(resource, plan, config, opts["mode"], now)
    key = f"{opts['prefix']}{now:%Y/%m/%d/%H%M}/{fn['name']}-{fn['alias']}.json"
    client("s3").put_object(Bucket=opts["bucket"], Key=key, Body=json.dumps(record, default=str).encode(),
                            ContentType="application/json")
    record["plan_key"] = key
    with single_metric(name="PlannedConcurrency", unit=MetricUnit.Count, value=plan.values[0],
                       namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE")) as m:
        m.add_dimension(name="Function", value=f"{fn['name']}:{fn['alias']}")
        m.add_metric(name="ForecastInvocations", unit=MetricUnit.Count, value=record["forecast_invocations_p50"])
        m.add_metric(name="PlanDegraded", unit=MetricUnit.Count, value=int(plan.degraded))
        m.add_metric(name="PlanCostUSDPerHour", unit=MetricUnit.NoUnit, value=plan.cost_usd_per_hour)
    logger.info("planned", extra={"function": resource, "values": plan.values, "reasons": plan.reasons,
                                  "degraded": plan.degraded, "dry_run": opts["dry_run"]})
    return record


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context) -> dict:
    opts = settings(event if isinstance(event, dict) else {})
    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    results = []
    for fn in opts["functions"]:
        try:
            record = plan_one(fn, opts, now)
            results.append({"function": fn["name"], "alias": fn["alias"], "values": record["plan"]["values"],
                            "degraded": record["plan"]["degraded"], "plan_key": record["plan_key"]})
        except Exception as err:  # noqa: BLE001 - one function's failure must not stop the fleet's plans
            logger.exception("planning failed", extra={"function": fn.get("name")})
            metrics.add_metric(name="PlanFailed", unit=MetricUnit.Count, value=1)
            results.append({"function": fn.get("name"), "alias": fn.get("alias"), "error": str(err)[:300]})
    metrics.add_metric(name="FunctionsPlanned", unit=MetricUnit.Count,
                       value=sum(1 for r in results if "error" not in r))
    return {"dry_run": opts["dry_run"], "plans": results}
