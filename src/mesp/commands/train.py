"""``mesp train``: cluster, search the experts and the dense rival, publish a version (locally or on SageMaker)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the mixture and publish it into a model store", description=__doc__.splitlines()[0],
        epilog="Daily-pattern files hold single days of 1,440 minutes, so with the default --context auto they are "
               "trained with a 12h context (a 1d context leaves no room for the horizon); other formats use 1d.")
    p.add_argument("--data", nargs="+", required=True, metavar="PATH", help="trace files (any supported format)")
    p.add_argument("--model", required=True, metavar="STORE", help="model store: a folder or s3://bucket/prefix")
    p.add_argument("--context", default="auto", help="context length, e.g. 1d, 12h, 720steps (default: auto)")
    p.add_argument("--horizon", default="1h", help="forecast horizon (default: 1h)")
    p.add_argument("--stride", default="", help="distance between window origins (default: the horizon)")
    p.add_argument("--clusters", default="auto", metavar="K|auto", help="number of K-Shape clusters (default: auto)")
    p.add_argument("--budget-minutes", type=float, default=10.0, metavar="M",
                   help="wall-clock budget of the whole run, split as documented in mesp.train (default: 10)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed of the run and of the --test-fraction split (default 0)")
    p.add_argument("--test-fraction", type=float, default=0.0, metavar="F",
                   help="hold out this share of the series (whole functions) and train on the rest only; "
                        "the same split as 'mesp evaluate/simulate --test-fraction F --seed S' (default 0)")
    p.add_argument("--workers", type=int, default=2, help="expert jobs run at once locally (default: 2)")
    p.add_argument("--trials", type=int, default=20, help="Optuna trials per expert at most (default: 20)")
    p.add_argument("--max-epochs", type=int, default=30, help="epochs per trial at most (default: 30)")
    p.add_argument("--families", default="", help="comma-separated expert families (default: all)")
    p.add_argument("--quantiles", default="0.5,0.9", help="forecast quantiles (default: 0.5,0.9)")
    p.add_argument("--format", dest="fmt", default="auto", help="data format (default: detected)")
    p.add_argument("--add-cluster", action="store_true",
                   help="learn the patterns LATEST's router flags as novel as new cluster(s); old experts reused")
    p.add_argument("--workdir", help="keep the jobs' folders here (default: a temporary folder, removed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    sm = p.add_argument_group("SageMaker (--sagemaker)")
    sm.add_argument("--sagemaker", action="store_true", help="run the jobs as SageMaker training jobs")
    sm.add_argument("--sm-role", help="IAM role ARN for the jobs (env MESP_SM_ROLE)")
    sm.add_argument("--sm-image", help="training image URI, see training_jobs/Dockerfile (env MESP_SM_IMAGE)")
    sm.add_argument("--sm-work-uri", help="s3://bucket/prefix for data uploads and outputs (env MESP_SM_WORK_URI)")
    sm.add_argument("--sm-instance", help="instance type of the cluster job (env MESP_SM_INSTANCE)")
    sm.add_argument("--sm-expert-instance", help="instance type of the expert jobs (env MESP_SM_EXPERT_INSTANCE)")
    sm.add_argument("--sm-config", help="JSON or TOML file with these settings")
    sm.add_argument("--sm-sdk", action="store_true", help="launch through the SageMaker SDK v3 (extra 'sagemaker')")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mesp.errors import MespError

    if args.sagemaker and args.add_cluster:
        raise MespError("--add-cluster runs locally; drop --sagemaker")
    if args.workers < 1 or args.trials < 1 or args.max_epochs < 1:
        raise MespError("--workers, --trials and --max-epochs must be at least 1")
    if args.sagemaker:
        return _run_sagemaker(args)
    from mesp.train import TrainOptions, train

    opts = TrainOptions(context=args.context, horizon=args.horizon, stride=args.stride, clusters=args.clusters,
                        budget_minutes=args.budget_minutes, seed=args.seed, test_fraction=args.test_fraction,
                        workers=args.workers,
                        trials=args.trials, max_epochs=args.max_epochs, families=args.families,
                        quantiles=args.quantiles, data_format=args.fmt, progress=not args.no_progress)
    result = train(args.data, args.model, opts, workdir=args.workdir, add_cluster=args.add_cluster)
    _report(args.model, result)
    return 0


def _report(store_uri: str, result) -> None:
    from mesp.store import open_store

    manifest = open_store(store_uri).read_manifest(result.version)
    state = "already published (identical), LATEST" if result.reused else "published, LATEST"
    print(f"{result.version}: {state} (was {result.previous or 'none'})")
    for c in manifest.clusters:
        print(f"  cluster {c.id:>3}  {c.size:>7} windows  {c.expert.family:<18} {c.label}")
    print(f"  dense              {manifest.dense.family}")


def _run_sagemaker(args: argparse.Namespace) -> int:
    import tempfile

    from mesp.jobs.launch import SageMakerConfig, SageMakerRun, new_run_id, upload_data
    from mesp.publish import draft_from_sources, publish

    cfg = SageMakerConfig.resolve({"role_arn": args.sm_role, "image_uri": args.sm_image,
                                   "work_uri": args.sm_work_uri, "instance_type": args.sm_instance,
                                   "expert_instance_type": args.sm_expert_instance}, args.sm_config).require()
    run_id = new_run_id()
    data_uri = upload_data(args.data, cfg, run_id)
    common = {"context": args.context, "horizon": args.horizon, "stride": args.stride, "seed": args.seed,
              "data_format": args.fmt, "test_fraction": args.test_fraction, "split_seed": args.seed}
    job = SageMakerRun(cfg, run_id, data_uri, {**common, "clusters": args.clusters},
                       {"budget_minutes": args.budget_minutes, "trials": args.trials, "max_epochs": args.max_epochs,
                        "families": args.families, "quantiles": args.quantiles, "seed": args.seed,
                        "data_format": args.fmt, "test_fraction": args.test_fraction, "split_seed": args.seed},
                       use_sdk=args.sm_sdk)
    print(f"run {run_id}: cluster job, then one expert job per cluster and a dense job (waiting) ...")
    arts = job.run()
    with tempfile.TemporaryDirectory(prefix="mesp-publish-") as work:
        draft = draft_from_sources(arts["cluster"], arts["experts"], arts["dense"], work,
                                   {"mode": "sagemaker", "run_id": run_id})
        result = publish(args.model, draft)
    _report(args.model, result)
    return 0
